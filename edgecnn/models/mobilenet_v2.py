"""MobileNetV2: inverted residuals and linear bottlenecks.

Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", 2018
(https://arxiv.org/abs/1801.04381).

Block diagram: a 3x3 stride-2 stem convolution (32 channels) -> BN -> ReLU6, then 17
inverted residual blocks declared as block strings (:data:`ARCH`, decoded by
:mod:`edgecnn.models._blocks`): 1x1 expansion (x6) -> BN -> ReLU6 -> 3x3 depthwise ->
BN -> ReLU6 -> 1x1 linear projection -> BN, with a residual connection where the shape
allows; then a 1x1 convolution to 1280 channels -> BN -> ReLU6, global average pooling,
dropout and the classifier. At 224x224x3, 1000 classes the trainable parameters match
``keras.applications.MobileNetV2(weights=None)`` (3,504,872; Keras total 3,538,984).

int8 TFLite at 224x224, 1000 classes: CONV_2D 35, DEPTHWISE_CONV_2D 17, ADD 10, MEAN 1,
FULLY_CONNECTED 1, SOFTMAX 1, the same after QAT. XNNPACK runs every op but SOFTMAX.
Measured by ``benchmarks/stock_vs_edgecnn.py`` (LiteRT 2.3, default XNNPACK delegate; see
benchmarks/RESULTS.md); the same holds for the 32x32 digits models of
``benchmarks/efficient_digits.py``.
"""

from __future__ import annotations

from edgecnn._tf import keras
from edgecnn.models._blocks import build_blocks, decode_arch
from edgecnn.models._layers import (
    check_builder_args,
    classifier_head,
    conv_bn_act,
    make_divisible,
    model_name,
    resolve_input,
)
from edgecnn.models._pretrained import KERAS_APPLICATIONS, TF_MODE, KerasWeights
from edgecnn.models._registry import register_model

_TRAIN = {"epochs": 30, "learning_rate": 2e-3, "optimizer": "adam", "schedule": "cosine"}

ARCH = [
    ["ds_r1_k3_s1_c16"],
    ["ir_r2_k3_s2_e6_c24"],
    ["ir_r3_k3_s2_e6_c32"],
    ["ir_r4_k3_s2_e6_c64"],
    ["ir_r3_k3_s1_e6_c96"],
    ["ir_r3_k3_s2_e6_c160"],
    ["ir_r1_k3_s1_e6_c320"],
]

# Keras Applications' ImageNet files: one per width and resolution, no published hash.
_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
_ROWS = (96, 128, 160, 192, 224)
PRETRAINED = {
    "MobileNetV2": KerasWeights(
        app="MobileNetV2",
        url=KERAS_APPLICATIONS + "mobilenet_v2/",
        file="mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{variant}{top}.h5",
        published={f"{a}_{r}": (None, None) for a in _ALPHAS for r in _ROWS},
        convention=TF_MODE,
        first_layer="Conv1",
        variant="{alpha}_{rows}",
        top=("", "_no_top"),
        alphas={a: str(a) for a in _ALPHAS},
        rows=_ROWS,
    )
}


@register_model(
    family="mobilenet_v2",
    aliases=("mobilenetv2",),
    train=_TRAIN,
    pretrained=PRETRAINED["MobileNetV2"],
    params=3_504_872,
    macs=300_774_272,
)
def mobilenet_v2(
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
    """MobileNetV2 (Sandler 2018) with width multiplier ``alpha``, at any input >= 32x32.

    The head keeps 1280 channels for ``alpha <= 1`` (as the paper and Keras do).

    Example:
        >>> model = mobilenet_v2(input_shape=(32, 32, 3), alpha=0.35, classes=10)
        >>> model.name
        'mobilenet_v2_0.35_32'
    """
    alpha = check_builder_args("mobilenet_v2", alpha, weights, classes, include_top, kwargs)
    inputs, shape = resolve_input(input_shape, input_tensor, (224, 224, 3), 32, "mobilenet_v2")

    x = conv_bn_act(inputs, make_divisible(32 * alpha), 3, 2, name="stem_conv", act="relu6")
    x = build_blocks(x, decode_arch(ARCH, width=alpha), act="relu6")
    x = conv_bn_act(x, make_divisible(1280 * alpha) if alpha > 1.0 else 1280, 1, name="head_conv", act="relu6")
    x = classifier_head(
        x,
        include_top=include_top,
        pooling=pooling,
        classes=classes,
        dropout=dropout,
        classifier_activation=classifier_activation,
    )
    return keras.Model(inputs, x, name=model_name("mobilenet_v2", alpha, shape))
