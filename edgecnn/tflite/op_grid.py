"""One tiny ``.tflite`` per (op, shape, precision): the grid a device times into a latency table.

The device cannot make models (no TensorFlow there), so the host writes them: each file
holds one layer of the kinds the zoo's mobile nets are made of at 96-224 px (1x1 and 3x3
convolutions, 3x3 and 5x5 depthwise convolutions at stride 1 and 2, dense layers, and the
cheap ops between them: add, multiply, hard-swish, sigmoid, global mean, max pool, channel
split, shuffle and concatenation), as float32 and full-integer int8 (int8 input and output,
calibrated on random data: the weights change no kernel choice and no latency). Then
``edgecnn-device bench --table TABLE.json OPS_DIR`` times every file on the device, and
:class:`edgecnn.device.latency_model.LatencyTable` predicts a candidate's latency from its ops.

The spatial sizes and widths follow the mobile nets' own path: large maps with few
channels, small maps with many (``MAX_MACS`` skips the corner neither reaches). The idea
and the failure it answers: nn-Meter (Zhang 2021, https://arxiv.org/abs/2106.04444)
predicts from kernels timed on the device; FLOP-based predictors miss by 3-4x.

Example:
    >>> write_grid("ops/", precisions=("float32", "int8"))  # doctest: +SKIP
    PosixPath('ops/manifest.json')
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgecnn._io import write_json
from edgecnn.errors import UserError

# Precisions the grid is made in: the two the search compares (float16 and dynamic-range files run
# float kernels on a CPU, so a float32 table times them).
GRID_PRECISIONS = ("float32", "int8")
MANIFEST = "manifest.json"
# A conv of more multiply-adds than this is in no mobile net at 96-224 px (and takes seconds to time).
MAX_MACS = 40_000_000
CALIBRATION_SAMPLES = 2
CHAIN_BLOCKS = 8  # blocks of a calibration chain (16 ops): :func:`_chain`
# Calibration graphs. MobileNetV3 and ShuffleNet blocks were tried as well and dropped: on a shared
# machine their cheap ops' in-graph cost swung 10x between two timings (edgecnn.device.latency_model).
CHAINS = ("chain",)
TWO_INPUTS = ("add", "mul")


@dataclass(frozen=True)
class OpSpec:
    """One op model: ``kind`` (conv, depthwise, dense, add, mul, hard_swish, sigmoid, mean,
    max_pool, split, shuffle, concat, or one of :data:`CHAINS`: a calibration graph of ``cout``
    blocks), the input's side ``hw`` and channels ``cin``, the output channels ``cout``,
    ``kernel`` and ``stride`` (convolutions and pools)."""

    kind: str
    hw: int
    cin: int
    cout: int = 0
    kernel: int = 1
    stride: int = 1

    @property
    def name(self) -> str:
        if self.kind in CHAINS:
            return f"{self.kind}{self.cout}_{self.hw}x{self.hw}x{self.cin}"
        tail = f"k{self.kernel}s{self.stride}_" if self.kind in ("conv", "depthwise", "max_pool") else ""
        return f"{self.kind}_{tail}{self.hw}x{self.hw}x{self.cin}" + (f"_to{self.cout}" if self.cout else "")

    @property
    def input_shape(self) -> tuple:
        return (self.cin,) if self.kind == "dense" else (self.hw, self.hw, self.cin)


def _convs(kernel: int, stride: int, sides, widths, pairs=True) -> list:
    """Convolutions over ``sides`` x ``widths`` (every (cin, cout) pair when ``pairs``) up to :data:`MAX_MACS`."""
    specs = []
    for hw in sides:
        out = hw // stride
        for cin in widths:
            for cout in widths if pairs else (cin,):
                if out * out * cin * cout * kernel * kernel <= MAX_MACS:
                    specs.append(OpSpec("conv", hw, cin, cout, kernel, stride))
    return specs


def _depthwise(kernel: int, stride: int, sides, widths) -> list:
    return [OpSpec("depthwise", hw, c, 0, kernel, stride) for hw in sides for c in widths]


def _cheap(kind: str, shapes, **kw) -> list:
    return [OpSpec(kind, hw, c, **kw) for hw, c in shapes]


# (side, channels) of the activations the cheap ops see, from the first blocks to the head.
_MAPS = ((48, 16), (24, 48), (12, 96), (6, 256))


def grid(quick: bool = False) -> list:
    """The op models to make: the full grid (about 130 per precision), or ``quick``'s four
    (a conv, a depthwise conv, an add, a chain) for tests and a first look.

    Example:
        >>> [s.name for s in grid(quick=True)]
        ['conv_k1s1_8x8x8_to16', 'depthwise_k3s1_8x8x16', 'add_8x8x16', 'chain2_8x8x16']
    """
    if quick:
        return [OpSpec("conv", 8, 8, 16), OpSpec("depthwise", 8, 16, 0, 3, 1), OpSpec("add", 8, 16),
                OpSpec("chain", 8, 16, 2)]
    specs = _convs(1, 1, (6, 12, 24, 48), (16, 64, 256))
    specs += _convs(1, 1, (3, 6), (256, 1024))  # the heads: 576-1280 channels at 3-7 px
    specs += _convs(1, 1, (96,), (8, 16, 32), pairs=False)  # the first pointwise layer at 160-224 px
    specs += [OpSpec("conv", 1, cin, cout) for cin, cout in ((16, 64), (64, 16), (256, 64), (64, 256))]  # SE
    specs += [OpSpec("conv", hw, 3, cout, 3, 2) for hw in (64, 128, 224) for cout in (8, 32)]  # stems
    specs += _depthwise(3, 1, (6, 12, 24, 48), (16, 64, 256))
    specs += _depthwise(3, 2, (12, 24, 48, 96), (16, 64, 256))
    specs += _depthwise(5, 1, (6, 12, 24), (64, 256))
    specs += _depthwise(5, 2, (12, 24, 48), (64, 256))
    specs += [OpSpec("dense", 1, cin, cout) for cin, cout in ((64, 5), (256, 5), (1280, 5), (576, 1024), (1024, 1024))]
    specs += _cheap("add", _MAPS) + _cheap("mul", _MAPS) + _cheap("hard_swish", _MAPS) + _cheap("sigmoid", _MAPS)
    specs += _cheap("mean", ((6, 256), (12, 96), (3, 1024)))
    specs += _cheap("max_pool", ((48, 24), (80, 24)), kernel=3, stride=2)
    specs += _cheap("split", _MAPS[:3]) + _cheap("shuffle", _MAPS[:3]) + _cheap("concat", _MAPS[:3])
    for kind in CHAINS:
        specs += [OpSpec(kind, hw, c, CHAIN_BLOCKS) for hw, c in ((24, 16), (12, 48), (6, 128))]
    return list(dict.fromkeys(specs))  # once each, in order (the heads' widths meet the main grid's)


def build_op_model(spec: OpSpec):
    """The one-layer Keras model of ``spec``, batch 1 (the shapes a device runs).

    Example:
        >>> build_op_model(OpSpec("depthwise", 8, 16, 0, 3, 2)).output_shape
        (1, 4, 4, 16)
    """
    from edgecnn._tf import keras
    from edgecnn.models._quant_layers import ChannelShuffle, ChannelSplit, HardSwish

    layers = keras.layers
    inp = keras.Input(spec.input_shape, batch_size=1)
    # Two-operand ops take their second operand as a second input: no helper op in the file.
    other = keras.Input((1, 1, spec.cin) if spec.kind == "mul" else spec.input_shape, batch_size=1)
    builders = {
        "conv": lambda: layers.Conv2D(spec.cout, spec.kernel, strides=spec.stride, padding="same")(inp),
        "depthwise": lambda: layers.DepthwiseConv2D(spec.kernel, strides=spec.stride, padding="same")(inp),
        "dense": lambda: layers.Dense(spec.cout)(inp),
        "add": lambda: layers.Add()([inp, other]),
        "mul": lambda: layers.Multiply()([inp, other]),  # the squeeze-and-excite scale: one value per channel
        "hard_swish": lambda: HardSwish()(inp),
        "sigmoid": lambda: layers.Activation("sigmoid")(inp),
        "mean": lambda: layers.GlobalAveragePooling2D()(inp),
        "max_pool": lambda: layers.MaxPooling2D(spec.kernel, strides=spec.stride, padding="same")(inp),
        "split": lambda: ChannelSplit(parts=2, index=1)(inp),
        "shuffle": lambda: ChannelShuffle(groups=2)(inp),
        "concat": lambda: layers.Concatenate()([inp, inp]),
        "chain": lambda: _chain(inp, spec.cout),
    }
    if spec.kind not in builders:
        raise ValueError(f"unknown op kind {spec.kind!r}; known: {', '.join(builders)}")
    inputs = [inp, other] if spec.kind in TWO_INPUTS else inp
    return keras.Model(inputs, builders[spec.kind](), name=spec.name)


def _chain(x, blocks: int):
    """``blocks`` MobileNet blocks (3x3 depthwise, 1x1 conv, ReLU6 fused into each): a whole graph
    whose time against the sum of its ops' times calibrates what an op costs inside a model."""
    from edgecnn._tf import keras

    for _ in range(blocks):
        x = keras.layers.ReLU(6.0)(keras.layers.DepthwiseConv2D(3, padding="same")(x))
        x = keras.layers.ReLU(6.0)(keras.layers.Conv2D(x.shape[-1], 1)(x))
    return x


def _representative(model):
    """Random calibration data for every input of ``model`` (int8 ranges; latency ignores them)."""
    rng = np.random.default_rng(0)
    shapes = [tuple(int(d) for d in t.shape) for t in model.inputs]

    def rep():
        for _ in range(CALIBRATION_SAMPLES):
            yield [rng.uniform(-1, 1, shape).astype(np.float32) for shape in shapes]

    return rep


def write_grid(out_dir, precisions=GRID_PRECISIONS, quick: bool = False, echo=None) -> Path:
    """Write one ``<name>_<precision>.tflite`` per grid entry into ``out_dir`` and a
    ``manifest.json`` listing each file's op kind, shape and precision; returns the manifest.

    The device reads each file's op and shapes from the file itself, so the manifest is for
    people and tools (which op a file holds), not a second source of truth.

    Example:
        >>> write_grid("ops/", quick=True)  # doctest: +SKIP
        PosixPath('ops/manifest.json')
    """
    from edgecnn.tflite.convert import convert

    unknown = [p for p in precisions if p not in GRID_PRECISIONS]
    if unknown or not precisions:
        raise UserError(f"precision {', '.join(unknown) or '(none)'}: the grid is made in {', '.join(GRID_PRECISIONS)}")
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {out}: {exc.strerror}; give a folder you can write") from None
    specs = grid(quick)
    entries, started = [], time.perf_counter()
    for i, spec in enumerate(specs):
        model = build_op_model(spec)
        for precision in precisions:
            path = out / f"{spec.name}_{precision}.tflite"
            rep = _representative(model) if precision == "int8" else None
            convert(model, path, precision, representative=rep)
            entries.append({"file": path.name, "precision": precision, **asdict(spec)})
        if echo is not None:
            echo(f"[{i + 1}/{len(specs)}] {spec.name}  ({time.perf_counter() - started:.0f} s)")
    manifest = {
        "kind": "latency_grid",
        "precisions": list(precisions),
        "seconds": round(time.perf_counter() - started, 1),
        "models": entries,
    }
    return write_json(out / MANIFEST, manifest)


__all__ = ["GRID_PRECISIONS", "MANIFEST", "OpSpec", "build_op_model", "grid", "write_grid"]
