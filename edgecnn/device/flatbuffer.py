"""A small, dependency-free reader for ``.tflite`` flatbuffers: operators and their versions.

The device side cannot rely on TensorFlow's generated schema, so this reads just what
the compatibility report needs straight from the bytes: the operator codes (builtin op
and version), how often each is used, the tensors' types, and the metadata the converter
writes (``min_runtime_version``). Layout: the FlatBuffers binary format
(https://flatbuffers.dev/internals/) and TFLite's ``schema.fbs``.

Example:
    >>> info = read_model("model_int8.tflite")  # doctest: +SKIP
    >>> info.op_counts()                        # doctest: +SKIP
    {('CONV_2D', 3): 14, ('DEPTHWISE_CONV_2D', 3): 13, ...}
"""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

# BuiltinOperator enum of TFLite's schema.fbs, in code order (0 = ADD).
BUILTIN_OPS = tuple(
    """
ADD AVERAGE_POOL_2D CONCATENATION CONV_2D DEPTHWISE_CONV_2D DEPTH_TO_SPACE DEQUANTIZE
EMBEDDING_LOOKUP FLOOR FULLY_CONNECTED HASHTABLE_LOOKUP L2_NORMALIZATION L2_POOL_2D
LOCAL_RESPONSE_NORMALIZATION LOGISTIC LSH_PROJECTION LSTM MAX_POOL_2D MUL RELU RELU_N1_TO_1 RELU6
RESHAPE RESIZE_BILINEAR RNN SOFTMAX SPACE_TO_DEPTH SVDF TANH CONCAT_EMBEDDINGS SKIP_GRAM CALL CUSTOM
EMBEDDING_LOOKUP_SPARSE PAD UNIDIRECTIONAL_SEQUENCE_RNN GATHER BATCH_TO_SPACE_ND SPACE_TO_BATCH_ND
TRANSPOSE MEAN SUB DIV SQUEEZE UNIDIRECTIONAL_SEQUENCE_LSTM STRIDED_SLICE BIDIRECTIONAL_SEQUENCE_RNN
EXP TOPK_V2 SPLIT LOG_SOFTMAX DELEGATE BIDIRECTIONAL_SEQUENCE_LSTM CAST PRELU MAXIMUM ARG_MAX
MINIMUM LESS NEG PADV2 GREATER GREATER_EQUAL LESS_EQUAL SELECT SLICE SIN TRANSPOSE_CONV
SPARSE_TO_DENSE TILE EXPAND_DIMS EQUAL NOT_EQUAL LOG SUM SQRT RSQRT SHAPE POW ARG_MIN FAKE_QUANT
REDUCE_PROD REDUCE_MAX PACK LOGICAL_OR ONE_HOT LOGICAL_AND LOGICAL_NOT UNPACK REDUCE_MIN FLOOR_DIV
REDUCE_ANY SQUARE ZEROS_LIKE FILL FLOOR_MOD RANGE RESIZE_NEAREST_NEIGHBOR LEAKY_RELU
SQUARED_DIFFERENCE MIRROR_PAD ABS SPLIT_V UNIQUE CEIL REVERSE_V2 ADD_N GATHER_ND COS WHERE RANK ELU
REVERSE_SEQUENCE MATRIX_DIAG QUANTIZE MATRIX_SET_DIAG ROUND HARD_SWISH IF WHILE
NON_MAX_SUPPRESSION_V4 NON_MAX_SUPPRESSION_V5 SCATTER_ND SELECT_V2 DENSIFY SEGMENT_SUM BATCH_MATMUL
PLACEHOLDER_FOR_GREATER_OP_CODES CUMSUM CALL_ONCE BROADCAST_TO RFFT2D CONV_3D IMAG REAL COMPLEX_ABS
HASHTABLE HASHTABLE_FIND HASHTABLE_IMPORT HASHTABLE_SIZE REDUCE_ALL CONV_3D_TRANSPOSE VAR_HANDLE
READ_VARIABLE ASSIGN_VARIABLE BROADCAST_ARGS RANDOM_STANDARD_NORMAL BUCKETIZE RANDOM_UNIFORM
MULTINOMIAL GELU DYNAMIC_UPDATE_SLICE RELU_0_TO_1 UNSORTED_SEGMENT_PROD UNSORTED_SEGMENT_MAX
UNSORTED_SEGMENT_SUM ATAN2 UNSORTED_SEGMENT_MIN SIGN BITCAST BITWISE_XOR RIGHT_SHIFT
STABLEHLO_LOGISTIC STABLEHLO_ADD STABLEHLO_DIVIDE STABLEHLO_MULTIPLY STABLEHLO_MAXIMUM
STABLEHLO_RESHAPE STABLEHLO_CLAMP STABLEHLO_CONCATENATE STABLEHLO_BROADCAST_IN_DIM
STABLEHLO_CONVOLUTION STABLEHLO_SLICE STABLEHLO_CUSTOM_CALL STABLEHLO_REDUCE STABLEHLO_ABS
STABLEHLO_AND STABLEHLO_COSINE STABLEHLO_EXPONENTIAL STABLEHLO_FLOOR STABLEHLO_LOG STABLEHLO_MINIMUM
STABLEHLO_NEGATE STABLEHLO_OR STABLEHLO_POWER STABLEHLO_REMAINDER STABLEHLO_RSQRT STABLEHLO_SELECT
STABLEHLO_SUBTRACT STABLEHLO_TANH STABLEHLO_SCATTER STABLEHLO_COMPARE STABLEHLO_CONVERT
STABLEHLO_DYNAMIC_SLICE STABLEHLO_DYNAMIC_UPDATE_SLICE STABLEHLO_PAD STABLEHLO_IOTA
STABLEHLO_DOT_GENERAL STABLEHLO_REDUCE_WINDOW STABLEHLO_SORT STABLEHLO_WHILE STABLEHLO_GATHER
STABLEHLO_TRANSPOSE DILATE STABLEHLO_RNG_BIT_GENERATOR REDUCE_WINDOW STABLEHLO_COMPOSITE
STABLEHLO_SHIFT_LEFT STABLEHLO_CBRT STABLEHLO_CASE
""".split()
)

TENSOR_TYPES = (
    "float32 float16 int32 uint8 int64 string bool int16 complex64 int8 float64 complex128 uint64 resource "
    "variant uint32 uint16 int4 bfloat16 int2 uint4 float8_e4m3fn float8_e5m2"
).split()


class FlatbufferError(ValueError):
    """The bytes are not a well-formed TFLite flatbuffer (truncated or corrupt)."""


class _Reader:
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

    def _indirect(self, pos: int) -> int:
        return pos + self._unpack("<I", pos)

    def vector(self, table: int, index: int) -> tuple[int, int]:
        """``(start, length)`` of a vector field ((0, 0) when absent)."""
        pos = self.field_pos(table, index)
        if pos is None:
            return 0, 0
        vec = self._indirect(pos)
        n = self._unpack("<I", vec)
        if vec + 4 + n > len(self.buf) + 3 * n:  # n elements of at least one byte each
            raise FlatbufferError(f"vector of {n} elements does not fit in the file (truncated?)")
        return vec + 4, n

    def tables(self, table: int, index: int) -> list[int]:
        start, n = self.vector(table, index)
        return [self._indirect(start + 4 * i) for i in range(n)]

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
        s = self._indirect(pos)
        n = self._unpack("<I", s)
        if s + 4 + n > len(self.buf):
            raise FlatbufferError("a string runs past the end of the file (truncated?)")
        return self.buf[s + 4 : s + 4 + n].decode("utf-8", "replace")


@dataclass
class Operator:
    """One operator of the main subgraph: op name, op version, input/output tensor types."""

    name: str
    version: int
    input_types: list = field(default_factory=list)
    output_types: list = field(default_factory=list)


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
    return BUILTIN_OPS[code] if 0 <= code < len(BUILTIN_OPS) else f"BUILTIN_{code}"


def read_model(source) -> ModelInfo:
    """Parse a ``.tflite`` file (path or bytes) into a :class:`ModelInfo`.

    Raises :class:`FlatbufferError` for a file that is truncated or not a TFLite model.

    Example:
        >>> info = read_model("model_int8.tflite")  # doctest: +SKIP
        >>> info.min_runtime_version                 # doctest: +SKIP
        '1.14.0'
    """
    buf = source if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise FlatbufferError("not a TFLite flatbuffer (no TFL3 identifier)")
    r = _Reader(bytes(buf))
    try:
        root = r._indirect(0)
        if root < 8 or root >= len(r.buf):
            raise FlatbufferError(f"root table offset {root} is outside the file")
        schema_version = r.scalar(root, 0, "<I", 0)
        codes = []
        for t in r.tables(root, 1):
            deprecated = r.scalar(t, 0, "<b", 0)
            custom = r.string(t, 1)
            version = r.scalar(t, 2, "<i", 1)
            builtin = r.scalar(t, 3, "<i", 0)
            # Codes above 127 live in builtin_code; older files only have the deprecated byte.
            codes.append((op_name(max(builtin, deprecated), custom), version))
        operators = []
        subgraphs = r.tables(root, 2)
        if not subgraphs:
            raise FlatbufferError("the model has no subgraph (corrupt file?)")
        for sg in subgraphs:
            tensor_types = [r.scalar(t, 1, "<b", 0) for t in r.tables(sg, 0)]

            def types(ids, tensor_types=tensor_types):
                return [
                    TENSOR_TYPES[tensor_types[i]] if 0 <= tensor_types[i] < len(TENSOR_TYPES) else "?"
                    for i in ids
                    if 0 <= i < len(tensor_types)
                ]

            for op in r.tables(sg, 3):
                index = r.scalar(op, 0, "<I", 0)
                if index >= len(codes):
                    raise FlatbufferError(f"operator uses opcode {index} but the model has {len(codes)}")
                name, version = codes[index]
                operators.append(Operator(name, version, types(r.ints(op, 1)), types(r.ints(op, 2))))
        buffers = r.tables(root, 4)
        for i, b in enumerate(buffers):  # a truncated file cuts the weights first
            start, n = r.vector(b, 0)
            if start + n > len(r.buf):
                raise FlatbufferError(
                    f"buffer {i} ends at byte {start + n} but the file has {len(r.buf)} bytes (truncated?)"
                )
        metadata = {name: data[:4096] for name, data in _metadata_buffers(r, root, buffers).items()}
    except (struct.error, IndexError, UnicodeDecodeError) as exc:
        raise FlatbufferError(f"corrupt TFLite flatbuffer: {exc}") from None
    return ModelInfo(schema_version, operators, len(subgraphs), metadata)


def _metadata_buffers(r: _Reader, root: int, buffers: list) -> dict:
    """``{name: bytes}`` of ``Model.metadata``, each entry's buffer in full."""
    metadata = {}
    for md in r.tables(root, 6):
        name = r.string(md, 0) or ""
        index = r.scalar(md, 1, "<I", 0)
        data = b""
        if index < len(buffers):
            start, n = r.vector(buffers[index], 0)
            offset = r.scalar(buffers[index], 1, "<Q", 0)
            size = r.scalar(buffers[index], 2, "<Q", 0)
            if n:
                data = r.buf[start : start + n]
            elif offset > 1 and offset + size <= len(r.buf):
                data = r.buf[offset : offset + size]
        metadata[name] = bytes(data)
    return metadata


def read_metadata_buffer(source, name: str) -> bytes | None:
    """The whole buffer of the ``Model.metadata`` entry called ``name`` (None when absent).

    Example:
        >>> read_metadata_buffer("model_int8.tflite", "TFLITE_METADATA")[4:8]  # doctest: +SKIP
        b'M001'
    """
    buf = source if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise FlatbufferError("not a TFLite flatbuffer (no TFL3 identifier)")
    r = _Reader(bytes(buf))
    try:
        root = r._indirect(0)
        return _metadata_buffers(r, root, r.tables(root, 4)).get(name)
    except (struct.error, IndexError, UnicodeDecodeError) as exc:
        raise FlatbufferError(f"corrupt TFLite flatbuffer: {exc}") from None


@dataclass
class OpShapes:
    """One operator of the main subgraph with its tensors' shapes and types (inputs that are
    absent, index -1, are left out): what a latency model needs to size an op."""

    name: str
    input_shapes: list
    input_types: list
    output_shapes: list
    output_types: list


def _opcodes(r: _Reader, root: int) -> list:
    """``[op name]`` of ``Model.operator_codes``, in opcode-index order."""
    names = []
    for t in r.tables(root, 1):
        deprecated, custom, builtin = r.scalar(t, 0, "<b", 0), r.string(t, 1), r.scalar(t, 3, "<i", 0)
        names.append(op_name(max(builtin, deprecated), custom))  # codes above 127 live in builtin_code
    return names


def read_op_shapes(source) -> list:
    """The main subgraph's operators in execution order, as :class:`OpShapes`.

    Raises :class:`FlatbufferError` for a file that is truncated or not a TFLite model.

    Example:
        >>> ops = read_op_shapes("model_int8.tflite")  # doctest: +SKIP
        >>> ops[0].name, ops[0].input_shapes[:2]        # doctest: +SKIP
        ('CONV_2D', [(1, 96, 96, 3), (8, 3, 3, 3)])
    """
    buf = source if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise FlatbufferError("not a TFLite flatbuffer (no TFL3 identifier)")
    r = _Reader(bytes(buf))
    try:
        root = r._indirect(0)
        names = _opcodes(r, root)
        subgraphs = r.tables(root, 2)
        if not subgraphs:
            raise FlatbufferError("the model has no subgraph (corrupt file?)")
        tensors = [(tuple(r.ints(t, 0)), r.scalar(t, 1, "<b", 0)) for t in r.tables(subgraphs[0], 0)]

        def pick(ids):
            found = [tensors[i] for i in ids if 0 <= i < len(tensors)]
            kinds = [TENSOR_TYPES[k] if 0 <= k < len(TENSOR_TYPES) else "?" for _, k in found]
            return [shape for shape, _ in found], kinds

        ops = []
        for op in r.tables(subgraphs[0], 3):
            index = r.scalar(op, 0, "<I", 0)
            if index >= len(names):
                raise FlatbufferError(f"operator uses opcode {index} but the model has {len(names)}")
            ops.append(OpShapes(names[index], *pick(r.ints(op, 1)), *pick(r.ints(op, 2))))
    except (struct.error, IndexError, UnicodeDecodeError) as exc:
        raise FlatbufferError(f"corrupt TFLite flatbuffer: {exc}") from None
    return ops
