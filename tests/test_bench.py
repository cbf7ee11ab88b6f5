"""edgecnn bench: child-process measurement, statistics, failures, CLI flags and JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _tiny_tflite import build_tiny_models
from click.testing import CliRunner


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return build_tiny_models(tmp_path_factory.mktemp("tiny"))


def test_benchmark_reports_every_figure(models):
    from edgecnn.device.bench import benchmark

    r = benchmark(models["int8"], threads=1, warmup=2, runs=15)
    assert r["status"] == "ok" and r["runs"] == 15
    for key in (
        "init_ms",
        "first_run_ms",
        "median_ms",
        "p90_ms",
        "p99_ms",
        "mean_ms",
        "std_ms",
        "min_ms",
        "peak_rss_mb",
    ):
        assert r[key] >= 0, key
    assert r["min_ms"] <= r["median_ms"] <= r["p90_ms"] <= r["p99_ms"] <= r["max_ms"]
    assert r["runtime"] and r["runtime_version"] and r["cpu"] and r["device"]
    assert r["delegation"]["total"] >= 3 and r["compat"]["tflite_runtime 2.14"]["compatible"] is True


def test_min_time_keeps_timing(models):
    from edgecnn.device.bench import measure

    r = measure(models["float32"], runs=1, warmup=0, min_time=0.2)
    # Runs go on until 0.2 s of wall time have passed (the invokes alone may sum to less:
    # the loop's own overhead is not in them).
    assert r["runs"] > 1 and r["timed_seconds"] >= 0.2
    assert r["runs"] * r["mean_ms"] <= 1e3 * r["timed_seconds"]


def test_given_input_is_used_and_checked(models, tmp_path):
    from edgecnn.device.bench import measure

    np.save(tmp_path / "x.npy", np.zeros((16, 16, 3), np.float32))  # no batch axis: added; float -> int8 quantized
    assert measure(models["int8"], runs=2, input_path=str(tmp_path / "x.npy"))["input"].endswith("x.npy")
    np.save(tmp_path / "bad.npy", np.zeros((5, 5), np.float32))
    with pytest.raises(ValueError, match="model expects"):
        measure(models["int8"], runs=2, input_path=str(tmp_path / "bad.npy"))


def test_crash_is_reported_not_raised(models, monkeypatch, tmp_path):
    import sys

    from edgecnn.device import bench

    crasher = tmp_path / "crashing-python"
    crasher.write_text("#!/bin/sh\nkill -SEGV $$\n")  # stands in for a runtime that segfaults on the model
    crasher.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(crasher))
    r = bench.benchmark(models["float32"], runs=2)
    assert r["status"] == "crashed" and "SIGSEGV" in r["error"]


def test_hang_and_load_errors_are_reported_not_raised(models):
    from edgecnn.device import bench

    r = bench.benchmark(models["float32"], runs=10_000_000, timeout=3)
    assert r["status"] == "timeout" and "3 s" in r["error"] and r["device"]
    r = bench.benchmark(models["float32"], input_path="/nonexistent.npy", runs=2)
    assert r["status"] == "error" and "nonexistent" in r["error"]


def test_cli_several_threads_json_and_output(models, tmp_path):
    from edgecnn.cli import main

    out = tmp_path / "b.json"
    res = CliRunner().invoke(
        main,
        ["bench", str(models["float32"]), "--threads", "1", "--threads", "2", "--runs", "5", "--json", "-o", str(out)],
    )
    assert res.exit_code == 0, res.output
    saved = json.loads(out.read_text())
    assert [r["threads"] for r in saved] == [1, 2] and all(r["status"] == "ok" for r in saved)


def test_cli_user_errors_are_one_line(models, tmp_path):
    from edgecnn.cli import main

    (tmp_path / "cut.tflite").write_bytes(models["float32"].read_bytes()[:300])
    runner = CliRunner()
    for args, words in (
        (["bench", str(tmp_path / "cut.tflite")], "truncated"),
        (["bench", str(tmp_path / "missing.tflite")], "does not exist"),
        (["bench", str(models["float32"]), "--runtime", "tflite_runtime"], "installed"),
    ):
        res = runner.invoke(main, args)
        if "tflite_runtime" in args and res.exit_code == 0:
            continue  # tflite_runtime is installed here: nothing to report
        assert res.exit_code == 2, res.output
        assert words in res.output and "Traceback" not in res.output
