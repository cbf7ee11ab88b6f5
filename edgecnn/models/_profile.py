"""Count what a model costs: parameters (trainable, total, non-zero) and MACs.

MACs count one multiply-add once, for one image, over convolutions (grouped and
depthwise included) and dense layers; that is the convention of the papers and of
../shared/REFERENCE.md. Layers wrapped by tfmot (pruning, QAT) are unwrapped.
"""

from __future__ import annotations

import functools

import numpy as np

from edgecnn._tf import keras, tfmot


@functools.cache
def _tfmot_wrappers() -> tuple:
    """tfmot's wrapper classes (pruning, QAT); tfmot is imported on first use."""
    tfmot()  # imports tfmot quietly
    from tensorflow_model_optimization.python.core.quantization.keras.quantize_wrapper import QuantizeWrapper
    from tensorflow_model_optimization.python.core.sparsity.keras.pruning_wrapper import PruneLowMagnitude

    return PruneLowMagnitude, QuantizeWrapper  # QuantizeWrapperV2 is a QuantizeWrapper


def _inner(layer):
    """The layer inside tfmot's wrappers (``layer`` itself when it is not wrapped)."""
    while hasattr(layer, "layer") and isinstance(layer, _tfmot_wrappers()):
        layer = layer.layer
    return layer


def _flat_layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _flat_layers(layer)
        else:
            yield layer


def _shape(t):
    return tuple(t.shape) if hasattr(t, "shape") else tuple(t)


def layer_macs(layer) -> int:
    """Multiply-accumulates of one layer for a batch of one (0 for layers that have none)."""
    inner = _inner(layer)
    cls = inner.__class__.__name__
    try:
        out = _shape(layer.output)
        inp = _shape(layer.input)
    except (AttributeError, ValueError):  # layer used several times / not built
        return 0
    if cls in ("Conv2D", "Conv1D", "Conv2DTranspose"):
        kh, kw = (tuple(inner.kernel_size) + (1,))[:2]
        groups = getattr(inner, "groups", 1) or 1
        spatial = int(np.prod([d for d in out[1:-1] if d]))
        return int(spatial * kh * kw * (inp[-1] // groups) * out[-1])
    if cls == "DepthwiseConv2D":
        kh, kw = inner.kernel_size
        spatial = int(np.prod([d for d in out[1:-1] if d]))
        return int(spatial * kh * kw * out[-1])
    if cls == "SeparableConv2D":
        kh, kw = inner.kernel_size
        spatial = int(np.prod([d for d in out[1:-1] if d]))
        return int(spatial * (kh * kw * inp[-1] * inner.depth_multiplier + inp[-1] * inner.depth_multiplier * out[-1]))
    if cls == "Dense":
        positions = int(np.prod([d for d in inp[1:-1] if d])) if len(inp) > 2 else 1
        return int(positions * inp[-1] * out[-1])
    custom = getattr(inner, "macs", None)
    if callable(custom):
        return int(custom())
    return 0


def count_macs(model) -> int:
    """Total MACs of one forward pass of one image.

    Example:
        >>> count_macs(create_model("mobilenet"))  # doctest: +SKIP
        568740352
    """
    return int(sum(layer_macs(layer) for layer in _flat_layers(model)))


def count_params(model) -> dict:
    """``{"total", "trainable", "nonzero"}`` parameter counts.

    ``total`` is Keras' ``count_params()`` (BatchNorm moving statistics included),
    ``trainable`` the trainable weights only, ``nonzero`` the trainable weights that are
    not exactly zero (what pruning removes). tfmot's bookkeeping variables (masks,
    thresholds, quantizer ranges) are left out of every count.
    """

    def real(weights):
        return [
            w
            for w in weights
            if not any(k in w.name for k in ("mask", "threshold", "pruning_step", "_min", "_max", "optimizer_step"))
        ]

    trainable = real(model.trainable_weights)
    total = real(model.weights)
    return {
        "total": int(sum(np.prod(w.shape) for w in total)),
        "trainable": int(sum(np.prod(w.shape) for w in trainable)),
        "nonzero": int(sum(np.count_nonzero(w.numpy()) for w in trainable)),
    }
