"""Per-op profile: edgecnn.device.profile and ``bench --profile`` (LiteRT's C API profiler)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from edgecnn.device.profile import OUTLIER_FACTOR, summarize, why_no_profiler


def _no_profiler() -> str | None:
    from edgecnn.device.runtime import available_runtimes

    return why_no_profiler("litert") if "litert" in available_runtimes() else "ai-edge-litert is not installed"


NO_PROFILER = _no_profiler()


def _run(f: int) -> list:
    """One run's events, every time ``f`` times longer (a preempted run: f = 10)."""
    return [
        ("LiteRT::Run[buffer registration]", 1, 2, 0),
        ("Invoke", 1, 40 * f, 0),
        ("Convert (NC, F32, QS8)", 8, 3 * f, 0),
        ("Convolution (NHWC, QC8) IGEMM", 8, 20 * f, 1),
        ("AVERAGE_POOL_2D", 2, 6 * f, 2),
        ("Static Reshape (NC)", 8, 0, 0),
        ("Fully Connected (NC, QS8, QC8W) GEMM", 8, 4 * f, 1),
        ("DEQUANTIZE", 2, 2 * f, 4),
        ("Invoke", 32, 2**32, 0),  # a telemetry event: no op time
    ]


def test_summarize_names_ops_splits_partitions_and_leaves_out_preempted_runs():
    events = _run(1) + _run(1) + _run(10)
    s = summarize(events, ["QUANTIZE", "CONV_2D", "AVERAGE_POOL_2D", "FULLY_CONNECTED", "DEQUANTIZE"])
    assert OUTLIER_FACTOR == 2.0 and (s["profiled_runs"], s["outlier_runs"]) == (3, 1)
    assert s["invoke_ms"] == pytest.approx(0.040) and s["ops_ms"] == pytest.approx(0.035)
    assert s["coverage"] == pytest.approx(0.035 / 0.040)
    assert s["xnnpack_ms"] == pytest.approx(0.027) and s["default_kernels_ms"] == pytest.approx(0.008)
    ops = {(r["op"], r["kernel"]): (r["count"], round(r["ms"], 6)) for r in s["op_types"]}
    assert ops == {
        ("CONV_2D", "XNNPACK"): (1, 0.02),
        ("AVERAGE_POOL_2D", "default kernels"): (1, 0.006),
        ("FULLY_CONNECTED", "XNNPACK"): (1, 0.004),
        ("QUANTIZE", "XNNPACK"): (1, 0.003),
        ("DEQUANTIZE", "default kernels"): (1, 0.002),
        ("RESHAPE (XNNPACK)", "XNNPACK"): (1, 0.0),
    }
    assert [r["op"] for r in s["op_types"]][0] == "CONV_2D"  # slowest first
    parts = [(r["partition"], r["ops"], r["tflite_ops"], round(r["pct"], 1)) for r in s["partitions"]]
    assert parts == [
        ("XNNPACK partition 1", 2, "QUANTIZE, CONV_2D", 57.5),
        ("AVERAGE_POOL_2D (node 2)", 1, "AVERAGE_POOL_2D", 15.0),
        ("XNNPACK partition 2", 2, "FULLY_CONNECTED", 10.0),
        ("DEQUANTIZE (node 4)", 1, "DEQUANTIZE", 5.0),
    ]
    # Operators that do not line up with the model keep their XNNPACK names, in every row.
    s = summarize(_run(1), ["QUANTIZE", "CONV_2D", "TANH", "AVERAGE_POOL_2D", "FULLY_CONNECTED", "DEQUANTIZE"])
    assert {r["op"] for r in s["op_types"] if r["kernel"] == "XNNPACK"} == {
        "Convert (NC, F32, QS8)",
        "Convolution (NHWC, QC8) IGEMM",
        "Static Reshape (NC)",
        "Fully Connected (NC, QS8, QC8W) GEMM",
    }


def test_a_runtime_without_a_profiler_is_one_line_and_exit_2(tmp_path, monkeypatch):
    import edgecnn.device.runtime as runtime
    from edgecnn.device.cli import main

    if "tensorflow" not in runtime.available_runtimes():
        pytest.skip("TensorFlow is not installed on this machine (the runtime without a profiler used here)")
    result = CliRunner().invoke(main, ["bench", str(tmp_path / "m.tflite"), "--runtime", "tensorflow", "--profile"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: tensorflow ") and "cannot profile per op" in lines[0]
    assert "pip install ai-edge-litert" in lines[0]
    monkeypatch.setattr(runtime, "resolve_runtime", lambda name="auto": "tflite_runtime")
    monkeypatch.setattr(runtime, "available_runtimes", lambda: {"tflite_runtime": "2.14.0"})
    assert why_no_profiler("tflite_runtime").startswith("tflite_runtime 2.14.0 cannot profile per op")


def _float_io_int8(path) -> str:
    """A tiny int8 conv net with float input and output: QUANTIZE first, DEQUANTIZE last."""
    from edgecnn._tf import keras, tf

    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inp)
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = keras.layers.AveragePooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    out = keras.layers.Dense(4)(x)
    model = keras.Model(inp, out)
    calib = np.random.default_rng(0).uniform(-1, 1, (8, 1, 16, 16, 3)).astype(np.float32)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([row] for row in calib)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    path.write_bytes(converter.convert())
    return str(path)


@pytest.mark.skipif(bool(NO_PROFILER), reason=f"no per-op profiler on this machine: {NO_PROFILER}")
def test_bench_profile_times_quantize_dequantize_and_every_op(tmp_path):
    from edgecnn.device.cli import main
    from edgecnn.device.flatbuffer import read_model

    model = _float_io_int8(tmp_path / "tiny_int8_float_io.tflite")
    model_ops = [op.name for op in read_model(model).operators]
    assert model_ops[0] == "QUANTIZE" and model_ops[-1] == "DEQUANTIZE"
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(main, ["bench", model, "--runs", "30", "--profile", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "per-op profile (LiteRT CompiledModel C API" in result.output and "% invoke" in result.output
    bench = json.loads(out.read_text())
    assert bench["kind"] == "bench" and bench["status"] == "ok"  # still a bench JSON: edgecnn report merges it
    p = bench["profile"]
    assert p["status"] == "ok" and p["runs"] == 30 and p["runtime"] == "litert"
    # Every model op is timed once per run, on XNNPACK or on the default kernels.
    tflite_ops = " ".join(r["tflite_ops"] for r in p["partitions"])
    for op in set(model_ops):
        assert op in tflite_ops, (op, tflite_ops)
    assert sum(r["ops"] for r in p["partitions"]) >= len(model_ops)
    assert {"QUANTIZE", "DEQUANTIZE", "CONV_2D"} <= {r["op"] for r in p["op_types"]}, p["op_types"]
    # The per-op times add up to (at most) the interpreter's invoke: they are timed inside it.
    assert 0 < p["ops_ms"] <= 1.02 * p["invoke_ms"] + 0.002
    assert sum(r["ms"] for r in p["op_types"]) == pytest.approx(p["ops_ms"])
    # The same ops left to the default kernels as the bench's own delegation report.
    fallback = {}
    for r in p["partitions"]:
        if r["kernel"] == "default kernels":
            fallback[r["tflite_ops"]] = fallback.get(r["tflite_ops"], 0) + 1
    assert fallback == bench["delegation"]["fallback_ops"]
    for table in ("ops", "partitions"):
        md = (tmp_path / f"bench_profile_{table}.md").read_text()
        assert md.splitlines()[2].startswith("CPU: ") and "| % invoke |" in md
        rows = json.loads((tmp_path / f"bench_profile_{table}.json").read_text())
        assert rows == p["op_types" if table == "ops" else "partitions"]
        assert (tmp_path / f"bench_profile_{table}.csv").read_text().count("\n") == len(rows) + 1


@pytest.mark.slow
@pytest.mark.skipif(bool(NO_PROFILER), reason=f"no per-op profiler on this machine: {NO_PROFILER}")
def test_lenet5_profile_int8_and_float32_add_up_to_the_invoke(tmp_path):
    """lenet5 on digits, 1 epoch: both exports profiled; the figures agree with the bench."""
    from edgecnn.device.bench import benchmark
    from edgecnn.device.profile import profile

    out = tmp_path / "lenet5"
    cmd = [sys.executable, "-m", "edgecnn", "optimize", "lenet5", "--epochs", "1", "--int8", "--no-bench"]
    proc = subprocess.run([*cmd, "--out", str(out), "--allow-outside"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for precision in ("int8", "float32"):
        model = out / f"model_{precision}.tflite"
        p = profile(model, runs=100)
        assert p["status"] == "ok", p
        ops = {r["op"]: r for r in p["op_types"]}
        assert {"CONV_2D", "FULLY_CONNECTED"} <= set(ops), ops
        assert ops["CONV_2D"]["kernel"] == "XNNPACK" and ops["CONV_2D"]["count"] == 3
        # Timing-free checks only (a busy machine preempts runs and stretches the invoke, not the
        # ops): runs were kept, and the ops never add up to more than the invoke they sit in.
        assert p["outlier_runs"] < 100, p["outlier_runs"]
        assert 0 < p["coverage"] <= 1.02, p["coverage"]
        bench = benchmark(model, runs=50)
        fallback = {}
        for r in p["partitions"]:
            if r["kernel"] == "default kernels":
                fallback[r["tflite_ops"]] = fallback.get(r["tflite_ops"], 0) + 1
        assert fallback == bench["delegation"]["fallback_ops"], (fallback, bench["delegation"])
