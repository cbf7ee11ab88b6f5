"""EfficientNet B0-B7 and compound scaling by ``phi``.

Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks",
2019 (https://arxiv.org/abs/1905.11946).

Block diagram: a 3x3 stride-2 stem convolution (32 channels) -> BN -> swish, then 16 MBConv
blocks in 7 stages declared as block strings (:data:`ARCH`, Table 1 of the paper, decoded
by :mod:`edgecnn.models._blocks`): 1x1 expansion (x6, none in stage 1) -> BN -> swish ->
kxk depthwise -> BN -> swish -> squeeze-excite (swish, sigmoid gate, 1/4 of the block's
input channels) -> 1x1 linear projection -> BN -> stochastic depth (drop-connect, rate
rising linearly to ``drop_connect_rate``) -> + input where shapes allow; then a 1x1
convolution to 1280 channels -> BN -> swish, global average pooling, dropout and the
``classifier``.

Scaling: widths are ``make_divisible(c * width)``, repeats ``ceil(r * depth)``; B0-B7 use
the published (width, depth, resolution) coefficients (:data:`COEFFICIENTS`);
:func:`efficientnet` takes any ``phi`` (depth 1.2**phi, width 1.1**phi, resolution
224*1.15**phi, :func:`efficientnet_resolution`). Trainable parameters match
``keras.applications.EfficientNetB*`` (whose total also counts a Normalization layer we
don't have).

int8 TFLite of B0 at 224x224, 1000 classes: CONV_2D 65, LOGISTIC 65 and MUL 65 (swish and the
SE gate), MEAN 17, DEPTHWISE_CONV_2D 16, ADD 9, FULLY_CONNECTED 1, SOFTMAX 1, the same after
QAT; stochastic depth leaves nothing in the ``.tflite``. XNNPACK runs every op but SOFTMAX
(keras.applications' EfficientNetB0 also leaves 16 each of SHAPE, STRIDED_SLICE, PACK and
RESHAPE, its squeeze-excite's reshape, on TFLite's kernels). Measured by
``benchmarks/stock_vs_edgecnn.py`` (LiteRT 2.3, default XNNPACK delegate; see
benchmarks/RESULTS.md).
"""

from __future__ import annotations

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
from edgecnn.models._pretrained import IN_MODEL, KERAS_APPLICATIONS_EFFICIENTNET, KerasWeights
from edgecnn.models._registry import register_model

ARCH = [
    ["ds_r1_k3_s1_e1_c16_se0.25"],
    ["ir_r2_k3_s2_e6_c24_se0.25"],
    ["ir_r2_k5_s2_e6_c40_se0.25"],
    ["ir_r3_k3_s2_e6_c80_se0.25"],
    ["ir_r3_k5_s1_e6_c112_se0.25"],
    ["ir_r4_k5_s2_e6_c192_se0.25"],
    ["ir_r1_k3_s1_e6_c320_se0.25"],
]

# name: (width, depth, resolution, dropout), Tan & Le 2019 / the reference implementation;
# efficientnet_scaled's first four arguments, in that order.
COEFFICIENTS = {
    "b0": (1.0, 1.0, 224, 0.2),
    "b1": (1.0, 1.1, 240, 0.2),
    "b2": (1.1, 1.2, 260, 0.3),
    "b3": (1.2, 1.4, 300, 0.3),
    "b4": (1.4, 1.8, 380, 0.4),
    "b5": (1.6, 2.2, 456, 0.4),
    "b6": (1.8, 2.6, 528, 0.5),
    "b7": (2.0, 3.1, 600, 0.5),
}
DEPTH_BASE, WIDTH_BASE, RESOLUTION_BASE = 1.2, 1.1, 1.15
_TRAIN = {"epochs": 30, "learning_rate": 2e-3, "optimizer": "adam", "schedule": "cosine"}

# Keras Applications' ImageNet files of B0-B7: (md5 with the top, without).
_HASHES = {
    "b0": ("902e53a9f72be733fc0bcb005b3ebbac", "50bc09e76180e00e4465e1a485ddc09d"),
    "b1": ("1d254153d4ab51201f1646940f018540", "74c4e6b3e1f6a1eea24c589628592432"),
    "b2": ("b15cce36ff4dcbd00b6dd88e7857a6ad", "111f8e2ac8aa800a7a99e3239f7bfb39"),
    "b3": ("ffd1fdc53d0ce67064dc6a9c7960ede0", "af6d107764bb5b1abb91932881670226"),
    "b4": ("18c95ad55216b8f92d7e70b3a046e2fc", "ebc24e6d6c33eaebbd558eafbeedf1ba"),
    "b5": ("ace28f2a6363774853a83a0b21b9421a", "38879255a25d3c92d5e44e04ae6cec6f"),
    "b6": ("165f6e37dce68623721b423839de8be5", "9ecce42647a20130c1f39a5d4cb75743"),
    "b7": ("8c03f828fec3ef71311cd463b6759d99", "cbcfe4450ddf6f3ad90b1b398090fe4a"),
}
PRETRAINED = {
    f"EfficientNet{key.upper()}": KerasWeights(
        app=f"EfficientNet{key.upper()}",
        url=KERAS_APPLICATIONS_EFFICIENTNET,
        file="efficientnet{variant}{top}.h5",
        published={key: md5},
        convention=IN_MODEL,
        first_layer="normalization",
        variant=key,
        compat_note="Keras' in-model Rescaling(1/255) and Normalization; the model takes 0..255 pixels",
    )
    for key, md5 in _HASHES.items()
}


PHI_RANGE = (-2.0, 8.0)


def check_phi(phi) -> float:
    """Validate a compound-scaling coefficient, raising a one-line ``UserError`` quoting it.

    Example:
        >>> check_phi(1.5)
        1.5
    """
    if isinstance(phi, bool):
        raise UserError(f"efficientnet: phi must be a number, got {phi!r}")
    try:
        value = float(phi)
    except (TypeError, ValueError):
        raise UserError(f"efficientnet: phi must be a number, got {phi!r}") from None
    if not PHI_RANGE[0] <= value <= PHI_RANGE[1]:
        raise UserError(f"efficientnet: phi must be between {PHI_RANGE[0]:g} and {PHI_RANGE[1]:g}, got {phi!r}")
    return value


def efficientnet_coefficients(phi: float) -> tuple[float, float, int]:
    """``(width, depth, resolution)`` of compound scaling by ``phi`` (Tan & Le, eq. 3).

    Example:
        >>> efficientnet_coefficients(1.5)
        (1.1537, 1.3145, 276)
    """
    phi = check_phi(phi)
    return round(WIDTH_BASE**phi, 4), round(DEPTH_BASE**phi, 4), efficientnet_resolution(phi)


def efficientnet_resolution(phi: float) -> int:
    """The input resolution compound scaling wants for ``phi``: ``224 * 1.15**phi``, rounded.

    Example:
        >>> efficientnet_resolution(0), efficientnet_resolution(1.5)
        (224, 276)
    """
    return int(round(224 * RESOLUTION_BASE ** check_phi(phi)))


def _phi_resolution(phi: float = 0.0, **_ignored) -> int:
    # The registry's preferred resolution of ``efficientnet``, given its arguments.
    return efficientnet_resolution(phi)


def efficientnet_scaled(
    width: float,
    depth: float,
    resolution: int,
    default_dropout: float,
    base: str,
    input_shape=None,
    alpha: float = 1.0,
    include_top: bool = True,
    weights=None,
    input_tensor=None,
    pooling=None,
    classes: int = 1000,
    classifier_activation="softmax",
    dropout: float | None = None,
    drop_connect_rate: float = 0.2,
    keras_compatible: bool = False,
    imagenet_rescaling: bool = False,
    **kwargs,
):
    """EfficientNet with width and depth coefficients ``width``, ``depth``, the default
    input ``resolution`` and ``dropout`` (``default_dropout`` unless given), named ``base``:
    the general builder behind ``efficientnet`` (by
    ``phi``) and ``efficientnet_b0`` ... ``efficientnet_b7`` (the published table).

    Block diagram: :data:`ARCH` decoded with ``width * alpha`` and ``depth`` (see
    :mod:`edgecnn.models._blocks`) between a 3x3/2 stem and a 1x1 head convolution (1280
    channels, scaled), all with swish, then global average pooling, ``dropout`` and the
    ``classifier``. ``drop_connect_rate`` is the stochastic depth of the last block.

    ``keras_compatible`` adds Keras' in-model preprocessing at the input: ``Rescaling(1/255)``
    then a ``Normalization`` (mean and variance are weights, loaded with the file), the
    network of ``keras.applications.EfficientNetB*``'s weights; ``imagenet_rescaling`` also
    the ``Rescaling(1/sqrt(std))`` Keras adds for its ImageNet weights only (the published
    files' normalization holds the variance where the std belongs). ``create_model(...,
    weights="imagenet")`` selects both; the data pipeline then feeds raw 0..255 pixels.

    Example:
        >>> model = efficientnet_scaled(1.0, 1.0, 224, 0.2, "efficientnet_b0", input_shape=(32, 32, 3), classes=10)
        >>> model.name
        'efficientnet_b0_1.00_32'
    """
    alpha = check_builder_args(base, alpha, weights, classes, include_top, kwargs)
    dropout = default_dropout if dropout is None else dropout
    if not 0.0 <= float(drop_connect_rate) < 1.0:
        raise UserError(f"{base}: drop_connect_rate must be in [0, 1), got {drop_connect_rate!r}")
    inputs, shape = resolve_input(input_shape, input_tensor, (resolution, resolution, 3), 32, base)
    width = width * alpha

    x = inputs
    if keras_compatible:
        x = layers.Rescaling(1.0 / 255.0, name="rescaling")(x)
        x = layers.Normalization(axis=-1, name="normalization")(x)
        if imagenet_rescaling:
            std = [0.229, 0.224, 0.225]  # keras.applications.efficientnet.IMAGENET_STDDEV_RGB
            x = layers.Rescaling([1.0 / s**0.5 for s in std], name="rescaling_1")(x)
    x = conv_bn_act(x, make_divisible(32 * width), 3, 2, name="stem_conv", act="swish")
    blocks = decode_arch(ARCH, width=width, depth=depth)
    x = build_blocks(
        x,
        blocks,
        act="swish",
        drop_connect_rate=float(drop_connect_rate),
        se_act="swish",
        se_gate="sigmoid",
        se_from_input=True,
    )
    x = conv_bn_act(x, make_divisible(1280 * width), 1, name="top_conv", act="swish")
    x = classifier_head(
        x,
        include_top=include_top,
        pooling=pooling,
        classes=classes,
        dropout=dropout,
        classifier_activation=classifier_activation,
    )
    return keras.Model(inputs, x, name=model_name(base, alpha, shape))


@register_model(family="efficientnet", train=_TRAIN, resolution=_phi_resolution, params=5_288_548, macs=388_121_280)
def efficientnet(phi: float = 0.0, **kwargs):
    """EfficientNet compound-scaled by ``phi`` from B0: depth 1.2**phi, width 1.1**phi,
    resolution 224*1.15**phi (the default ``input_shape``; the name records it).

    ``alpha`` multiplies the width further (1.0 = the compound-scaled width). ``phi`` may be
    fractional or negative, within :data:`PHI_RANGE`; ``model_info("efficientnet").preferred_resolution(phi=...)``
    gives the resolution it was designed for (``edgecnn optimize efficientnet --phi 1.5``
    prints it when training at another size).

    Where ``phi`` falls among B0-B7: the pure formula is not the published table. B1-B7's
    coefficients were tuned by hand (B1 = (1.0, 1.1, 240) is no integer ``phi``), and the
    formula's ``phi=1`` is (1.1, 1.2, 258), which is B2's (1.1, 1.2, 260), not B1. So
    ``phi=1.5`` gives width 1.1537, depth 1.3145 and 276x276 input: between B2
    (1.1, 1.2, 260) and B3 (1.2, 1.4, 300), not "between B1 and B2" as one might read the
    phi scale (11.0M trainable parameters at 1000 classes, between B2's 9.1M and B3's 12.2M). The
    formula is kept faithful rather than bent to the table.

    Example:
        >>> model = efficientnet(phi=1.5, input_shape=(32, 32, 3), classes=10)
        >>> model.name
        'efficientnet_phi1.5_r276_1.00_32'
    """
    width, depth, resolution = efficientnet_coefficients(phi)
    base = f"efficientnet_phi{check_phi(phi):g}_r{resolution}"
    return efficientnet_scaled(width, depth, resolution, 0.2, base, **kwargs)


def _register(key: str, params: int, macs: int):
    # EfficientNet-``key``'s entry: canonical input and preferred resolution from COEFFICIENTS.
    resolution = COEFFICIENTS[key][2]
    shape = (resolution, resolution, 3)
    return register_model(
        family="efficientnet",
        input_shape=shape,
        train=_TRAIN,
        resolution=resolution,
        params=params,
        macs=macs,
        pretrained=PRETRAINED[f"EfficientNet{key.upper()}"],
    )


@_register("b0", params=5_288_548, macs=388_121_280)
def efficientnet_b0(**kwargs):
    """EfficientNet-B0 (Tan & Le 2019): width 1.0, depth 1.0, 224x224 input, dropout 0.2."""
    return efficientnet_scaled(*COEFFICIENTS["b0"], "efficientnet_b0", **kwargs)


@_register("b1", params=7_794_184, macs=690_912_160)
def efficientnet_b1(**kwargs):
    """EfficientNet-B1 (Tan & Le 2019): width 1.0, depth 1.1, 240x240 input, dropout 0.2."""
    return efficientnet_scaled(*COEFFICIENTS["b1"], "efficientnet_b1", **kwargs)


@_register("b2", params=9_109_994, macs=998_832_224)
def efficientnet_b2(**kwargs):
    """EfficientNet-B2 (Tan & Le 2019): width 1.1, depth 1.2, 260x260 input, dropout 0.3."""
    return efficientnet_scaled(*COEFFICIENTS["b2"], "efficientnet_b2", **kwargs)


@_register("b3", params=12_233_232, macs=1_836_129_536)
def efficientnet_b3(**kwargs):
    """EfficientNet-B3 (Tan & Le 2019): width 1.2, depth 1.4, 300x300 input, dropout 0.3."""
    return efficientnet_scaled(*COEFFICIENTS["b3"], "efficientnet_b3", **kwargs)


@_register("b4", params=19_341_616, macs=4_413_319_168)
def efficientnet_b4(**kwargs):
    """EfficientNet-B4 (Tan & Le 2019): width 1.4, depth 1.8, 380x380 input, dropout 0.4."""
    return efficientnet_scaled(*COEFFICIENTS["b4"], "efficientnet_b4", **kwargs)


@_register("b5", params=30_389_784, macs=10_306_979_360)
def efficientnet_b5(**kwargs):
    """EfficientNet-B5 (Tan & Le 2019): width 1.6, depth 2.2, 456x456 input, dropout 0.4."""
    return efficientnet_scaled(*COEFFICIENTS["b5"], "efficientnet_b5", **kwargs)


@_register("b6", params=43_040_704, macs=19_136_716_704)
def efficientnet_b6(**kwargs):
    """EfficientNet-B6 (Tan & Le 2019): width 1.8, depth 2.6, 528x528 input, dropout 0.5."""
    return efficientnet_scaled(*COEFFICIENTS["b6"], "efficientnet_b6", **kwargs)


@_register("b7", params=66_347_960, macs=37_868_782_912)
def efficientnet_b7(**kwargs):
    """EfficientNet-B7 (Tan & Le 2019): width 2.0, depth 3.1, 600x600 input, dropout 0.5."""
    return efficientnet_scaled(*COEFFICIENTS["b7"], "efficientnet_b7", **kwargs)
