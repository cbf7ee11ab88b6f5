"""MobileNetV3-Small and -Large: hard-swish, hard-sigmoid squeeze-excite, NAS-found blocks.

Howard et al., "Searching for MobileNetV3", 2019 (https://arxiv.org/abs/1905.02244).

Block diagram: a 3x3 stride-2 stem convolution (16 channels) -> BN -> hard-swish, then
inverted residual blocks declared as block strings (:data:`ARCH_LARGE`,
:data:`ARCH_SMALL`, Table 1 and 2 of the paper, decoded by :mod:`edgecnn.models._blocks`):
1x1 expansion -> BN -> act -> kxk depthwise -> BN -> act -> [squeeze-excite with ReLU and
hard-sigmoid gate] -> 1x1 linear projection -> BN (+ input), where act is ReLU in the
early blocks (``nre``) and hard-swish later; then the classic head: 1x1 convolution to 6x
the last width -> BN -> hard-swish, global average pooling, a 1x1 convolution (``Dense``
``conv_head``, 1024 small / 1280 large channels) -> hard-swish, dropout and the
``classifier``. ``minimalistic=True`` drops SE and hard-swish and uses 3x3 kernels only.

Unlike ``keras.applications.MobileNetV3*`` there is no ``Rescaling`` layer (the data
pipeline normalizes, see :mod:`edgecnn.data.dataset`), hard-swish and SE are the zoo's own layers
(:mod:`edgecnn.models._quant_layers`) so tfmot QAT accepts them. Trainable parameters at
224x224x3, 1000 classes match Keras: 2,542,856 (small), 5,483,032 (large).

int8 TFLite at 224x224, 1000 classes (small / large): CONV_2D 41 / 47, DEPTHWISE_CONV_2D
11 / 15, HARD_SWISH 19 / 21, MUL 18 / 16, MEAN 10 / 9, ADD 6 / 10, FULLY_CONNECTED 2,
SOFTMAX 1, the same after QAT (the SE's hard-sigmoid: its +3 folds into the expand
convolution's bias and its ReLU6 fuses into it, then MUL by 1/6 and MUL by the gate).
XNNPACK runs every op but HARD_SWISH and SOFTMAX, which stay on TFLite's own kernels
(keras.applications' MobileNetV3 converts to the same HARD_SWISH ops, also left off).
Measured by ``benchmarks/stock_vs_edgecnn.py`` (LiteRT 2.3, default XNNPACK delegate; see
benchmarks/RESULTS.md); the 32x32 digits model of ``benchmarks/efficient_digits.py``
has the same exceptions.
"""

from __future__ import annotations

from dataclasses import replace

from edgecnn._tf import keras
from edgecnn.errors import UserError
from edgecnn.models._blocks import build_blocks, decode_arch
from edgecnn.models._layers import (
    activation,
    check_builder_args,
    classifier_head,
    conv_bn_act,
    layers,
    make_divisible,
    model_name,
    resolve_input,
)
from edgecnn.models._pretrained import IN_MODEL, KERAS_APPLICATIONS, KerasWeights
from edgecnn.models._registry import register_model

ARCH_LARGE = [
    ["ds_r1_k3_s1_e1_c16_nre"],
    ["ir_r1_k3_s2_e4_c24_nre", "ir_r1_k3_s1_e3_c24_nre"],
    ["ir_r3_k5_s2_e3_c40_se0.25_nre"],
    ["ir_r1_k3_s2_e6_c80", "ir_r1_k3_s1_e2.5_c80", "ir_r2_k3_s1_e2.3_c80"],
    ["ir_r2_k3_s1_e6_c112_se0.25"],
    ["ir_r3_k5_s2_e6_c160_se0.25"],
]
ARCH_SMALL = [
    ["ds_r1_k3_s2_e1_c16_se0.25_nre"],
    ["ir_r1_k3_s2_e4.5_c24_nre", "ir_r1_k3_s1_e3.67_c24_nre"],
    ["ir_r1_k5_s2_e4_c40_se0.25", "ir_r2_k5_s1_e6_c40_se0.25"],
    ["ir_r2_k5_s1_e3_c48_se0.25"],
    ["ir_r3_k5_s2_e6_c96_se0.25"],
]
_TRAIN = {"epochs": 30, "learning_rate": 2e-3, "optimizer": "adam", "schedule": "cosine"}

# Keras Applications' ImageNet files, (md5 with the top, without) per width and option.
_HASHES = {
    "large_224_0.75_float": ("765b44a33ad4005b3ac83185abf1d0eb", "40af19a13ebea4e2ee0c676887f69a2e"),
    "large_224_1.0_float": ("59e551e166be033d707958cf9e29a6a7", "07fb09a5933dd0c8eaafa16978110389"),
    "large_minimalistic_224_1.0_float": ("675e7b876c45c57e9e63e6d90a36599c", "ec5221f64a2f6d1ef965a614bdae7973"),
    "small_224_0.75_float": ("cb65d4e5be93758266aa0a7f2c6708b7", "ebdb5cc8e0b497cd13a7c275d475c819"),
    "small_224_1.0_float": ("8768d4c2e7dee89b9d02b2d03d65d862", "d3e8ec802a04aa4fc771ee12a9a9b836"),
    "small_minimalistic_224_1.0_float": ("99cd97fb2fcdad2bf028eb838de69e37", "cde8136e733e811080d9fcd8a252f7e4"),
}
PRETRAINED = {
    f"MobileNetV3{kind.title()}": KerasWeights(
        app=f"MobileNetV3{kind.title()}",
        url=KERAS_APPLICATIONS + "mobilenet_v3/",
        file="weights_mobilenet_v3_{variant}{top}.h5",
        published={key: md5 for key, md5 in _HASHES.items() if key.startswith(kind)},
        convention=IN_MODEL,
        first_layer="Conv",
        variant=kind + "{minimalistic}_224_{alpha}_float",
        top=("", "_no_top_v2"),
        alphas=None,
        compat_note="Keras' in-model Rescaling to [-1, 1]; the model takes 0..255 pixels",
    )
    for kind in ("small", "large")
}


def _minimalistic(block):
    return replace(block, kernel=3, se=None, act="relu")


# variant: (block strings, width of the last hidden layer before the classifier).
VARIANTS = {"small": (ARCH_SMALL, 1024), "large": (ARCH_LARGE, 1280)}


def mobilenet_v3(
    variant: str = "large",
    input_shape=None,
    alpha: float = 1.0,
    minimalistic: bool = False,
    include_top: bool = True,
    weights=None,
    input_tensor=None,
    pooling=None,
    classes: int = 1000,
    classifier_activation="softmax",
    dropout: float = 0.2,
    keras_compatible: bool = False,
    **kwargs,
):
    """MobileNetV3 (Howard 2019) ``variant`` ``"small"`` or ``"large"``, the general builder
    behind ``mobilenet_v3_small`` and ``mobilenet_v3_large``.

    ``minimalistic`` drops squeeze-excite, hard-swish and 5x5 kernels (3x3 and ReLU
    everywhere). ``alpha`` scales every block's width (and the last hidden layer above 1).
    ``keras_compatible`` adds Keras' in-model ``Rescaling`` (pixels 0..255 -> [-1, 1]) at
    the input, the network of ``keras.applications.MobileNetV3*``'s weights (which
    ``create_model(..., weights="imagenet")`` selects); the data pipeline then feeds raw
    pixels.

    Example:
        >>> model = mobilenet_v3("small", input_shape=(32, 32, 3), alpha=0.75, classes=10)
        >>> model.name
        'mobilenet_v3_small_0.75_32'
    """
    if variant not in VARIANTS:
        raise UserError(f"mobilenet_v3: variant must be one of {sorted(VARIANTS)}, got {variant!r}")
    arch, last_point = VARIANTS[variant]
    base = f"mobilenet_v3_{variant}"
    alpha = check_builder_args(base, alpha, weights, classes, include_top, kwargs)
    inputs, shape = resolve_input(input_shape, input_tensor, (224, 224, 3), 32, base)
    act = "relu" if minimalistic else "hard_swish"

    # Keras' include_preprocessing: pixels 0..255 -> [-1, 1] inside the model.
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescaling")(inputs) if keras_compatible else inputs
    x = conv_bn_act(x, 16, 3, 2, name="stem_conv", act=act)
    blocks = decode_arch(arch, width=alpha, transform=_minimalistic if minimalistic else None)
    x = build_blocks(x, blocks, act=act, se_act="relu", se_gate="hard_sigmoid")
    x = conv_bn_act(x, make_divisible(int(x.shape[-1]) * 6), 1, name="head_conv", act=act)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dense(make_divisible(last_point * alpha) if alpha > 1.0 else last_point, name="conv_head")(x)
        x = activation(act, name=f"conv_head_{act}")(x)
    x = classifier_head(
        x,
        include_top=include_top,
        pooling=pooling,
        classes=classes,
        dropout=dropout,
        classifier_activation=classifier_activation,
    )
    name = model_name(base + ("_minimalistic" if minimalistic else ""), alpha, shape)
    return keras.Model(inputs, x, name=name)


@register_model(
    family="mobilenet_v3",
    aliases=("mobilenetv3_small",),
    train=_TRAIN,
    pretrained=PRETRAINED["MobileNetV3Small"],
    params=2_542_856,
    macs=56_795_776,
)
def mobilenet_v3_small(**kwargs):
    """MobileNetV3-Small (Howard 2019): 11 blocks, 2.5M parameters, 56M MACs at 224."""
    return mobilenet_v3("small", **kwargs)


@register_model(
    family="mobilenet_v3",
    aliases=("mobilenetv3_large",),
    train=_TRAIN,
    pretrained=PRETRAINED["MobileNetV3Large"],
    params=5_483_032,
    macs=217_187_168,
)
def mobilenet_v3_large(**kwargs):
    """MobileNetV3-Large (Howard 2019): 15 blocks, 5.5M parameters, 219M MACs at 224."""
    return mobilenet_v3("large", **kwargs)
