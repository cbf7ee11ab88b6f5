"""``edgecnn search``: the best model, width, resolution and precision within a latency budget.

The answer to "which model gives the best accuracy on my photos within 20 ms on my
Raspberry Pi?", in three steps:

1. every candidate (family x width x resolution x precision) is built untrained,
   converted and timed on the target (:mod:`edgecnn.search.latency`): latency does not
   depend on the weights, so those over the budget (or the size limit) are dropped
   before any training;
2. the rest are trained by successive halving (:mod:`edgecnn.search.train`): a few
   epochs for all, then more for the best ``1/eta``, each a normal edgecnn run;
3. the table, the accuracy-vs-latency plot with the budget line and the Pareto front,
   and one line naming the choice (:mod:`edgecnn.search.results`).

State is kept in ``<out>/search.jsonl``; the same command run again resumes.

Example:
    >>> spec = SearchSpec(families=["mobilenet", "shufflenet_v2"], budget_ms=5,
    ...                   data="photos/", widths=[0.25, 0.5], sizes=[96, 128])
    >>> result = run_search(spec)  # doctest: +SKIP
    >>> result["choice"]           # doctest: +SKIP
    'chose mobilenet a0.25 128px int8: 84.0% val (82.0% test), 2.10 ms <= 5 ms budget, ...'
"""

from edgecnn.search.engine import run_search
from edgecnn.search.space import Candidate, SearchSpec, candidates

__all__ = ["Candidate", "SearchSpec", "candidates", "run_search"]
