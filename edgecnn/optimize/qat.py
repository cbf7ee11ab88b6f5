"""Quantization-aware training with tfmot (Jacob et al., "Quantization and Training of
Neural Networks for Efficient Integer-Arithmetic-Only Inference", 2018,
https://arxiv.org/abs/1712.05877).

:func:`quantize_model` annotates every layer (our own layers bring their own
``QuantizeConfig`` through a ``quantize_config()`` method) and applies tfmot's default
8-bit scheme; fine-tune the result, then convert with ``precision="int8"``.

Example:
    >>> qat = quantize_model(model)            # doctest: +SKIP
    >>> fit(qat, data, epochs=3)               # doctest: +SKIP
    >>> convert(qat, "m_int8.tflite", "int8", representative=data.representative())  # doctest: +SKIP
"""

from __future__ import annotations

from edgecnn._tf import keras, tfmot
from edgecnn.errors import UserError


def custom_objects() -> dict:
    """Every custom layer and quantize config of the zoo, for ``quantize_scope``."""
    from edgecnn.models._layers import CUSTOM_OBJECTS

    return dict(CUSTOM_OBJECTS)


def quantize_model(model, scheme=None):
    """Return a quantization-aware copy of ``model`` (weights kept).

    Args:
        scheme: a tfmot ``QuantizeScheme``; default 8-bit, or e.g.
            ``Default8BitPrunePreserveQuantizeScheme()`` to keep pruning's zeros.
    """
    q = tfmot().quantization.keras

    def annotate(layer):
        if isinstance(layer, keras.layers.InputLayer):
            return layer
        config = getattr(layer, "quantize_config", None)
        if callable(config):
            return q.quantize_annotate_layer(layer, quantize_config=config())
        return q.quantize_annotate_layer(layer)

    with q.quantize_scope(custom_objects()):
        annotated = keras.models.clone_model(model, clone_function=annotate)
        try:
            return q.quantize_apply(annotated, scheme) if scheme is not None else q.quantize_apply(annotated)
        except (RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
            raise UserError(f"quantization-aware training cannot wrap {model.name}: {first}") from None
