"""A multi-layer perceptron: the flatten-then-dense baseline every CNN is measured against.

Rumelhart, Hinton & Williams, "Learning representations by back-propagating errors", 1986
(https://doi.org/10.1038/323533a0); LeCun et al. 1998 (http://yann.lecun.com/exdb/publis/pdf/lecun-98.pdf)
compare such nets with LeNet-5 on MNIST.

Block diagram: flatten the image, then for each hidden width a Dense -> (BatchNorm) ->
ReLU -> Dropout block, then the ``classifier``. No weight sharing, no locality: every
pixel connects to every hidden unit, which is why it needs more weights than LeNet-5 for
a worse accuracy.
"""

from __future__ import annotations

from edgecnn._tf import keras
from edgecnn.errors import UserError
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

_TRAIN = {"epochs": 30, "learning_rate": 1e-3}


@register_model(family="mlp", input_shape=(32, 32, 1), min_size=8, train=_TRAIN, params=658_698, macs=657_920)
def mlp(
    input_shape=None,
    alpha: float = 1.0,
    hidden: tuple = (512, 256),
    batch_norm: bool = False,
    include_top: bool = True,
    weights=None,
    input_tensor=None,
    pooling=None,
    classes: int = 10,
    classifier_activation="softmax",
    dropout: float = 0.2,
    **kwargs,
):
    """Multi-layer perceptron (flatten -> Dense/ReLU/Dropout x len(hidden) -> classifier).

    Args:
        alpha: width multiplier on every hidden layer (``make_divisible(h * alpha)``).
        hidden: hidden layer widths at ``alpha=1``; default (512, 256), i.e. 658,698
            trainable parameters at 32x32x1 and 10 classes.
        dropout: dropout rate after every hidden layer.
        batch_norm: Dense -> BatchNorm -> ReLU (tfmot folds it like a conv's).
        pooling: unused; without the classifier the output is already a vector (the last
            hidden layer).

    Any input of at least 8x8 works (the built-in digits are 8x8; the zoo feeds 32x32x1
    like LeNet-5 so the two compare on the same pixels). int8: FULLY_CONNECTED (ReLU
    fused) runs on XNNPACK; the final int8 SOFTMAX runs on TFLite's own kernel (XNNPACK has
    no int8 softmax), as in every classifier of the zoo.

    Example:
        >>> model = mlp(input_shape=(32, 32, 1), alpha=0.5, classes=10)
        >>> model.name, model.output_shape
        ('mlp_0.50_32', (None, 10))
    """
    alpha = check_builder_args("mlp", alpha, weights, classes, include_top, kwargs)
    if pooling not in (None, "avg", "max"):
        raise UserError(f"pooling must be None, 'avg' or 'max', got {pooling!r}")
    if not hidden or any(int(h) < 1 for h in hidden):
        raise UserError(f"mlp: hidden must be a non-empty list of positive widths, got {hidden!r}")
    inputs, shape = resolve_input(input_shape, input_tensor, (32, 32, 1), 8, "mlp")

    x = layers.Flatten(name="flatten")(inputs)
    for i, width in enumerate(hidden, start=1):
        x = layers.Dense(make_divisible(width * alpha), use_bias=not batch_norm, name=f"fc{i}")(x)
        if batch_norm:
            x = bn_layer(name=f"fc{i}_bn")(x)
        x = layers.ReLU(name=f"fc{i}_relu")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"fc{i}_dropout")(x)
    if include_top:
        x = classifier_head(
            x, include_top=True, pooling=None, classes=classes, dropout=0.0, classifier_activation=classifier_activation
        )
    return keras.Model(inputs, x, name=model_name("mlp", alpha, shape))
