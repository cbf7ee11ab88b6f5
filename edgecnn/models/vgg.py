"""VGG: very deep networks of stacked 3x3 convolutions.

Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition", ICLR 2015 (https://arxiv.org/abs/1409.1556).
"""

from __future__ import annotations

import functools

from edgecnn._tf import keras
from edgecnn.errors import UserError
from edgecnn.models._layers import (
    check_builder_args,
    classifier_head,
    conv_bn_act,
    layers,
    make_divisible,
    model_name,
    resolve_input,
)
from edgecnn.models._pretrained import CAFFE_MODE, KERAS_APPLICATIONS, KerasWeights
from edgecnn.models._registry import register_model

# Convolutions per stage (widths 64, 128, 256, 512, 512) of the paper's configurations A, B, D, E.
CONFIGS = {11: (1, 1, 2, 2, 2), 13: (2, 2, 2, 2, 2), 16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
_WIDTHS = (64, 128, 256, 512, 512)
_TRAIN = {"epochs": 30, "learning_rate": 5e-4}


def vgg(
    depth: int = 16,
    input_shape=None,
    alpha: float = 1.0,
    include_top: bool = True,
    weights=None,
    input_tensor=None,
    pooling=None,
    classes: int = 1000,
    classifier_activation="softmax",
    dropout: float = 0.5,
    batch_norm: bool = False,
    **kwargs,
):
    """VGG-``depth`` (Simonyan 2014), the general builder behind ``vgg11`` ... ``vgg19_bn``.

    Block diagram: five stages of 3x3 stride-1 'same' convolutions with ReLU (64, 128,
    256, 512, 512 channels; 1-4 convolutions per stage, see ``CONFIGS``), each stage ending
    in a 2x2/2 max pool (7x7x512 at 224) -> flatten -> fc1 4096 -> ReLU -> dropout -> fc2
    4096 -> ReLU -> dropout -> ``classifier``. Layer names follow Keras' VGG16
    (``block3_conv2``, ``block3_pool``, ``fc1``, ``fc2``).

    Canonical (alpha 1, 224x224x3, 1000 classes, no BN): VGG-11/13/16/19 have
    132,863,336 / 133,047,848 / 138,357,544 / 143,667,240 trainable parameters (VGG16 and
    VGG19 equal Keras') and 7.6G / 11.3G / 15.5G / 19.6G MACs. 90% of the weights are in
    fc1 at 224; at 32x32 the last map is 1x1 and fc1 shrinks 49-fold. The smallest input is
    32x32 (five 2x2 poolings).

    Args:
        depth: 11, 13, 16 or 19.
        batch_norm: conv (no bias) -> BatchNorm -> ReLU, the ``_bn`` variants (not in the
            paper, which trained VGG-11 first and initialised the deeper ones from it; from
            scratch the plain deep variants train poorly). BN folds into the convolution
            at export. Adds 2 parameters per channel less the conv biases.
        dropout: rate of the two dropout layers after fc1 and fc2 (0.5 in the paper).
        alpha: width multiplier on every convolution and on fc1/fc2.

    int8: CONV_2D (ReLU fused), MAX_POOL_2D and FULLY_CONNECTED run on XNNPACK; only the
    final int8 SOFTMAX (no XNNPACK kernel) does not.

    Example:
        >>> model = vgg(16, input_shape=(32, 32, 3), alpha=0.25, classes=10, batch_norm=True)
        >>> model.name
        'vgg16_bn_0.25_32'
    """
    if depth not in CONFIGS:
        raise UserError(f"vgg: depth must be one of {sorted(CONFIGS)}, got {depth!r}")
    base = f"vgg{depth}" + ("_bn" if batch_norm else "")
    alpha = check_builder_args(base, alpha, weights, classes, include_top, kwargs)
    inputs, shape = resolve_input(input_shape, input_tensor, (224, 224, 3), 32, base)

    x = inputs
    for stage, (convs, width) in enumerate(zip(CONFIGS[depth], _WIDTHS), start=1):
        for i in range(1, convs + 1):
            x = conv_bn_act(
                x,
                make_divisible(width * alpha),
                3,
                name=f"block{stage}_conv{i}",
                bn=batch_norm,
                use_bias=not batch_norm,
            )
        x = layers.MaxPooling2D(2, strides=2, name=f"block{stage}_pool")(x)
    if include_top:
        x = layers.Flatten(name="flatten")(x)
        for fc in ("fc1", "fc2"):
            x = layers.Dense(make_divisible(4096 * alpha), name=fc)(x)
            x = layers.ReLU(name=f"{fc}_relu")(x)
            if dropout:
                x = layers.Dropout(dropout, name=f"{fc}_dropout")(x)
    x = classifier_head(
        x,
        include_top=include_top,
        pooling=pooling,
        classes=classes,
        dropout=0.0,
        classifier_activation=classifier_activation,
    )
    return keras.Model(inputs, x, name=model_name(base, alpha, shape))


# Keras Applications' ImageNet files of VGG-16 and -19: (md5 with the top, without), inline
# in tf_keras' code.
_HASHES = {
    16: ("64373286793e3c8b2b4e3219cbf3544b", "6d6bbae143d832006294945121d1f1fc"),
    19: ("cbe5617147190e668d6c5d5026f83318", "253f8cb515780f3b799900260a226db6"),
}
PRETRAINED = {
    f"VGG{depth}": KerasWeights(
        app=f"VGG{depth}",
        url=KERAS_APPLICATIONS + f"vgg{depth}/",
        file="{variant}_weights_tf_dim_ordering_tf_kernels{top}.h5",
        published={f"vgg{depth}": md5},
        convention=CAFFE_MODE,
        first_layer="block1_conv1",
        variant=f"vgg{depth}",
    )
    for depth, md5 in _HASHES.items()
}

# The variants' registration: the family's fields; each variant adds its figures.
_register = functools.partial(register_model, family="vgg", train=_TRAIN)


@_register(params=132_863_336, macs=7_609_090_048)
def vgg11(**kwargs):
    """VGG-11 (Simonyan 2014): see :func:`vgg` for the diagram and arguments."""
    return vgg(11, **kwargs)


@_register(params=133_047_848, macs=11_308_466_176)
def vgg13(**kwargs):
    """VGG-13 (Simonyan 2014): see :func:`vgg` for the diagram and arguments."""
    return vgg(13, **kwargs)


@_register(params=138_357_544, macs=15_470_264_320, pretrained=PRETRAINED["VGG16"])
def vgg16(**kwargs):
    """VGG-16 (Simonyan 2014): see :func:`vgg` for the diagram and arguments."""
    return vgg(16, **kwargs)


@_register(params=143_667_240, macs=19_632_062_464, pretrained=PRETRAINED["VGG19"])
def vgg19(**kwargs):
    """VGG-19 (Simonyan 2014): see :func:`vgg` for the diagram and arguments."""
    return vgg(19, **kwargs)


@_register(params=132_866_088, macs=7_609_090_048)
def vgg11_bn(**kwargs):
    """VGG-11 (Simonyan 2014) with BatchNorm after every convolution: see :func:`vgg` for the diagram and arguments."""
    return vgg(11, **{"batch_norm": True, **kwargs})


@_register(params=133_050_792, macs=11_308_466_176)
def vgg13_bn(**kwargs):
    """VGG-13 (Simonyan 2014) with BatchNorm after every convolution: see :func:`vgg` for the diagram and arguments."""
    return vgg(13, **{"batch_norm": True, **kwargs})


@_register(params=138_361_768, macs=15_470_264_320)
def vgg16_bn(**kwargs):
    """VGG-16 (Simonyan 2014) with BatchNorm after every convolution: see :func:`vgg` for the diagram and arguments."""
    return vgg(16, **{"batch_norm": True, **kwargs})


@_register(params=143_672_744, macs=19_632_062_464)
def vgg19_bn(**kwargs):
    """VGG-19 (Simonyan 2014) with BatchNorm after every convolution: see :func:`vgg` for the diagram and arguments."""
    return vgg(19, **{"batch_norm": True, **kwargs})
