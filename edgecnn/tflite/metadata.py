"""TFLite Metadata: labels and normalisation inside the ``.tflite``, as Android tooling reads them.

Android Studio's ML Model Binding and the TFLite Task Library's ``ImageClassifier`` read
a model's input normalisation, colour space and labels from the metadata that
tflite-support's schema describes
(https://github.com/tensorflow/tflite-support/blob/master/tensorflow_lite_support/metadata/metadata_schema.fbs):
a ``ModelMetadata`` flatbuffer (file identifier ``M001``) stored in one of the model's
buffers and named ``TFLITE_METADATA`` in ``Model.metadata``, with associated files
(``labels.txt``) appended to the ``.tflite`` as a zip archive. The interpreter ignores
both, so outputs stay bit-identical.

tflite-support's own writers (``metadata_writers``) install only beside ``protobuf<4``,
which TensorFlow 2.16+ refuses, so this module writes the few tables an image
classifier needs with the ``flatbuffers`` package, field by field as the schema numbers
them, the same content ``metadata_writers.image_classifier`` writes:

* ``ModelMetadata``: name, description, version, author (``edgecnn <version>``),
  ``min_parser_version`` 1.0.0;
* input ``TensorMetadata``: ``ImageProperties`` (RGB or GRAYSCALE, default size),
  ``NormalizationOptions`` (per-channel mean and std: ``pixel * scale + offset`` of
  ``preprocess.json`` is ``(pixel - mean) / std`` with ``mean = -offset / scale`` and
  ``std = 1 / scale``), ``Stats`` (the normalised range for float input, as the writers do;
  none for int8, whose quantisation the tensor itself carries);
* output ``TensorMetadata``: ``FeatureProperties`` (class probabilities), ``Stats``
  0..1 for float output, and ``labels.txt`` as a ``TENSOR_AXIS_LABELS`` file.

**BGR input** (Keras' caffe-style ResNet and VGG weights, ``"channel_order": "BGR"`` in
``preprocess.json``) cannot be said in TFLite Metadata: ``ColorSpaceType`` has only
``UNKNOWN``, ``RGB`` and ``GRAYSCALE``. Such a file says ``RGB``, gives mean/std in the
model's (BGR) channel order, says "channels in BGR order" in the model's and the input's
descriptions, and carries :data:`CONVENTION_FILE` (``{"channel_order": "BGR"}``) as a
model-level ``DESCRIPTIONS`` associated file, which the Task Library and ML Model Binding
ignore and :mod:`edgecnn.device.metadata` reads: ``edgecnn-device`` reverses the channels;
an Android app must reverse them itself (the Task Library feeds RGB).

**The resize** is not in the schema either. A model trained with ``--resize bilinear``
(:mod:`edgecnn.device.preprocess`) records ``{"resize": "bilinear"}`` in the same file, so
``edgecnn-device`` resizes as training did; the input's description says so too.

:mod:`edgecnn.device.metadata` reads it back without TensorFlow.

Example:
    >>> tflite = add_metadata(tflite, {"scale": 1 / 127.5, "offset": -1.0, "channels": 3,
    ...                                "image_size": [32, 32], "class_names": ["cat", "dog"]},
    ...                       name="mobilenet_v2")  # doctest: +SKIP
"""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np

from edgecnn.device.flatbuffer import TFLITE_IDENTIFIER
from edgecnn.device.metadata import (
    ASSOCIATED_FILE,
    CONTENT,
    CONTENT_FEATURE,
    CONTENT_IMAGE,
    CONVENTION_FILE,
    DESCRIPTIONS,
    FEATURE_PROPERTIES,
    IMAGE_PROPERTIES,
    IMAGE_SIZE,
    LABELS_FILE,
    METADATA_IDENTIFIER,
    METADATA_NAME,
    MODEL_METADATA,
    NORMALIZATION_OPTIONS,
    PROCESS_NORMALIZATION,
    PROCESS_UNIT,
    STATS,
    SUBGRAPH_METADATA,
    TENSOR_AXIS_LABELS,
    TENSOR_METADATA,
)

MIN_PARSER_VERSION = "1.0.0"
BGR_NOTE = (
    "channels in BGR order (Keras caffe-style weights): TFLite Metadata's colour space cannot say BGR, "
    "so reverse the channels of an RGB image before normalising"
)
COLOR_SPACE = {3: 1, 1: 2}  # channels -> ColorSpaceType: RGB = 1, GRAYSCALE = 2
# TensorType of TFLite's schema.fbs.
FLOAT32, UINT8, INT8 = 0, 3, 9


def normalization(spec: dict, channels: int) -> tuple[list, list]:
    """Per-channel ``(mean, std)`` on raw pixels that the spec's normalisation amounts to.

    The spec (``preprocess.json``) gives ``x = (p * scale + offset - m) / s``, with ``m`` and
    ``s`` (``mean``/``std``, pretrained weights' convention) optional: that is
    ``(p - mean) / std`` with ``mean = (m - offset) / scale`` and ``std = s / scale``.
    (A ``"channel_order": "BGR"`` spec's values are in the model's channel order; the
    metadata's colour space cannot say BGR.)

    Example:
        >>> normalization({"scale": 1 / 127.5, "offset": -1.0}, 3)
        ([127.5, 127.5, 127.5], [127.5, 127.5, 127.5])
        >>> normalization({"scale": 1.0, "offset": 0.0, "mean": [103.939, 116.779, 123.68]}, 3)[0]
        [103.939, 116.779, 123.68]
    """
    from edgecnn.device.preprocess import DEFAULT_OFFSET, DEFAULT_SCALE

    scale = float(spec.get("scale", DEFAULT_SCALE))
    offset = float(spec.get("offset", DEFAULT_OFFSET))
    if scale == 0:
        raise ValueError("preprocessing scale 0 has no normalisation (std would be infinite)")

    def per_channel(key, default):
        values = [float(v) for v in (spec.get(key) if spec.get(key) is not None else [default])]
        return values * channels if len(values) == 1 else values

    m, s = per_channel("mean", 0.0), per_channel("std", 1.0)
    return [(mi - offset) / scale for mi in m], [si / scale for si in s]


def convention_file(spec: dict, channels: int) -> dict:
    """What :data:`CONVENTION_FILE` holds for ``spec``: ``channel_order`` when BGR (3 channels),
    ``resize`` when not the default; empty when neither (no file is written)."""
    from edgecnn.device.preprocess import resize_method

    out = {}
    if channels == 3 and is_bgr(spec):
        out["channel_order"] = "BGR"
    if resize_method(spec) != "antialias":
        out["resize"] = resize_method(spec)
    return out


def is_bgr(spec: dict) -> bool:
    """Whether ``spec`` (``preprocess.json``) feeds the model BGR channels.

    Example:
        >>> is_bgr({"channel_order": "bgr"}), is_bgr({})
        (True, False)
    """
    return str(spec.get("channel_order") or "RGB").upper() == "BGR"


def _floats(b, values) -> int:
    b.StartVector(4, len(values), 4)
    for v in reversed(values):
        b.PrependFloat32(float(v))
    return b.EndVector()


def _offsets(b, offsets) -> int:
    b.StartVector(4, len(offsets), 4)
    for o in reversed(offsets):
        b.PrependUOffsetTRelative(o)
    return b.EndVector()


def _table(b, slots: dict, offsets: dict | None = None, scalars: dict | None = None) -> int:
    """One table of the schema whose field slots are ``slots`` (:mod:`edgecnn.device.metadata`):
    ``offsets`` {field: offset}, ``scalars`` {field: (prepend method, value)}."""
    b.StartObject(len(slots))
    for name, off in (offsets or {}).items():
        b.PrependUOffsetTRelativeSlot(slots[name], off, 0)
    for name, (kind, value) in (scalars or {}).items():
        getattr(b, f"Prepend{kind}Slot")(slots[name], value, 0)
    return b.EndObject()


def _stats(b, low, high) -> int:
    mx, mn = _floats(b, high), _floats(b, low)
    return _table(b, STATS, {"max": mx, "min": mn})


def _input_tensor(b, spec: dict, input_type: int, hwc: tuple) -> int:
    """The input ``TensorMetadata``: ImageProperties, NormalizationOptions and Stats."""
    height, width, channels = hwc
    mean, std = normalization(spec, channels)
    size = _table(b, IMAGE_SIZE, scalars={"width": ("Uint32", width), "height": ("Uint32", height)})
    color = ("Int8", COLOR_SPACE.get(channels, 0))
    image = _table(b, IMAGE_PROPERTIES, {"default_size": size}, {"color_space": color})
    kind = ("Uint8", CONTENT_IMAGE)
    content_in = _table(b, CONTENT, {"content_properties": image}, {"content_properties_type": kind})
    norm = _table(b, NORMALIZATION_OPTIONS, {"mean": _floats(b, mean), "std": _floats(b, std)})
    unit = _table(b, PROCESS_UNIT, {"options": norm}, {"options_type": ("Uint8", PROCESS_NORMALIZATION)})
    units = _offsets(b, [unit])
    in_stats = None
    if input_type == FLOAT32:
        in_stats = _stats(b, [(0 - m) / s for m, s in zip(mean, std)], [(255 - m) / s for m, s in zip(mean, std)])
    elif input_type == UINT8:
        in_stats = _stats(b, [0.0], [255.0])
    bgr = channels == 3 and is_bgr(spec)
    convention = convention_file(spec, channels)
    in_name = b.CreateString("image")
    in_desc = b.CreateString(
        f"Input image, {height}x{width} {'RGB' if channels == 3 else 'grayscale'}; normalised as (pixel - mean) / std"
        + (f"; {BGR_NOTE}" if bgr else "")
        + ("; resized bilinearly without antialiasing (as tf.image.resize)" if "resize" in convention else "")
    )
    fields = {"name": in_name, "description": in_desc, "content": content_in, "process_units": units}
    if in_stats is not None:
        fields["stats"] = in_stats
    return _table(b, TENSOR_METADATA, fields)


def _output_tensor(b, output_type: int, num_classes: int) -> int:
    """The output ``TensorMetadata``: FeatureProperties, Stats and ``labels.txt``."""
    feature = _table(b, FEATURE_PROPERTIES)
    kind = ("Uint8", CONTENT_FEATURE)
    content_out = _table(b, CONTENT, {"content_properties": feature}, {"content_properties_type": kind})
    out_stats = _stats(b, [0.0], [1.0]) if output_type == FLOAT32 else None
    if output_type == UINT8:
        out_stats = _stats(b, [0.0], [255.0])
    label_name = b.CreateString(LABELS_FILE)
    label_desc = b.CreateString("Labels for the categories the model can recognise.")
    label_file = _table(
        b, ASSOCIATED_FILE, {"name": label_name, "description": label_desc}, {"type": ("Int8", TENSOR_AXIS_LABELS)}
    )
    out_name = b.CreateString("probability")
    out_desc = b.CreateString(f"Probabilities of the {num_classes} labels respectively.")
    fields = {"name": out_name, "description": out_desc, "content": content_out,
              "associated_files": _offsets(b, [label_file])}
    if out_stats is not None:
        fields["stats"] = out_stats
    return _table(b, TENSOR_METADATA, fields)


def metadata_bytes(
    spec: dict,
    *,
    name: str,
    description: str,
    input_type: int,
    output_type: int,
    input_shape,
    num_classes: int,
    version: str,
    author: str,
) -> bytes:
    """The ``ModelMetadata`` flatbuffer of an image classifier (see the module docstring)."""
    import flatbuffers

    channels = int(input_shape[-1])
    height, width = int(input_shape[1]), int(input_shape[2])
    b = flatbuffers.Builder(1024)

    bgr = channels == 3 and is_bgr(spec)
    convention = convention_file(spec, channels)
    tensor_in = _input_tensor(b, spec, input_type, (height, width, channels))
    tensor_out = _output_tensor(b, output_type, num_classes)
    graph = {"input_tensor_metadata": _offsets(b, [tensor_in]), "output_tensor_metadata": _offsets(b, [tensor_out])}
    subgraph = _table(b, SUBGRAPH_METADATA, graph)
    fields = {
        "name": b.CreateString(name),
        "description": b.CreateString(description.rstrip(".") + f". Input {BGR_NOTE}." if bgr else description),
        "version": b.CreateString(version),
        "subgraph_metadata": _offsets(b, [subgraph]),
        "author": b.CreateString(author),
        "min_parser_version": b.CreateString(MIN_PARSER_VERSION),
    }
    if convention:
        conv_name = b.CreateString(CONVENTION_FILE)
        said = " and ".join({"channel_order": "the channel order (BGR)", "resize": "the resize"}[k] for k in convention)
        conv_desc = b.CreateString(f"edgecnn's input convention beyond the metadata: {said}.")
        conv_file = _table(
            b, ASSOCIATED_FILE, {"name": conv_name, "description": conv_desc}, {"type": ("Int8", DESCRIPTIONS)}
        )
        fields["associated_files"] = _offsets(b, [conv_file])
    model = _table(b, MODEL_METADATA, fields)
    b.Finish(model, METADATA_IDENTIFIER)
    return bytes(b.Output())


def _aligned_buffer_class(schema):
    """``BufferT`` whose data starts on a 16-byte boundary, as ``schema.fbs`` asks
    (``force_align: 16``); the generated ``Pack`` aligns to one byte only."""

    class AlignedBufferT(schema.BufferT):
        def Pack(self, builder):
            data = None
            if self.data is not None and len(self.data):
                raw = np.ascontiguousarray(self.data, dtype=np.uint8).tobytes()
                builder.StartVector(1, len(raw), 16)
                builder.head = builder.head - len(raw)
                builder.Bytes[builder.head : builder.head + len(raw)] = raw
                data = builder.EndVector(len(raw))
            schema.BufferStart(builder)
            if data is not None:
                schema.BufferAddData(builder, data)
            schema.BufferAddOffset(builder, self.offset)
            schema.BufferAddSize(builder, self.size)
            return schema.BufferEnd(builder)

    return AlignedBufferT


def add_metadata(tflite: bytes, spec: dict, name: str, description: str | None = None) -> bytes:
    """``tflite`` with image-classifier metadata and ``labels.txt`` (see the module docstring).

    ``spec`` is the run's ``preprocess.json`` content (``scale``, ``offset`` or per-channel
    ``mean``/``std``, ``class_names``). Metadata already present is replaced.
    """
    import flatbuffers

    import edgecnn
    from edgecnn.device.flatbuffer import litert_schema

    schema = litert_schema()  # the one reader's schema; its object API re-packs the model

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(tflite, 0))
    graph = model.subgraphs[0]
    tensor_in, tensor_out = graph.tensors[graph.inputs[0]], graph.tensors[graph.outputs[0]]
    shape_in = [int(d) for d in tensor_in.shape]
    num_classes = int(tensor_out.shape[-1])
    class_names = [str(c) for c in spec.get("class_names") or range(num_classes)]
    if len(class_names) != num_classes:
        raise ValueError(f"{len(class_names)} class names for a model with {num_classes} outputs")
    if len(shape_in) != 4:
        raise ValueError(f"metadata describes image models (N, H, W, C); this input has shape {shape_in}")
    md = metadata_bytes(
        spec,
        name=name,
        description=description or f"{name}: image classifier with {num_classes} classes, exported by edgecnn",
        input_type=int(tensor_in.type),
        output_type=int(tensor_out.type),
        input_shape=shape_in,
        num_classes=num_classes,
        version=f"edgecnn {edgecnn.__version__}",
        author=f"edgecnn {edgecnn.__version__}",
    )
    aligned = _aligned_buffer_class(schema)
    buffers = []
    for buf in model.buffers or []:
        a = aligned()
        a.data, a.offset, a.size = buf.data, buf.offset, buf.size
        buffers.append(a)
    entry = next((m for m in model.metadata or [] if _text(m.name) == METADATA_NAME), None)
    new = aligned()
    new.data = np.frombuffer(md, dtype=np.uint8)
    if entry is None:
        buffers.append(new)
        entry = schema.MetadataT()
        entry.name = METADATA_NAME
        entry.buffer = len(buffers) - 1
        model.metadata = [*(model.metadata or []), entry]
    else:
        buffers[entry.buffer] = new
    model.buffers = buffers
    b = flatbuffers.Builder(len(tflite) + len(md) + 1024)
    b.Finish(model.Pack(b), TFLITE_IDENTIFIER)
    out = io.BytesIO(bytes(b.Output()))
    out.seek(0, io.SEEK_END)
    with zipfile.ZipFile(out, "a") as zf:  # on a non-zip file, "a" appends a new archive
        zf.writestr(LABELS_FILE, "\n".join(class_names) + "\n")
        convention = convention_file(spec, int(shape_in[-1]))
        if convention:
            zf.writestr(CONVENTION_FILE, json.dumps(convention) + "\n")
    return out.getvalue()


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, (bytes, bytearray)) else str(value or "")
