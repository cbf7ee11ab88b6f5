"""Which ops of a ``.tflite`` the mobile GPU delegate would not run, before trying on a phone.

Two checkers, one report (``compatible``, ``checked``, ``unsupported``: op + reason, ``note``):

**edgecnn's port of ``gpu_compatibility.cc``** (:func:`check_model`, TensorFlow-free, so the
device side can use it too). TFLite's GPU delegate decides which nodes it takes with
``tflite::CheckGpuDelegateCompatibility`` (``tensorflow/lite/tools/versioning/gpu_compatibility.cc``);
TensorFlow up to 2.17 ran the same function in its model analyzer. This module reads the
``.tflite`` once with edgecnn's one reader (:func:`edgecnn.device.flatbuffer.read_model`, which
uses ``ai_edge_litert.schema_py_generated``), builds for every operator of every subgraph the
same "op signature" as ``op_signature.cc`` (input/output tensor type, shape, and "constant"
= the tensor's buffer holds data; an optional input, index -1, counts as a no-type input)
and applies the per-op rules (:mod:`edgecnn.tflite.gpu_rules`), with the C++ file's reasons as messages.

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

from edgecnn.tflite.gpu_rules import RULES, Spec, check_op

__all__ = ["PORT_NOTE", "RULES", "analyzer_checks_gpu", "check_model", "check_op", "describe", "gpu_compatibility",
           "parse_analyzer_output"]

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
# edgecnn's port of tensorflow/lite/tools/versioning/gpu_compatibility.cc: the per-op rules are in
# edgecnn.tflite.gpu_rules; here every operator of the model is run through them.

PORT_NOTE = "checked by edgecnn's port of gpu_compatibility.cc (the rules TF <= 2.17's analyzer applied)"


def check_model(source) -> list:
    """``[{"subgraph", "node", "op", "version", "reason"}]`` for each op of every subgraph that the
    GPU delegate would not run, by edgecnn's port of gpu_compatibility.cc (no TensorFlow).

    ``source``: a ``.tflite`` path or its bytes, read once by :func:`edgecnn.device.flatbuffer.read_model`
    (a truncated or foreign file raises its ``FlatbufferError``); each op's signature is
    ``op_signature.cc``'s (an optional input, index -1, is a no-type input; "constant": the
    tensor's buffer holds data) and its options are decoded with LiteRT's schema.

    Example:
        >>> [f["op"] for f in check_model("topk.tflite")]  # doctest: +SKIP
        ['TOPK_V2']
    """
    from edgecnn.device.flatbuffer import read_model

    flagged = []
    for op in read_model(source).operators:
        options_class = RULES.get(op.name, (None, None))[1]
        options = op.builtin_options(options_class) if options_class is not None else None
        ins = [Spec(t.type, t.shape, t.is_const) for t in op.inputs]
        outs = [Spec(t.type, t.shape, t.is_const) for t in op.outputs]
        reason = check_op(op.name, ins, outs, options)
        if reason is not None:
            flagged.append({"subgraph": op.subgraph, "node": op.node, "op": op.name, "version": op.version,
                            "reason": reason})
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
