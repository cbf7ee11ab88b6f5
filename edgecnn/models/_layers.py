"""Layers and helpers shared by every family.

Everything here is written so that the whole zoo goes through tfmot pruning and
quantization-aware training and converts to full-integer TFLite: plain Keras layers where
tfmot supports them, and our own layers (with a ``QuantizeConfig``) where it does not.

BatchNorm momentum defaults to 0.9 rather than Keras' 0.99: trained from scratch on a
few thousand images, 0.99 leaves the moving statistics unconverged and inference-mode
accuracy collapses (MobileNet on digits: 19% with 0.99, 94% with 0.9).
"""

from __future__ import annotations

import contextlib

from edgecnn._tf import keras, tf
from edgecnn.errors import UserError
from edgecnn.models._custom_objects import CUSTOM_OBJECTS, custom_object  # noqa: F401  (CUSTOM_OBJECTS re-exported)
from edgecnn.models._quant_layers import HardSigmoid, HardSwish, Swish, quantize_configs

layers = keras.layers

_BN = {"momentum": 0.9, "epsilon": 1e-3}


@contextlib.contextmanager
def batch_norm_defaults(momentum: float | None = None, epsilon: float | None = None):
    """Temporarily change the BatchNorm momentum/epsilon used by every builder.

    Example:
        >>> with batch_norm_defaults(momentum=0.99):  # doctest: +SKIP
        ...     model = create_model("resnet50")
    """
    saved = dict(_BN)
    if momentum is not None:
        _BN["momentum"] = float(momentum)
    if epsilon is not None:
        _BN["epsilon"] = float(epsilon)
    try:
        yield
    finally:
        _BN.update(saved)


def output_quantize_config():
    """The zoo's tfmot ``QuantizeConfig`` that fake-quantizes a layer's output only (no
    weights), ``OutputQuantizeConfig`` of :func:`~edgecnn.models._quant_layers.quantize_configs`.

    For layers tfmot's default 8-bit registry does not know. tfmot is imported on first
    use, not when the zoo is imported.
    """
    return quantize_configs()["OutputQuantizeConfig"]()


@custom_object
class StandaloneBatchNorm(layers.BatchNormalization):
    """A BatchNormalization that follows no convolution (pre-activation networks, DenseNet).

    tfmot folds BatchNorm only after a Conv2D/Dense and refuses a standalone one
    ("Layer ... is not supported"); this subclass quantizes its output instead
    (:func:`output_quantize_config`), and TFLite runs it as an int8 MUL (+ ADD).
    """

    def quantize_config(self):
        return output_quantize_config()


def batch_norm(name: str | None = None, axis: int = -1, *, scale: bool = True, standalone: bool = False):
    """A ``BatchNormalization`` with the zoo's defaults (momentum 0.9, epsilon 1e-3).

    ``scale=False`` drops gamma (fine before a ReLU, whose next layer absorbs the scale;
    Keras' Inception v3 does the same). ``standalone=True`` gives a
    :class:`StandaloneBatchNorm`, for a BatchNorm that does not follow a convolution.
    """
    cls = StandaloneBatchNorm if standalone else layers.BatchNormalization
    return cls(axis=axis, momentum=_BN["momentum"], epsilon=_BN["epsilon"], scale=scale, name=name)


@custom_object
class LocalResponseNormalization(layers.Layer):
    """Local Response Normalization across channels (Krizhevsky 2012, section 3.3).

    ``b = a / (k + alpha * sum(a^2 over depth_radius channels either side)) ** beta``;
    the paper's values are the defaults (n=5 channels, k=2, alpha=1e-4, beta=0.75).
    No weights: pruning leaves it alone (``get_prunable_weights`` is empty) and QAT
    quantizes its output. TFLite has a float LOCAL_RESPONSE_NORMALIZATION kernel only, so an
    int8 model dequantizes around it and XNNPACK does not run it.
    """

    def __init__(self, depth_radius: int = 2, bias: float = 2.0, alpha: float = 1e-4, beta: float = 0.75, **kwargs):
        super().__init__(**kwargs)
        self.depth_radius, self.bias, self.alpha, self.beta = int(depth_radius), float(bias), float(alpha), float(beta)

    def call(self, inputs):
        return tf.nn.local_response_normalization(
            inputs, depth_radius=self.depth_radius, bias=self.bias, alpha=self.alpha, beta=self.beta
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(depth_radius=self.depth_radius, bias=self.bias, alpha=self.alpha, beta=self.beta)
        return config

    def get_prunable_weights(self):
        return []

    def quantize_config(self):
        return output_quantize_config()


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None, round_limit: float = 0.9) -> int:
    """Round a channel count to a multiple of ``divisor``, never dropping below 90%.

    The rule of the TensorFlow MobileNet and EfficientNet reference code (and timm).

    Example:
        >>> make_divisible(32 * 0.75), make_divisible(37), make_divisible(3, min_value=8)
        (24, 40, 8)
    """
    min_value = min_value or divisor
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < round_limit * value:
        new += divisor
    return int(new)


def check_alpha(alpha, low: float = 0.05, high: float = 4.0) -> float:
    """Validate a width multiplier, raising a one-line ``UserError`` quoting it."""
    try:
        alpha = float(alpha)
    except (TypeError, ValueError):
        raise UserError(f"width multiplier alpha must be a number, got {alpha!r}") from None
    if not (low <= alpha <= high):
        raise UserError(f"width multiplier alpha must be between {low} and {high}, got {alpha}")
    return alpha


def resolve_input(input_shape, input_tensor, default_shape, min_size: int, name: str):
    """Return ``(inputs, shape)`` for a builder, checking the spatial size.

    ``input_shape`` may be ``None`` (the canonical shape), ``(h, w, c)``, or ``(h, w)``
    (channels from the canonical shape).
    """
    if input_tensor is not None:
        shape = tuple(keras.backend.int_shape(input_tensor)[1:])
        inputs = input_tensor if keras.backend.is_keras_tensor(input_tensor) else layers.Input(tensor=input_tensor)
    else:
        shape = tuple(default_shape if input_shape is None else input_shape)
        if len(shape) == 2:
            shape = (*shape, default_shape[-1])
        if len(shape) != 3:
            raise UserError(f"{name}: input_shape must be (height, width, channels), got {input_shape!r}")
        inputs = layers.Input(shape=shape, name="input")
    h, w = shape[0], shape[1]
    if h is not None and w is not None and (h < min_size or w < min_size):
        raise UserError(
            f"{name}: input {h}x{w} is too small, this architecture needs at least "
            f"{min_size}x{min_size} (use --image-size {min_size} or more)"
        )
    return inputs, shape


def relu6(name: str | None = None):
    """ReLU capped at 6, as a ``ReLU`` layer (tfmot and TFLite fuse it into the conv)."""
    return layers.ReLU(6.0, name=name)


_ZOO_ACTIVATIONS = {"hard_swish": HardSwish, "hard_sigmoid": HardSigmoid, "swish": Swish}


def activation(kind: str, name: str | None = None):
    """An activation layer by name: relu, relu6, hard_swish, hard_sigmoid, swish, or any
    Keras activation name.

    ``hard_swish``, ``hard_sigmoid`` and ``swish`` give the zoo's own layers
    (:mod:`edgecnn.models._quant_layers`), which tfmot quantizes and TFLite converts to
    int8 (``HARD_SWISH``; ``LOGISTIC`` + ``MUL``).
    """
    if kind in _ZOO_ACTIVATIONS:
        return _ZOO_ACTIVATIONS[kind](name=name)
    if kind == "relu6":
        return relu6(name)
    if kind == "relu":
        return layers.ReLU(name=name)
    return layers.Activation(kind, name=name)


def conv_bn_act(
    x,
    filters: int,
    kernel_size=3,
    strides=1,
    *,
    name: str,
    act: str | None = "relu",
    groups: int = 1,
    padding: str = "same",
    use_bias: bool = False,
    bn: bool = True,
):
    """Conv2D -> BatchNorm -> activation, named ``{name}``, ``{name}_bn``, ``{name}_{act}``."""
    x = layers.Conv2D(
        filters, kernel_size, strides=strides, padding=padding, groups=groups, use_bias=use_bias, name=name
    )(x)
    if bn:
        x = batch_norm(name=f"{name}_bn")(x)
    if act:
        x = activation(act, name=f"{name}_{act}")(x)
    return x


def stem(x, filters: int, keras_compatible: bool = False, *, use_bias: bool = False):
    """ResNet's and DenseNet's stem: 7x7/2 conv ``conv1`` -> BN -> ReLU -> 3x3/2 max pool ``pool1``.

    ``keras_compatible``: Keras' explicit zero padding (3 pixels before the conv, 1 before
    the pool, ``conv1_pad``/``pool1_pad``) instead of ``"same"`` padding, which pads 2/3
    and 0/1 at an even input size: the windows of Keras' published weights.
    """
    if not keras_compatible:
        x = conv_bn_act(x, filters, 7, 2, name="conv1", use_bias=use_bias)
        return layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
    x = layers.ZeroPadding2D(3, name="conv1_pad")(x)
    x = conv_bn_act(x, filters, 7, 2, name="conv1", padding="valid", use_bias=use_bias)
    x = layers.ZeroPadding2D(1, name="pool1_pad")(x)
    return layers.MaxPooling2D(3, strides=2, name="pool1")(x)


def dw_bn_act(
    x, kernel_size=3, strides=1, *, name: str, act: str | None = "relu", depth_multiplier: int = 1, padding="same"
):
    """DepthwiseConv2D -> BatchNorm -> activation."""
    x = layers.DepthwiseConv2D(
        kernel_size, strides=strides, padding=padding, depth_multiplier=depth_multiplier, use_bias=False, name=name
    )(x)
    x = batch_norm(name=f"{name}_bn")(x)
    if act:
        x = activation(act, name=f"{name}_{act}")(x)
    return x


def classifier_head(x, *, include_top: bool, pooling, classes: int, dropout: float, classifier_activation):
    """The Keras Applications head: global pooling, dropout, ``Dense(classes)``.

    The dense layer is always named ``classifier`` and the activation ``predictions``,
    so pruning, QAT and distillation find them by name in every family.
    """
    if include_top:
        if len(x.shape) == 4:
            x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout:
            x = layers.Dropout(dropout, name="dropout")(x)
        x = layers.Dense(classes, name="classifier")(x)
        x = layers.Activation(classifier_activation, name="predictions")(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="max_pool")(x)
    elif pooling is not None:
        raise UserError(f"pooling must be None, 'avg' or 'max', got {pooling!r}")
    return x


def check_common(weights, classes, include_top, name: str):
    """Keras Applications' argument checks, shared by every builder."""
    if weights not in (None, "none"):
        raise UserError(
            f"{name}: the builder takes weights=None only; load weights={weights!r} with "
            f"edgecnn.create_model({name!r}, weights=...)"
        )
    if include_top and (not isinstance(classes, int) or classes < 1):
        raise UserError(f"{name}: classes must be a positive integer, got {classes!r}")


def check_builder_args(name: str, alpha, weights, classes, include_top, kwargs: dict) -> float:
    """The checks every builder starts with: ``alpha`` in range (returned as a float),
    Keras Applications' ``weights``/``classes`` rules, and no unexpected arguments.

    Example:
        >>> check_builder_args("mobilenet", 0.5, None, 10, True, {})
        0.5
    """
    alpha = check_alpha(alpha)
    check_common(weights, classes, include_top, name)
    if kwargs:
        raise TypeError(f"{name}() got unexpected arguments: {sorted(kwargs)}")
    return alpha


def model_name(base: str, alpha: float, shape) -> str:
    """Model name recording its configuration, e.g. ``mobilenet_0.50_224``."""
    return f"{base}_{alpha:.2f}_{shape[0]}"
