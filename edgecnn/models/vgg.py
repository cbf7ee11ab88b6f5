"""VGG: very deep networks of stacked 3x3 convolutions.

Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition", ICLR 2015 (https://arxiv.org/abs/1409.1556).
"""

from __future__ import annotations

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


def _variant(depth: int, batch_norm: bool):
    def builder(
        input_shape=None,
        alpha: float = 1.0,
        include_top: bool = True,
        weights=None,
        input_tensor=None,
        pooling=None,
        classes: int = 1000,
        classifier_activation="softmax",
        dropout: float = 0.5,
        **kwargs,
    ):
        kwargs.setdefault("batch_norm", batch_norm)
        return vgg(
            depth,
            input_shape=input_shape,
            alpha=alpha,
            include_top=include_top,
            weights=weights,
            input_tensor=input_tensor,
            pooling=pooling,
            classes=classes,
            classifier_activation=classifier_activation,
            dropout=dropout,
            **kwargs,
        )

    name = f"vgg{depth}" + ("_bn" if batch_norm else "")
    builder.__name__ = builder.__qualname__ = name
    bn = " with BatchNorm after every convolution" if batch_norm else ""
    builder.__doc__ = f"""VGG-{depth} (Simonyan 2014){bn}: see :func:`vgg` for the diagram and arguments.

    Example:
        >>> model = {name}(input_shape=(32, 32, 3), alpha=0.25, classes=10)
        >>> model.output_shape
        (None, 10)
    """
    return register_model(builder, name=name, family="vgg", min_size=32, small_size=32, train=_TRAIN)


vgg11 = _variant(11, False)
vgg13 = _variant(13, False)
vgg16 = _variant(16, False)
vgg19 = _variant(19, False)
vgg11_bn = _variant(11, True)
vgg13_bn = _variant(13, True)
vgg16_bn = _variant(16, True)
vgg19_bn = _variant(19, True)
