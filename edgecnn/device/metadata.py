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

from edgecnn.device.flatbuffer import FlatbufferError, TableReader, read_metadata_buffer

# --- TFLite Metadata, declared once: the writer (edgecnn.tflite.metadata) imports these ---

#: ``Model.metadata`` entry and file identifier of the ``ModelMetadata`` flatbuffer.
METADATA_NAME = "TFLITE_METADATA"
METADATA_IDENTIFIER = b"M001"
#: The associated files edgecnn packs into the ``.tflite``'s zip archive.
LABELS_FILE = "labels.txt"
CONVENTION_FILE = "input_convention.json"  # what the schema cannot say: BGR channels, the resize


def _slots(*names: str) -> dict:
    return {name: slot for slot, name in enumerate(names)}


# Field slots of metadata_schema.fbs's tables, in the schema's order (a union takes two slots:
# its type, then its value). The reader reads and the writer writes by these names; a table's
# number of fields is the number of its slots.
MODEL_METADATA = _slots(
    "name", "description", "version", "subgraph_metadata", "author", "license", "associated_files", "min_parser_version"
)
SUBGRAPH_METADATA = _slots(
    "name", "description", "input_tensor_metadata", "output_tensor_metadata", "associated_files",
    "input_process_units", "output_process_units", "input_tensor_groups", "output_tensor_groups", "custom_metadata",
)
TENSOR_METADATA = _slots(
    "name", "description", "dimension_names", "content", "process_units", "stats", "associated_files"
)
CONTENT = _slots("content_properties_type", "content_properties", "range")
IMAGE_PROPERTIES = _slots("color_space", "default_size")
IMAGE_SIZE = _slots("width", "height")
PROCESS_UNIT = _slots("options_type", "options")
NORMALIZATION_OPTIONS = _slots("mean", "std")
STATS = _slots("max", "min")
ASSOCIATED_FILE = _slots("name", "description", "type", "locale", "version")
FEATURE_PROPERTIES = _slots()

# Enum and union values of metadata_schema.fbs.
DESCRIPTIONS, TENSOR_AXIS_LABELS = 1, 2  # AssociatedFileType
COLOR_SPACES = {0: "unknown", 1: "rgb", 2: "grayscale"}  # ColorSpaceType
CONTENT_FEATURE, CONTENT_IMAGE = 1, 2  # ContentProperties: FeatureProperties, ImageProperties
CONTENT_KINDS = {CONTENT_FEATURE: "feature", CONTENT_IMAGE: "image", 3: "bounding_box", 4: "audio"}
PROCESS_NORMALIZATION = 1  # ProcessUnitOptions: NormalizationOptions


def _floats(r: TableReader, table: int, index: int) -> list:
    return [float(v) for v in r.ints(table, index, "<f")]


def _files(r: TableReader, table: int, index: int) -> list:
    f = ASSOCIATED_FILE
    return [{"name": r.string(t, f["name"]), "type": r.scalar(t, f["type"], "<b", 0)} for t in r.tables(table, index)]


def _image(r: TableReader, props: int) -> dict:
    """An ``ImageProperties`` table: colour space and default size (h, w)."""
    out = {"color_space": COLOR_SPACES.get(r.scalar(props, IMAGE_PROPERTIES["color_space"], "<b", 0), "unknown")}
    size = r.table(props, IMAGE_PROPERTIES["default_size"])
    if size is not None:
        height, width = (r.scalar(size, IMAGE_SIZE[key], "<I", 0) for key in ("height", "width"))
        out["default_size"] = [height, width]
    return out


def _tensor(r: TableReader, t: int) -> dict:
    """One ``TensorMetadata``: name, content, normalisation, stats, associated files."""
    slot = TENSOR_METADATA
    out = {"name": r.string(t, slot["name"]), "description": r.string(t, slot["description"])}
    content = r.table(t, slot["content"])
    if content is not None:
        kind = r.scalar(content, CONTENT["content_properties_type"], "<B", 0)
        props = r.table(content, CONTENT["content_properties"])
        out["content"] = CONTENT_KINDS.get(kind, "none")
        if kind == CONTENT_IMAGE and props is not None:
            out.update(_image(r, props))
    for unit in r.tables(t, slot["process_units"]):
        options = r.table(unit, PROCESS_UNIT["options"])
        if r.scalar(unit, PROCESS_UNIT["options_type"], "<B", 0) == PROCESS_NORMALIZATION and options is not None:
            out["mean"] = _floats(r, options, NORMALIZATION_OPTIONS["mean"])
            out["std"] = _floats(r, options, NORMALIZATION_OPTIONS["std"])
    stats = r.table(t, slot["stats"])
    if stats is not None:
        out["stats"] = {"max": _floats(r, stats, STATS["max"]), "min": _floats(r, stats, STATS["min"])}
    out["files"] = _files(r, t, slot["associated_files"])
    return out


def parse_metadata(data: bytes) -> dict:
    """A ``ModelMetadata`` flatbuffer -> ``{name, description, version, author,
    min_parser_version, inputs: [...], outputs: [...]}``."""
    if len(data) < 8 or data[4:8] != METADATA_IDENTIFIER:
        raise FlatbufferError("the TFLITE_METADATA buffer is not a ModelMetadata flatbuffer (no M001 identifier)")
    r = TableReader(bytes(data))
    slot = MODEL_METADATA
    try:
        root = r.indirect(0)
        meta = {key: r.string(root, slot[key]) for key in ("name", "description", "version", "author")}
        meta["min_parser_version"] = r.string(root, slot["min_parser_version"])
        meta.update(files=_files(r, root, slot["associated_files"]), inputs=[], outputs=[])
        graphs = r.tables(root, slot["subgraph_metadata"])
        if graphs:
            meta["inputs"] = [_tensor(r, t) for t in r.tables(graphs[0], SUBGRAPH_METADATA["input_tensor_metadata"])]
            meta["outputs"] = [_tensor(r, t) for t in r.tables(graphs[0], SUBGRAPH_METADATA["output_tensor_metadata"])]
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
