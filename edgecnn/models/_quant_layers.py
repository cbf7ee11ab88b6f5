"""Layers of the efficient families, written so that tfmot and TFLite int8 handle them.

Stock Keras builds these operations out of pieces that tfmot's default 8-bit QAT rejects
(measured on ``keras.applications``: EfficientNetB0's ``Rescaling`` layer, MobileNetV3's
hard-swish written as TF-op arithmetic, a ``TFOpLambda`` ``x + 3``). Each layer here is
one operation with:

- ``get_config`` (round trip) and registration with :func:`custom_object`;
- ``get_prunable_weights`` (tfmot's ``PrunableLayer`` protocol; ``[]`` when weightless);
- ``quantize_config()`` returning the tfmot ``QuantizeConfig`` that
  :func:`edgecnn.optimize.qat.quantize_model` attaches, chosen so that the fake-quant
  nodes of the QAT model and the int8 tensors of the converted ``.tflite`` match one to one
  (so the QAT Keras model and the int8 file compute the same thing). A TFLite int8 tensor
  with no fake-quant of its own gets its range from the converter's calibration instead;
  on an untrained QAT model that range is degenerate (scale ~1e-8), and LiteRT 2.3's
  XNNPACK delegate then fails to prepare the graph or aborts the process ("double free",
  measured on EfficientNet-B0's squeeze-excite before the pre-activation fake-quants
  below were added):

=============== ==================================== ==========================================
layer           TFLite int8 ops (measured)           QAT fake-quant
=============== ==================================== ==========================================
HardSwish       HARD_SWISH                           output
Swish           LOGISTIC, MUL                        output (LOGISTIC has a fixed int8 range)
SqueezeExcite   MEAN, CONV_2D (reduce, ReLU fused    both kernels (per channel), the pooled
                or + LOGISTIC, MUL for swish),       mean, the reduce conv's output before
                CONV_2D (expand; for hard-sigmoid    swish, the reduce activation, the expand
                its +3 folds into the bias and its   conv's output (the sigmoid's input, or
                ReLU6 fuses, then MUL by 1/6; or     relu6(g + 3) for hard-sigmoid), the gate
                LOGISTIC for sigmoid), MUL           and the output
ChannelShuffle  RESHAPE, TRANSPOSE, RESHAPE          none (pass-through keeps the input scale)
ChannelSplit    STRIDED_SLICE                        none (pass-through)
StochasticDepth nothing (identity at inference)      none (pass-through)
HardSigmoid     (not used by the zoo's models)       output
=============== ==================================== ==========================================

Measured on the int8 files of MobileNetV3, EfficientNet-B0 and ShuffleNet v2 by
``benchmarks/stock_vs_edgecnn.py`` and ``benchmarks/efficient_digits.py``: after QAT the int8
graph has the same ops as after post-training quantization (ShuffleNet v2 adds QUANTIZE ops
before its concatenations). LiteRT 2.3's XNNPACK delegate leaves int8 HARD_SWISH on TFLite's
own kernels; the other ops of this table run on XNNPACK.

The ``QuantizeConfig`` classes need tfmot, whose import is slow, so they are created on
first use by :func:`quantize_configs` (``quantize_config()`` calls it) and registered with
:func:`custom_object` then; call it before loading a saved QAT model in a fresh process.
What stock tfmot QAT does on ``keras.applications``' versions of these networks is
measured by ``benchmarks/stock_vs_edgecnn.py`` (see benchmarks/RESULTS.md).
"""

from __future__ import annotations

from edgecnn._tf import keras, tf, tfmot
from edgecnn.models._custom_objects import CUSTOM_OBJECTS, custom_object

layers = keras.layers

_CONFIGS: dict = {}


def quantize_configs() -> dict:
    """Create (once) and return the zoo's tfmot ``QuantizeConfig`` classes by name.

    Example:
        >>> cfg = quantize_configs()["OutputQuantizeConfig"]()  # doctest: +SKIP
    """
    if _CONFIGS:
        return _CONFIGS
    qk = tfmot().quantization.keras
    named = _named_activation_quantizer(qk)
    output, pass_through = _output_configs(qk)
    for cls in (named, output, pass_through, _squeeze_excite_config(output, named)):
        custom_object(cls)
        _CONFIGS[cls.__name__] = cls
    return _CONFIGS


def _activation_quantizer(qk):
    """tfmot's default 8-bit activation quantizer (asymmetric, per tensor)."""
    return qk.quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False, narrow_range=False)


def _named_activation_quantizer(qk):
    """The activation quantizer class whose variables are named after a ``prefix``."""

    class NamedActivationQuantizer(qk.quantizers.MovingAverageQuantizer):
        """The activation quantizer, its variables named after ``prefix`` (unique per layer)."""

        def __init__(self, prefix: str, **kwargs):
            kwargs = {"num_bits": 8, "per_axis": False, "symmetric": False, "narrow_range": False, **kwargs}
            super().__init__(**kwargs)
            self.prefix = prefix

        def build(self, tensor_shape, name, layer):
            return super().build(tensor_shape, f"{self.prefix}_{name}", layer)

        def get_config(self):
            return {**super().get_config(), "prefix": self.prefix}

    return NamedActivationQuantizer


def _output_configs(qk):
    """``(OutputQuantizeConfig, PassThroughQuantizeConfig)``: the weightless layers' configs."""

    class OutputQuantizeConfig(qk.QuantizeConfig):
        """Quantize the layer's output only: weightless element-wise activations, and the
        layers of :mod:`~edgecnn.models._layers` tfmot does not know (a standalone
        BatchNorm, local response normalization)."""

        def get_weights_and_quantizers(self, layer):
            return []

        def get_activations_and_quantizers(self, layer):
            return []

        def set_quantize_weights(self, layer, quantize_weights):
            pass

        def set_quantize_activations(self, layer, quantize_activations):
            pass

        def get_output_quantizers(self, layer):
            return [_activation_quantizer(qk)]

        def get_config(self):
            return {}

    class PassThroughQuantizeConfig(OutputQuantizeConfig):
        """Quantize nothing: the layer moves int8 values without changing their scale."""

        def get_output_quantizers(self, layer):
            return []

    return OutputQuantizeConfig, PassThroughQuantizeConfig


def _squeeze_excite_config(output_config, named_quantizer):
    """The squeeze-excite's config: its two kernels and every TFLite tensor inside it."""
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantizers,
    )

    class SqueezeExciteQuantizeConfig(output_config):
        """Per-channel 8-bit kernels and a fake-quant on each TFLite tensor inside SE."""

        @staticmethod
        def _activations(layer):
            return layer.quantized_activations()

        def get_weights_and_quantizers(self, layer):
            return [
                (layer.reduce_kernel, default_8bit_quantizers.Default8BitConvWeightsQuantizer()),
                (layer.expand_kernel, default_8bit_quantizers.Default8BitConvWeightsQuantizer()),
            ]

        def get_activations_and_quantizers(self, layer):
            # One wrapper holds several activations: tfmot names every one's range variables
            # "post_activation_min/max", which HDF5 (save_weights to .h5) refuses as duplicates;
            # the hook's name makes them unique.
            return [(getattr(layer, attr), named_quantizer(attr)) for attr in self._activations(layer)]

        def set_quantize_weights(self, layer, quantize_weights):
            layer.reduce_kernel, layer.expand_kernel = quantize_weights

        def set_quantize_activations(self, layer, quantize_activations):
            for attr, act in zip(self._activations(layer), quantize_activations):
                setattr(layer, attr, act)

    return SqueezeExciteQuantizeConfig


class _ZooLayer(layers.Layer):
    """Weightless layer base: not prunable, quantized at its output."""

    _QUANTIZE = "OutputQuantizeConfig"

    def get_prunable_weights(self):
        return []

    def quantize_config(self):
        return quantize_configs()[self._QUANTIZE]()

    def compute_output_shape(self, input_shape):
        return input_shape


@custom_object
class HardSwish(_ZooLayer):
    """``x * relu6(x + 3) / 6`` (Howard et al. 2019); TFLite fuses it into ``HARD_SWISH``."""

    def call(self, inputs):
        return inputs * tf.nn.relu6(inputs + 3.0) * (1.0 / 6.0)


@custom_object
class HardSigmoid(_ZooLayer):
    """``relu6(x + 3) / 6``, the piecewise-linear sigmoid of MobileNetV3."""

    def call(self, inputs):
        return tf.nn.relu6(inputs + 3.0) * (1.0 / 6.0)


@custom_object
class Swish(_ZooLayer):
    """``x * sigmoid(x)`` (SiLU), EfficientNet's activation."""

    def call(self, inputs):
        return inputs * tf.math.sigmoid(inputs)


_SE_ACTS = {"relu": keras.activations.relu, "swish": keras.activations.swish}


@custom_object
class SqueezeExcite(layers.Layer):
    """Squeeze-and-excitation (Hu et al. 2018, https://arxiv.org/abs/1709.01507) as ONE layer.

    ``x * gate(expand(act(reduce(mean_hw(x)))))`` with 1x1 convolutions (with bias) for
    ``reduce`` (to ``reduce_channels``) and ``expand`` (back to the input channels);
    ``gate`` is ``"hard_sigmoid"`` (MobileNetV3) or ``"sigmoid"`` (EfficientNet), ``act``
    ``"relu"`` or ``"swish"``. Kept as one layer so that tfmot never sees the ``Multiply``
    it rejects; its ``QuantizeConfig`` still fake-quantizes every tensor TFLite keeps.

    Example:
        >>> y = SqueezeExcite(8, act="relu", gate="hard_sigmoid")(keras.Input((7, 7, 32)))
    """

    def __init__(self, reduce_channels: int, act: str = "relu", gate: str = "hard_sigmoid", **kwargs):
        super().__init__(**kwargs)
        if act not in _SE_ACTS:
            raise ValueError(f"SqueezeExcite act must be one of {sorted(_SE_ACTS)}, got {act!r}")
        if gate not in ("hard_sigmoid", "sigmoid"):
            raise ValueError(f"SqueezeExcite gate must be 'hard_sigmoid' or 'sigmoid', got {gate!r}")
        self.reduce_channels = int(reduce_channels)
        self.act = act
        self.gate = gate
        # Replaced by tfmot's QuantizeAwareActivation under QAT (see SqueezeExciteQuantizeConfig):
        # 'linear' and 'relu'/'swish' are post-quantized, 'sigmoid' pre-quantized. The two
        # 'linear' pre-activation hooks put a fake-quant on the convolution outputs that TFLite
        # keeps as int8 tensors of their own: the input of swish's LOGISTIC/MUL, and
        # relu6(g + 3) of hard-sigmoid (the converter folds the +3 into the conv bias and the
        # ReLU6 into the conv, so that is the conv's int8 output). Without them the converter
        # calibrates these tensors apart from QAT's ranges and, on an untrained QAT model,
        # gives them degenerate scales that crash XNNPACK.
        self.squeeze_activation = keras.activations.linear
        self.reduce_preactivation = keras.activations.linear
        self.reduce_activation = _SE_ACTS[act]
        self.gate_preactivation = keras.activations.linear
        self.gate_activation = keras.activations.sigmoid if gate == "sigmoid" else keras.activations.linear

    def build(self, input_shape):
        channels = int(input_shape[-1])
        self.reduce_kernel = self.add_weight(
            "reduce_kernel", (1, 1, channels, self.reduce_channels), initializer="he_normal"
        )
        self.reduce_bias = self.add_weight("reduce_bias", (self.reduce_channels,), initializer="zeros")
        self.expand_kernel = self.add_weight(
            "expand_kernel", (1, 1, self.reduce_channels, channels), initializer="he_normal"
        )
        self.expand_bias = self.add_weight("expand_bias", (channels,), initializer="zeros")
        self._channels = channels
        super().build(input_shape)

    def call(self, inputs):
        s = self.squeeze_activation(tf.reduce_mean(inputs, axis=[1, 2], keepdims=True))
        s = tf.nn.bias_add(tf.nn.conv2d(s, self.reduce_kernel, 1, "VALID"), self.reduce_bias)
        s = self.reduce_activation(self.reduce_preactivation(s))
        g = tf.nn.bias_add(tf.nn.conv2d(s, self.expand_kernel, 1, "VALID"), self.expand_bias)
        if self.gate == "hard_sigmoid":
            g = self.gate_activation(self.gate_preactivation(tf.nn.relu6(g + 3.0)) * (1.0 / 6.0))
        else:
            g = self.gate_activation(g)
        return inputs * g

    def quantized_activations(self) -> list:
        """Names of the activation hooks QAT fake-quantizes, in order: every tensor of the SE
        that TFLite keeps as an int8 tensor (a ReLU fuses into its convolution, so the
        reduce convolution's output gets a hook of its own only before swish).

        Example:
            >>> SqueezeExcite(8, act="swish", gate="sigmoid").quantized_activations()
            ['squeeze_activation', 'reduce_preactivation', 'reduce_activation', 'gate_activation']
        """
        names = ["squeeze_activation"]
        if self.act != "relu":
            names.append("reduce_preactivation")
        names.append("reduce_activation")
        if self.gate == "hard_sigmoid":
            names.append("gate_preactivation")
        return [*names, "gate_activation"]

    def compute_output_shape(self, input_shape):
        return input_shape

    def macs(self) -> int:
        """Multiply-adds of the two 1x1 convolutions on the pooled vector (+ the rescale)."""
        shape = self.output_shape if hasattr(self, "_inbound_nodes") and self._inbound_nodes else None
        spatial = int(shape[1] * shape[2]) if shape and shape[1] and shape[2] else 0
        return 2 * self._channels * self.reduce_channels + spatial * self._channels

    def get_prunable_weights(self):
        # The two 1x1 kernels are ordinary convolutions: prunable like any pointwise conv.
        return [self.reduce_kernel, self.expand_kernel]

    def quantize_config(self):
        return quantize_configs()["SqueezeExciteQuantizeConfig"]()

    def get_config(self):
        return {**super().get_config(), "reduce_channels": self.reduce_channels, "act": self.act, "gate": self.gate}


@custom_object
class ChannelShuffle(_ZooLayer):
    """ShuffleNet's channel shuffle (Zhang et al. 2017): ``(g, c/g)`` -> ``(c/g, g)``.

    Example:
        >>> y = ChannelShuffle(groups=2)(keras.Input((8, 8, 16)))
    """

    _QUANTIZE = "PassThroughQuantizeConfig"

    def __init__(self, groups: int, **kwargs):
        super().__init__(**kwargs)
        self.groups = int(groups)

    def call(self, inputs):
        _, h, w, c = inputs.shape
        dynamic = tf.shape(inputs)
        h = dynamic[1] if h is None else h
        w = dynamic[2] if w is None else w
        x = tf.reshape(inputs, [-1, h, w, self.groups, c // self.groups])
        x = tf.transpose(x, [0, 1, 2, 4, 3])
        return tf.reshape(x, [-1, h, w, c])

    def get_config(self):
        return {**super().get_config(), "groups": self.groups}


@custom_object
class ChannelSplit(_ZooLayer):
    """One part of ShuffleNet v2's channel split: channels ``[index*c/parts, (index+1)*c/parts)``.

    (One layer per part, because tfmot's wrapper handles single-output layers only.)

    Example:
        >>> left = ChannelSplit(parts=2, index=0)(keras.Input((8, 8, 16)))
    """

    _QUANTIZE = "PassThroughQuantizeConfig"

    def __init__(self, parts: int = 2, index: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.parts, self.index = int(parts), int(index)

    def call(self, inputs):
        size = inputs.shape[-1] // self.parts
        return inputs[..., self.index * size : (self.index + 1) * size]

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] // self.parts)

    def get_config(self):
        return {**super().get_config(), "parts": self.parts, "index": self.index}


@custom_object
class StochasticDepth(_ZooLayer):
    """Drop the residual branch per sample with probability ``rate`` while training,
    scaling survivors by ``1/(1-rate)`` (Huang et al. 2016; EfficientNet's drop-connect).
    Identity at inference, a pass-through for quantization, absent from the ``.tflite``.
    """

    _QUANTIZE = "PassThroughQuantizeConfig"

    def __init__(self, rate: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.rate = float(rate)

    def call(self, inputs, training=None):
        if not self.rate:
            return inputs

        def dropped():
            keep = 1.0 - self.rate
            shape = tf.concat([tf.shape(inputs)[:1], tf.ones([tf.rank(inputs) - 1], tf.int32)], 0)
            mask = tf.floor(keep + tf.random.uniform(shape, dtype=inputs.dtype))
            return inputs / keep * mask

        if training is None:
            training = keras.backend.learning_phase()
        if isinstance(training, bool):
            return dropped() if training else inputs
        return tf.cond(tf.cast(training, tf.bool), dropped, lambda: tf.identity(inputs))

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}


ZOO_LAYERS = {
    name: CUSTOM_OBJECTS[name]
    for name in (
        "HardSwish",
        "HardSigmoid",
        "Swish",
        "SqueezeExcite",
        "ChannelShuffle",
        "ChannelSplit",
        "StochasticDepth",
    )
}
