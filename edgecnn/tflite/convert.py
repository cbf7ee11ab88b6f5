"""TFLite export: float32, float16, dynamic-range, full-integer int8 and int16x8.

``int8`` is full-integer quantization as the Coral/XNNPACK int8 paths want it: int8
input and output tensors, per-channel int8 weights, activations calibrated on
representative data from the training split (or learned by quantization-aware training,
in which case calibration only fixes the input/output ranges).

``sparse=True`` stores a pruned model's float32 weights in TFLite's sparse tensor format
(non-zeros plus their indices, expanded by a ``DENSIFY`` op when the model loads): the
file itself shrinks, not only its gzipped size, and the outputs are bit-identical. Only
float32 gains: with int8 weights the indices cost more than the zeros they replace, and
XNNPACK refuses some sparse int8 and float16 layers (seen on LeNet-5 and MobileNet v1
at 50% sparsity), so other precisions ignore it. Figures: benchmarks/RESULTS.md,
"Compression: magnitude sparsity".

Example:
    >>> from edgecnn.tflite.convert import convert
    >>> convert(model, "runs/m/model_int8.tflite", "int8", representative=ds.representative())  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path

from edgecnn._io import quiet_native_stderr, write_bytes
from edgecnn._tf import keras, tf
from edgecnn.errors import UserError
from edgecnn.optimize.prune import strip_pruning_if_wrapped
from edgecnn.settings.sections import PRECISIONS


def inference_model(model):
    """The model to export: training-only outputs (auxiliary classifiers) dropped.

    Builders list the main output first; a multi-output model is cut to it.
    """
    if len(model.outputs) > 1:
        return keras.Model(model.inputs, model.outputs[0], name=model.name)
    return model


# id(model) -> (model, SavedModel folder) while an :func:`exported_once` block is open.
_EXPORTED: dict = {}
_KERAS_MODEL = 2  # ConversionMetadata's ModelType.KERAS_MODEL (TF_SAVED_MODEL is 1)


@contextlib.contextmanager
def exported_once(model):
    """Inside this block, every conversion of ``model`` (each precision, the int8 debugger)
    starts from one SavedModel export of it instead of one each.

    TensorFlow's ``from_keras_model`` saves the model as a SavedModel and converts that; the
    save is half of a conversion's time (about 5-8 s of 9-15 s for a MobileNet), and a run
    converts each model two to four times. This saves it once, exactly as TensorFlow does
    (same options, so the same tensor names), and :func:`tflite_converter` converts from that
    folder, recording a Keras model as the source as ``from_keras_model`` does: the files are
    byte-identical. The model must not change inside the block. If the save fails,
    each conversion saves on its own, as before.

    Example:
        >>> with exported_once(model):                                    # doctest: +SKIP
        ...     convert(model, "m_float32.tflite"); convert(model, "m_int8.tflite", "int8", rep)
    """
    key, folder = id(model), tempfile.mkdtemp(prefix="edgecnn-export-")
    try:
        try:
            with quiet_native_stderr():
                tf.saved_model.save(inference_model(strip_pruning_if_wrapped(model)), f"{folder}/saved",
                                    options=tf.saved_model.SaveOptions(save_debug_info=True))
            _EXPORTED[key] = (model, f"{folder}/saved")
        except Exception:  # noqa: BLE001 - TensorFlow's own converter falls back the same way
            pass
        yield
    finally:
        _EXPORTED.pop(key, None)
        shutil.rmtree(folder, ignore_errors=True)


def tflite_converter(model, prepared=None):
    """TensorFlow's TFLite converter for ``model``: from the shared SavedModel inside
    :func:`exported_once`, else from ``prepared``, the model to export (pruning wrappers and
    auxiliary outputs dropped, QAT wrappers kept: the converter reads them; made from
    ``model`` when not given). Every conversion in edgecnn starts here, so a successor
    converter replaces this one function."""
    shared = _EXPORTED.get(id(model))
    if shared is not None and shared[0] is model:
        converter = tf.lite.TFLiteConverter.from_saved_model(shared[1])
        with contextlib.suppress(AttributeError):  # the file records a Keras model, as from_keras_model's does:
            converter._metadata.environment.modelType = _KERAS_MODEL  # then the bytes are the same
        return converter
    if prepared is None:
        prepared = inference_model(strip_pruning_if_wrapped(model))
    return tf.lite.TFLiteConverter.from_keras_model(prepared)


def convert_bytes(model, precision: str = "float32", representative=None, sparse: bool = False) -> bytes:
    """Convert a Keras model to TFLite flatbuffer bytes (see :func:`convert`)."""
    if precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    prepared = inference_model(strip_pruning_if_wrapped(model))  # stripped once: it copies a pruned model
    converter = tflite_converter(model, prepared)
    model = prepared
    if precision == "float32" and sparse:
        converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    elif precision == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif precision == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif precision == "int16x8":
        _int16x8_converter(converter, representative)
    elif precision == "int8":
        configure_int8(converter, representative)
    with quiet_native_stderr():
        try:
            return converter.convert()
        except Exception as exc:  # the converter raises ConverterError, RuntimeError...
            if precision == "int16x8":
                _explain_int16x8(exc, model.name)
            raise RuntimeError(f"TFLite conversion to {precision} failed for {model.name}: {exc}") from exc


def _explain_int16x8(exc: Exception, name: str) -> None:
    """An op the converter cannot quantize to 16-bit activations (MobileNetV3's ``HARD_SWISH``)
    is the model's limit, and leaving int16x8 out the user's choice: one line naming the ops."""
    import re

    ops = sorted(set(re.findall(r"16x8-bit not yet supported for op: '([A-Z0-9_]+)'", str(exc))))
    if ops:
        raise UserError(
            f"int16x8: the TFLite converter cannot quantize {', '.join(ops)} (in {name}) to 16-bit activations; "
            "leave out the int16x8 precision for this model"
        ) from None


def configure_int8(converter, representative) -> None:
    """Set ``converter`` up for full-integer int8 (int8 input and output), calibrated on
    ``representative``; shared with the per-layer debugger (:mod:`edgecnn.tflite.debugger`)."""
    if representative is None:
        raise UserError("int8 conversion needs representative data for calibration")
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8


def _int16x8_converter(converter, representative) -> None:
    """16-bit activations, 8-bit weights (TFLite's 16x8 scheme); float input and output, as
    the interpreter's 16x8 kernels expect a float model boundary. XNNPACK has no 16x8 kernels:
    the whole graph runs on TFLite's reference kernels (the bench's delegation report says so)."""
    if representative is None:
        raise UserError("int16x8 conversion needs representative data for calibration")
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]


def convert(
    model,
    path,
    precision: str = "float32",
    representative=None,
    sparse: bool = False,
    metadata: dict | None = None,
) -> Path:
    """Convert ``model`` to a ``.tflite`` file at ``path``, written atomically.

    Args:
        model: a Keras model (plain, pruned or quantization-aware).
        path: where the ``.tflite`` goes.
        precision: ``float32``, ``float16``, ``dynamic`` (int8 weights, float
            activations), ``int8`` (full integer, int8 input and output) or ``int16x8``
            (int16 activations, int8 weights, float input and output).
        representative: for ``int8`` and ``int16x8``, a callable returning a generator of ``[batch]``
            lists, e.g. :meth:`edgecnn.data.dataset.Dataset.representative`.
        sparse: for ``float32``, store weight tensors with many zeros (the converter picks which) in TFLite's
            sparse format (see the module docstring); ignored for other precisions.
        metadata: the run's preprocessing (``preprocess.json`` content): when given, the file
            carries TFLite Metadata (labels, normalisation, colour space) for Android's
            tooling, see :mod:`edgecnn.tflite.metadata`; the outputs are unchanged.
    """
    tflite = convert_bytes(model, precision, representative, sparse)
    if metadata is not None:
        from edgecnn.tflite.metadata import add_metadata

        tflite = add_metadata(tflite, metadata, name=inference_model(model).name)
    return write_bytes(path, tflite)
