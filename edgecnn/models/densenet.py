"""DenseNet: every layer receives the feature maps of all preceding layers of its block.

Huang, Liu, van der Maaten & Weinberger, "Densely Connected Convolutional Networks",
CVPR 2017 (https://arxiv.org/abs/1608.06993).
"""

from __future__ import annotations

import functools

from edgecnn._tf import keras
from edgecnn.errors import UserError
from edgecnn.models._layers import (
    batch_norm as bn_layer,
)
from edgecnn.models._layers import (
    batch_norm_defaults,
    check_builder_args,
    classifier_head,
    conv_bn_act,
    layers,
    make_divisible,
    model_name,
    resolve_input,
    stem,
)
from edgecnn.models._pretrained import KERAS_APPLICATIONS, TORCH_MODE, KerasWeights
from edgecnn.models._registry import register_model

# depth: layers per dense block (the paper's Table 1, DenseNet-BC, k=32).
CONFIGS = {121: (6, 12, 24, 16), 169: (6, 12, 32, 32), 201: (6, 12, 48, 32)}
_TRAIN = {"epochs": 30, "learning_rate": 1e-3}


def _bn_relu(x, name: str):
    # Pre-activation BN follows a concatenation or a pooling, not a convolution: tfmot cannot
    # fold it, so it is a StandaloneBatchNorm (output-quantized; an int8 MUL/ADD in TFLite).
    x = bn_layer(name=f"{name}_bn", standalone=True)(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def dense_layer(x, growth_rate: int, bottleneck: int, name: str):
    """BN -> ReLU -> 1x1 conv (bottleneck) -> BN -> ReLU -> 3x3 conv (growth_rate), concatenated to the input."""
    y = _bn_relu(x, f"{name}_0")
    y = conv_bn_act(y, bottleneck, 1, name=f"{name}_1")
    y = layers.Conv2D(growth_rate, 3, padding="same", use_bias=False, name=f"{name}_2")(y)
    return layers.Concatenate(name=f"{name}_concat")([x, y])


def transition(x, compression: float, name: str):
    """BN -> ReLU -> 1x1 conv (``compression`` x channels) -> 2x2/2 average pool."""
    x = _bn_relu(x, name)
    x = layers.Conv2D(int(int(x.shape[-1]) * compression), 1, use_bias=False, name=f"{name}_conv")(x)
    return layers.AveragePooling2D(2, strides=2, name=f"{name}_pool")(x)


def _check_growth(base: str, growth_rate, compression) -> None:
    """A growth rate that is not a positive integer, or a compression outside (0, 1]: one line."""
    if not (isinstance(growth_rate, int) and growth_rate > 0):
        raise UserError(f"{base}: growth_rate must be a positive integer, got {growth_rate!r}")
    if not 0.0 < float(compression) <= 1.0:
        raise UserError(f"{base}: compression must be in (0, 1], got {compression!r}")


def _features(inputs, blocks: tuple, k: int, bn_size: int, compression: float, keras_compatible: bool):
    """Stem, the dense blocks of ``blocks`` layers separated by transitions, final BN -> ReLU."""
    with batch_norm_defaults(epsilon=1.001e-5 if keras_compatible else None):
        x = stem(inputs, 2 * k, keras_compatible)
        for stage, repeats in enumerate(blocks, start=2):
            for i in range(1, repeats + 1):
                x = dense_layer(x, k, bn_size * k, name=f"conv{stage}_block{i}")
            if stage < len(blocks) + 1:
                x = transition(x, compression, name=f"pool{stage}")
        return _bn_relu(x, "final")


def densenet(
    depth: int = 121,
    input_shape=None,
    alpha: float = 1.0,
    include_top: bool = True,
    weights=None,
    input_tensor=None,
    pooling=None,
    classes: int = 1000,
    classifier_activation="softmax",
    dropout: float = 0.0,
    growth_rate: int = 32,
    compression: float = 0.5,
    bn_size: int = 4,
    keras_compatible: bool = False,
    **kwargs,
):
    """DenseNet-BC-``depth`` (Huang 2016), the general builder behind ``densenet121/169/201``.

    Block diagram: conv1 7x7/2 with 2k channels -> BN -> ReLU -> max pool 3x3/2 -> four
    dense blocks (6/12/24/16 layers for 121) separated by transitions -> BN -> ReLU ->
    global average pool -> ``classifier``. A dense layer is BN -> ReLU -> 1x1 conv (4k,
    the bottleneck) -> BN -> ReLU -> 3x3 conv (k), its k new maps concatenated to its input,
    so a block's width grows by k per layer. A transition is BN -> ReLU -> 1x1 conv
    (``compression`` x channels) -> 2x2/2 average pool. Layer names follow Keras' DenseNet
    (``conv3_block4_1``, ``conv3_block4_concat``, ``pool3_conv``).

    Canonical (alpha 1, k=32, 224x224x3, 1000 classes): DenseNet-121/169/201 have
    7,978,856 / 14,149,480 / 20,013,928 trainable parameters (as Keras'); 2.9G MACs for 121.
    Input 32x32 or more (five stride-2 steps).

    Args:
        depth: 121, 169 or 201.
        growth_rate: k, new channels per dense layer (32 in the paper's ImageNet models).
        compression: theta, the fraction of channels a transition keeps (0.5, "-BC").
        bn_size: bottleneck width in multiples of k (4).
        alpha: width multiplier on k (rounded to a multiple of 4), hence on every layer.
        dropout: dropout before the classifier (none in the paper's ImageNet models).
        keras_compatible: the network of ``keras.applications.DenseNet121/169/201`` (the
            stem's explicit 3/1-pixel zero padding, BatchNorm epsilon 1.001e-5), so that
            Keras' published weights compute the same function; ``create_model(...,
            weights="imagenet")`` selects it.

    tfmot/TFLite: the pre-activation BatchNorms (after a concatenation or pooling) cannot be
    folded into a convolution; they are :class:`~edgecnn.models._layers.StandaloneBatchNorm`
    so QAT can wrap them, and in TFLite they are int8 MUL + ADD (ReLU fused). int8: CONV_2D,
    MUL, ADD, CONCATENATION, MAX_POOL_2D, MEAN and FULLY_CONNECTED run on XNNPACK; the three
    transitions' AVERAGE_POOL_2D and the final SOFTMAX do not (XNNPACK has no int8 kernel
    for either), so TFLite's own int8 kernels run them between XNNPACK partitions.

    Example:
        >>> model = densenet(121, input_shape=(32, 32, 3), alpha=0.25, classes=10)
        >>> model.name
        'densenet121_0.25_32'
    """
    if depth not in CONFIGS:
        raise UserError(f"densenet: depth must be one of {sorted(CONFIGS)}, got {depth!r}")
    base = f"densenet{depth}"
    alpha = check_builder_args(base, alpha, weights, classes, include_top, kwargs)
    _check_growth(base, growth_rate, compression)
    inputs, shape = resolve_input(input_shape, input_tensor, (224, 224, 3), 32, base)
    k = make_divisible(growth_rate * alpha, divisor=4)
    x = _features(inputs, CONFIGS[depth], k, bn_size, compression, keras_compatible)
    x = classifier_head(
        x,
        include_top=include_top,
        pooling=pooling,
        classes=classes,
        dropout=dropout,
        classifier_activation=classifier_activation,
    )
    return keras.Model(inputs, x, name=model_name(base, alpha, shape))


# Keras Applications' ImageNet files: (md5 with the top, without), inline in tf_keras' code.
_HASHES = {
    121: ("9d60b8095a5708f2dcce2bca79d332c7", "30ee3e1110167f948a6b9946edeeb738"),
    169: ("d699b8f76981ab1b30698df4c175e90b", "b8c4d4c20dd625c148057b9ff1c1176b"),
    201: ("1ceb130c1ea1b78c3bf6114dbdfd8807", "c13680b51ded0fb44dff2d8f86ac8bb1"),
}
PRETRAINED = {
    f"DenseNet{depth}": KerasWeights(
        app=f"DenseNet{depth}",
        url=KERAS_APPLICATIONS + "densenet/",
        file="{variant}_weights_tf_dim_ordering_tf_kernels{top}.h5",
        published={f"densenet{depth}": md5},
        convention=TORCH_MODE,
        first_layer="conv1/conv",
        variant=f"densenet{depth}",
        compat_note="Keras' DenseNet: explicit stem padding, BatchNorm epsilon 1.001e-5",
    )
    for depth, md5 in _HASHES.items()
}

# The variants' registration: the family's fields; each variant adds its figures.
_register = functools.partial(register_model, family="densenet", train=_TRAIN)


@_register(params=7_978_856, macs=2_834_161_664, pretrained=PRETRAINED["DenseNet121"])
def densenet121(**kwargs):
    """DenseNet-121 (Huang 2016), blocks (6, 12, 24, 16): see :func:`densenet`."""
    return densenet(121, **kwargs)


@_register(params=14_149_480, macs=3_359_843_328, pretrained=PRETRAINED["DenseNet169"])
def densenet169(**kwargs):
    """DenseNet-169 (Huang 2016), blocks (6, 12, 32, 32): see :func:`densenet`."""
    return densenet(169, **kwargs)


@_register(params=20_013_928, macs=4_291_365_888, pretrained=PRETRAINED["DenseNet201"])
def densenet201(**kwargs):
    """DenseNet-201 (Huang 2016), blocks (6, 12, 48, 32): see :func:`densenet`."""
    return densenet(201, **kwargs)
