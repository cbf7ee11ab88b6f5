"""The stages of the pipeline, registered in the order they run.

Data flows one way: registry -> model -> train -> the compression stages below ->
convert -> evaluate -> bench -> report. Each compression stage is one module of this
package holding one :class:`~edgecnn.stages._base.Stage` (``STAGE``): its settings
section, validation, cache key, what it runs and what it reports. The CLI flags, the
recipe's ``stages:`` list, ``--set`` and the report are derived from them.

To add a stage: write ``edgecnn/stages/<name>.py`` with its ``STAGE`` (see
``ARCHITECTURE.md``) and add its module name to :data:`STAGE_MODULES` where it runs.

Example:
    >>> " -> ".join(ORDER)
    'width -> distill -> channel_prune -> prune -> qat -> convert -> evaluate -> bench'
"""

from __future__ import annotations

import importlib

from edgecnn.stages._base import Context, Stage, StageResult, StageStore, config_key

# The compression stages, in the order they run: each starts from the previous one's model.
STAGE_MODULES = ("distill", "channel_prune", "prune", "qat")

# Every step a recipe's ``stages:`` list may name, in the one order the pipeline runs them:
# the width multiplier (a property of the model built), the compression stages, then the
# export steps applied to every model produced.
ORDER = ("width", *STAGE_MODULES, "convert", "evaluate", "bench")

__all__ = ["ORDER", "STAGE_MODULES", "Context", "Stage", "StageResult", "StageStore", "axis_stage", "config_key",
           "model_stages", "precision_stages"]

_STAGES: list = []


def model_stages() -> list:
    """The registered compression :class:`Stage` objects, in the order they run."""
    if not _STAGES:
        _STAGES.extend(importlib.import_module(f"{__name__}.{m}").STAGE for m in STAGE_MODULES)
    return list(_STAGES)


def axis_stage(axis: str) -> Stage | None:
    """The stage whose switch sets the run property ``axis`` (:attr:`Stage.axis`), or ``None``.

    Example:
        >>> axis_stage("sparsity").name
        'prune'
    """
    return next((s for s in model_stages() if s.axis == axis), None)


def precision_stages() -> dict:
    """``{precision name: stage}`` for the stages whose result is a precision of its own
    (:attr:`Stage.precision`), in the order they run.

    Example:
        >>> {p: s.name for p, s in precision_stages().items()}
        {'qat': 'qat'}
    """
    return {s.precision: s for s in model_stages() if s.precision}
