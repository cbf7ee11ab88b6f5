"""Compression steps, each a ``model -> model`` function paired with its finalize step.

    width (--alpha, through the registry) -> distill -> channel prune -> magnitude prune -> QAT -> convert

- :mod:`edgecnn.optimize.channel_prune`: :func:`prune_channels` removes filters (L1 or
  BatchNorm-scale criterion) and rebuilds a physically narrower model (residual additions
  and concatenations kept consistent); fine-tune it afterwards.
- :mod:`edgecnn.optimize.prune`: :func:`prune_model` (tfmot magnitude pruning, polynomial
  decay or 2:4), :func:`pruning_callbacks`, :func:`strip_pruning`, :func:`layer_sparsity`.
- :mod:`edgecnn.optimize.distill`: :class:`Distiller` (student + frozen teacher) and
  :func:`distillation_loss`.
- :mod:`edgecnn.optimize.qat`: :func:`quantize_model` (tfmot 8-bit QAT, optionally
  prune-preserving) and :class:`KeepSparsity`.

The pipeline runs them as stages (see :mod:`edgecnn.pipeline`), one table row each.

Example:
    >>> from edgecnn.optimize.channel_prune import prune_channels
    >>> from edgecnn.optimize.prune import prune_model, pruning_callbacks, strip_pruning
    >>> narrow, report = prune_channels(model, fraction=0.5)        # doctest: +SKIP
    >>> sparse = prune_model(narrow, sparsity=0.5, end_step=500)    # doctest: +SKIP
"""

# The choices of the steps' settings, here (TensorFlow-free) so that the settings
# declarations (edgecnn.stages) and the steps themselves share one list.
PRUNE_STRUCTURES = ("unstructured", "2:4")
CHANNEL_CRITERIA = ("l1", "bn")
