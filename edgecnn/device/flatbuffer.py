"""The one reader of ``.tflite`` files: operators, tensors, buffers and metadata, in one parse.

Every part of edgecnn that looks inside a ``.tflite`` reads it here: the runtime's file
check and op-version report (:mod:`edgecnn.device.compat`), the metadata reader
(:mod:`edgecnn.device.metadata`), the profiler's op names and the GPU delegate check
(:mod:`edgecnn.tflite.gpu_compatibility`). Two backends give the same :class:`ModelInfo`:

* LiteRT's generated schema (``ai_edge_litert.schema_py_generated``), wherever LiteRT is
  installed (the toolkit always; a phone or Pi with LiteRT): op names come from its
  ``BuiltinOperator`` enum and each operator's builtin options can be decoded with it;
* a small hand reader of the FlatBuffers binary format (https://flatbuffers.dev/internals/),
  only where LiteRT is absent (a Pi with ``tflite_runtime`` alone). Its op-name and
  tensor-type tables (:mod:`edgecnn.device._schema_tables`) are generated from LiteRT's
  schema by ``python -m edgecnn.device.flatbuffer``, and a test compares them with it.

Both refuse a truncated or foreign file with :class:`FlatbufferError`.

Example:
    >>> info = read_model("model_int8.tflite")  # doctest: +SKIP
    >>> info.op_counts()                        # doctest: +SKIP
    {('CONV_2D', 3): 14, ('DEPTHWISE_CONV_2D', 3): 13, ...}
"""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from edgecnn.device import _schema_tables

TFLITE_IDENTIFIER = b"TFL3"
SCHEMA_TABLES_FILE = Path(__file__).with_name("_schema_tables.py")
# What a corrupt file raises inside either backend's accessors.
_CORRUPT = (struct.error, IndexError, UnicodeDecodeError, ValueError, TypeError, OverflowError)


class FlatbufferError(ValueError):
    """The bytes are not a well-formed TFLite flatbuffer (truncated or corrupt)."""


@lru_cache(maxsize=1)
def litert_schema():
    """LiteRT's generated ``schema.fbs`` module, or None where LiteRT is not installed."""
    try:
        from ai_edge_litert import schema_py_generated
    except ImportError:
        return None
    return schema_py_generated


def enum_names(enum_class) -> tuple:
    """The member names of a generated FlatBuffers enum class, in value order (0, 1, ...)."""
    members = {v: k for k, v in vars(enum_class).items() if not k.startswith("_") and isinstance(v, int)}
    if sorted(members) != list(range(len(members))):
        raise ValueError(f"{enum_class.__name__} is not numbered 0..{len(members) - 1}")
    return tuple(members[i] for i in range(len(members)))


@lru_cache(maxsize=1)
def builtin_ops() -> tuple:
    """Builtin operator names in code order (0 = ADD): LiteRT's schema, else the generated fallback."""
    schema = litert_schema()
    return enum_names(schema.BuiltinOperator) if schema is not None else _schema_tables.BUILTIN_OPS


@lru_cache(maxsize=1)
def tensor_types() -> tuple:
    """Tensor type names in code order (0 = float32): LiteRT's schema, else the generated fallback."""
    schema = litert_schema()
    if schema is None:
        return _schema_tables.TENSOR_TYPES
    return tuple(name.lower() for name in enum_names(schema.TensorType))


def schema_tables_source(schema) -> str:
    """The text of :mod:`edgecnn.device._schema_tables` generated from LiteRT's ``schema``."""
    import textwrap

    def table(name, words):
        body = textwrap.fill(" ".join(words), width=100)
        return f'{name} = tuple(\n    """\n{body}\n""".split()\n)\n'

    return (
        '"""The hand reader\'s tables, GENERATED from LiteRT\'s schema_py_generated: do not edit.\n\n'
        "Regenerate with ``python -m edgecnn.device.flatbuffer`` after a LiteRT upgrade;\n"
        "tests/test_device.py compares this file with the installed schema.\n"
        '"""\n\n'
        "# BuiltinOperator, in code order (0 = ADD).\n"
        + table("BUILTIN_OPS", enum_names(schema.BuiltinOperator))
        + "\n# TensorType, in code order (0 = float32), lower case.\n"
        + table("TENSOR_TYPES", [n.lower() for n in enum_names(schema.TensorType)])
    )


@dataclass
class Tensor:
    """One tensor as an operator sees it: type name (None: an absent optional input), shape,
    and whether its buffer holds data (``op_signature.cc``'s "constant")."""

    type: str | None
    shape: list = field(default_factory=list)
    is_const: bool = False


@dataclass
class Operator:
    """One operator: op name, op version, its input/output tensors, where it is, its options."""

    name: str
    version: int
    inputs: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    subgraph: int = 0
    node: int = 0
    options_table: object = field(default=None, repr=False, compare=False)  # LiteRT backend only

    @property
    def input_types(self) -> list:
        """The types of the inputs that are present (absent optional inputs left out)."""
        return [t.type for t in self.inputs if t.type is not None]

    @property
    def output_types(self) -> list:
        return [t.type for t in self.outputs if t.type is not None]

    def builtin_options(self, options_class: str):
        """The op's builtin options as LiteRT's ``<options_class>T`` object (its defaults when the
        file stores none). Needs LiteRT."""
        schema = litert_schema()
        if schema is None:
            raise FlatbufferError("decoding an op's options needs LiteRT (ai-edge-litert)")
        if self.options_table is None:
            return getattr(schema, options_class + "T")()
        parsed = getattr(schema, options_class)()
        parsed.Init(self.options_table.Bytes, self.options_table.Pos)
        return getattr(schema, options_class + "T").InitFromObj(parsed)


@dataclass
class ModelInfo:
    """What :func:`read_model` found in a ``.tflite`` file."""

    schema_version: int
    operators: list
    subgraphs: int
    metadata: dict

    def op_counts(self) -> dict:
        """``{(op name, version): number of uses}`` over every subgraph."""
        return dict(Counter((op.name, op.version) for op in self.operators))

    @property
    def min_runtime_version(self) -> str | None:
        """The converter's own estimate of the oldest runtime that runs the model."""
        raw = self.metadata.get("min_runtime_version")
        if not raw:
            return None
        return raw.split(b"\0", 1)[0].decode("ascii", "replace") or None


def op_name(code: int, custom: str | None = None) -> str:
    """The name of builtin operator ``code`` (``CUSTOM:<name>`` for custom ops).

    Example:
        >>> op_name(3), op_name(32, "TFLite_Detection_PostProcess")
        ('CONV_2D', 'CUSTOM:TFLite_Detection_PostProcess')
    """
    if custom:
        return f"CUSTOM:{custom}"
    names = builtin_ops()
    return names[code] if 0 <= code < len(names) else f"BUILTIN_{code}"


def _type_name(code: int) -> str:
    names = tensor_types()
    return names[code] if 0 <= code < len(names) else "?"


def read_model(source) -> ModelInfo:
    """Parse a ``.tflite`` file (path or bytes) into a :class:`ModelInfo`, with LiteRT's schema
    where it is installed, else the hand reader.

    Raises :class:`FlatbufferError` for a file that is truncated or not a TFLite model.

    Example:
        >>> info = read_model("model_int8.tflite")  # doctest: +SKIP
        >>> info.min_runtime_version                 # doctest: +SKIP
        '1.14.0'
    """
    buf = bytes(source) if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()
    if len(buf) < 8 or buf[4:8] != TFLITE_IDENTIFIER:
        raise FlatbufferError("not a TFLite flatbuffer (no TFL3 identifier)")
    root = struct.unpack_from("<I", buf, 0)[0]
    if root < 8 or root >= len(buf):
        raise FlatbufferError(f"root table offset {root} is outside the file")
    schema = litert_schema()
    try:
        return _parse_with_schema(buf, schema) if schema is not None else _parse_by_hand(buf)
    except FlatbufferError:
        raise
    except _CORRUPT as exc:
        raise FlatbufferError(f"corrupt TFLite flatbuffer (truncated?): {exc}") from None


def read_metadata_buffer(source, name: str) -> bytes | None:
    """The whole buffer of the ``Model.metadata`` entry called ``name`` (None when absent).

    Example:
        >>> read_metadata_buffer("model_int8.tflite", "TFLITE_METADATA")[4:8]  # doctest: +SKIP
        b'M001'
    """
    return read_model(source).metadata.get(name)


# --- the checks both backends make, with the same messages ---


def check_count(n: int, buf: bytes, what: str) -> int:
    """``n`` when a vector of ``n`` elements (4 bytes or more each) can fit in ``buf``."""
    if n < 0 or 4 * n > len(buf):
        raise FlatbufferError(f"{what}: {n} elements do not fit in the {len(buf)}-byte file (truncated?)")
    return n


def check_opcode(index: int, codes: list) -> tuple:
    if index >= len(codes):
        raise FlatbufferError(f"operator uses opcode {index} but the model has {len(codes)}")
    return codes[index]


def check_buffer_end(index: int, start: int, n: int, buf: bytes) -> None:
    """A truncated file cuts the weights (the buffers) first."""
    if start + n > len(buf):
        raise FlatbufferError(f"buffer {index} ends at byte {start + n} but the file has {len(buf)} bytes (truncated?)")


def check_subgraphs(n: int) -> int:
    if not n:
        raise FlatbufferError("the model has no subgraph (corrupt file?)")
    return n


def metadata_bytes(buf: bytes, start: int, n: int, offset: int, size: int) -> bytes:
    """A metadata entry's data: in the buffer's vector, or at ``offset`` outside the flatbuffer."""
    if n:
        return bytes(buf[start : start + n])
    if offset > 1 and offset + size <= len(buf):
        return bytes(buf[offset : offset + size])
    return b""


# --- backend 1: LiteRT's generated schema ---


def _parse_with_schema(buf: bytes, schema) -> ModelInfo:
    model = schema.Model.GetRootAs(buf, 0)
    codes = []
    for i in range(check_count(model.OperatorCodesLength(), buf, "operator codes")):
        c = model.OperatorCodes(i)
        custom = c.CustomCode()
        # Codes above 127 live in builtin_code; older files only have the deprecated byte.
        custom = custom.decode("utf-8", "replace") if custom else None
        codes.append((op_name(max(c.BuiltinCode(), c.DeprecatedBuiltinCode()), custom), c.Version()))
    buffers = [model.Buffers(i) for i in range(check_count(model.BuffersLength(), buf, "buffers"))]
    spans = []
    for i, b in enumerate(buffers):
        o = b._tab.Offset(4)
        start, n = (b._tab.Vector(o), b.DataLength()) if o else (0, 0)
        check_buffer_end(i, start, n, buf)
        spans.append((start, n))
    operators = []
    n_subgraphs = check_subgraphs(model.SubgraphsLength())
    for s in range(n_subgraphs):
        sg = model.Subgraphs(s)
        tensors = []
        for t in (sg.Tensors(i) for i in range(check_count(sg.TensorsLength(), buf, "tensors"))):
            shape = [int(d) for d in t.ShapeAsNumpy()] if t.ShapeLength() else []
            tensors.append(Tensor(_type_name(t.Type()), shape, _holds_data(spans, t.Buffer())))
        for node in range(check_count(sg.OperatorsLength(), buf, "operators")):
            op = sg.Operators(node)
            name, version = check_opcode(op.OpcodeIndex(), codes)
            ins = list(op.InputsAsNumpy()) if op.InputsLength() else []
            outs = list(op.OutputsAsNumpy()) if op.OutputsLength() else []
            table = op.BuiltinOptions() if op.BuiltinOptionsType() else None
            operators.append(Operator(name, version, _pick(tensors, ins), _pick(tensors, outs), s, node, table))
    metadata = {}
    for md in (model.Metadata(i) for i in range(check_count(model.MetadataLength(), buf, "metadata"))):
        index = md.Buffer()
        data = b""
        if index < len(buffers):
            data = metadata_bytes(buf, *spans[index], buffers[index].Offset(), buffers[index].Size())
        metadata[(md.Name() or b"").decode("utf-8", "replace")] = data
    return ModelInfo(model.Version(), operators, n_subgraphs, metadata)


def _holds_data(spans: list, buffer: int) -> bool:
    """``op_signature.cc``'s "constant": buffer 0 is the empty sentinel; data kept outside the
    flatbuffer (``Buffer.offset``, models over 2 GB) does not count."""
    return 0 < buffer < len(spans) and spans[buffer][1] > 0


def _pick(tensors: list, indices) -> list:
    """The tensors at ``indices``; an index -1 (an absent optional input) is a no-type tensor;
    an index past the subgraph's tensors is left out."""
    return [Tensor(None) if i < 0 else tensors[i] for i in (int(i) for i in indices) if i < len(tensors)]


# --- backend 2: the hand reader, where LiteRT is not installed ---


class TableReader:
    """Fields of FlatBuffers tables by slot number, every read bounds-checked: the hand reader's
    backend, and the reader of the ``ModelMetadata`` flatbuffer (:mod:`edgecnn.device.metadata`)."""

    def __init__(self, buf: bytes):
        self.buf = buf

    def _unpack(self, fmt: str, pos: int):
        size = struct.calcsize(fmt)
        if pos < 0 or pos + size > len(self.buf):
            raise FlatbufferError(f"offset {pos} is past the end of the {len(self.buf)}-byte file (truncated?)")
        return struct.unpack_from(fmt, self.buf, pos)[0]

    def field_pos(self, table: int, index: int) -> int | None:
        vtable = table - self._unpack("<i", table)
        vsize = self._unpack("<H", vtable)
        entry = 4 + 2 * index
        if entry + 2 > vsize:
            return None
        off = self._unpack("<H", vtable + entry)
        return table + off if off else None

    def scalar(self, table: int, index: int, fmt: str, default=0):
        pos = self.field_pos(table, index)
        return default if pos is None else self._unpack(fmt, pos)

    def indirect(self, pos: int) -> int:
        return pos + self._unpack("<I", pos)

    def table(self, table: int, index: int) -> int | None:
        pos = self.field_pos(table, index)
        return None if pos is None else self.indirect(pos)

    def vector(self, table: int, index: int) -> tuple[int, int]:
        """``(start, length)`` of a vector field ((0, 0) when absent)."""
        pos = self.field_pos(table, index)
        if pos is None:
            return 0, 0
        vec = self.indirect(pos)
        n = self._unpack("<I", vec)
        if vec + 4 + n > len(self.buf) + 3 * n:  # n elements of at least one byte each
            raise FlatbufferError(f"vector of {n} elements does not fit in the file (truncated?)")
        return vec + 4, n

    def tables(self, table: int, index: int) -> list[int]:
        start, n = self.vector(table, index)
        return [self.indirect(start + 4 * i) for i in range(n)]

    def ints(self, table: int, index: int, fmt: str = "<i") -> list[int]:
        start, n = self.vector(table, index)
        size = struct.calcsize(fmt)
        if start + size * n > len(self.buf):
            raise FlatbufferError("a vector runs past the end of the file (truncated?)")
        return [struct.unpack_from(fmt, self.buf, start + size * i)[0] for i in range(n)]

    def string(self, table: int, index: int) -> str | None:
        pos = self.field_pos(table, index)
        if pos is None:
            return None
        s = self.indirect(pos)
        n = self._unpack("<I", s)
        if s + 4 + n > len(self.buf):
            raise FlatbufferError("a string runs past the end of the file (truncated?)")
        return self.buf[s + 4 : s + 4 + n].decode("utf-8", "replace")


def _parse_by_hand(buf: bytes) -> ModelInfo:
    """Slot numbers are schema.fbs's: Model(version 0, operator_codes 1, subgraphs 2, buffers 4,
    metadata 6), OperatorCode(deprecated_builtin_code 0, custom_code 1, version 2, builtin_code 3),
    SubGraph(tensors 0, operators 3), Tensor(shape 0, type 1, buffer 2), Operator(opcode_index 0,
    inputs 1, outputs 2), Buffer(data 0, offset 1, size 2), Metadata(name 0, buffer 1)."""
    r = TableReader(buf)
    root = r.indirect(0)
    codes = []
    for t in r.tables(root, 1):
        builtin = max(r.scalar(t, 3, "<i", 0), r.scalar(t, 0, "<b", 0))
        codes.append((op_name(builtin, r.string(t, 1)), r.scalar(t, 2, "<i", 1)))
    buffers = r.tables(root, 4)
    spans = []
    for i, b in enumerate(buffers):
        start, n = r.vector(b, 0)
        check_buffer_end(i, start, n, buf)
        spans.append((start, n))
    operators = []
    subgraphs = r.tables(root, 2)
    check_subgraphs(len(subgraphs))
    for s, sg in enumerate(subgraphs):
        tensors = [
            Tensor(_type_name(r.scalar(t, 1, "<b", 0)), r.ints(t, 0), _holds_data(spans, r.scalar(t, 2, "<I", 0)))
            for t in r.tables(sg, 0)
        ]
        for node, op in enumerate(r.tables(sg, 3)):
            name, version = check_opcode(r.scalar(op, 0, "<I", 0), codes)
            ins, outs = _pick(tensors, r.ints(op, 1)), _pick(tensors, r.ints(op, 2))
            operators.append(Operator(name, version, ins, outs, s, node))
    metadata = {}
    for md in r.tables(root, 6):
        index = r.scalar(md, 1, "<I", 0)
        data = b""
        if index < len(buffers):
            outside = r.scalar(buffers[index], 1, "<Q", 0), r.scalar(buffers[index], 2, "<Q", 0)
            data = metadata_bytes(buf, *spans[index], *outside)
        metadata[r.string(md, 0) or ""] = data
    return ModelInfo(r.scalar(root, 0, "<I", 0), operators, len(subgraphs), metadata)


@dataclass
class OpShapes:
    """One operator of the main subgraph with its tensors' shapes and types (inputs that are
    absent, index -1, are left out): what a latency model needs to size an op."""

    name: str
    input_shapes: list
    input_types: list
    output_shapes: list
    output_types: list


def read_op_shapes(source) -> list:
    """The main subgraph's operators in execution order, as :class:`OpShapes` (read by
    :func:`read_model`, the one reader).

    Raises :class:`FlatbufferError` for a file that is truncated or not a TFLite model.

    Example:
        >>> ops = read_op_shapes("model_int8.tflite")  # doctest: +SKIP
        >>> ops[0].name, ops[0].input_shapes[:2]        # doctest: +SKIP
        ('CONV_2D', [(1, 96, 96, 3), (8, 3, 3, 3)])
    """

    def present(tensors):
        return [t for t in tensors if t.type is not None]

    return [
        OpShapes(
            op.name,
            [tuple(t.shape) for t in present(op.inputs)],
            [t.type for t in present(op.inputs)],
            [tuple(t.shape) for t in present(op.outputs)],
            [t.type for t in present(op.outputs)],
        )
        for op in read_model(source).operators
        if op.subgraph == 0
    ]


def _main() -> None:  # pragma: no cover - run by hand after a LiteRT upgrade
    from edgecnn._io import write_text

    schema = litert_schema()
    if schema is None:
        raise SystemExit("regenerating the tables needs LiteRT (pip install ai-edge-litert)")
    write_text(SCHEMA_TABLES_FILE, schema_tables_source(schema))
    print(f"wrote {SCHEMA_TABLES_FILE}")


if __name__ == "__main__":  # pragma: no cover
    _main()
