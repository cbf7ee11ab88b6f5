"""The per-op rules of TFLite's ``gpu_compatibility.cc``, ported: which ops the GPU delegate takes.

:func:`check_op` applies to one op signature the rule that
``tensorflow/lite/tools/versioning/gpu_compatibility.cc`` applies (what was ported, from which
revision, and how it was checked against TensorFlow's analyzer: :mod:`edgecnn.tflite.gpu_compatibility`).
A rule is a function ``(inputs, outputs, options)`` that raises :class:`_Unsupported` with the C++
check's message; :data:`RULES` maps an op name to its rule and the schema's options class.
Adding a rule: a function here, one entry in :data:`RULES`, one case in
``tests/test_gpu_compat.py::test_port_rules_one_op_at_a_time``.

Example:
    >>> check_op("TOPK_V2", [("float32", [1, 8], False), ("int32", [], True)], [("float32", [1, 3], False)] * 2)
    'Not supported op TOPK_V2'
"""

from __future__ import annotations

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


class Spec:
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
    ins = [t if isinstance(t, Spec) else Spec(*t) for t in inputs]
    outs = [t if isinstance(t, Spec) else Spec(*t) for t in outputs]
    try:
        if op == "CUSTOM" or op.startswith("CUSTOM:"):
            _custom(custom_name or op.partition(":")[2], ins, outs)
            return None
        if op not in RULES:
            return f"Not supported op {op}"
        rule, options_class = RULES[op]
        if options is None and options_class is not None:
            from edgecnn.device.flatbuffer import litert_schema

            options = getattr(litert_schema(), options_class + "T")()
        rule(ins, outs, options)
    except _Unsupported as exc:
        return str(exc)
    except IndexError:  # the C++ uses .at(): an op missing an input/output is not taken either
        return f"{op} has fewer input/output tensors than the GPU delegate needs"
    return None


