"""AlexNet, the network that won ILSVRC 2012.

Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep Convolutional Neural
Networks", NeurIPS 2012
(https://papers.nips.cc/paper/4824-imagenet-classification-with-deep-convolutional-neural-networks).
"""

from __future__ import annotations

from edgecnn._tf import keras
from edgecnn.errors import UserError
from edgecnn.models._layers import (
    LocalResponseNormalization,
    check_builder_args,
    classifier_head,
    layers,
    make_divisible,
    model_name,
    resolve_input,
)
from edgecnn.models._layers import (
    batch_norm as bn_layer,
)
from edgecnn.models._registry import register_model

_TRAIN = {"epochs": 30, "learning_rate": 5e-4}

NORMS = ("batchnorm", "lrn", "none")


def _conv(x, filters: int, kernel: int, strides: int, *, name: str, norm, groups: int = 1, padding: str = "same"):
    """Conv -> BN -> ReLU (``norm="batchnorm"``), Conv -> ReLU -> LRN (``"lrn"``, the paper) or Conv -> ReLU."""
    if norm == "batchnorm":
        # BN's beta replaces the conv bias and gamma is dropped (the ReLU passes a scale on
        # to the next layer), so the trainable count equals the paper's.
        x = layers.Conv2D(filters, kernel, strides=strides, padding=padding, groups=groups, use_bias=False, name=name)(
            x
        )
        x = bn_layer(name=f"{name}_bn", scale=False)(x)
        return layers.ReLU(name=f"{name}_relu")(x)
    x = layers.Conv2D(filters, kernel, strides=strides, padding=padding, groups=groups, name=name)(x)
    x = layers.ReLU(name=f"{name}_relu")(x)
    if norm == "lrn":
        x = LocalResponseNormalization(name=f"{name}_lrn")(x)
    return x


def _check_options(norm, groups) -> str:
    """``norm`` spelled as :data:`NORMS` spells it; a bad ``norm`` or ``groups``: one line."""
    norm = "none" if norm is None else norm
    if norm not in NORMS:
        raise UserError(f"alexnet: norm must be 'batchnorm', 'lrn' or 'none', got {norm!r}")
    if groups not in (1, 2):
        raise UserError(f"alexnet: groups must be 1 (single tower) or 2 (the paper's two streams), got {groups!r}")
    return norm


def _features(inputs, alpha: float, norm: str, groups: int):
    """conv1 to pool5: five convolutions, three overlapping max poolings (6x6x256 at 224)."""

    def width(c):  # a multiple of 8, so of ``groups`` too
        return make_divisible(c * alpha)

    x = layers.ZeroPadding2D(2, name="conv1_pad")(inputs)
    x = _conv(x, width(96), 11, 4, name="conv1", norm=norm, padding="valid")
    x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    x = _conv(x, width(256), 5, 1, name="conv2", norm=norm, groups=groups)
    x = layers.MaxPooling2D(3, strides=2, name="pool2")(x)
    x = _conv(x, width(384), 3, 1, name="conv3", norm="none")
    x = _conv(x, width(384), 3, 1, name="conv4", norm="none", groups=groups)
    x = _conv(x, width(256), 3, 1, name="conv5", norm="none", groups=groups)
    return layers.MaxPooling2D(3, strides=2, name="pool5")(x)


def _fully_connected(x, alpha: float, dropout: float):
    """flatten -> (dropout -> fc 4096 -> ReLU) twice: fc6 and fc7, before the classifier."""
    x = layers.Flatten(name="flatten")(x)
    for fc in ("fc6", "fc7"):
        if dropout:
            x = layers.Dropout(dropout, name=f"{fc}_dropout")(x)
        x = layers.Dense(make_divisible(4096 * alpha), name=fc)(x)
        x = layers.ReLU(name=f"{fc}_relu")(x)
    return x


@register_model(family="alexnet", min_size=63, small_size=64, train=_TRAIN, params=62_378_344, macs=1_135_256_096)
def alexnet(
    input_shape=None,
    alpha: float = 1.0,
    include_top: bool = True,
    weights=None,
    input_tensor=None,
    pooling=None,
    classes: int = 1000,
    classifier_activation="softmax",
    dropout: float = 0.5,
    norm: str = "batchnorm",
    groups: int = 1,
    **kwargs,
):
    """AlexNet (Krizhevsky 2012), single tower by default, the paper's two streams with ``groups=2``.

    Block diagram (224x224x3): conv1 11x11/4, 96 -> ReLU -> norm -> max pool 3x3/2
    (overlapping) -> conv2 5x5, 256 -> ReLU -> norm -> max pool 3x3/2 -> conv3 3x3, 384 ->
    conv4 3x3, 384 -> conv5 3x3, 256 -> max pool 3x3/2 (6x6x256) -> flatten -> dropout ->
    fc6 4096 -> ReLU -> dropout -> fc7 4096 -> ReLU -> ``classifier``. conv1 is zero-padded
    by 2 so that 224 gives the paper's 55x55 maps (the paper's figure implies 227).
    ``groups=2`` is the paper's split over two GPUs: conv2, conv4 and conv5 see only their
    own half of the channels (grouped convolutions), conv3 and the dense layers see both.

    Canonical (alpha 1, 224x224x3, 1000 classes): 62,378,344 trainable parameters single
    tower, 60,965,224 with ``groups=2`` (either ``norm``); 1.14G MACs single tower, 0.72G
    with ``groups=2`` (the paper's network). The smallest input is 63x63 (three 3x3/2
    poolings after a stride-4 stem); the digits use 64x64, which ends on a 1x1x256 map.

    Args:
        norm: what follows conv1 and conv2.
            ``"batchnorm"`` (default, edge friendly): conv -> BatchNorm -> ReLU. BN folds
            into the convolution at export, so it costs nothing at inference, converts fully
            to int8 and every op runs on XNNPACK (but the int8 SOFTMAX at the end, which
            XNNPACK lacks in every zoo model); it trains faster and more reliably than LRN.
            Not the paper.
            ``"lrn"`` (the paper): ReLU -> Local Response Normalization (n=5, k=2,
            alpha=1e-4, beta=0.75). TFLite has no int8 LRN kernel, so the int8 model
            dequantizes, runs LOCAL_RESPONSE_NORMALIZATION in float32 on the reference
            kernels and quantizes again, twice per image; XNNPACK has no LRN at all, so the
            graph splits into three XNNPACK partitions, in the float models too. Choose it
            to reproduce the paper.
            ``"none"`` (or ``None``): neither, as torchvision's AlexNet.
        groups: 1 (single tower) or 2 (the paper's two streams). Grouped convolutions are
            ~1.4M weights and ~0.41G MACs cheaper; TFLite and XNNPACK run them natively.
        dropout: rate of the two dropout layers before fc6 and fc7 (0.5 in the paper).
        alpha: width multiplier on every convolution and on fc6/fc7.

    Example:
        >>> model = alexnet(input_shape=(64, 64, 3), alpha=0.25, classes=10, groups=2)
        >>> model.name, model.output_shape
        ('alexnet_0.25_64', (None, 10))
    """
    alpha = check_builder_args("alexnet", alpha, weights, classes, include_top, kwargs)
    norm = _check_options(norm, groups)
    inputs, shape = resolve_input(input_shape, input_tensor, (224, 224, 3), 63, "alexnet")
    x = _features(inputs, alpha, norm, groups)
    if include_top:
        x = _fully_connected(x, alpha, dropout)
    x = classifier_head(
        x,
        include_top=include_top,
        pooling=pooling,
        classes=classes,
        dropout=0.0,
        classifier_activation=classifier_activation,
    )
    return keras.Model(inputs, x, name=model_name("alexnet", alpha, shape))
