"""Magnitude pruning with tfmot (Zhu & Gupta, "To prune, or not to prune", 2017,
https://arxiv.org/abs/1710.01878).

:func:`prune_model` wraps the prunable layers of a model in
``tfmot.sparsity.keras.prune_low_magnitude`` with a polynomial-decay schedule to a target
sparsity; fine-tune it with :func:`pruning_callbacks`, then :func:`strip_pruning` before
export. Layers that should not be pruned are left alone: the first convolution, the
classifier and depthwise convolutions (few weights, large accuracy cost), plus any layer
whose name matches a ``skip`` pattern.

Example:
    >>> pruned = prune_model(model, sparsity=0.5, end_step=500)  # doctest: +SKIP
    >>> fit(pruned, data, extra_callbacks=pruning_callbacks())     # doctest: +SKIP
    >>> final = strip_pruning(pruned)                              # doctest: +SKIP
"""

from __future__ import annotations

import fnmatch
import sys

from edgecnn._tf import keras, tfmot
from edgecnn.errors import UserError

DEFAULT_SKIP = ("conv1", "stem*", "classifier", "predictions")
_PRUNABLE = (keras.layers.Conv2D, keras.layers.Dense)


def is_pruning_wrapper(layer) -> bool:
    """Whether ``layer`` is tfmot's pruning wrapper (``PruneLowMagnitude``).

    Example:
        >>> is_pruning_wrapper(prune_model(model).layers[2])  # doctest: +SKIP
        True
    """
    if "tensorflow_model_optimization" not in sys.modules:
        return False  # nothing can be wrapped before tfmot is imported: keep plain models fast
    from tensorflow_model_optimization.python.core.sparsity.keras.pruning_wrapper import PruneLowMagnitude

    return isinstance(layer, PruneLowMagnitude)


def has_pruning_wrappers(model) -> bool:
    """Whether any top-level layer of ``model`` is a pruning wrapper."""
    return any(is_pruning_wrapper(layer) for layer in model.layers)


def strip_pruning_if_wrapped(model):
    """:func:`strip_pruning` for a model with pruning wrappers; any other model is returned as is.

    Quantization wrappers are left alone (the TFLite converter reads them).

    Example:
        >>> strip_pruning_if_wrapped(plain) is plain  # doctest: +SKIP
        True
    """
    return strip_pruning(model) if has_pruning_wrappers(model) else model


def _first_conv_name(model):
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D) and not isinstance(layer, keras.layers.DepthwiseConv2D):
            return layer.name
    return None


def should_prune(layer, skip=DEFAULT_SKIP, first_conv: str | None = None) -> bool:
    """Whether :func:`prune_model` prunes ``layer`` (by type and name pattern)."""
    if isinstance(layer, keras.layers.DepthwiseConv2D) or not isinstance(layer, _PRUNABLE):
        custom = getattr(layer, "get_prunable_weights", None)
        if not callable(custom) or not layer.get_prunable_weights():
            return False
    if layer.name == first_conv:
        return False
    return not any(fnmatch.fnmatch(layer.name, pattern) for pattern in skip)


def prune_model(
    model,
    sparsity: float = 0.5,
    begin_step: int = 0,
    end_step: int = 1000,
    frequency: int = 50,
    skip=DEFAULT_SKIP,
    m_by_n: tuple | None = None,
):
    """Wrap the prunable layers of ``model`` for magnitude pruning to ``sparsity``.

    Args:
        sparsity: final fraction of zero weights in each pruned layer, in (0, 1).
        begin_step, end_step, frequency: the polynomial-decay schedule, in steps.
        skip: glob patterns of layer names to leave dense.
        m_by_n: e.g. ``(2, 4)`` for 2:4 structured sparsity instead of a schedule.
    """
    if not 0.0 < float(sparsity) < 1.0 and m_by_n is None:
        raise UserError(f"pruning sparsity must be between 0 and 1 (exclusive), got {sparsity}")
    sparsity_api = tfmot().sparsity.keras
    first_conv = _first_conv_name(model)
    if m_by_n is None:
        schedule = sparsity_api.PolynomialDecay(
            initial_sparsity=0.0,
            final_sparsity=float(sparsity),
            begin_step=int(begin_step),
            end_step=max(int(end_step), int(begin_step) + 1),
            frequency=max(1, int(frequency)),
        )
        params = {"pruning_schedule": schedule}
    else:
        params = {"sparsity_m_by_n": tuple(m_by_n)}

    def wrap(layer):
        if should_prune(layer, skip, first_conv):
            return sparsity_api.prune_low_magnitude(layer, **params)
        return layer

    # clone_function returns the original layer objects (wrapped or not), so the
    # pruned model shares, and so keeps, the trained weights.
    return keras.models.clone_model(model, clone_function=wrap)


def layer_sparsity(model) -> dict:
    """Fraction of exactly-zero kernel weights of every Conv2D/Dense layer, by name.

    Works on plain, pruned (wrapped) and stripped models.

    Example:
        >>> sparsity = layer_sparsity(strip_pruning(pruned))  # doctest: +SKIP
        >>> sparsity["conv_pw_1"]                             # doctest: +SKIP
        0.5
    """
    import numpy as np

    out = {}
    for layer in model.layers:
        inner = layer.layer if is_pruning_wrapper(layer) else layer
        kernel = getattr(inner, "depthwise_kernel", None) if isinstance(inner, keras.layers.DepthwiseConv2D) else None
        kernel = kernel if kernel is not None else getattr(inner, "kernel", None)
        if kernel is None or not isinstance(inner, _PRUNABLE):
            continue
        if layer is not inner:  # the wrapper holds the mask; the kernel is masked at the next step
            mask = next((w for w in layer.weights if "mask" in w.name), None)
            values = kernel.numpy() * (mask.numpy() if mask is not None else 1)
        else:
            values = kernel.numpy()
        out[inner.name] = float(np.mean(values == 0))
    return out


def pruning_callbacks():
    """The callbacks a pruning fine-tune needs (``UpdatePruningStep``)."""
    return [tfmot().sparsity.keras.UpdatePruningStep()]


def strip_pruning(model):
    """Remove the pruning wrappers, keeping the (now sparse) weights."""
    return tfmot().sparsity.keras.strip_pruning(model)
