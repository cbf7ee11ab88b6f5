"""Channel (filter) pruning that makes a model physically smaller.

Li et al., "Pruning Filters for Efficient ConvNets", 2017 (https://arxiv.org/abs/1608.08710)
rank filters by the L1 norm of their kernels; Liu et al., "Learning Efficient
Convolutional Networks through Network Slimming", 2017 (https://arxiv.org/abs/1708.06519)
rank them by the absolute scale of the BatchNorm that follows. Either way the lowest
filters are removed and the network is rebuilt narrower, so it really has fewer
parameters and MACs and runs faster in TFLite (unstructured sparsity only shrinks a
compressed file). Fine-tune afterwards.

How shapes are kept consistent: every convolution or dense layer starts a *channel
group*; layers that keep channels one-to-one (BatchNorm, activations, padding, pooling,
dropout, depthwise convolutions with ``depth_multiplier=1``) pass their input's channels
on; ``Add``/``Multiply``/... merge the groups of their inputs, so a residual stage's
shortcut and branch outputs lose the same channels (importance summed over the merged
layers); ``Concatenate`` lays its inputs' channels side by side, each part pruned with its
own group; ``Flatten`` repeats the channel pattern over the spatial positions. Channels
that feed the model's output, come from its input, or touch a layer of any other kind
are kept whole. The narrower model is a clone of the Keras graph with new ``filters`` /
``units``, and the kept slices of every weight are copied in.

Example:
    >>> small, report = prune_channels(model, fraction=0.5, criterion="l1")  # doctest: +SKIP
    >>> report["params_before"], report["params_after"]                      # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np

from edgecnn._tf import keras
from edgecnn.errors import UserError

CRITERIA = ("l1", "bn")

_L = keras.layers
# Layers whose output channel c depends only on input channel c.
_PASS_THROUGH = (
    _L.BatchNormalization,
    _L.ReLU,
    _L.Activation,
    _L.LeakyReLU,
    _L.ZeroPadding2D,
    _L.MaxPooling2D,
    _L.AveragePooling2D,
    _L.GlobalAveragePooling2D,
    _L.GlobalMaxPooling2D,
    _L.Dropout,
    _L.SpatialDropout2D,
)
_MERGE = (_L.Add, _L.Multiply, _L.Maximum, _L.Minimum, _L.Average, _L.Subtract)


class _Groups:
    """Union-find over channel groups, with a size and a 'protected' flag per root."""

    def __init__(self):
        self.parent, self.size, self.protected, self.producers = [], [], [], []

    def new(self, size: int, protected: bool = False, producer=None) -> int:
        self.parent.append(len(self.parent))
        self.size.append(int(size))
        self.protected.append(protected)
        self.producers.append([producer] if producer is not None else [])
        return len(self.parent) - 1

    def find(self, g: int) -> int:
        while self.parent[g] != g:
            self.parent[g] = self.parent[self.parent[g]]
            g = self.parent[g]
        return g

    def union(self, a: int, b: int):
        a, b = self.find(a), self.find(b)
        if a == b:
            return
        if self.size[a] != self.size[b]:
            self.protect(a)
            self.protect(b)
            return
        self.parent[b] = a
        self.protected[a] = self.protected[a] or self.protected[b]
        self.producers[a] += self.producers[b]

    def protect(self, g: int):
        self.protected[self.find(g)] = True


def _atoms(groups: _Groups, size: int, protected: bool = False, producer=None):
    g = groups.new(size, protected, producer)
    return np.full(size, g, dtype=np.int64), np.arange(size, dtype=np.int64)


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _channels(tensor) -> int:
    return int(tensor.shape[-1])


def _is_wrapped(model) -> bool:
    from edgecnn.optimize.prune import is_pruning_wrapper
    from edgecnn.optimize.qat import is_quantize_wrapper

    return any(is_pruning_wrapper(layer) or is_quantize_wrapper(layer) for layer in model.layers)


def channel_groups(model):
    """Trace ``model``'s graph into channel groups (see the module docstring).

    Returns ``(groups, atoms)``: the union-find of groups and, per tensor ``id``, the
    ``(group, channel)`` arrays describing each of its channels.
    """
    groups, atoms = _Groups(), {}
    for t in model.inputs:
        atoms[id(t)] = _atoms(groups, _channels(t), protected=True)
    for layer in model.layers:
        if isinstance(layer, _L.InputLayer):
            continue
        if len(layer._inbound_nodes) != 1:
            raise UserError(f"channel pruning: layer {layer.name!r} is used more than once; cannot prune shared layers")
        inputs = _as_list(layer.input)
        outputs = _as_list(layer.output)
        ins = [atoms.get(id(t)) for t in inputs]
        if any(a is None for a in ins):
            raise UserError(f"channel pruning: cannot trace the inputs of layer {layer.name!r}")
        out = _traced(layer, groups, inputs, outputs, ins)
        if out is None or len(outputs) != 1 or len(out[0]) != _channels(outputs[0]):
            # A layer we do not know how to narrow: keep every channel around it.
            for g, _ in ins:
                for gid in set(g.tolist()):
                    groups.protect(gid)
            for t in outputs:
                atoms[id(t)] = _atoms(groups, _channels(t), protected=True)
            continue
        atoms[id(outputs[0])] = out
    for t in model.outputs:
        for gid in set(atoms[id(t)][0].tolist()):
            groups.protect(gid)
    return groups, atoms


def _traced(layer, groups: _Groups, inputs: list, outputs: list, ins: list):
    """The ``(group, channel)`` arrays of ``layer``'s output given its inputs' ``ins``, or
    ``None`` where the layer cannot be narrowed (its channels are then kept whole)."""
    if isinstance(layer, _L.DepthwiseConv2D):
        return ins[0] if layer.depth_multiplier == 1 else None
    if isinstance(layer, (_L.Conv2D, _L.Dense)) and not isinstance(layer, (_L.Conv2DTranspose, _L.SeparableConv2D)):
        plain = getattr(layer, "groups", 1) == 1 and len(outputs) == 1
        return _atoms(groups, _channels(outputs[0]), producer=layer) if plain else None
    if isinstance(layer, _PASS_THROUGH) and len(inputs) == 1:
        axis = getattr(layer, "axis", -1)
        axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
        return ins[0] if axis in (-1, len(inputs[0].shape) - 1) else None
    if isinstance(layer, _MERGE) and len({len(a[0]) for a in ins}) == 1:
        return _merged(groups, ins)
    if isinstance(layer, _L.Concatenate) and layer.axis in (-1, len(inputs[0].shape) - 1):
        return np.concatenate([a[0] for a in ins]), np.concatenate([a[1] for a in ins])
    if isinstance(layer, _L.Flatten) and len(inputs[0].shape) > 2:
        repeat = int(np.prod(inputs[0].shape[1:-1]))
        return np.tile(ins[0][0], repeat), np.tile(ins[0][1], repeat)
    return None


def _merged(groups: _Groups, ins: list):
    """An element-wise merge: its inputs' groups become one (channel c of each input is
    channel c of the output), or ``None`` where the inputs' channels are not aligned."""
    first_g, first_i = ins[0]
    if not all(np.array_equal(first_i, i) for _, i in ins[1:]):
        return None
    for g, _ in ins[1:]:
        for a, b in set(zip(first_g.tolist(), g.tolist())):
            groups.union(a, b)
    return ins[0]


def _following_bn(model, layer):
    """The BatchNormalization that directly consumes ``layer``'s output, if any."""
    target = id(layer.output)
    for other in model.layers:
        if isinstance(other, _L.BatchNormalization) and not isinstance(other, _L.InputLayer):
            if any(id(t) == target for t in _as_list(other.input)):
                return other
    return None


def filter_importance(model, layer, criterion: str = "l1") -> np.ndarray:
    """One score per output channel of a Conv2D/Dense ``layer`` (higher = keep).

    ``l1``: the L1 norm of each filter's kernel. ``bn``: the absolute scale (gamma) of the
    BatchNorm right after the layer, falling back to L1 where there is none. Scores are
    divided by their mean so layers merged by a residual addition weigh equally.

    Example:
        >>> filter_importance(model, model.get_layer("conv_pw_1"), "bn").shape  # doctest: +SKIP
        (64,)
    """
    if criterion not in CRITERIA:
        raise UserError(f"channel pruning criterion must be one of {', '.join(CRITERIA)}, got {criterion!r}")
    score = None
    if criterion == "bn":
        bn = _following_bn(model, layer)
        if bn is not None and bn.scale:
            score = np.abs(bn.gamma.numpy())
    if score is None:
        kernel = layer.kernel.numpy()
        score = np.abs(kernel).reshape(-1, kernel.shape[-1]).sum(axis=0)
    return score / max(float(score.mean()), 1e-12)


def _keep_count(size: int, fraction: float, divisor: int) -> int:
    keep = size - int(round(size * fraction))
    if divisor > 1 and size >= 2 * divisor:
        keep = int(round(keep / divisor)) * divisor
    return int(min(size, max(1, keep)))


def prune_channels(model, fraction: float = 0.5, criterion: str = "l1", divisor: int = 8, skip=()):
    """Remove ``fraction`` of the filters of every prunable channel group; rebuild narrower.

    Args:
        model: a plain (not tfmot-wrapped) functional or Sequential Keras model.
        fraction: share of each group's channels to remove, in (0, 1).
        criterion: ``l1`` or ``bn`` (see :func:`filter_importance`).
        divisor: round kept counts to a multiple of this (SIMD-friendly) where the
            group has at least ``2 * divisor`` channels.
        skip: glob patterns of layer names whose output channels are kept whole.

    Returns:
        ``(narrow_model, report)``; the report lists each pruned group's layers and its
        channels before/after, and the parameter counts.

    Example:
        >>> from edgecnn.models import create_model
        >>> small, report = prune_channels(create_model("mobilenet", input_shape=(32, 32, 3), classes=10))
        >>> report["params_after"] < report["params_before"]
        True
    """
    if not 0.0 < float(fraction) < 1.0:
        raise UserError(f"channel pruning fraction must be between 0 and 1 (exclusive), got {fraction}")
    if criterion not in CRITERIA:
        raise UserError(f"channel pruning criterion must be one of {', '.join(CRITERIA)}, got {criterion!r}")
    if isinstance(model, keras.Model) and _is_wrapped(model):
        raise UserError("channel pruning needs a plain Keras model: apply it before magnitude pruning or QAT")
    groups, atoms = channel_groups(model)
    keep, report_groups = _kept_channels(model, groups, fraction, criterion, divisor, skip)
    narrow = _narrow_clone(model, groups, keep)
    _carry_weights(model, narrow, _kept_indices(groups, atoms, keep))
    narrow._name = model.name + "_chp"
    from edgecnn.models._profile import count_params

    report = {
        "fraction": float(fraction),
        "criterion": criterion,
        "groups": report_groups,
        "params_before": count_params(model)["trainable"],
        "params_after": count_params(narrow)["trainable"],
    }
    return narrow, report


def _kept_channels(model, groups: _Groups, fraction: float, criterion: str, divisor: int, skip):
    """``({root: sorted kept channel indices}, report rows)``: the most important channels
    of every group that is not protected, produced by a layer ``skip`` names, or too small."""
    import fnmatch

    for root in range(len(groups.parent)):
        for layer in groups.producers[root]:
            if any(fnmatch.fnmatch(layer.name, p) for p in skip):
                groups.protect(root)
    keep, report_groups = {}, []
    for g in range(len(groups.parent)):
        if groups.find(g) != g or groups.protected[g] or not groups.producers[g]:
            continue
        size = groups.size[g]
        n = _keep_count(size, fraction, divisor)
        if n >= size:
            continue
        score = sum(filter_importance(model, layer, criterion) for layer in groups.producers[g])
        keep[g] = np.sort(np.argsort(-score, kind="stable")[:n])
        report_groups.append({"layers": [lay.name for lay in groups.producers[g]], "channels": size, "kept": n})
    return keep, report_groups


def _kept_indices(groups: _Groups, atoms: dict, keep: dict):
    """A function: tensor -> the indices of its channels that stay."""
    keep_masks = {}
    for root, kept in keep.items():
        keep_masks[root] = np.zeros(groups.size[root], dtype=bool)
        keep_masks[root][kept] = True

    def kept_indices(tensor) -> np.ndarray:
        g, idx = atoms[id(tensor)]
        mask = np.ones(len(g), dtype=bool)
        for gid in np.unique(g):
            root = groups.find(int(gid))
            if root in keep_masks:
                sel = g == gid
                mask[sel] = keep_masks[root][idx[sel]]
        return np.flatnonzero(mask)

    return kept_indices


def _narrow_clone(model, groups: _Groups, keep: dict):
    """A clone of ``model``'s graph whose producing layers have the kept ``filters``/``units``."""
    new_width = {layer.name: len(kept) for root, kept in keep.items() for layer in groups.producers[root]}

    def clone(layer):
        config = layer.get_config()
        if layer.name in new_width:
            config["filters" if "filters" in config else "units"] = new_width[layer.name]
        return layer.__class__.from_config(config)

    from edgecnn.models._layers import CUSTOM_OBJECTS

    with keras.utils.custom_object_scope(CUSTOM_OBJECTS):
        return keras.models.clone_model(model, clone_function=clone)


def _carry_weights(model, narrow, kept_indices) -> None:
    """Copy the kept slices of every weight of ``model`` into ``narrow``; a layer whose
    weights do not fit the narrower shapes: one line."""
    for layer in model.layers:
        if not layer.weights:
            continue
        new = narrow.get_layer(layer.name)
        inputs = _as_list(layer.input)
        in_keep = kept_indices(inputs[0]) if len(inputs) == 1 else None
        out_keep = kept_indices(_as_list(layer.output)[0])
        values = _sliced(layer, [w.numpy() for w in layer.weights], in_keep, out_keep)
        shapes = [tuple(w.shape) for w in new.weights]
        if shapes != [v.shape for v in values]:
            raise UserError(
                f"channel pruning: cannot carry the weights of layer {layer.name!r} ({layer.__class__.__name__})"
            )
        new.set_weights(values)


def _sliced(layer, values: list, in_keep, out_keep) -> list:
    """``layer``'s weight arrays cut to the kept input and output channels."""
    if isinstance(layer, _L.DepthwiseConv2D):
        return [v[:, :, in_keep] if v.ndim == 4 else v[in_keep] for v in values]
    if isinstance(layer, _L.Conv2D) and getattr(layer, "groups", 1) == 1:
        return [v[:, :, in_keep][..., out_keep] if v.ndim == 4 else v[out_keep] for v in values]
    if isinstance(layer, _L.Dense):
        return [v[in_keep][:, out_keep] if v.ndim == 2 else v[out_keep] for v in values]
    if isinstance(layer, _L.BatchNormalization):
        return [v[in_keep] for v in values]
    return values
