"""ResNet: deep residual networks with basic and bottleneck blocks.

He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition", CVPR 2016
(https://arxiv.org/abs/1512.03385).
"""

from __future__ import annotations

import functools

from edgecnn._tf import keras
from edgecnn.errors import UserError
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
from edgecnn.models._pretrained import CAFFE_MODE, KERAS_APPLICATIONS, KerasWeights
from edgecnn.models._registry import register_model

# depth: (block kind, blocks per stage), the paper's Table 1.
CONFIGS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
_WIDTHS = (64, 128, 256, 512)
_TRAIN = {"epochs": 30, "learning_rate": 1e-3}


def basic_block(x, width: int, strides: int, name: str, keras_compatible: bool = False):
    """3x3 conv -> BN -> ReLU -> 3x3 conv -> BN, plus the shortcut, then ReLU."""
    bias = keras_compatible
    shortcut = _shortcut(x, width, strides, name, bias)
    y = conv_bn_act(x, width, 3, strides, name=f"{name}_1", use_bias=bias)
    y = conv_bn_act(y, width, 3, name=f"{name}_2", act=None, use_bias=bias)
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.ReLU(name=f"{name}_out")(y)


def bottleneck_block(x, width: int, strides: int, name: str, keras_compatible: bool = False):
    """1x1 conv (width) -> 3x3 conv (width, stride) -> 1x1 conv (4 x width), plus the shortcut, then ReLU.

    ``keras_compatible``: Keras' ResNet v1 instead (stride on the first 1x1, every
    convolution with a bias), the network of ``keras.applications.ResNet50``'s weights.
    """
    bias = keras_compatible
    shortcut = _shortcut(x, 4 * width, strides, name, bias)
    s1, s3 = (strides, 1) if keras_compatible else (1, strides)
    y = conv_bn_act(x, width, 1, s1, name=f"{name}_1", use_bias=bias)
    y = conv_bn_act(y, width, 3, s3, name=f"{name}_2", use_bias=bias)
    y = conv_bn_act(y, 4 * width, 1, name=f"{name}_3", act=None, use_bias=bias)
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.ReLU(name=f"{name}_out")(y)


def _shortcut(x, filters: int, strides: int, name: str, bias: bool = False):
    """Identity, or a 1x1 projection conv -> BN where the shape changes (the paper's option B)."""
    if strides == 1 and x.shape[-1] == filters:
        return x
    return conv_bn_act(x, filters, 1, strides, name=f"{name}_0", act=None, use_bias=bias)


def resnet(
    depth: int = 50,
    input_shape=None,
    alpha: float = 1.0,
    include_top: bool = True,
    weights=None,
    input_tensor=None,
    pooling=None,
    classes: int = 1000,
    classifier_activation="softmax",
    dropout: float = 0.0,
    keras_compatible: bool = False,
    **kwargs,
):
    """ResNet-``depth`` (He 2015), the general builder behind ``resnet18`` ... ``resnet152``.

    Block diagram: conv1 7x7/2, 64 -> BN -> ReLU -> max pool 3x3/2 -> four stages
    ``conv2_x`` ... ``conv5_x`` of residual blocks (64, 128, 256, 512 wide; the first block
    of stages 3-5 has stride 2) -> global average pool -> ``classifier``. ResNet-18/34 use
    basic blocks (two 3x3 convolutions), ResNet-50/101/152 bottleneck blocks (1x1 reduce,
    3x3, 1x1 expand x4). Shortcuts are identities, or a 1x1 projection with BN where the
    shape changes (the paper's option B). Convolutions have no bias (BN follows every
    one). The stride of a downsampling bottleneck sits on its 3x3 convolution ("ResNet
    v1.5", torchvision's and most reproductions'; the paper put it on the first 1x1, same
    parameters, slightly fewer MACs and lower accuracy). Layer names follow Keras' ResNet
    (``conv3_block2_1``, ``conv3_block2_1_bn``, ``conv3_block2_add``, ``conv3_block2_out``).

    Canonical (alpha 1, 224x224x3, 1000 classes): ResNet-18/34/50/101/152 have
    11,689,512 / 21,797,672 / 25,557,032 / 44,549,160 / 60,192,808 trainable parameters
    and 1.8G / 3.6G / 4.1G / 7.8G / 11.6G MACs. Input 32x32 or more (five stride-2 steps).

    Args:
        depth: 18, 34, 50, 101 or 152.
        alpha: width multiplier on every convolution.
        dropout: dropout before the classifier (none in the paper).
        keras_compatible: the network of ``keras.applications.ResNet50/101/152`` (v1: the
            stride on the first 1x1, a bias on every convolution, BatchNorm epsilon
            1.001e-5, the stem's explicit 3/1-pixel zero padding), so that Keras'
            published weights compute the same function; ``create_model(...,
            weights="imagenet")`` selects it.

    int8: CONV_2D (BN folded, ReLU fused), ADD (ReLU fused), MAX_POOL_2D, MEAN and
    FULLY_CONNECTED run on XNNPACK; only the final int8 SOFTMAX (no XNNPACK kernel) does not.

    Example:
        >>> model = resnet(18, input_shape=(32, 32, 3), alpha=0.25, classes=10)
        >>> model.name
        'resnet18_0.25_32'
    """
    if depth not in CONFIGS:
        raise UserError(f"resnet: depth must be one of {sorted(CONFIGS)}, got {depth!r}")
    base = f"resnet{depth}"
    alpha = check_builder_args(base, alpha, weights, classes, include_top, kwargs)
    inputs, shape = resolve_input(input_shape, input_tensor, (224, 224, 3), 32, base)
    kind, blocks = CONFIGS[depth]
    block = basic_block if kind == "basic" else bottleneck_block

    with batch_norm_defaults(epsilon=1.001e-5 if keras_compatible else None):
        x = stem(inputs, make_divisible(64 * alpha), keras_compatible, use_bias=keras_compatible)
        for stage, (repeats, width) in enumerate(zip(blocks, _WIDTHS), start=2):
            for i in range(1, repeats + 1):
                strides = 2 if i == 1 and stage > 2 else 1
                name = f"conv{stage}_block{i}"
                x = block(x, make_divisible(width * alpha), strides, name=name, keras_compatible=keras_compatible)
    x = classifier_head(
        x,
        include_top=include_top,
        pooling=pooling,
        classes=classes,
        dropout=dropout,
        classifier_activation=classifier_activation,
    )
    return keras.Model(inputs, x, name=model_name(base, alpha, shape))


def _keras_file_order(layers_in_file, model):
    """Keras ResNet files list a block's shortcut projection first; edgecnn's models last.
    Put the file in the model's order by name (``convN_blockM_K_conv`` -> ``convN_blockM_K``)."""
    position = {layer.name: i for i, layer in enumerate(model.layers)}

    def edgecnn_name(name: str) -> str:
        return "classifier" if name == "predictions" else name.removesuffix("_conv")

    return sorted(layers_in_file, key=lambda item: position.get(edgecnn_name(item[0]), len(position)))


# Keras Applications' ImageNet files of ResNet v1 (v2 and ResNeXt are not in edgecnn):
# (md5 with the top, without).
_HASHES = {
    50: ("2cb95161c43110f7111970584f804107", "4d473c1dd8becc155b73f8504c6f6626"),
    101: ("f1aeb4b969a6efcfb50fad2f0c20cfc5", "88cf7a10940856eca736dc7b7e228a21"),
    152: ("100835be76be38e30d865e96f2aaae62", "ee4c566cf9a93f14d82f913c2dc6dd0c"),
}
PRETRAINED = {
    f"ResNet{depth}": KerasWeights(
        app=f"ResNet{depth}",
        url=KERAS_APPLICATIONS + "resnet/",
        file="{variant}_weights_tf_dim_ordering_tf_kernels{top}.h5",
        published={f"resnet{depth}": md5},
        convention=CAFFE_MODE,
        first_layer="conv1_conv",
        variant=f"resnet{depth}",
        compat_note="Keras' ResNet v1: stride on the first 1x1, conv biases, explicit stem padding",
        file_order=_keras_file_order,
    )
    for depth, md5 in _HASHES.items()
}

# The variants' registration: the family's fields; each variant adds its figures.
_register = functools.partial(register_model, family="resnet", train=_TRAIN)


@_register(params=11_689_512, macs=1_814_073_344)
def resnet18(**kwargs):
    """ResNet-18 (He 2015), basic blocks (2, 2, 2, 2): see :func:`resnet`."""
    return resnet(18, **kwargs)


@_register(params=21_797_672, macs=3_663_761_408)
def resnet34(**kwargs):
    """ResNet-34 (He 2015), basic blocks (3, 4, 6, 3): see :func:`resnet`."""
    return resnet(34, **kwargs)


@_register(params=25_557_032, macs=4_089_184_256, pretrained=PRETRAINED["ResNet50"])
def resnet50(**kwargs):
    """ResNet-50 (He 2015), bottleneck blocks (3, 4, 6, 3): see :func:`resnet`."""
    return resnet(50, **kwargs)


@_register(params=44_549_160, macs=7_801_405_440, pretrained=PRETRAINED["ResNet101"])
def resnet101(**kwargs):
    """ResNet-101 (He 2015), bottleneck blocks (3, 4, 23, 3): see :func:`resnet`."""
    return resnet(101, **kwargs)


@_register(params=60_192_808, macs=11_513_626_624, pretrained=PRETRAINED["ResNet152"])
def resnet152(**kwargs):
    """ResNet-152 (He 2015), bottleneck blocks (3, 8, 36, 3): see :func:`resnet`."""
    return resnet(152, **kwargs)
