"""``edgecnn bench``'s GPU-delegate check: TFLite's analyzer, its stdout captured and parsed."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from edgecnn.gpu_compat import describe, gpu_compatibility, parse_analyzer_output

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


def test_edgecnn_bench_reports_the_gpu_delegate_check(tiny, tmp_path):
    from edgecnn.cli import main

    live = gpu_compatibility(tiny["float32"])
    assert live["compatible"] is True and live["unsupported"] == [] and live["tf_version"]
    r = CliRunner().invoke(main, ["bench", str(tiny["int8"]), "--runs", "3", "--warmup", "1", "--json"])
    assert r.exit_code == 0, r.output
    result = json.loads(r.output[r.output.index("{") :])
    gpu = result["compat"]["mobile GPU delegate"]
    assert gpu["compatible"] is True and "analyzer flags no op" in gpu["note"]
