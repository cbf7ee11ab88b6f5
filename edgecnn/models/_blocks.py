"""Architectures as data: timm-style block strings, decoded and built in ONE place.

A family is a list of stages, each a list of block strings (timm's notation, Tan & Le's
``BlockArgs``)::

    'ir_r2_k3_s2_e6_c24_se0.25'   inverted residual, 2 repeats, kernel 3, stride 2 (first
                                  repeat only), expansion 6, 24 output channels, SE 0.25

Fields (separated by ``_``; the first is the block type):

==========  ==================================================================================
``ir``      inverted residual / MBConv (Sandler 2018, Tan 2019): 1x1 expand -> BN -> act ->
            kxk depthwise -> BN -> act -> [SE] -> 1x1 project -> BN (linear) -> [+ input]
``ds``      the same with expansion 1 (no expand conv): depthwise-separable
``cn``      plain conv -> BN -> act
``sv1``     ShuffleNet v1 unit: 1x1 group conv -> BN -> ReLU -> shuffle -> 3x3 depthwise ->
            BN -> 1x1 group conv -> BN -> (+ input -> ReLU | ReLU -> concat with a 3x3
            avg-pool of the input, which is >= 0, so the same as the paper's ReLU after it)
``sv2``     ShuffleNet v2 unit: split -> (1x1 -> BN -> ReLU -> 3x3 dw -> BN -> 1x1 -> BN ->
            ReLU) -> concat -> shuffle; stride 2: both branches see the whole input
``rN``      repeats (scaled by ``depth``, rounded up as EfficientNet does)
``kN``      kernel size;  ``sN`` stride of the first repeat;  ``eX`` expansion ratio
``cN``      output channels (scaled by ``width``, rounded by :func:`make_divisible`)
``seX``     squeeze-excite ratio;  ``nre``/``nr6``/``nhs``/``nsw`` activation override
            (relu, relu6, hard_swish, swish);  ``noskip`` no residual connection
==========  ==================================================================================

:func:`decode_arch` turns the strings into a flat list of :class:`BlockArgs` (one per
repeat, width and depth applied); :func:`build_blocks` builds them, naming layers
``block{stage}{letter}_{part}`` (``block2a_expand``, ``block2a_dwconv``, ``block2a_se``,
``block2a_project``...) as Keras' EfficientNet does.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

from edgecnn.models._layers import conv_bn_act, dw_bn_act, layers, make_divisible
from edgecnn.models._quant_layers import ChannelShuffle, ChannelSplit, SqueezeExcite, StochasticDepth

_ACT_CODES = {"re": "relu", "r6": "relu6", "hs": "hard_swish", "sw": "swish"}
_TYPES = ("ir", "ds", "cn", "sv1", "sv2")


@dataclass(frozen=True)
class BlockArgs:
    """One decoded block (one repeat): what :func:`build_blocks` needs to build it."""

    kind: str
    repeats: int = 1
    kernel: int = 3
    stride: int = 1
    expansion: float = 1.0
    channels: int = 0
    se: float | None = None
    act: str | None = None
    skip: bool = True
    stage: int = 0
    index: int = 0


def decode_block(text: str) -> BlockArgs:
    """Parse one block string.

    Example:
        >>> b = decode_block("ir_r2_k3_s2_e6_c24_se0.25")
        >>> b.kind, b.repeats, b.kernel, b.stride, b.expansion, b.channels, b.se
        ('ir', 2, 3, 2, 6.0, 24, 0.25)
    """
    kind, *fields = text.split("_")
    if kind not in _TYPES:
        raise ValueError(f"block string {text!r}: unknown block type {kind!r}, expected one of {_TYPES}")
    args: dict = {"kind": kind}
    for field in fields:
        if field == "noskip":
            args["skip"] = False
        elif field.startswith("se"):
            args["se"] = float(field[2:])
        elif field.startswith("n") and field[1:] in _ACT_CODES:
            args["act"] = _ACT_CODES[field[1:]]
        else:
            match = re.fullmatch(r"([rksec])(\d+(?:\.\d+)?)", field)
            if not match:
                raise ValueError(f"block string {text!r}: cannot read field {field!r}")
            key, value = match.groups()
            name = {"r": "repeats", "k": "kernel", "s": "stride", "e": "expansion", "c": "channels"}[key]
            args[name] = float(value) if key == "e" else int(float(value))
    if kind == "ds":
        args["expansion"] = 1.0
    return BlockArgs(**args)


def scale_repeats(repeats: int, depth: float) -> int:
    """EfficientNet's depth rule: ``ceil(depth * repeats)``."""
    return int(math.ceil(depth * repeats))


def decode_arch(arch, width: float = 1.0, depth: float = 1.0, divisor: int = 8, transform=None) -> list[BlockArgs]:
    """Decode a list of stages of block strings into one :class:`BlockArgs` per block.

    Args:
        arch: list of stages, each a list of block strings (or one string).
        width: channel multiplier, rounded by ``make_divisible(c * width, divisor)``.
        depth: repeat multiplier, ``ceil(r * depth)`` per block string.
        transform: optional ``BlockArgs -> BlockArgs`` applied to each string (e.g. the
            MobileNetV3 "minimalistic" variant).

    Example:
        >>> [b.channels for b in decode_arch([["ir_r2_k3_s2_e6_c24"]], width=0.5)]
        [16, 16]
    """
    blocks = []
    for stage, strings in enumerate(arch):
        letter = 0
        for text in [strings] if isinstance(strings, str) else strings:
            block = decode_block(text)
            if transform is not None:
                block = transform(block)
            channels = make_divisible(block.channels * width, divisor) if width != 1.0 else block.channels
            for r in range(scale_repeats(block.repeats, depth)):
                blocks.append(
                    replace(
                        block,
                        repeats=1,
                        channels=channels,
                        stride=block.stride if r == 0 else 1,
                        stage=stage,
                        index=letter,
                    )
                )
                letter += 1
    return blocks


def _letter(i: int) -> str:
    return chr(ord("a") + i) if i < 26 else f"_{i}"


def inverted_residual(
    x,
    b: BlockArgs,
    name: str,
    act: str,
    *,
    se_act="relu",
    se_gate="hard_sigmoid",
    se_from_input=False,
    drop_rate: float = 0.0,
):
    """MBConv / inverted residual with a linear bottleneck (see the module docstring)."""
    cin = int(x.shape[-1])
    act = b.act or act
    h = x
    mid = cin if b.expansion == 1 else make_divisible(cin * b.expansion)
    if b.expansion != 1:
        h = conv_bn_act(h, mid, 1, name=f"{name}_expand", act=act)
    h = dw_bn_act(h, b.kernel, b.stride, name=f"{name}_dwconv", act=act)
    if b.se:
        reduce = max(1, int(cin * b.se)) if se_from_input else make_divisible(mid * b.se)
        h = SqueezeExcite(reduce, act=se_act, gate=se_gate, name=f"{name}_se")(h)
    h = conv_bn_act(h, b.channels, 1, name=f"{name}_project", act=None)
    if b.skip and b.stride == 1 and cin == b.channels:
        if drop_rate:
            h = StochasticDepth(drop_rate, name=f"{name}_drop")(h)
        h = layers.Add(name=f"{name}_add")([h, x])
    return h


def shuffle_v1_unit(x, b: BlockArgs, name: str, groups: int, first: bool):
    """ShuffleNet v1 unit (Zhang 2017, Fig. 2b/c); the very first 1x1 conv is not grouped."""
    cin = int(x.shape[-1])
    branch = b.channels - cin if b.stride == 2 else b.channels
    mid = b.channels // 4
    h = conv_bn_act(x, mid, 1, groups=1 if first else groups, name=f"{name}_gconv1", act="relu")
    if groups > 1:
        h = ChannelShuffle(groups, name=f"{name}_shuffle")(h)
    h = dw_bn_act(h, 3, b.stride, name=f"{name}_dwconv", act=None)
    if b.stride == 2:
        # ReLU(concat(avgpool(x), h)) = concat(avgpool(x), ReLU(h)): x >= 0, as every unit and
        # the stem end in a ReLU. On the branch, the ReLU fuses into the int8 convolution; after
        # the concatenation it was a RELU op of its own, which XNNPACK does not take.
        h = conv_bn_act(h, branch, 1, groups=groups, name=f"{name}_gconv2", act="relu")
        shortcut = layers.AveragePooling2D(3, 2, padding="same", name=f"{name}_avgpool")(x)
        return layers.Concatenate(name=f"{name}_concat")([shortcut, h])
    h = conv_bn_act(h, branch, 1, groups=groups, name=f"{name}_gconv2", act=None)
    h = layers.Add(name=f"{name}_add")([x, h])
    return layers.ReLU(name=f"{name}_relu")(h)


def shuffle_v2_unit(x, b: BlockArgs, name: str):
    """ShuffleNet v2 unit (Ma 2018, Fig. 3c/d), as torchvision builds it."""
    half = b.channels // 2

    def branch(h, part):
        if b.stride == 1 or part == "right":
            h = conv_bn_act(h, half, 1, name=f"{name}_{part}_pw1", act="relu")
        h = dw_bn_act(h, 3, b.stride, name=f"{name}_{part}_dwconv", act=None)
        return conv_bn_act(h, half, 1, name=f"{name}_{part}_pw2", act="relu")

    if b.stride == 1:
        left = ChannelSplit(2, 0, name=f"{name}_split_left")(x)
        right = branch(ChannelSplit(2, 1, name=f"{name}_split_right")(x), "right")
    else:
        left, right = branch(x, "left"), branch(x, "right")
    h = layers.Concatenate(name=f"{name}_concat")([left, right])
    return ChannelShuffle(2, name=f"{name}_shuffle")(h)


def build_blocks(
    x, blocks: list[BlockArgs], *, act: str = "relu6", drop_connect_rate: float = 0.0, groups: int = 1, **block_kwargs
):
    """Build decoded ``blocks`` on ``x``; returns the output tensor.

    Args:
        act: the family's default activation (a block's ``n..`` field overrides it).
        drop_connect_rate: stochastic depth of the last block, rising linearly from 0 (EfficientNet).
        groups: ShuffleNet v1 groups.
        block_kwargs: passed to :func:`inverted_residual` (``se_act``, ``se_gate``, ``se_from_input``).
    """
    total = len(blocks)
    for i, b in enumerate(blocks):
        name = f"block{b.stage + 1}{_letter(b.index)}"
        if b.kind in ("ir", "ds"):
            x = inverted_residual(x, b, name, act, drop_rate=drop_connect_rate * i / total, **block_kwargs)
        elif b.kind == "cn":
            x = conv_bn_act(x, b.channels, b.kernel, b.stride, name=f"{name}_conv", act=b.act or act)
        elif b.kind == "sv1":
            x = shuffle_v1_unit(x, b, name, groups, first=(i == 0))
        elif b.kind == "sv2":
            x = shuffle_v2_unit(x, b, name)
    return x
