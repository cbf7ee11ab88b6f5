"""An independent reader of TFLite Metadata for the tests.

Different code from both the writer (:mod:`edgecnn.tflite.metadata`) and the device's reader
(:mod:`edgecnn.device.metadata`): the model flatbuffer is read with TensorFlow's
generated ``schema_py_generated`` accessors, the ``ModelMetadata`` flatbuffer field by
field with the ``flatbuffers`` package's generic ``Table``, slot numbers taken from
tflite-support's ``metadata_schema.fbs`` (a union takes two slots: type, then value),
and the labels with ``zipfile``.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import flatbuffers
import numpy as np
from flatbuffers import number_types as N
from flatbuffers.table import Table


def _slot(t: Table, slot: int) -> int:
    return t.Offset(4 + 2 * slot)


def _string(t: Table, slot: int):
    o = _slot(t, slot)
    return t.String(o + t.Pos).decode() if o else None


def _sub(t: Table, slot: int):
    o = _slot(t, slot)
    return Table(t.Bytes, t.Indirect(o + t.Pos)) if o else None


def _tables(t: Table, slot: int) -> list:
    o = _slot(t, slot)
    if not o:
        return []
    start = t.Vector(o)
    return [Table(t.Bytes, t.Indirect(start + 4 * i)) for i in range(t.VectorLen(o))]


def _floats(t: Table, slot: int):
    o = _slot(t, slot)
    return t.GetVectorAsNumpy(N.Float32Flags, o).tolist() if o else None


def _scalar(t: Table, slot: int, flags, default=0):
    o = _slot(t, slot)
    return t.Get(flags, o + t.Pos) if o else default


def metadata_buffer(tflite: bytes):
    """The bytes of the ``TFLITE_METADATA`` buffer (None when absent), via TF's schema."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.Model.GetRootAs(tflite, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() == b"TFLITE_METADATA":
            return model.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
    return None


def read(path) -> dict | None:
    """Everything the tests check, as plain values."""
    tflite = Path(path).read_bytes()
    data = metadata_buffer(tflite)
    if data is None:
        return None
    assert data[4:8] == b"M001", "ModelMetadata file identifier"
    root = Table(data, flatbuffers.encode.Get(flatbuffers.packer.uoffset, data, 0))
    graph = _tables(root, 3)[0]
    (tin,) = _tables(graph, 2)
    (tout,) = _tables(graph, 3)
    content_in = _sub(tin, 3)
    image = _sub(content_in, 1)
    size = _sub(image, 1)
    (unit,) = _tables(tin, 4)
    norm = _sub(unit, 1)
    stats_in = _sub(tin, 5)
    (label_file,) = _tables(tout, 6)
    model_files = {_string(f, 0): _scalar(f, 2, N.Int8Flags) for f in _tables(root, 6)}
    with zipfile.ZipFile(io.BytesIO(tflite)) as zf:
        names = zf.namelist()
        labels = zf.read(_string(label_file, 0)).decode().splitlines()
        packed = {name: zf.read(name).decode() for name in model_files}
    return {
        "name": _string(root, 0),
        "description": _string(root, 1),
        "version": _string(root, 2),
        "author": _string(root, 4),
        "min_parser_version": _string(root, 7),
        "input_content_type": _scalar(content_in, 0, N.Uint8Flags),
        "color_space": _scalar(image, 0, N.Int8Flags),
        "size_hw": (_scalar(size, 1, N.Uint32Flags), _scalar(size, 0, N.Uint32Flags)),
        "process_unit_type": _scalar(unit, 0, N.Uint8Flags),
        "mean": _floats(norm, 0),
        "std": _floats(norm, 1),
        "input_stats": None if stats_in is None else {"max": _floats(stats_in, 0), "min": _floats(stats_in, 1)},
        "output_content_type": _scalar(_sub(tout, 3), 0, N.Uint8Flags),
        "label_file": _string(label_file, 0),
        "label_file_type": _scalar(label_file, 2, N.Int8Flags),
        "input_description": _string(tin, 1),
        "zip_names": names,
        "labels": labels,
        "model_files": model_files,  # model-level associated files: {name: AssociatedFileType}
        "model_file_text": packed,
    }


def assert_matches_preprocess(path, preprocess_json) -> dict:
    """The file's metadata equals its run's ``preprocess.json``: labels, mean, std, colour space."""
    spec = json.loads(Path(preprocess_json).read_text())
    md = read(path)
    assert md is not None, f"{path} has no TFLite Metadata"
    channels = int(spec["channels"])
    assert md["labels"] == [str(c) for c in spec["class_names"]]
    assert md["label_file"] == "labels.txt" and md["label_file_type"] == 2  # TENSOR_AXIS_LABELS
    assert md["input_content_type"] == 2 and md["output_content_type"] == 1  # ImageProperties, FeatureProperties
    assert md["color_space"] == (1 if channels == 3 else 2)  # RGB, GRAYSCALE
    assert md["size_hw"] == tuple(spec["image_size"])
    assert md["process_unit_type"] == 1  # NormalizationOptions
    # preprocess.json: x = (p * scale + offset - m) / s per channel (m, s optional: pretrained
    # weights' conventions), in the model's channel order; the metadata: (p - mean) / std.
    scale, offset = float(spec["scale"]), float(spec["offset"])
    m = np.broadcast_to(np.asarray(spec.get("mean") or [0.0], np.float64), (channels,))
    s = np.broadcast_to(np.asarray(spec.get("std") or [1.0], np.float64), (channels,))
    np.testing.assert_allclose(md["mean"], (m - offset) / scale, rtol=1e-6)
    np.testing.assert_allclose(md["std"], s / scale, rtol=1e-6)
    # (p - mean) / std reproduces preprocess.json's normalisation on every pixel value.
    pixels = np.arange(256, dtype=np.float64)[:, None]
    want = (pixels * scale + offset - m) / s
    got = (pixels - np.asarray(md["mean"])) / np.asarray(md["std"])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * float(np.abs(want).max()))
    bgr = str(spec.get("channel_order") or "RGB").upper() == "BGR"
    if bgr:  # the schema's colour space cannot say BGR: descriptions and a model-level file do
        assert md["model_files"] == {"input_convention.json": 1}  # DESCRIPTIONS
        assert json.loads(md["model_file_text"]["input_convention.json"]) == {"channel_order": "BGR"}
        assert "BGR" in md["description"] and "BGR" in md["input_description"]
    else:
        assert md["model_files"] == {} and "BGR" not in md["description"]
    assert md["author"].startswith("edgecnn ") and md["min_parser_version"] == "1.0.0"
    return md


def without_metadata(tflite: bytes) -> bytes:
    """The same model with the ``TFLITE_METADATA`` entry and the appended zip gone (TF's
    generated schema objects, repacked): the "same file without metadata" of the tests."""
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(tflite, 0))
    for entry in model.metadata or []:
        if entry.name == b"TFLITE_METADATA":
            model.buffers[entry.buffer].data = None  # keep the buffer numbering
    model.metadata = [e for e in model.metadata or [] if e.name != b"TFLITE_METADATA"]
    b = flatbuffers.Builder(len(tflite))
    b.Finish(model.Pack(b), b"TFL3")
    out = bytes(b.Output())
    assert metadata_buffer(out) is None
    return out
