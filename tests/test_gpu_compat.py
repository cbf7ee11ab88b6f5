"""``edgecnn bench``'s GPU-delegate check: edgecnn's port of TFLite's gpu_compatibility.cc, and
TFLite's analyzer (TF <= 2.17), its stdout captured and parsed."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from edgecnn.tflite.gpu_compatibility import (
    PORT_NOTE,
    analyzer_checks_gpu,
    check_model,
    check_op,
    describe,
    gpu_compatibility,
    parse_analyzer_output,
)

# The analyzer's text for a model with two ops the GPU delegate rejects, in the layout
# model_analyzer.cc prints (an op line, its warning, then the subgraph's summary).
ANALYZER_TEXT = """=== model.tflite ===

Your TFLite model has '1' subgraph(s). In the subgraph description below,
T# represents the Tensor numbers. For example, in Subgraph#0, the CONV_2D op takes
tensor #0 and tensor #1 as input and produces tensor #2 as output.

Subgraph#0 main(T#0) -> [T#6]
  Op#0 CONV_2D(T#0, T#1, T#2) -> [T#3]
  Op#1 CONV_3D(T#3, T#4, T#-1) -> [T#5]
GPU COMPATIBILITY WARNING: Not supported op CONV_3D
  Op#2 TOPK_V2(T#5, T#7[3]) -> [T#6, T#8]
GPU COMPATIBILITY WARNING: Not supported op TOPK_V2

{summary}

Tensors of Subgraph#0
  T#0(input) shape:[1, 8, 8, 3], type:FLOAT32
""".format(
    summary="GPU COMPATIBILITY WARNING: Subgraph#0 has GPU delegate compatibility issues at nodes 1, 2 "
    "with TFLite runtime version 2.15.0"
)


def test_parse_analyzer_warnings():
    flagged = parse_analyzer_output(ANALYZER_TEXT)
    assert [(f["node"], f["op"]) for f in flagged] == [(1, "CONV_3D"), (2, "TOPK_V2")]
    assert flagged[0]["reason"] == "Not supported op CONV_3D" and flagged[0]["subgraph"] == 0
    assert describe(flagged).startswith("the GPU delegate would not run 2 op(s): CONV_3D (node 1")
    assert parse_analyzer_output(ANALYZER_TEXT.replace("GPU COMPATIBILITY WARNING: Not", "x")) == []


@pytest.fixture(scope="module")
def tiny(tiny_models):
    return tiny_models


@pytest.fixture(scope="module")
def topk_model(tmp_path_factory):
    """A float32 model whose TOPK_V2 the GPU delegate does not run (not in its op list)."""
    from edgecnn._tf import keras, tf
    from edgecnn.tflite.convert import convert

    inp = keras.Input((8,))
    out = keras.layers.Lambda(lambda x: tf.math.top_k(x, k=3).values)(inp)
    model = keras.Model(inp, keras.layers.Dense(2, activation="softmax")(out))
    return convert(model, tmp_path_factory.mktemp("gpu") / "topk.tflite", "float32")


def test_topk_v2_is_flagged_although_tf_2_18_analyzer_says_compatible(topk_model):
    """TensorFlow 2.18+'s analyzer prints "looks compatible" even for TOPK_V2 (its GPU rules
    were removed: tensorflow/tensorflow#77042); edgecnn's port of gpu_compatibility.cc flags it."""
    import contextlib
    import io

    from edgecnn._tf import tf
    from edgecnn.device.flatbuffer import read_model

    assert "TOPK_V2" in {op for op, _ in read_model(topk_model.read_bytes()).op_counts()}
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        tf.lite.experimental.Analyzer.analyze(model_path=str(topk_model), gpu_compatibility=True)
    text = buf.getvalue()
    result = gpu_compatibility(topk_model)
    assert result["compatible"] is False and result["checked"] is True
    assert [(f["op"], f["reason"]) for f in result["unsupported"]] == [("TOPK_V2", "Not supported op TOPK_V2")]
    if analyzer_checks_gpu(tf.__version__):  # TF <= 2.17: the analyzer itself flags it
        assert result["checked_by"] == "tensorflow analyzer"
    else:  # the known limitation, seen: the analyzer flags nothing, so the port decides
        assert WARNING_TEXT not in text and "looks compatible with GPU delegate" in text
        assert result["checked_by"] == "edgecnn"
        assert result["note"] == f"{PORT_NOTE}: the GPU delegate would not run 1 op(s): TOPK_V2 " + (
            "(node 0: Not supported op TOPK_V2)"
        )
    assert check_model(topk_model) == [
        {"subgraph": 0, "node": 0, "op": "TOPK_V2", "version": 1, "reason": "Not supported op TOPK_V2"}
    ]


def test_float_mobilenet_style_model_passes_the_port(tiny):
    """CONV_2D, DEPTHWISE_CONV_2D, MEAN, FULLY_CONNECTED, SOFTMAX (float32, int8, dynamic range)
    all pass gpu_compatibility.cc's rules."""
    from edgecnn.device.flatbuffer import read_model

    ops = {op for op, _ in read_model(tiny["float32"]).op_counts()}
    assert ops == {"CONV_2D", "DEPTHWISE_CONV_2D", "MEAN", "FULLY_CONNECTED", "SOFTMAX"}
    for precision in ("float32", "int8", "dynamic"):
        assert check_model(tiny[precision]) == [], precision
    result = gpu_compatibility(tiny["float32"])
    assert result["compatible"] is True and result["unsupported"] == []


def test_depth_multiplier_rule_flags_a_real_model(tmp_path):
    """A per-op rule, not just the op list: DEPTHWISE_CONV_2D with depth_multiplier 2 on 3 input
    channels is rejected ("depth_multiplier != 1 && input.c != 1"); on 1 channel it passes."""
    from edgecnn._tf import keras
    from edgecnn.tflite.convert import convert

    def model(channels):
        inp = keras.Input((8, 8, channels))
        return keras.Model(inp, keras.layers.DepthwiseConv2D(3, depth_multiplier=2)(inp))

    flagged = check_model(convert(model(3), tmp_path / "dm3.tflite", "float32"))
    assert [(f["op"], f["reason"]) for f in flagged] == [("DEPTHWISE_CONV_2D", "depth_multiplier != 1 && input.c != 1")]
    assert check_model(convert(model(1), tmp_path / "dm1.tflite", "float32")) == []


def _t(type_="float32", dims=(1, 8, 8, 4), const=False):
    return (type_, list(dims), const)


def test_port_rules_one_op_at_a_time():
    """gpu_compatibility.cc's per-op checks, on op signatures built by hand (no model needed)."""
    from ai_edge_litert import schema_py_generated as schema

    conv = schema.Conv2DOptionsT()
    conv.strideH = conv.strideW = 1
    assert check_op("CONV_2D", [_t(), _t(const=True), _t(dims=[4], const=True)], [_t()], conv) is None
    conv.fusedActivationFunction = schema.ActivationFunctionType.SIGN_BIT
    assert check_op("CONV_2D", [_t(), _t(const=True)], [_t()], conv) == "TfLiteFusedActivation.kTfLiteActSignBit"
    conv.fusedActivationFunction, conv.strideH = 0, 0
    assert check_op("CONV_2D", [_t(), _t(const=True)], [_t()], conv).startswith("Incorrect stride values")
    # MEAN needs its axes constant int32
    axes = _t("int32", [2], const=True)
    assert check_op("MEAN", [_t(), axes], [_t(dims=[1, 4])]) is None
    assert check_op("MEAN", [_t(), _t("int32", [2])], [_t(dims=[1, 4])]) == (
        "Expected 1 const input tensor(s), but node has 0 const input(s)."
    )
    # FULLY_CONNECTED: no constant input, default weights format
    fc = schema.FullyConnectedOptionsT()
    assert check_op("FULLY_CONNECTED", [_t(dims=[1, 8]), _t(dims=[4, 8], const=True)], [_t(dims=[1, 4])], fc) is None
    assert check_op("FULLY_CONNECTED", [_t(dims=[1, 8], const=True), _t(dims=[4, 8])], [_t(dims=[1, 4])], fc) == (
        "FullyConnected doesn't support constant input."
    )
    # SOFTMAX: beta 1 only (the schema default 0.0 stands for a missing option, as in the C++ parser)
    sm = schema.SoftmaxOptionsT()
    sm.beta = 1.0
    assert check_op("SOFTMAX", [_t(dims=[1, 4])], [_t(dims=[1, 4])], sm) is None
    sm.beta = 0.5
    assert check_op("SOFTMAX", [_t(dims=[1, 4])], [_t(dims=[1, 4])], sm) == "Softmax.beta != 1 is not supported."
    # ADD broadcasting (enhanced, as offline): [1,8,8,4] + [8,4] works, + [3,4] does not
    assert check_op("ADD", [_t(), _t(dims=[8, 4])], [_t()]) is None
    assert check_op("ADD", [_t(), _t(dims=[3, 4])], [_t()]).startswith("Doesn't support broadcasting")
    # STRIDED_SLICE: no shrink_axis_mask, 3-D/4-D input
    ss = schema.StridedSliceOptionsT()
    idx = _t("int32", [4], const=True)
    assert check_op("STRIDED_SLICE", [_t(), idx, idx, idx], [_t()], ss) is None
    ss.shrinkAxisMask = 1
    assert "shrink_axis_mask" in check_op("STRIDED_SLICE", [_t(), idx, idx, idx], [_t()], ss)
    # CAST, PAD, custom ops, ops outside the list
    assert check_op("CAST", [_t("int32")], [_t("float32")]) is None
    assert check_op("CAST", [_t("int8")], [_t("float32")]) == (
        "Not supported Cast case. Input type: INT8 and output type: FLOAT32"
    )
    assert check_op("PAD", [_t(), _t("int32", [4, 2], const=True)], [_t()]) is None
    assert "4x2 or 3x2" in check_op("PAD", [_t(), _t("int32", [5, 2], const=True)], [_t()])
    assert check_op("CUSTOM:Resampler", [_t(), _t()], [_t()]) is None
    assert check_op("CUSTOM:Foo", [_t()], [_t()]) == "Not supported custom op Foo"
    for op in ("CONV_3D", "ARG_MAX", "TOPK_V2", "GATHER_ND"):
        assert check_op(op, [_t()], [_t()]) == f"Not supported op {op}"


def test_port_is_tensorflow_free(tiny):
    """The port reads the model with ai_edge_litert's schema: no TensorFlow import (device side)."""
    import subprocess
    import sys

    code = (
        "import sys; from edgecnn.tflite.gpu_compatibility import check_model; "
        f"assert check_model({str(tiny['int8'])!r}) == []; "
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


WARNING_TEXT = "GPU COMPATIBILITY WARNING"


def test_edgecnn_bench_reports_the_gpu_delegate_check(tiny, tmp_path):
    from edgecnn._tf import tf
    from edgecnn.cli import main

    r = CliRunner().invoke(main, ["bench", str(tiny["int8"]), "--runs", "3", "--warmup", "1", "--json"])
    assert r.exit_code == 0, r.output
    result = json.loads(r.output[r.output.index("{") :])
    gpu = result["compat"]["mobile GPU delegate"]
    assert gpu == gpu_compatibility(tiny["int8"])
    assert gpu["compatible"] is True and gpu["checked"] is True
    if not analyzer_checks_gpu(tf.__version__):
        assert gpu["checked_by"] == "edgecnn" and gpu["note"].startswith(PORT_NOTE)
    text = CliRunner().invoke(main, ["bench", str(tiny["int8"]), "--runs", "3", "--warmup", "1"]).output
    assert gpu["note"] in text
