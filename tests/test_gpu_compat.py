"""``edgecnn bench``'s GPU-delegate check: TFLite's analyzer, its stdout captured and parsed."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from edgecnn.gpu_compat import analyzer_checks_gpu, describe, gpu_compatibility, parse_analyzer_output

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
    from edgecnn.convert import convert

    inp = keras.Input((8,))
    out = keras.layers.Lambda(lambda x: tf.math.top_k(x, k=3).values)(inp)
    model = keras.Model(inp, keras.layers.Dense(2, activation="softmax")(out))
    return convert(model, tmp_path_factory.mktemp("gpu") / "topk.tflite", "float32")


def test_tf_2_19_analyzer_does_not_check_so_the_result_says_not_checked(topk_model):
    """TensorFlow 2.19+'s analyzer prints "looks compatible" even for TOPK_V2 (its GPU rules
    were removed: tensorflow/tensorflow#77042), so edgecnn reports "not checked", not "compatible"."""
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
    if analyzer_checks_gpu(tf.__version__):  # TF <= 2.18: the analyzer flags it
        assert result["compatible"] is False and [f["op"] for f in result["unsupported"]] == ["TOPK_V2"]
    else:  # the known limitation, seen: nothing flagged, "looks compatible"
        assert WARNING_TEXT not in text and "looks compatible with GPU delegate" in text
        assert result["compatible"] is None and result["checked"] is False
        assert result["note"].startswith(f"not checked: TensorFlow {tf.__version__}'s analyzer")
        assert "benchmark_model --use_gpu=true" in result["note"]


WARNING_TEXT = "GPU COMPATIBILITY WARNING"


def test_edgecnn_bench_reports_the_gpu_delegate_check(tiny, tmp_path):
    from edgecnn._tf import tf
    from edgecnn.cli import main

    r = CliRunner().invoke(main, ["bench", str(tiny["int8"]), "--runs", "3", "--warmup", "1", "--json"])
    assert r.exit_code == 0, r.output
    result = json.loads(r.output[r.output.index("{") :])
    gpu = result["compat"]["mobile GPU delegate"]
    assert gpu == gpu_compatibility(tiny["int8"])
    if not analyzer_checks_gpu(tf.__version__):
        assert gpu["compatible"] is None and gpu["note"].startswith("not checked")
    text = CliRunner().invoke(main, ["bench", str(tiny["int8"]), "--runs", "3", "--warmup", "1"]).output
    assert gpu["note"] in text
