"""One worker of the lost-worker test in ``test_hostile_runs.py`` (run as a script, not collected).

Usage: ``TF_CONFIG=... python tests/_distributed_lost.py WHERE``. Every worker creates the
``multiworker`` strategy; the non-chief then exits at once (a worker lost outside
``model.fit``), and the chief enters the collective named by WHERE: ``all_agree`` (the check
whether a finished stage can be reused) or ``barrier`` (the final wait). The chief must
end with the one-line :class:`~edgecnn.distribute.WorkerLost` message and exit code 2.
"""

import os
import sys
import time

from edgecnn import distribute
from edgecnn.errors import UserError

strategy = distribute.get_strategy("multiworker")  # first: before TensorFlow runs anything
if not distribute.is_chief(strategy):
    os._exit(0)  # lost: no goodbye to the others
time.sleep(1.0)
try:
    if sys.argv[1] == "barrier":
        distribute.barrier(strategy)
    else:
        distribute.all_agree(True, strategy)
except UserError as exc:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(2)
print("no error", file=sys.stderr)
sys.exit(0)
