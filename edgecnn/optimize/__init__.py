"""Compression steps, each a ``model -> model`` function paired with its finalize step.

    width  -> prune -> distill -> qat -> convert

See :mod:`edgecnn.optimize.prune` and :mod:`edgecnn.optimize.qat`.
"""
