"""LeNet-5, the convolutional network of LeCun et al.

LeCun, Bottou, Bengio & Haffner, "Gradient-Based Learning Applied to Document
Recognition", Proc. IEEE 1998 (http://yann.lecun.com/exdb/publis/pdf/lecun-98.pdf).
"""

from __future__ import annotations

from edgecnn._tf import keras
from edgecnn.errors import UserError
from edgecnn.models._layers import (
    activation as make_activation,
)
from edgecnn.models._layers import (
    batch_norm as bn_layer,
)
from edgecnn.models._layers import (
    check_builder_args,
    classifier_head,
    layers,
    make_divisible,
    model_name,
    resolve_input,
)
from edgecnn.models._registry import register_model

_TRAIN = {"epochs": 30, "learning_rate": 2e-3}

_POOLS = {"avg": layers.AveragePooling2D, "max": layers.MaxPooling2D}


def _width(channels: int, alpha: float) -> int:
    # LeNet's widths (6, 16, 120, 84) are not multiples of 8: round to 2 so alpha=1 is exact.
    return make_divisible(channels * alpha, divisor=2)


@register_model(family="lenet", input_shape=(32, 32, 1), train=_TRAIN, params=61_706, macs=416_520)
def lenet5(
    input_shape=None,
    alpha: float = 1.0,
    include_top: bool = True,
    weights=None,
    input_tensor=None,
    pooling=None,
    classes: int = 10,
    classifier_activation="softmax",
    dropout: float = 0.0,
    pool: str = "avg",
    activation: str = "tanh",
    batch_norm: bool = False,
    **kwargs,
):
    """LeNet-5 (LeCun 1998): conv5x5(6) -> pool -> conv5x5(16) -> pool -> conv5x5(120) -> 84 -> classes.

    Block diagram, at the paper's 32x32x1: C1 5x5 convolution, 6 maps (28x28) -> S2 2x2
    subsampling (14x14) -> C3 5x5 convolution, 16 maps (10x10) -> S4 subsampling (5x5) ->
    C5 5x5 convolution, 120 maps (1x1) -> flatten -> F6 Dense(84) -> ``classifier``. All
    convolutions are 'valid', so 32x32 is the smallest input (C5 needs the 5x5 S4 maps);
    larger inputs give C5 a larger map, flattened into F6.

    Canonical (alpha 1, 32x32x1, 10 classes): 61,706 trainable parameters, 0.42M MACs.
    Departures from the paper, all the common modern reading: C3 is dense (the paper
    connects each C3 map to a subset of S2 maps, 1,516 weights instead of 2,416), the
    subsampling layers are plain average pooling (the paper's have a trainable coefficient
    and bias each), tanh is not scaled (1.7159 tanh(2x/3) in the paper), and the output is a
    ``Dense(classes)`` softmax instead of Euclidean RBF units.

    Args:
        pool: ``"avg"`` (the paper's subsampling) or ``"max"`` (int8 runs on XNNPACK).
        activation: ``"tanh"`` (the paper) or ``"relu"`` (or any Keras activation).
        batch_norm: insert BatchNorm after each convolution and F6 (not in the paper;
            adds parameters).
        dropout: dropout before the classifier (0, as in the paper).

    int8: CONV_2D, FULLY_CONNECTED, TANH (or ReLU, fused) and MAX_POOL_2D run on XNNPACK.
    XNNPACK has no int8 AVERAGE_POOL_2D nor int8 SOFTMAX, so with the paper's average
    pooling S2, S4 and the final softmax run on TFLite's own int8 kernels;
    ``pool="max"`` leaves only the softmax off XNNPACK. At 0.42M MACs per-op overhead
    dominates: int8 is 4x smaller but no faster than float32 (benchmarks/RESULTS.md).

    Example:
        >>> model = lenet5()
        >>> model.name, model.output_shape
        ('lenet5_1.00_32', (None, 10))
    """
    alpha = check_builder_args("lenet5", alpha, weights, classes, include_top, kwargs)
    if pool not in _POOLS:
        raise UserError(f"lenet5: pool must be 'avg' or 'max', got {pool!r}")
    inputs, shape = resolve_input(input_shape, input_tensor, (32, 32, 1), 32, "lenet5")

    def conv(x, filters, name):
        x = layers.Conv2D(_width(filters, alpha), 5, padding="valid", use_bias=not batch_norm, name=name)(x)
        if batch_norm:
            x = bn_layer(name=f"{name}_bn")(x)
        return make_activation(activation, name=f"{name}_{activation}")(x)

    x = conv(inputs, 6, "c1")
    x = _POOLS[pool](2, name="s2")(x)
    x = conv(x, 16, "c3")
    x = _POOLS[pool](2, name="s4")(x)
    x = conv(x, 120, "c5")
    if include_top:
        x = layers.Flatten(name="flatten")(x)
        x = layers.Dense(_width(84, alpha), use_bias=not batch_norm, name="f6")(x)
        if batch_norm:
            x = bn_layer(name="f6_bn")(x)
        x = make_activation(activation, name=f"f6_{activation}")(x)
    x = classifier_head(
        x,
        include_top=include_top,
        pooling=pooling,
        classes=classes,
        dropout=dropout,
        classifier_activation=classifier_activation,
    )
    return keras.Model(inputs, x, name=model_name("lenet5", alpha, shape))
