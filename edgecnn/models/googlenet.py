"""GoogLeNet (Inception v1): parallel 1x1, 3x3, 5x5 and pooling branches, concatenated.

Szegedy et al., "Going Deeper with Convolutions", CVPR 2015
(https://arxiv.org/abs/1409.4842); with BatchNorm after every convolution (Ioffe &
Szegedy 2015, https://arxiv.org/abs/1502.03167) in place of the paper's LRN, as torchvision.
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
from edgecnn.models._registry import register_model

_TRAIN = {"epochs": 30, "learning_rate": 1e-3}

AUX_LOSS_WEIGHT = 0.3  # the paper: "their loss is added to the total loss with a discount weight (0.3)"

# Inception modules of Table 1: (name, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj);
# "pool" is a 3x3/2 max pool between groups.
INCEPTION = [
    ("inception_3a", 64, 96, 128, 16, 32, 32),
    ("inception_3b", 128, 128, 192, 32, 96, 64),
    "pool",
    ("inception_4a", 192, 96, 208, 16, 48, 64),
    ("inception_4b", 160, 112, 224, 24, 64, 64),
    ("inception_4c", 128, 128, 256, 24, 64, 64),
    ("inception_4d", 112, 144, 288, 32, 64, 64),
    ("inception_4e", 256, 160, 320, 32, 128, 128),
    "pool",
    ("inception_5a", 256, 160, 320, 32, 128, 128),
    ("inception_5b", 384, 192, 384, 48, 128, 128),
]
_AUX_AFTER = {"inception_4a": "aux1", "inception_4d": "aux2"}


def inception_module(x, widths, alpha: float, name: str, kernel_5x5: int = 3):
    """The Inception module: four branches concatenated on channels.

    1x1 conv | 1x1 reduce -> 3x3 conv | 1x1 reduce -> 5x5 conv | 3x3/1 max pool -> 1x1
    projection, every conv followed by BN and ReLU.
    """
    n1, r3, n3, r5, n5, proj = (make_divisible(w * alpha) for w in widths)
    b1 = conv_bn_act(x, n1, 1, name=f"{name}_1x1")
    b2 = conv_bn_act(x, r3, 1, name=f"{name}_3x3_reduce")
    b2 = conv_bn_act(b2, n3, 3, name=f"{name}_3x3")
    b3 = conv_bn_act(x, r5, 1, name=f"{name}_5x5_reduce")
    b3 = conv_bn_act(b3, n5, kernel_5x5, name=f"{name}_5x5")
    b4 = layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    b4 = conv_bn_act(b4, proj, 1, name=f"{name}_pool_proj")
    return layers.Concatenate(name=name)([b1, b2, b3, b4])


def _aux_head(x, alpha: float, classes: int, classifier_activation, name: str):
    """Auxiliary classifier: 5x5/3 average pool -> 1x1 conv 128 -> fc 1024 -> dropout 0.7 -> classes."""
    size = min(5, int(x.shape[1]), int(x.shape[2]))  # 4x4 maps at 224; smaller inputs pool less
    x = layers.AveragePooling2D(size, strides=3, name=f"{name}_pool")(x)
    x = conv_bn_act(x, make_divisible(128 * alpha), 1, name=f"{name}_conv")
    x = layers.Flatten(name=f"{name}_flatten")(x)
    x = layers.Dense(make_divisible(1024 * alpha), name=f"{name}_fc")(x)
    x = layers.ReLU(name=f"{name}_fc_relu")(x)
    x = layers.Dropout(0.7, name=f"{name}_dropout")(x)
    x = layers.Dense(classes, name=f"{name}_classifier")(x)
    return layers.Activation(classifier_activation, name=f"{name}_predictions")(x)


def _stem(inputs, alpha: float):
    """conv1 7x7/2 -> max pool -> conv2 1x1 -> conv3 3x3 -> max pool (28x28x192 at 224)."""
    x = conv_bn_act(inputs, make_divisible(64 * alpha), 7, 2, name="conv1")
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
    x = conv_bn_act(x, make_divisible(64 * alpha), 1, name="conv2")
    x = conv_bn_act(x, make_divisible(192 * alpha), 3, name="conv3")
    return layers.MaxPooling2D(3, strides=2, padding="same", name="pool2")(x)


def _inception_stages(x, alpha: float, kernel_5x5: int, aux_head):
    """The modules of :data:`INCEPTION` and the pools between them; ``(x, [aux outputs])``,
    an auxiliary head (``aux_head(x, name=...)``, or none) after 4a and 4d."""
    aux = []
    pools = 2
    for spec in INCEPTION:
        if spec == "pool":
            pools += 1
            x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"pool{pools}")(x)
            continue
        name, *widths = spec
        x = inception_module(x, widths, alpha, name, kernel_5x5)
        if aux_head is not None and name in _AUX_AFTER:
            aux.append(aux_head(x, name=_AUX_AFTER[name]))
    return x, aux


@register_model(family="googlenet", aliases=("inception_v1",), train=_TRAIN, params=6_624_904, macs=1_498_376_192)
def googlenet(
    input_shape=None,
    alpha: float = 1.0,
    include_top: bool = True,
    weights=None,
    input_tensor=None,
    pooling=None,
    classes: int = 1000,
    classifier_activation="softmax",
    dropout: float = 0.4,
    aux_logits: bool = False,
    kernel_5x5: int = 3,
    **kwargs,
):
    """GoogLeNet / Inception v1 (Szegedy 2014) with BatchNorm, optional auxiliary classifiers.

    Block diagram (224x224x3): conv1 7x7/2, 64 -> max pool 3x3/2 -> conv2 1x1, 64 -> conv3
    3x3, 192 -> max pool 3x3/2 (28x28) -> inception 3a, 3b -> max pool -> 4a, 4b, 4c, 4d, 4e
    -> max pool -> 5a, 5b (7x7x1024) -> global average pool -> dropout 0.4 ->
    ``classifier``. Every convolution is conv (no bias) -> BN -> ReLU; the paper's two LRN
    layers are left out (BatchNorm does their job), as in torchvision. Pooling is 'same'
    padded, so any input of 32x32 or more works (1x1 maps at the end).

    Auxiliary classifiers (``aux_logits=True``, for training only): after 4a and 4d, a
    5x5/3 average pool -> 1x1 conv 128 -> fc 1024 -> dropout 0.7 -> ``classes``. Outputs
    are then ``[main, aux1, aux2]``, main first, so :func:`edgecnn.tflite.convert.inference_model`
    exports the main head alone; weight the aux losses by ``model.aux_loss_weights``
    (``[1.0, 0.3, 0.3]``, the paper's discount)::

        model.compile(optimizer, loss=[loss] * 3, loss_weights=model.aux_loss_weights)

    Canonical (alpha 1, 224x224x3, 1000 classes, no aux), by default the reference
    implementation (torchvision's, the 6,624,904 trainable parameters and 1.50G MACs that
    REFERENCE.md and most tables quote), whose "5x5" branch is a 3x3 convolution (a known
    torchvision slip, cheaper and as accurate). ``kernel_5x5=5`` builds the paper's true
    5x5 branch: 7,005,832 parameters and 1.58G MACs, the sum of the paper's Table 1 (1.586G;
    the text's "1.5 billion" is a budget).

    Args:
        aux_logits: add the two auxiliary heads (extra outputs, 3.2M parameters at 224).
        kernel_5x5: kernel of the "5x5" branch: 3 (torchvision, the default) or 5 (the paper).
        dropout: dropout before the classifier (0.4 in the paper).
        alpha: width multiplier on every convolution and on the aux fc.

    int8: CONV_2D, MAX_POOL_2D, CONCATENATION (4 inputs), MEAN and FULLY_CONNECTED run on
    XNNPACK; only the final int8 SOFTMAX (no XNNPACK kernel) does not.

    Example:
        >>> model = googlenet(input_shape=(32, 32, 3), alpha=0.25, classes=10, aux_logits=True)
        >>> [tuple(o.shape) for o in model.outputs]
        [(None, 10), (None, 10), (None, 10)]
    """
    alpha = check_builder_args("googlenet", alpha, weights, classes, include_top, kwargs)
    if aux_logits and not include_top:
        raise UserError("googlenet: aux_logits=True needs include_top=True")
    if kernel_5x5 not in (3, 5):
        raise UserError(f"googlenet: kernel_5x5 must be 5 (the paper) or 3 (torchvision), got {kernel_5x5!r}")
    inputs, shape = resolve_input(input_shape, input_tensor, (224, 224, 3), 32, "googlenet")

    x = _stem(inputs, alpha)
    head = functools.partial(_aux_head, alpha=alpha, classes=classes, classifier_activation=classifier_activation)
    x, aux = _inception_stages(x, alpha, kernel_5x5, head if aux_logits else None)
    x = classifier_head(
        x,
        include_top=include_top,
        pooling=pooling,
        classes=classes,
        dropout=dropout,
        classifier_activation=classifier_activation,
    )
    model = keras.Model(inputs, [x, *aux] if aux else x, name=model_name("googlenet", alpha, shape))
    model.aux_loss_weights = [1.0] + [AUX_LOSS_WEIGHT] * len(aux)
    return model
