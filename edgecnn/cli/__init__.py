"""The ``edgecnn`` command line. Commands only turn flags into API calls.

Every user mistake surfaces as :class:`~edgecnn.errors.UserError`: one line on stderr,
exit code 2, no traceback (see :mod:`edgecnn.cli._main`).
"""

from edgecnn.cli import data, latency, optimize, report, run, search, show, sweep, tflite, zoo  # noqa: F401 - each registers its commands
from edgecnn.cli._main import main

__all__ = ["main"]
