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

import sys

from edgecnn._tf import keras, tfmot
from edgecnn.errors import UserError


def custom_objects() -> dict:
    """Every custom layer and quantize config of the zoo, for ``quantize_scope``."""
    from edgecnn.models._layers import CUSTOM_OBJECTS

    return dict(CUSTOM_OBJECTS)


def is_quantize_wrapper(layer) -> bool:
    """Whether ``layer`` is one of tfmot's QAT wrappers (``QuantizeWrapper``, ``QuantizeWrapperV2``).

    Example:
        >>> is_quantize_wrapper(quantize_model(model).layers[2])  # doctest: +SKIP
        True
    """
    if "tensorflow_model_optimization" not in sys.modules:
        return False  # nothing can be wrapped before tfmot is imported
    return isinstance(layer, tfmot().quantization.keras.QuantizeWrapper)  # QuantizeWrapperV2 subclasses it


def quantize_model(model, scheme=None):
    """Return a quantization-aware copy of ``model`` (weights kept).

    Args:
        scheme: a tfmot ``QuantizeScheme``; default 8-bit, or e.g.
            ``Default8BitPrunePreserveQuantizeScheme()`` to keep pruning's zeros.
    """
    from edgecnn.models._quant_layers import quantize_configs

    q = tfmot().quantization.keras

    def annotate(layer):
        if isinstance(layer, keras.layers.InputLayer):
            return layer
        if type(layer) is keras.layers.AveragePooling2D:
            # TFLite's int8 AVERAGE_POOL_2D keeps its input's scale; tfmot's default gives the pooled
            # output a range of its own, and the converter refuses the model when the two differ
            # ("quantization parameters violate the same scale constraint", DenseNet's transitions).
            return q.quantize_annotate_layer(layer, quantize_config=quantize_configs()["PassThroughQuantizeConfig"]())
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


def sparsity_masks(model) -> dict:
    """``{layer name: kernel != 0}`` for every Conv2D/Dense layer with zeros (after pruning)."""

    masks = {}
    for layer in model.layers:
        inner = getattr(layer, "layer", layer)
        kernel = getattr(inner, "kernel", None)
        if kernel is not None and isinstance(inner, (keras.layers.Conv2D, keras.layers.Dense)):
            mask = kernel.numpy() != 0
            if not mask.all():
                masks[inner.name] = mask
    return masks


class KeepSparsity(keras.callbacks.Callback):
    """Re-zero the pruned weights after every training batch of a QAT fine-tune.

    tfmot's prune-preserving scheme masks the weights it quantizes, but leaves some layers
    to a no-op config (e.g. a Conv2D whose ReLU follows directly, without BatchNorm),
    whose zeros would fill in again. This callback holds every layer to the masks taken
    before QAT.

    Example:
        >>> masks = sparsity_masks(stripped_pruned_model)                 # doctest: +SKIP
        >>> qat = quantize_model(stripped_pruned_model, prune_preserving)  # doctest: +SKIP
        >>> qat.fit(x, y, callbacks=[KeepSparsity(masks)])                # doctest: +SKIP
    """

    def __init__(self, masks: dict):
        super().__init__()
        self.masks = masks
        self._kernels = None

    def _find(self):
        found = []

        def visit(model):
            for layer in model.layers:
                inner = getattr(layer, "layer", layer)
                if inner.name in self.masks:
                    # The variable itself: inside a QuantizeWrapper ``inner.kernel`` is the fake-quantized tensor.
                    mask = self.masks[inner.name]
                    for w in layer.weights:
                        if w.name.split("/")[-1].startswith("kernel:") and tuple(w.shape) == mask.shape:
                            found.append((w, mask.astype(w.dtype.as_numpy_dtype)))
                elif isinstance(layer, keras.Model):
                    visit(layer)

        visit(self.model)
        return found

    def on_train_batch_end(self, batch, logs=None):
        if self._kernels is None:
            self._kernels = self._find()
        for kernel, mask in self._kernels:
            kernel.assign(kernel * mask)
