"""ShuffleNet v1 and v2: grouped 1x1 convolutions, channel shuffle, channel split.

- v1: Zhang et al., "ShuffleNet: An Extremely Efficient Convolutional Neural Network for
  Mobile Devices", 2017 (https://arxiv.org/abs/1707.01083).
- v2: Ma et al., "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture
  Design", 2018 (https://arxiv.org/abs/1807.11164).

Block diagram (both): a 3x3 stride-2 stem convolution (24 channels) -> BN -> ReLU, 3x3
stride-2 max pooling, three stages of 4, 8 and 4 units declared as block strings (``sv1``,
``sv2``, decoded by :mod:`edgecnn.models._blocks`), the first unit of each with stride 2;
then (v2 only) a 1x1 convolution to 1024 (2048 for 2x) channels -> BN -> ReLU, global
average pooling and the ``classifier``.

- v1 unit: 1x1 group conv (bottleneck = 1/4 of the output; not grouped in the very first
  unit) -> BN -> ReLU -> channel shuffle -> 3x3 depthwise (stride) -> BN -> 1x1 group
  conv -> BN, added to the input (stride 1) or concatenated with a 3x3 average pool of it
  (stride 2) -> ReLU. Stage widths per group count are Table 1 of the paper, scaled by
  ``alpha`` and rounded to multiples of 4*groups.
- v2 unit: stride 1 splits the channels in two halves, one passes through, the other goes
  1x1 -> BN -> ReLU -> 3x3 depthwise -> BN -> 1x1 -> BN -> ReLU; stride 2 feeds the whole
  input to both branches (the left one 3x3 depthwise s2 -> BN -> 1x1 -> BN -> ReLU); the
  halves are concatenated and shuffled (groups 2). Widths are Table 5 of the paper (as
  torchvision builds it, whose parameter counts this reproduces exactly).

int8 TFLite at 224x224, 1000 classes. v1 (g3, 1x): CONV_2D 33 (grouped convolutions
included), RESHAPE 32 and TRANSPOSE 16 (the channel shuffles), DEPTHWISE_CONV_2D 16, ADD 13,
AVERAGE_POOL_2D 3, CONCATENATION 3, MAX_POOL_2D 1, MEAN 1, FULLY_CONNECTED 1, SOFTMAX 1;
XNNPACK runs every op but AVERAGE_POOL_2D (the stride-2 shortcut: LiteRT 2.3's XNNPACK
delegate takes no int8 AVERAGE_POOL_2D, 'same' or 'valid') and SOFTMAX. v2 (1x): CONV_2D 37,
RESHAPE 32, STRIDED_SLICE 26 (the channel splits), DEPTHWISE_CONV_2D 19, CONCATENATION 16,
TRANSPOSE 16, MAX_POOL_2D 1, MEAN 1, FULLY_CONNECTED 1, SOFTMAX 1; XNNPACK runs every op but
SOFTMAX (also after QAT at 32x32, whose int8 file adds 13 QUANTIZE ops, requantizing one
input of each stride-1 unit's concatenation; XNNPACK runs them too). Measured by
``benchmarks/stock_vs_edgecnn.py`` and ``benchmarks/efficient_digits.py`` (LiteRT 2.3,
default XNNPACK delegate; see benchmarks/RESULTS.md).
"""

from __future__ import annotations

import functools

from edgecnn._tf import keras
from edgecnn.errors import UserError
from edgecnn.models._blocks import build_blocks, decode_arch
from edgecnn.models._layers import (
    check_builder_args,
    classifier_head,
    conv_bn_act,
    layers,
    make_divisible,
    model_name,
    resolve_input,
)
from edgecnn.models._registry import register_model

# Stage-2 output channels of ShuffleNet v1 1x, by number of groups (Table 1).
V1_WIDTHS = {1: 144, 2: 200, 3: 240, 4: 272, 8: 384}
# ShuffleNet v2 stage widths and last conv, by width multiplier (Table 5).
V2_WIDTHS = {
    0.5: (48, 96, 192, 1024),
    1.0: (116, 232, 464, 1024),
    1.5: (176, 352, 704, 1024),
    2.0: (244, 488, 976, 2048),
}
_TRAIN = {"epochs": 30, "learning_rate": 2e-3, "optimizer": "adam", "schedule": "cosine"}


def v1_arch(groups: int) -> list:
    """Block strings of ShuffleNet v1 1x with ``groups`` groups."""
    c = V1_WIDTHS[groups]
    return [[f"sv1_r4_s2_c{c}"], [f"sv1_r8_s2_c{2 * c}"], [f"sv1_r4_s2_c{4 * c}"]]


def v2_arch(alpha: float) -> tuple[list, int]:
    """Block strings of ShuffleNet v2 at width ``alpha`` and its last conv's channels.

    The published widths (0.5, 1, 1.5, 2) come from Table 5; others scale 1x by ``alpha``.
    """
    if alpha in V2_WIDTHS:
        c2, c3, c4, last = V2_WIDTHS[alpha]
    else:
        c2, c3, c4 = (make_divisible(c * alpha, 4) for c in V2_WIDTHS[1.0][:3])
        last = 1024 if alpha <= 1.5 else 2048
    return [[f"sv2_r4_s2_c{c2}"], [f"sv2_r8_s2_c{c3}"], [f"sv2_r4_s2_c{c4}"]], last


def _stem(inputs, channels: int):
    x = conv_bn_act(inputs, channels, 3, 2, name="stem_conv", act="relu")
    return layers.MaxPooling2D(3, 2, padding="same", name="stem_pool")(x)


@register_model(family="shufflenet_v1", aliases=("shufflenetv1",), train=_TRAIN, params=1_865_728, macs=137_460_672)
def shufflenet_v1(
    input_shape=None,
    alpha: float = 1.0,
    groups: int = 3,
    include_top: bool = True,
    weights=None,
    input_tensor=None,
    pooling=None,
    classes: int = 1000,
    classifier_activation="softmax",
    dropout: float = 0.0,
    **kwargs,
):
    """ShuffleNet v1 (Zhang 2017) with ``groups`` in (1, 2, 3, 4, 8) and width ``alpha``
    (0.5 to 2.0 in the paper).

    Example:
        >>> model = shufflenet_v1(input_shape=(32, 32, 3), groups=8, alpha=0.5, classes=10)
        >>> model.name
        'shufflenet_v1_g8_0.50_32'
    """
    alpha = check_builder_args("shufflenet_v1", alpha, weights, classes, include_top, kwargs)
    if groups not in V1_WIDTHS:
        raise UserError(f"shufflenet_v1: groups must be one of {sorted(V1_WIDTHS)}, got {groups!r}")
    inputs, shape = resolve_input(input_shape, input_tensor, (224, 224, 3), 32, "shufflenet_v1")

    # Stem rounded to the groups so that every stride-2 unit's branch (out - in) divides by them.
    x = _stem(inputs, make_divisible(24 * alpha, groups))
    blocks = decode_arch(v1_arch(groups), width=alpha, divisor=4 * groups)
    x = build_blocks(x, blocks, groups=groups)
    x = classifier_head(
        x,
        include_top=include_top,
        pooling=pooling,
        classes=classes,
        dropout=dropout,
        classifier_activation=classifier_activation,
    )
    return keras.Model(inputs, x, name=model_name(f"shufflenet_v1_g{groups}", alpha, shape))


@register_model(family="shufflenet_v2", aliases=("shufflenetv2",), train=_TRAIN, params=2_278_604, macs=144_907_992)
def shufflenet_v2(
    input_shape=None,
    alpha: float = 1.0,
    include_top: bool = True,
    weights=None,
    input_tensor=None,
    pooling=None,
    classes: int = 1000,
    classifier_activation="softmax",
    dropout: float = 0.0,
    **kwargs,
):
    """ShuffleNet v2 (Ma 2018) at width ``alpha`` (0.5, 1.0, 1.5, 2.0 are the paper's).

    Example:
        >>> model = shufflenet_v2(input_shape=(32, 32, 3), alpha=0.5, classes=10)
        >>> model.name
        'shufflenet_v2_0.50_32'
    """
    alpha = check_builder_args("shufflenet_v2", alpha, weights, classes, include_top, kwargs)
    inputs, shape = resolve_input(input_shape, input_tensor, (224, 224, 3), 32, "shufflenet_v2")

    arch, last = v2_arch(alpha)
    x = _stem(inputs, 24)
    x = build_blocks(x, decode_arch(arch))
    x = conv_bn_act(x, last, 1, name="head_conv", act="relu")
    x = classifier_head(
        x,
        include_top=include_top,
        pooling=pooling,
        classes=classes,
        dropout=dropout,
        classifier_activation=classifier_activation,
    )
    return keras.Model(inputs, x, name=model_name("shufflenet_v2", alpha, shape))


# The variants' registration: the family's fields; each variant adds its figures.
_register_v2 = functools.partial(register_model, family="shufflenet_v2", train=_TRAIN)


@_register_v2(params=1_366_792, macs=40_476_448)
def shufflenet_v2_x0_5(alpha: float = 0.5, **kwargs):
    """ShuffleNet v2 0.5x (Ma 2018); the same as ``shufflenet_v2(alpha=0.5)``."""
    return shufflenet_v2(alpha=alpha, **kwargs)


@_register_v2(params=2_278_604, macs=144_907_992)
def shufflenet_v2_x1_0(alpha: float = 1.0, **kwargs):
    """ShuffleNet v2 1x (Ma 2018); the same as ``shufflenet_v2(alpha=1)``."""
    return shufflenet_v2(alpha=alpha, **kwargs)


@_register_v2(params=3_503_624, macs=295_759_392)
def shufflenet_v2_x1_5(alpha: float = 1.5, **kwargs):
    """ShuffleNet v2 1.5x (Ma 2018); the same as ``shufflenet_v2(alpha=1.5)``."""
    return shufflenet_v2(alpha=alpha, **kwargs)


@_register_v2(params=7_393_996, macs=583_253_464)
def shufflenet_v2_x2_0(alpha: float = 2.0, **kwargs):
    """ShuffleNet v2 2x (Ma 2018); the same as ``shufflenet_v2(alpha=2)``."""
    return shufflenet_v2(alpha=alpha, **kwargs)
