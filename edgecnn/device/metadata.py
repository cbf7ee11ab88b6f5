"""Read a ``.tflite`` file's TFLite Metadata (labels, normalisation) without TensorFlow.

The writer is :mod:`edgecnn.tflite.metadata`; the layout is tflite-support's
``metadata_schema.fbs``. Only what a classifier needs is read: the model's name,
description, version and author, the input's colour space, size, mean and std, and the
output's ``labels.txt`` from the zip archive appended to the file.

Example:
    >>> meta = read_metadata("model_int8.tflite")  # doctest: +SKIP
    >>> meta["mean"], meta["std"], meta["labels"][:3]  # doctest: +SKIP
    ([127.5, 127.5, 127.5], [127.5, 127.5, 127.5], ['0', '1', '2'])
"""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

from edgecnn.device.flatbuffer import FlatbufferError, _Reader, read_metadata_buffer

METADATA_NAME = "TFLITE_METADATA"
COLOR_SPACES = {0: "unknown", 1: "rgb", 2: "grayscale"}
TENSOR_AXIS_LABELS = 2
CONVENTION_FILE = "input_convention.json"  # edgecnn.tflite.metadata.CONVENTION_FILE


def _table(r: _Reader, table: int, index: int) -> int | None:
    pos = r.field_pos(table, index)
    return None if pos is None else r._indirect(pos)


def _floats(r: _Reader, table: int, index: int) -> list:
    return [float(v) for v in r.ints(table, index, "<f")]


def _tensor(r: _Reader, t: int) -> dict:
    """One ``TensorMetadata``: name, content, normalisation, stats, associated files."""
    out = {"name": r.string(t, 0), "description": r.string(t, 1)}
    content = _table(r, t, 3)
    if content is not None:
        kind = r.scalar(content, 0, "<B", 0)
        props = _table(r, content, 1)
        out["content"] = {1: "feature", 2: "image", 3: "bounding_box", 4: "audio"}.get(kind, "none")
        if kind == 2 and props is not None:  # ImageProperties
            out["color_space"] = COLOR_SPACES.get(r.scalar(props, 0, "<b", 0), "unknown")
            size = _table(r, props, 1)
            if size is not None:
                out["default_size"] = [r.scalar(size, 1, "<I", 0), r.scalar(size, 0, "<I", 0)]  # (h, w)
    for unit in r.tables(t, 4):
        options = _table(r, unit, 1)
        if r.scalar(unit, 0, "<B", 0) == 1 and options is not None:  # NormalizationOptions
            out["mean"], out["std"] = _floats(r, options, 0), _floats(r, options, 1)
    stats = _table(r, t, 5)
    if stats is not None:
        out["stats"] = {"max": _floats(r, stats, 0), "min": _floats(r, stats, 1)}
    out["files"] = [{"name": r.string(f, 0), "type": r.scalar(f, 2, "<b", 0)} for f in r.tables(t, 6)]
    return out


def parse_metadata(data: bytes) -> dict:
    """A ``ModelMetadata`` flatbuffer -> ``{name, description, version, author,
    min_parser_version, inputs: [...], outputs: [...]}``."""
    if len(data) < 8 or data[4:8] != b"M001":
        raise FlatbufferError("the TFLITE_METADATA buffer is not a ModelMetadata flatbuffer (no M001 identifier)")
    r = _Reader(bytes(data))
    try:
        root = r._indirect(0)
        meta = {
            "name": r.string(root, 0),
            "description": r.string(root, 1),
            "version": r.string(root, 2),
            "author": r.string(root, 4),
            "min_parser_version": r.string(root, 7),
            "files": [{"name": r.string(f, 0), "type": r.scalar(f, 2, "<b", 0)} for f in r.tables(root, 6)],
            "inputs": [],
            "outputs": [],
        }
        graphs = r.tables(root, 3)
        if graphs:
            meta["inputs"] = [_tensor(r, t) for t in r.tables(graphs[0], 2)]
            meta["outputs"] = [_tensor(r, t) for t in r.tables(graphs[0], 3)]
    except (struct.error, IndexError, UnicodeDecodeError) as exc:
        raise FlatbufferError(f"corrupt TFLite metadata: {exc}") from None
    return meta


def read_metadata(source) -> dict | None:
    """The metadata of a ``.tflite`` (path or bytes), with ``labels`` read from the
    appended ``labels.txt`` and the input's ``mean``/``std`` lifted to the top; ``None``
    when the file has no metadata.

    Raises :class:`~edgecnn.device.flatbuffer.FlatbufferError` for a corrupt file.
    """
    buf = source if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()
    data = read_metadata_buffer(buf, METADATA_NAME)
    if data is None:
        return None
    meta = parse_metadata(data)
    first_in = meta["inputs"][0] if meta["inputs"] else {}
    meta["mean"], meta["std"] = first_in.get("mean"), first_in.get("std")
    meta["color_space"] = first_in.get("color_space")
    # What the schema cannot say (BGR channels), from edgecnn's model-level file.
    meta["channel_order"] = "RGB"
    if any(f["name"] == CONVENTION_FILE for f in meta["files"]):
        convention = _packed_json(buf, CONVENTION_FILE)
        if str(convention.get("channel_order", "RGB")).upper() == "BGR":
            meta["channel_order"] = "BGR"
        if convention.get("resize") is not None:
            meta["resize"] = str(convention["resize"])
    meta["labels"] = None
    for out in meta["outputs"][:1]:
        for f in out["files"]:
            if f["type"] == TENSOR_AXIS_LABELS and f["name"]:
                meta["labels"] = _packed_lines(buf, f["name"])
                break
    return meta


def _packed_lines(buf: bytes, name: str) -> list | None:
    try:
        with zipfile.ZipFile(io.BytesIO(buf)) as zf:
            text = zf.read(name).decode("utf-8")
    except (zipfile.BadZipFile, KeyError, UnicodeDecodeError):
        return None
    return [line.strip() for line in text.splitlines() if line.strip()]


def _packed_json(buf: bytes, name: str) -> dict:
    import json

    lines = _packed_lines(buf, name)
    try:
        value = json.loads("\n".join(lines or []))
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def spec_from_metadata(meta: dict) -> dict:
    """The ``preprocess.json``-style spec a model's metadata describes.

    ``(p - mean) / std`` becomes ``p * scale + offset``; channels with different
    means or stds keep them as ``mean``/``std`` lists after ``scale`` 1 and ``offset`` 0
    (see :func:`edgecnn.device.preprocess.normalize`); ``"channel_order": "BGR"`` when the
    file's ``input_convention.json`` says so (the schema's colour space cannot).

    Example:
        >>> spec_from_metadata({"mean": [127.5] * 3, "std": [127.5] * 3, "labels": ["a", "b"]})
        {'scale': 0.00784313725490196, 'offset': -1.0, 'class_names': ['a', 'b']}
    """
    mean, std = meta.get("mean"), meta.get("std")
    if not mean or not std or len(mean) != len(std) or any(s == 0 for s in std):
        raise ValueError("the model's metadata has no usable normalisation (mean/std)")
    spec: dict = {}
    if len(set(mean)) == 1 and len(set(std)) == 1:
        spec["scale"], spec["offset"] = 1.0 / std[0], -mean[0] / std[0]
    else:
        spec["scale"], spec["offset"] = 1.0, 0.0
        spec["mean"], spec["std"] = list(mean), list(std)
    if str(meta.get("channel_order") or "RGB").upper() == "BGR":
        spec["channel_order"] = "BGR"
    if meta.get("resize"):
        spec["resize"] = meta["resize"]
    if meta.get("labels"):
        spec["class_names"] = list(meta["labels"])
    return spec
