"""``benchmark_model`` logs (Android over adb) merged into ``edgecnn report`` beside desktop and Pi rows.

The saved logs in ``tests/data`` are in the format the binary prints (TF 2.15 with
percentiles; an older build without them, on the GPU delegate). ``{SIZE_MB}`` and
``{SHA_LINE}`` are filled with the test run's file, as ``ls``/``sha256sum`` on the phone would.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgecnn._io import sha256_file
from edgecnn.cli import main
from edgecnn.report.benchmark_log import LogError, parse_benchmark_log

DATA = Path(__file__).parent / "data"


def _log(name: str, model: Path, sha: bool = True, size: bool = True) -> str:
    text = (DATA / name).read_text()
    text = text.replace("{SIZE_MB}", f"{model.stat().st_size / 1e6:.6g}" if size else "0.000001")
    return text.replace("{SHA_LINE}", f"{sha256_file(model)}  /data/local/tmp/{model.name}" if sha else "")


def test_parse_the_log_benchmark_model_prints(lenet_run):
    out, _ = lenet_run
    (r,) = parse_benchmark_log(_log("benchmark_model_android.log", out / "model_int8.tflite"), "pixel.log")
    assert r["device"] == "Google Pixel 7" and r["file"] == "model_int8.tflite"
    assert r["sha256"] == sha256_file(out / "model_int8.tflite")
    assert r["threads"] == 4 and r["delegate"] == "xnnpack" and r["runtime_version"] == "2.15.0"
    assert r["init_ms"] == pytest.approx(3.12) and r["first_run_ms"] == pytest.approx(1.104)
    assert r["mean_ms"] == pytest.approx(0.2127) and r["median_ms"] == pytest.approx(0.208)
    assert r["latency_statistic"] == "median" and r["p95_ms"] == pytest.approx(0.236) and r["runs"] == 4686
    assert r["peak_memory_mb"] == pytest.approx(7.84375) and r["memory_overall_mb"] == pytest.approx(3.94922)
    assert r["delegated_nodes"] == [9, 9, "TfLiteXNNPackDelegate"]
    (old,) = parse_benchmark_log((DATA / "benchmark_model_android_old.log").read_text(), "logs/moto.log")
    assert old["device"] == "moto" and old["delegate"] == "gpu" and old["threads"] == 1
    assert old["median_ms"] == pytest.approx(1.53207) and old["latency_statistic"] == "mean"
    assert "sha256" not in old and old["runtime_version"] == "?"


# Real variants seen in published benchmark_model output (tests/data/benchmark_model_android_gpu.log):
# the GPU delegate's "for the whole graph" line, times in scientific notation for a slow model
# (the C++ stream's 6 significant digits); and the same lines read from `adb logcat` behind its prefix.
GPU_SLOW_LOG = (DATA / "benchmark_model_android_gpu.log").read_text()


def _logcat(text: str, threadtime: bool) -> str:
    out = []
    for line in text.splitlines():
        body = line.split(": ", 1)[1] if line.startswith(("INFO: ", "VERBOSE: ")) else line
        prefix = "5395  5395 I tflite  : " if threadtime else "I/tflite  ( 5395): "
        out.append("07-08 15:34:26.202 " + prefix + body)
    return "\n".join(out) + "\n"


def test_parse_scientific_times_the_gpu_delegate_and_logcat_lines():
    (r,) = parse_benchmark_log(GPU_SLOW_LOG, "big.log", device_name="Galaxy S21")
    assert r["delegate"] == "gpu" and r["delegated_nodes"] == [58, 60, "TfLiteGpuDelegateV2"]
    assert r["mean_ms"] == pytest.approx(2950.34) and r["latency_statistic"] == "mean" and r["runs"] == 50
    assert r["init_ms"] == pytest.approx(842.225) and r["first_run_ms"] == pytest.approx(3512.391)
    assert r["memory_overall_mb"] == pytest.approx(337) and r["peak_memory_mb"] == pytest.approx(341.5)
    assert r["model_mb"] == pytest.approx(13.9785) and r["device"] == "Galaxy S21"
    from edgecnn.report.results import _bench_row

    assert _bench_row(r, "big.log")["runtime_label"] == "benchmark_model ? (gpu 58/60 nodes)"
    for threadtime in (False, True):
        (lc,) = parse_benchmark_log(_logcat(GPU_SLOW_LOG, threadtime), "logcat.txt", device_name="Galaxy S21")
        assert lc == r


def test_report_shows_desktop_android_and_pi_rows(lenet_run, tmp_path):
    from edgecnn.device.cli import main as device_main

    out, metrics = lenet_run
    model = out / "model_int8.tflite"
    android = tmp_path / "android.log"
    android.write_text(_log("benchmark_model_android.log", model))
    pi = tmp_path / "pi.json"
    r = CliRunner().invoke(
        device_main, ["bench", str(model), "--runs", "5", "--warmup", "1", "--device-name", "pi5", "-o", str(pi)]
    )
    assert r.exit_code == 0, r.output
    old = tmp_path / "moto.log"  # no sha256 line: matched by file name and size
    old.write_text((DATA / "benchmark_model_android_old.log").read_text())
    report = tmp_path / "report"
    r = CliRunner().invoke(main, ["report", str(out), str(android), str(pi), str(old), "--out", str(report)])
    assert r.exit_code == 0, r.output
    rows = json.loads((report / "report.json").read_text())
    rows = rows["rows"] if isinstance(rows, dict) else rows
    by_device = {}
    for row in rows:
        by_device.setdefault(row["device"], []).append(row)
    assert set(by_device) == {"workstation", "Google Pixel 7", "pi5", "moto"}
    (pixel,) = by_device["Google Pixel 7"]
    run_int8 = next(x for x in metrics["rows"] if x["precision"] == "int8")
    assert pixel["sha256"] == run_int8["sha256"] and pixel["tflite_accuracy"] == run_int8["tflite_accuracy"]
    assert pixel["latency_median_ms"] == pytest.approx(0.208) and pixel["latency_p90_ms"] is None
    assert pixel["runtime_label"] == "benchmark_model 2.15.0 (xnnpack 9/9 nodes)" and pixel["cpu"] is None
    # The phone's row carries none of the workstation's CPU facts; its header line says so.
    assert pixel["cpu_features"] is None and pixel["arch"] is None and pixel["cores"] is None
    assert "Google Pixel 7: CPU: not recorded" in r.output
    (moto,) = by_device["moto"]
    assert moto["file"] == "model_float32.tflite" and moto["runtime_label"].endswith("(gpu)")
    assert by_device["pi5"][0]["sha256"] == run_int8["sha256"]
    assert "Google Pixel 7" in r.output and "pi5" in r.output


def _error(args):
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.output
    return lines[0]


def test_bad_logs_are_one_line_and_write_nothing(lenet_run, tmp_path):
    out, _ = lenet_run
    report = tmp_path / "report"
    full = _log("benchmark_model_android.log", out / "model_int8.tflite")
    truncated = tmp_path / "truncated.log"
    truncated.write_text(full[: full.index("INFO: Inference timings")])
    line = _error(["report", str(out), str(truncated), "--out", str(report)])
    assert "truncated" in line and "model_int8.tflite" in line
    other = tmp_path / "other.log"  # another model's sha256
    other.write_text(full.replace(sha256_file(out / "model_int8.tflite"), "ab" * 32))
    assert "another model" in _error(["report", str(out), str(other), "--out", str(report)])
    unnamed = tmp_path / "unnamed.log"  # no sha256 line, a size that is not the run's file
    unnamed.write_text(_log("benchmark_model_android.log", out / "model_int8.tflite", sha=False, size=False))
    assert "another model" in _error(["report", str(out), str(unnamed), "--out", str(report)])
    assert not report.exists()
    with pytest.raises(LogError, match="not a benchmark_model log"):
        parse_benchmark_log("hello", "x.log")
