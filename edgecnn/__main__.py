"""``python -m edgecnn`` is the ``edgecnn`` command."""

from edgecnn.cli import main

main()
