"""MobileNet v1: depthwise separable convolutions with a width multiplier.

Howard et al., "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision
Applications", 2017 (https://arxiv.org/abs/1704.04861).

Block diagram: a 3x3 stride-2 stem convolution (32 channels), then 13 depthwise separable
blocks, each a 3x3 depthwise convolution -> BN -> ReLU6 -> 1x1 pointwise convolution ->
BN -> ReLU6, doubling the channels 64 -> 1024 while stride-2 blocks halve the resolution
five times in all; then global average pooling, dropout and the classifier. The width
multiplier ``alpha`` thins every layer; at 224x224x3, 1000 classes, the layer names and
``count_params()`` match ``keras.applications.MobileNet(weights=None, alpha=...)``.
"""

from __future__ import annotations

from edgecnn._tf import keras
from edgecnn.models._layers import (
    batch_norm,
    check_builder_args,
    classifier_head,
    layers,
    make_divisible,
    model_name,
    relu6,
    resolve_input,
)
from edgecnn.models._pretrained import KERAS_APPLICATIONS, TF_MODE, KerasWeights
from edgecnn.models._registry import register_model

_TRAIN = {"epochs": 30, "learning_rate": 2e-3}

# Keras Applications' ImageNet files: one per width and resolution, no published hash.
_ALPHAS = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}
_ROWS = (128, 160, 192, 224)
PRETRAINED = {
    "MobileNet": KerasWeights(
        app="MobileNet",
        url=KERAS_APPLICATIONS + "mobilenet/",
        file="mobilenet_{variant}_tf{top}.h5",
        published={f"{a}_{r}": (None, None) for a in _ALPHAS.values() for r in _ROWS},
        convention=TF_MODE,
        first_layer="conv1",
        variant="{alpha}_{rows}",
        top=("", "_no_top"),
        alphas=_ALPHAS,
        rows=_ROWS,
    )
}

# (pointwise filters, stride) of the 13 depthwise separable blocks.
_BLOCKS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]


def _depthwise_conv_block(x, filters: int, alpha: float, depth_multiplier: int, strides: int, block_id: int):
    """Depthwise 3x3 -> BN -> ReLU6 -> pointwise 1x1 -> BN -> ReLU6, named ``conv_dw_{id}``/``conv_pw_{id}``."""
    if strides != 1:
        x = layers.ZeroPadding2D(((0, 1), (0, 1)), name=f"conv_pad_{block_id}")(x)
    x = layers.DepthwiseConv2D(
        (3, 3),
        padding="same" if strides == 1 else "valid",
        depth_multiplier=depth_multiplier,
        strides=strides,
        use_bias=False,
        name=f"conv_dw_{block_id}",
    )(x)
    x = batch_norm(name=f"conv_dw_{block_id}_bn")(x)
    x = relu6(name=f"conv_dw_{block_id}_relu")(x)
    x = layers.Conv2D(
        make_divisible(filters * alpha), (1, 1), padding="same", use_bias=False, name=f"conv_pw_{block_id}"
    )(x)
    x = batch_norm(name=f"conv_pw_{block_id}_bn")(x)
    return relu6(name=f"conv_pw_{block_id}_relu")(x)


@register_model(
    family="mobilenet_v1",
    aliases=("mobilenet_v1", "mobilenetv1"),
    train=_TRAIN,
    pretrained=PRETRAINED["MobileNet"],
    params=4_231_976,
    macs=568_740_352,
)
def mobilenet(
    input_shape=None,
    alpha: float = 1.0,
    depth_multiplier: int = 1,
    dropout: float = 1e-3,
    include_top: bool = True,
    weights=None,
    input_tensor=None,
    pooling=None,
    classes: int = 1000,
    classifier_activation="softmax",
    **kwargs,
):
    """MobileNet v1 (Howard 2017) with width multiplier ``alpha``, at any input >= 32x32.

    Example:
        >>> model = mobilenet(input_shape=(32, 32, 3), alpha=0.5, classes=10)
        >>> model.name
        'mobilenet_0.50_32'
    """
    alpha = check_builder_args("mobilenet", alpha, weights, classes, include_top, kwargs)
    inputs, shape = resolve_input(input_shape, input_tensor, (224, 224, 3), 32, "mobilenet")

    x = layers.Conv2D(make_divisible(32 * alpha), (3, 3), padding="same", use_bias=False, strides=2, name="conv1")(
        inputs
    )
    x = batch_norm(name="conv1_bn")(x)
    x = relu6(name="conv1_relu")(x)
    for block_id, (filters, strides) in enumerate(_BLOCKS, start=1):
        x = _depthwise_conv_block(x, filters, alpha, depth_multiplier, strides, block_id)
    x = classifier_head(
        x,
        include_top=include_top,
        pooling=pooling,
        classes=classes,
        dropout=dropout,
        classifier_activation=classifier_activation,
    )
    return keras.Model(inputs, x, name=model_name("mobilenet", alpha, shape))
