"""Which ops of a ``.tflite`` the mobile GPU delegate would not run, before trying on a phone.

Two checkers, one report (``compatible``, ``checked``, ``unsupported``: op + reason, ``note``):

**edgecnn's port of ``gpu_compatibility.cc``** (:func:`check_model`, TensorFlow-free, so the
device side can use it too). TFLite's GPU delegate decides which nodes it takes with
``tflite::CheckGpuDelegateCompatibility`` (``tensorflow/lite/tools/versioning/gpu_compatibility.cc``);
TensorFlow up to 2.17 ran the same function in its model analyzer. This module reads the
``.tflite`` with the flatbuffer schema that ships with ``ai_edge_litert``
(``ai_edge_litert.schema_py_generated``), builds for every operator of every subgraph the
same "op signature" as ``op_signature.cc`` (input/output tensor type, shape, and "constant"
= the tensor's buffer holds data; an optional input, index -1, counts as a no-type input)
and applies the per-op rules, with the C++ file's reasons as messages.

Ported faithfully (source: tensorflow/tensorflow ``gpu_compatibility.cc`` at commit
03a5e4e19a9c; the exact r2.17 revision was not pinned: the older revision 057f8c81 differs
only in rules added since: broadcast checks for ADD/MUL, EMBEDDING_LOOKUP,
DYNAMIC_UPDATE_SLICE, STABLEHLO_CLAMP and the 2-D SELECT_V2 rule). Checked against
TensorFlow 2.17.1's analyzer on 13 models (the tiny float32/int8/dynamic-range conv net,
TOPK_V2, ARG_MAX + CAST, CONV_3D, depth multiplier 2 on 1 and 3 channels, a shrinking
STRIDED_SLICE, transpose conv, gather, reduce-max, a mixed add/mul/concat/resize/pad/pool
net): the same flagged nodes and the same reasons on all 13 (2026-11-30, throwaway venv).

- the list of supported builtin ops: any other op (TOPK_V2, CONV_3D, ARG_MAX, ...) is
  "Not supported op <NAME>";
- fused activations (SIGN_BIT rejected) on CONV_2D, DEPTHWISE_CONV_2D, pooling, MUL, SUB, DIV;
- the number of runtime (non-constant) and constant inputs and of outputs per op, the
  constant int32 axes of MEAN/SUM/REDUCE_*, FULLY_CONNECTED's constant-input, weights-format
  and keep_num_dims rules, strides/dilations/kernels > 0, DEPTHWISE_CONV_2D's shape rules
  (4-D, depth multiplier), SOFTMAX beta == 1, STRIDED_SLICE masks and rank, SLICE rank,
  PAD/PADV2/MIRROR_PAD paddings shape and reflect mode, RESIZE_BILINEAR corner flags,
  DEPTH_TO_SPACE/SPACE_TO_DEPTH block size, CAST/GATHER/CUMSUM/ONE_HOT/SELECT_V2/
  DEQUANTIZE/EMBEDDING_LOOKUP/DYNAMIC_UPDATE_SLICE type and shape rules, LSTM kernel rules,
  ADD/MUL broadcasting with the "enhanced broadcast" the offline check assumes, ADD_N with 2
  inputs;
- custom ops: only ``Convolution2DTransposeBias``, ``MaxPoolingWithArgmax2D``,
  ``MaxUnpooling2D`` and ``Resampler`` pass, with their input/output counts.

Not ported: the stride/kernel values inside those custom ops' raw ``custom_options``
(a C struct the delegate casts; edgecnn never emits these ops), and the per-op *versions*:
``gpu_compatibility.cc`` itself checks no op version (older ``model_builder.cc`` did), so
neither does this port; the versions are still reported by ``edgecnn bench``'s runtime
check. Int8 models: the file has no int8 rule per op; the delegate runs a quantized model
through its quantized-model path (dequantizing int8 weights, on by default), which these
rules take as given, as the C++ check does. Tensor data kept outside the flatbuffer
(``Buffer.offset``, models over 2 GB) does not count as constant, as in ``op_signature.cc``.

**TensorFlow's own analyzer** (TF <= 2.17): ``tf.lite.experimental.Analyzer.analyze(...,
gpu_compatibility=True)`` prints, after an op it rejects, ``GPU COMPATIBILITY WARNING:
<reason>`` (``model_analyzer.cc``); that text is captured and parsed
(:func:`parse_analyzer_output`). **TensorFlow 2.18 and later do not check**: the GPU rules
were taken out of the analyzer (tensorflow/tensorflow PR #74830, October 2024; issue
#77042), which now prints "Your model looks compatible with GPU delegate" for every model,
TOPK_V2 included (LiteRT's ``_pywrap_analyzer_wrapper`` too). Seen with 2.18.1 and 2.21.0;
2.17.1 still flags TOPK_V2 (issue #77042 names 2.19, but 2.18.1 already checks nothing). So
from 2.18 on, or with no TensorFlow at all, :func:`gpu_compatibility` uses the port and its
note starts with :data:`PORT_NOTE`.

Either verdict is static and needs confirming on the phone (``benchmark_model
--use_gpu=true`` reports how many nodes the delegate took, and ``edgecnn report`` shows it).

Example:
    >>> gpu_compatibility("model_float32.tflite")  # doctest: +SKIP
    {'compatible': True, 'checked': True, 'unsupported': [], 'checked_by': 'edgecnn', ...}
"""

from __future__ import annotations

import contextlib
import io
import re

OP_LINE = re.compile(r"^\s*Op#(?P<node>\d+) (?P<op>[A-Z0-9_]+)\(")
SUBGRAPH_LINE = re.compile(r"^Subgraph#(?P<sg>\d+)")
WARNING = "GPU COMPATIBILITY WARNING: "
#: The last TensorFlow (major, minor) whose analyzer checks ops against the GPU delegate.
ANALYZER_CHECKS_UNTIL = (2, 17)


def analyzer_checks_gpu(tf_version: str) -> bool:
    """Whether TensorFlow ``tf_version``'s analyzer still checks GPU compatibility.

    Example:
        >>> analyzer_checks_gpu("2.17.1"), analyzer_checks_gpu("2.18.1"), analyzer_checks_gpu("2.21.0")
        (True, False, False)
    """
    m = re.match(r"(\d+)\.(\d+)", tf_version)
    return bool(m) and (int(m[1]), int(m[2])) <= ANALYZER_CHECKS_UNTIL


def parse_analyzer_output(text: str) -> list:
    """``[{"subgraph", "node", "op", "reason"}]`` for each op the analyzer's text flags."""
    flagged, subgraph, last_op = [], 0, None
    for line in text.splitlines():
        if m := SUBGRAPH_LINE.match(line):
            subgraph, last_op = int(m["sg"]), None
        elif m := OP_LINE.match(line):
            last_op = (int(m["node"]), m["op"])
        elif line.startswith(WARNING) and last_op is not None:
            reason = line[len(WARNING) :].strip()
            if reason.startswith("Subgraph#"):  # the per-subgraph summary, not an op
                last_op = None
                continue
            flagged.append({"subgraph": subgraph, "node": last_op[0], "op": last_op[1], "reason": reason})
            last_op = None
    return flagged


def describe(flagged: list) -> str:
    """One line for the bench output.

    Example:
        >>> describe([{"subgraph": 0, "node": 2, "op": "CONV_3D", "reason": "Not supported op CONV_3D"}])
        'the GPU delegate would not run 1 op(s): CONV_3D (node 2: Not supported op CONV_3D)'
    """
    if not flagged:
        return "no op flagged for the GPU delegate (confirm on the phone with benchmark_model --use_gpu=true)"
    ops = ", ".join(f"{f['op']} (node {f['node']}: {f['reason']})" for f in flagged)
    return f"the GPU delegate would not run {len(flagged)} op(s): {ops}"


# ---------------------------------------------------------------------------------------------
# edgecnn's port of tensorflow/lite/tools/versioning/gpu_compatibility.cc (see the module docstring)

PORT_NOTE = "checked by edgecnn's port of gpu_compatibility.cc (the rules TF <= 2.17's analyzer applied)"
_ACT_SIGN_BIT = 5  # schema ActivationFunctionType.SIGN_BIT; NONE, RELU, RELU_N1_TO_1, RELU6, TANH pass
_ELEMENTWISE_1 = set("ABS CEIL COS ELU EXP FLOOR GELU LOG LOGISTIC NEG RSQRT SIGN SIN SQRT SQUARE TANH".split())
_ELEMENTWISE_2 = set(
    "ATAN2 DIV EQUAL FLOOR_DIV FLOOR_MOD GREATER GREATER_EQUAL LOGICAL_AND LESS LESS_EQUAL MAXIMUM "
    "MINIMUM NOT_EQUAL POW SQUARED_DIFFERENCE SUB".split()
)


# TfLiteType in enum order (c_api_types.h), for the messages that print a type's number.
_TFLITE_TYPES = (
    "notype float32 int32 uint8 int64 string bool int16 complex64 int8 float16 float64 complex128 uint64 "
    "resource variant uint32 uint16 int4 bfloat16"
).split()


def _type_name(type_) -> str:
    """``TfLiteTypeGetName``: "FLOAT32", "INT64", ... ("NOTYPE" for an optional input)."""
    return (type_ or "notype").upper()


def _type_enum(type_) -> int | str:
    t = type_ or "notype"
    return _TFLITE_TYPES.index(t) if t in _TFLITE_TYPES else t


class _Spec:
    """One tensor of an op signature (``op_signature.cc``): type (None: optional input), dims, is_const."""

    __slots__ = ("type", "dims", "is_const")

    def __init__(self, type_=None, dims=(), is_const=False):
        self.type, self.dims, self.is_const = type_, list(dims), is_const


class _Unsupported(Exception):
    """A rule of gpu_compatibility.cc failed; the message is the C++ check's."""


def _fail(msg: str):
    raise _Unsupported(msg)


def _runtime_inputs(ins) -> int:
    return sum(1 for t in ins if not t.is_const and t.type is not None)


def _inputs_outputs(ins, outs, runtime: int, n_out: int) -> None:
    got = _runtime_inputs(ins)
    if got != runtime:
        _fail(f"Expected {runtime} runtime input tensor(s), but node has {got} runtime input(s).")
    if len(outs) != n_out:
        _fail(f"Expected {n_out} output tensor(s), but node has {len(outs)} output(s).")


def _inputs_consts_outputs(ins, outs, runtime: int, consts: int, n_out: int) -> None:
    got = sum(1 for t in ins if t.is_const)
    if got != consts:
        _fail(f"Expected {consts} const input tensor(s), but node has {got} const input(s).")
    _inputs_outputs(ins, outs, runtime, n_out)


def _passes(check, *args) -> bool:
    try:
        check(*args)
    except _Unsupported:
        return False
    return True


def _one_or_two_operands(ins, outs) -> None:
    if not _passes(_inputs_consts_outputs, ins, outs, 2, 0, 1) and not _passes(
        _inputs_consts_outputs, ins, outs, 1, 1, 1
    ):
        _fail("Op can only handle 1 or 2 operand(s).")


def _tensor_available(ins, idx: int) -> None:
    if idx >= len(ins):
        _fail(f"Requested index goes beyond array size: {idx} vs {len(ins)}")


def _convolution_io(ins, outs) -> None:
    runtime = _runtime_inputs(ins)
    if runtime > 2:
        _fail(f"Expected 1 or 2 input tensor(s), but node has {runtime} runtime inputs.")
    if len(outs) != 1:
        _fail(f"Expected 1 output tensor(s), but node has {len(outs)} runtime outputs.")
    if runtime == 1:
        _tensor_available(ins, 1)


def _strides(h: int, w: int) -> None:
    if h <= 0 or w <= 0:
        _fail(f"Incorrect stride values: stride_height = {h}, stride_width = {w}")


def _dilation(h: int, w: int) -> None:
    if h <= 0 or w <= 0:
        _fail(f"Incorrect dilation values: dilation_height = {h}, dilation_width = {w}")


def _kernels(h: int, w: int) -> None:
    if h <= 0 or w <= 0:
        _fail(f"Incorrect kernel values: kernel_height = {h}, kernel_width = {w}")


def _activation(act: int) -> None:
    if act == _ACT_SIGN_BIT:
        _fail("TfLiteFusedActivation.kTfLiteActSignBit")


def _axes_int32_const(name: str, ins, idx: int) -> None:
    axes = ins[idx]
    if not axes.is_const:
        _fail(f"{name} is only supported with constant axes.")
    if axes.type != "int32":
        _fail(f"{name} supports int32 tensor for axes. But node has {_type_name(axes.type)}")


def _num_elements(dims) -> int:
    n = 1
    for d in dims:
        n *= d
    return n


def _broadcastable(longer, shorter) -> bool:
    """``CheckIsBroadcastable``: numpy-style broadcasting, aligned from the last dimension."""
    for i in range(1, max(len(longer), len(shorter)) + 1):
        a = longer[-i] if i <= len(longer) else 1
        b = shorter[-i] if i <= len(shorter) else 1
        if a != b and a != 1 and b != 1:
            return False
    return True


def _add_mul_broadcast(in0, in1) -> None:
    """``CheckAddMulBroadcastCompatibility`` with kEnhancedBroadcast, as the offline check uses."""
    if len(in0.dims) > 1 and len(in1.dims) > 1 and len(in0.dims) != len(in1.dims):
        longer, shorter = (in0.dims, in1.dims) if len(in0.dims) >= len(in1.dims) else (in1.dims, in0.dims)
        if not _broadcastable(longer, shorter):
            a, b = ",".join(map(str, in0.dims)), ",".join(map(str, in1.dims))
            _fail(f"Doesn't support broadcasting - input0: [{a}], input1: [{b}]")


def _pooling(ins, outs, o) -> None:
    _inputs_outputs(ins, outs, 1, 1)
    _kernels(o.filterHeight, o.filterWidth)
    _strides(o.strideH, o.strideW)
    _activation(o.fusedActivationFunction)


def _depthwise(ins, outs, o) -> None:
    _convolution_io(ins, outs)
    _strides(o.strideH, o.strideW)
    _dilation(o.dilationHFactor, o.dilationWFactor)
    _activation(o.fusedActivationFunction)
    inp, flt, out = ins[0], ins[1], outs[0]
    bias = ins[2] if len(ins) > 2 else None
    if len(inp.dims) != 4:
        _fail("input.dims.size != 4")
    if len(flt.dims) != 4:
        _fail("filter.dims.size != 4")
    if len(out.dims) != 4:
        _fail("output.dims.size != 4")
    if inp.dims[0] != out.dims[0]:
        _fail("input.b != output.b")
    in_depth, out_depth, mult = inp.dims[3], out.dims[3], o.depthMultiplier
    if flt.dims[3] != out_depth:
        _fail("filter.i != output.c")
    if out_depth != in_depth * mult:
        _fail("output.c != input.c * depth_multiplier")
    if bias is not None and _num_elements(bias.dims) != out_depth:
        _fail("bias.size != output.c")
    if mult != 1 and in_depth != 1:
        _fail("depth_multiplier != 1 && input.c != 1")


def _cumsum(ins, outs, o) -> None:
    if len(ins) != 2:
        _fail("Expects 2 inputs and 1 output")
    floats = ("float16", "float32")
    if ins[0].type not in floats or outs[0].type != ins[0].type or ins[1].type != "int32" or not ins[1].is_const:
        _fail("Input/output must be float type and indices must be constant int32 type")


def _one_hot(ins, outs, o) -> None:
    if len(ins) != 4 and len(outs) != 1:
        _fail("Expects 4 inputs and 1 output")
    error = (
        "Indices must be int32 type, on/off tensors must be constant, scalar, float type, axis must be -1 or last dim"
    )
    if ins[0].type != "int32":
        _fail(error)
    n = len(ins[0].dims)
    if o.axis != -1 and (n == 0 or o.axis != ins[0].dims[n - 1]):
        _fail(error)
    for i in range(n - 1):
        if n > 3 and i == 0:
            continue
        if ins[0].dims[i] != 1:
            _fail(f"Unspported non-singleton dim at {i}")
    on, off = ins[2], ins[3]
    if on.type != "float32" or off.type != "float32":
        _fail(error)
    if not on.is_const or not off.is_const or len(on.dims) > 1 or len(off.dims) > 1:
        _fail(error)
    if (on.dims and on.dims[0] > 1) or (off.dims and off.dims[0] > 1):
        _fail(error)


def _select_v2(ins, outs, o) -> None:
    if len(ins) != 3 or len(outs) != 1:
        _fail("Expected 3 inputs and 1 output")
    error = (
        "Cond must be float or bool type, if, else tensors must be float and either be same the shape "
        "as output or constant, scalar."
    )
    floats = ("float16", "float32")
    if ins[0].type not in ("bool", *floats) or ins[1].type not in floats or ins[2].type not in floats:
        _fail(error)
    out_dims = outs[0].dims
    for t, which in ((ins[1], "if"), (ins[2], "else")):
        if t.dims and t.dims != out_dims and (len(t.dims) > 1 or t.dims[0] > 1):
            _fail(error)
        if t.is_const and len(t.dims) == 2:
            _fail(f"2-D {which} tensor only supported if constant.")


def _custom(name: str, ins, outs) -> None:
    if name == "Convolution2DTransposeBias":
        _tensor_available(ins, 1)  # its strides live in raw custom_options: not ported
    elif name == "MaxPoolingWithArgmax2D":
        _inputs_outputs(ins, outs, 1, 2)  # kernel/stride values in custom_options: not ported
    elif name == "MaxUnpooling2D":
        _inputs_outputs(ins, outs, 2, 1)
    elif name == "Resampler":
        _inputs_outputs(ins, outs, 2, 1)
    else:
        _fail(f"Not supported custom op {name}")


def _fully_connected(ins, outs, o) -> None:
    if o.weightsFormat != 0:
        _fail(f"Unsupported FullyConnected weights format: {o.weightsFormat}")
    if _runtime_inputs(ins) > 2:
        _fail("FullyConnected doesn't support more than 2 runtime inputs.")
    if ins[0].is_const:
        _fail("FullyConnected doesn't support constant input.")
    if o.keepNumDims and len(ins[0].dims) != len(outs[0].dims):
        _fail("Input and output dimensions different and FullyConnected doesn't support keep_num_dims.")


def _gather(ins, outs, o) -> None:
    _one_or_two_operands(ins, outs)
    if ins[0].type == "int32":
        _fail("Does not accept INT32 input.")
    if len(ins[1].dims) != 1:
        _fail("Only support 1D indices")
    if ins[1].type != "int32":
        _fail("Only accept INT32 indices")


def _lstm(ins, outs, o) -> None:
    act = o.fusedActivationFunction
    if o.kernelType == 0:  # FULL
        if len(ins) not in (20, 24):
            _fail(f"Expected 20 or 24 input tensors, but node has {len(ins)} input(s).")
        if len(outs) != 1:
            _fail(f"Expected 1 output tensor, but node has {len(outs)} output(s).")
        if act not in (4, 6):  # TfLite kTfLiteActTanh / kTfLiteActSigmoid (schema has no SIGMOID)
            _fail(f"Only sigmoid or tanh activation is supported, but node has {act}")
    else:  # BASIC
        _inputs_consts_outputs(ins, outs, 3, 2, 4)
        if act != 4:
            _fail(f"Only TANH activation is supported. but node has {act}")
        if o.cellClip != 0.0:
            _fail("cell_clip is not supported.")
        if o.projClip != 0.0:
            _fail("proj_clip is not supported.")


def _mul(ins, outs, o) -> None:
    if len(ins) != 2:
        _fail("MUL requires two input tensors.")
    a, b = ins[0].dims, ins[1].dims
    if len(a) == len(b):
        if any(x < y for x, y in zip(a, b)) and any(y < x for x, y in zip(a, b)):
            _fail("MUL requires one tensor that not less than second in all dimensions.")
    else:
        _add_mul_broadcast(ins[0], ins[1])
    _activation(o.fusedActivationFunction)


def _pad(op: str, ins, outs, o) -> None:
    if op == "MIRROR_PAD" and o.mode != 0:  # REFLECT
        _fail(f"Only Reflective padding is supported for Mirror Pad operation. But node has {o.mode}")
    _inputs_outputs(ins, outs, 1, 1)
    _tensor_available(ins, 1)
    pad = ins[1].dims
    if len(pad) != 2:
        _fail(f"Invalid paddings tensor dimension: expected 2 dim, got {len(pad)} dim")
    if pad[0] not in (3, 4) or pad[1] != 2:
        _fail(f"Invalid paddings tensor shape: expected 4x2 or 3x2, got {pad[0]}x{pad[1]}")


def _strided_slice(ins, outs, o) -> None:
    if o.ellipsisMask:
        _fail("Slice does not support ellipsis_mask.")
    if o.newAxisMask:
        _fail("Slice does not support new_axis_mask.")
    if o.shrinkAxisMask:
        _fail("Slice does not support shrink_axis_mask parameter.")  # the C++ ends with a space
    if len(ins) < 4:
        _fail("STRIDED_SLICE requires 4 inputs.")
    if len(ins[0].dims) not in (3, 4):
        _fail("STRIDED_SLICE supports for 3 or 4 dimensional tensors only.")


def _block_size(op: str, ins, outs, o) -> None:
    _inputs_outputs(ins, outs, 1, 1)
    if o.blockSize == 1:
        _fail(f"{op} block_size = 1 is a no-op.")
    if o.blockSize < 1:
        _fail(f"{op} block_size must be > 1.")


def _embedding_lookup(ins, outs, o) -> None:
    if len(ins) != 2:
        _fail(f"Expected 2, but got {len(ins)} inputs.")
    ids, value, out = ins[0], ins[1], outs[0]
    if len(ids.dims) != 1:
        _fail(f"Expected 1D, but got {len(ids.dims)}D input #0.")
    if len(value.dims) < 2:
        _fail(f"Expected > 1D, but got {len(value.dims)}D input #1.")
    if len(outs) != 1:
        _fail(f"Expected 1, but got {len(outs)} outputs.")
    if len(value.dims) != len(out.dims):
        _fail(f"Expected {len(value.dims)}, but got {len(out.dims)} for output.")
    for i in range(1, len(out.dims)):
        if value.dims[i] != out.dims[i]:
            _fail(f"Expected {value.dims[i]}, but got {out.dims[i]} for output.dim[{i}].")
    if value.type not in ("int8", "int4", "float32"):
        _fail(f"Expected int8, int4, or float32, but got {_type_name(value.type)} for input #1.")


def _dynamic_update_slice(ins, outs, o) -> None:
    if len(ins) != 3:
        _fail("DynamicUpdateSlice requires 3 inputs.")
    operand, update, start = ins
    if len(operand.dims) == 4 and operand.dims[0] != 1:
        _fail("DynamicUpdateSlice only support 4D operand with batch size 1.")
    if len(start.dims) > 1:
        _fail("DynamicUpdateSlice only support 1D start_indices.")
    if operand.type != update.type:
        _fail(
            "Array to update and updated slice must have the same data type, but got: array to update: "
            f"{_type_enum(operand.type)}, updated slice: {_type_enum(update.type)}"
        )
    if len(start.dims) != 1:
        _fail(f"Start indices must have be 1D, but got: {len(start.dims)}")
    if start.type != "int32":
        _fail("start_indices must be of type int32.")
    if len(update.dims) != len(operand.dims):
        _fail(
            "Operand and update must have the same number of dimensions, but got: operand: "
            f"{len(operand.dims)}, update: {len(update.dims)}"
        )


def _cast(ins, outs, o) -> None:
    _inputs_outputs(ins, outs, 1, 1)
    i, t = ins[0].type, outs[0].type
    floats = ("float16", "float32")
    if not (
        (i == "bool" and t in floats)
        or (i in floats and t == "bool")
        or (i in ("float32", "int32") and t in ("float32", "int32"))
    ):
        _fail(f"Not supported Cast case. Input type: {_type_name(i)} and output type: {_type_name(t)}")


def _clamp(ins, outs, o) -> None:
    if ins[0].type != ins[1].type or ins[1].type != ins[2].type:
        _fail("Clamp tensors must all be the same type")
    if ins[0].dims != ins[1].dims and _num_elements(ins[0].dims) != 1:
        _fail("Min tensor must be the same shape as the input, or a scalar")
    if ins[2].dims != ins[1].dims and _num_elements(ins[0].dims) != 1:
        _fail("Max tensor must be the same shape as the input, or a scalar")
    _inputs_consts_outputs(ins, outs, 3, 0, 1)


def _ok(ins, outs, o) -> None:
    return None


def _io11(ins, outs, o) -> None:
    _inputs_outputs(ins, outs, 1, 1)


def _reduce(op):
    def check(ins, outs, o):
        _inputs_outputs(ins, outs, 1, 1)
        _axes_int32_const(op, ins, 1)

    return check


def _add(ins, outs, o) -> None:
    if len(ins) != 2:
        _fail("ADD requires two input tensors.")
    _add_mul_broadcast(ins[0], ins[1])


def _mean(ins, outs, o) -> None:
    _inputs_consts_outputs(ins, outs, 1, 1, 1)
    _axes_int32_const("MEAN", ins, 1)


def _slice(ins, outs, o) -> None:
    if len(ins) < 3:
        _fail(f"SLICE requires 3 inputs, but node has {len(ins)} inputs.")
    if len(ins[0].dims) not in (3, 4):
        _fail(
            f"SLICE supports for 3 or 4 dimensional tensors only, but node has {len(ins[0].dims)} dimensional tensors."
        )


def _conv(ins, outs, o) -> None:
    _convolution_io(ins, outs)
    _strides(o.strideH, o.strideW)
    _dilation(o.dilationHFactor, o.dilationWFactor)
    _activation(o.fusedActivationFunction)


def _transpose_conv(ins, outs, o) -> None:
    _convolution_io(ins, outs)
    _strides(o.strideH, o.strideW)


def _softmax(ins, outs, o) -> None:
    if o.beta != 1:
        _fail("Softmax.beta != 1 is not supported.")


def _resize_bilinear(ins, outs, o) -> None:
    _inputs_outputs(ins, outs, 1, 1)
    if o.alignCorners and o.halfPixelCenters:
        _fail("If half_pixel_centers is True, align_corners must be False.")


def _dequantize(ins, outs, o) -> None:
    if len(ins) != 1 or len(outs) != 1:
        _fail(f"Expected 1 input & output each from Dequantize, got: {len(ins)}, {len(outs)}")
    if ins[0].type == "int16":
        _fail("Unsupported dequantization type.")


def _add_n(ins, outs, o) -> None:
    if len(ins) != 2:
        _fail("ADD_N only supports 2 inputs.")


def _batch_matmul(ins, outs, o) -> None:
    if not (len(ins) == 2 and len(outs) == 1):
        _fail(f"Expected 2 inputs and 1 output, got: {len(ins)} inputs and {len(outs)} outputs")


def _binary(op):
    def check(ins, outs, o):
        _one_or_two_operands(ins, outs)
        if op in ("SUB", "DIV") and o is not None:
            _activation(o.fusedActivationFunction)

    return check


#: op -> (rule, the schema's options class for the op, or None). Ops not here are not supported.
RULES = {
    "ADD": (_add, None),
    "ADD_N": (_add_n, None),
    "AVERAGE_POOL_2D": (_pooling, "Pool2DOptions"),
    "BATCH_MATMUL": (_batch_matmul, None),
    "CAST": (_cast, None),
    "CONCATENATION": (_ok, None),
    "CONV_2D": (_conv, "Conv2DOptions"),
    "CUMSUM": (_cumsum, None),
    "DENSIFY": (lambda i, o, _: _inputs_outputs(i, o, 0, 1), None),
    "DEPTHWISE_CONV_2D": (_depthwise, "DepthwiseConv2DOptions"),
    "DEPTH_TO_SPACE": (lambda i, o, x: _block_size("DEPTH_TO_SPACE", i, o, x), "DepthToSpaceOptions"),
    "DEQUANTIZE": (_dequantize, None),
    "EMBEDDING_LOOKUP": (_embedding_lookup, None),
    "DYNAMIC_UPDATE_SLICE": (_dynamic_update_slice, None),
    "FULLY_CONNECTED": (_fully_connected, "FullyConnectedOptions"),
    "GATHER": (_gather, None),
    "HARD_SWISH": (_io11, None),
    "LSTM": (_lstm, "LSTMOptions"),
    "MAX_POOL_2D": (_pooling, "Pool2DOptions"),
    "MEAN": (_mean, None),
    "MUL": (_mul, "MulOptions"),
    "PACK": (_ok, None),
    "ONE_HOT": (_one_hot, "OneHotOptions"),
    "QUANTIZE": (_io11, None),
    "RELU_N1_TO_1": (_ok, None),
    "PRELU": (_ok, None),
    "RESHAPE": (_io11, None),
    "SELECT": (_select_v2, None),
    "SELECT_V2": (_select_v2, None),
    "SLICE": (_slice, None),
    "SOFTMAX": (_softmax, "SoftmaxOptions"),
    "SPACE_TO_DEPTH": (lambda i, o, x: _block_size("SPACE_TO_DEPTH", i, o, x), "SpaceToDepthOptions"),
    "SPLIT": (_ok, None),
    "SPLIT_V": (_ok, None),
    "STRIDED_SLICE": (_strided_slice, "StridedSliceOptions"),
    "TILE": (_io11, None),
    "TRANSPOSE": (_io11, None),
    "TRANSPOSE_CONV": (_transpose_conv, "TransposeConvOptions"),
    "RESIZE_BILINEAR": (_resize_bilinear, "ResizeBilinearOptions"),
    "RESIZE_NEAREST_NEIGHBOR": (_io11, None),
    "RELU": (_ok, None),
    "RELU6": (_ok, None),
    "LEAKY_RELU": (_ok, None),
    "PAD": (lambda i, o, x: _pad("PAD", i, o, x), None),
    "PADV2": (lambda i, o, x: _pad("PADV2", i, o, x), None),
    "MIRROR_PAD": (lambda i, o, x: _pad("MIRROR_PAD", i, o, x), "MirrorPadOptions"),
    "STABLEHLO_CLAMP": (_clamp, None),
    **{op: (_reduce(op), None) for op in ("REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", "SUM")},
    **{op: (lambda i, o, _: _inputs_consts_outputs(i, o, 1, 0, 1), None) for op in _ELEMENTWISE_1},
    **{op: (_binary(op), {"SUB": "SubOptions", "DIV": "DivOptions"}.get(op)) for op in _ELEMENTWISE_2},
}


def check_op(op: str, inputs: list, outputs: list, options=None, custom_name: str | None = None) -> str | None:
    """The reason the GPU delegate rejects one op (None: it takes it), by gpu_compatibility.cc's rules.

    ``inputs``/``outputs``: ``(type, dims, is_const)`` per tensor (type None for an optional
    input); ``options``: the op's builtin options object from ``ai_edge_litert``'s schema
    (None: the schema defaults, as the C++ parser fills them).

    Example:
        >>> check_op("TOPK_V2", [("float32", [1, 8], False), ("int32", [], True)], [("float32", [1, 3], False)] * 2)
        'Not supported op TOPK_V2'
        >>> check_op("RELU", [("float32", [1, 8], False)], [("float32", [1, 8], False)]) is None
        True
    """
    ins = [t if isinstance(t, _Spec) else _Spec(*t) for t in inputs]
    outs = [t if isinstance(t, _Spec) else _Spec(*t) for t in outputs]
    try:
        if op == "CUSTOM" or op.startswith("CUSTOM:"):
            _custom(custom_name or op.partition(":")[2], ins, outs)
            return None
        if op not in RULES:
            return f"Not supported op {op}"
        rule, options_class = RULES[op]
        if options is None and options_class is not None:
            from ai_edge_litert import schema_py_generated as schema

            options = getattr(schema, options_class + "T")()
        rule(ins, outs, options)
    except _Unsupported as exc:
        return str(exc)
    except IndexError:  # the C++ uses .at(): an op missing an input/output is not taken either
        return f"{op} has fewer input/output tensors than the GPU delegate needs"
    return None


def check_model(source) -> list:
    """``[{"subgraph", "node", "op", "version", "reason"}]`` for each op of every subgraph that the
    GPU delegate would not run, by edgecnn's port of gpu_compatibility.cc (no TensorFlow).

    ``source``: a ``.tflite`` path or its bytes.

    Example:
        >>> [f["op"] for f in check_model("topk.tflite")]  # doctest: +SKIP
        ['TOPK_V2']
    """
    from pathlib import Path

    from ai_edge_litert import schema_py_generated as schema

    from edgecnn.device.flatbuffer import TENSOR_TYPES, op_name, read_model

    buf = source if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()
    read_model(buf)  # a truncated or foreign file fails here with FlatbufferError, not deep in the schema
    model = schema.Model.GetRootAs(buf, 0)
    codes = []
    for i in range(model.OperatorCodesLength()):
        c = model.OperatorCodes(i)
        custom = c.CustomCode()
        name = op_name(max(c.BuiltinCode(), c.DeprecatedBuiltinCode()), custom.decode() if custom else None)
        codes.append((name, c.Version()))

    def has_data(index: int) -> bool:  # op_signature.cc: buffer != 0 and buffer.data non-empty
        return 0 < index < model.BuffersLength() and model.Buffers(index).DataLength() > 0

    flagged = []
    for sg_index in range(model.SubgraphsLength()):
        sg = model.Subgraphs(sg_index)

        def spec(tensor_index: int, sg=sg) -> _Spec:
            if tensor_index < 0 or tensor_index >= sg.TensorsLength():
                return _Spec()
            t = sg.Tensors(tensor_index)
            type_ = TENSOR_TYPES[t.Type()] if 0 <= t.Type() < len(TENSOR_TYPES) else str(t.Type())
            return _Spec(type_, [int(d) for d in t.ShapeAsNumpy()] if t.ShapeLength() else [], has_data(t.Buffer()))

        for node in range(sg.OperatorsLength()):
            op = sg.Operators(node)
            name, version = codes[op.OpcodeIndex()]
            options = None
            if op.BuiltinOptionsType() and (table := op.BuiltinOptions()) is not None:
                options_class = RULES.get(name, (None, None))[1]
                if options_class is not None:
                    parsed = getattr(schema, options_class)()
                    parsed.Init(table.Bytes, table.Pos)
                    options = getattr(schema, options_class + "T").InitFromObj(parsed)
            ins = [spec(int(i)) for i in (op.InputsAsNumpy() if op.InputsLength() else [])]
            outs = [spec(int(i)) for i in (op.OutputsAsNumpy() if op.OutputsLength() else [])]
            reason = check_op(name, ins, outs, options)
            if reason is not None:
                flagged.append({"subgraph": sg_index, "node": node, "op": name, "version": version, "reason": reason})
    return flagged


def gpu_compatibility(model_path) -> dict:
    """Which ops of ``model_path`` the mobile GPU delegate would not run.

    With TensorFlow <= 2.17 installed, TFLite's analyzer (``gpu_compatibility=True``) is run and
    its warnings parsed; with TensorFlow 2.18+ (whose analyzer checks nothing) or none at all,
    edgecnn's port of gpu_compatibility.cc decides (:func:`check_model`).

    ``compatible``: True (nothing flagged) or False (ops flagged, in ``unsupported``);
    ``checked_by``: "tensorflow analyzer" or "edgecnn"; ``note``: one line for the bench output.
    """
    tf_version = _installed_tensorflow()
    if tf_version is None or not analyzer_checks_gpu(tf_version):
        flagged = check_model(model_path)
        return {
            "compatible": not flagged,
            "checked": True,
            "unsupported": flagged,
            "checked_by": "edgecnn",
            "tf_version": tf_version,
            "note": f"{PORT_NOTE}: {describe(flagged)}",
        }
    from edgecnn._io import quiet_native_stderr
    from edgecnn._tf import tf

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), quiet_native_stderr():
        tf.lite.experimental.Analyzer.analyze(model_path=str(model_path), gpu_compatibility=True)
    flagged = parse_analyzer_output(buf.getvalue())
    return {
        "compatible": not flagged,
        "checked": True,
        "unsupported": flagged,
        "checked_by": "tensorflow analyzer",
        "tf_version": tf.__version__,
        "note": describe(flagged),
    }


def _installed_tensorflow() -> str | None:
    """The installed TensorFlow's version, without importing it (None when absent)."""
    from importlib import metadata

    for dist in ("tensorflow", "tensorflow-cpu"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None
