"""edgecnn report: gathering runs and device JSON, sorting, filtering, Pareto front, plot."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner


def _metrics(run_dir, model="mobilenet", alpha=0.5):
    rows = []
    for precision, acc, lat, size, sha in (("float32", 0.95, 1.0, 4000, "aa"), ("int8", 0.94, 0.4, 1000, "bb")):
        rows.append(
            {
                "model": model,
                "variant": precision,
                "stage": "trained",
                "precision": precision,
                "file": f"model_{precision}.tflite",
                "size_bytes": size,
                "params": 100,
                "macs": 1000,
                "tflite_accuracy": acc,
                "latency_median_ms": lat,
                "latency_p90_ms": lat * 1.1,
                "sha256": sha + model,
                "confusion": [[1]],
                "bench": {
                    "status": "ok",
                    "device": "ws",
                    "threads": 1,
                    "runtime": "litert",
                    "runtime_version": "2.3.0",
                    "median_ms": lat,
                    "p90_ms": lat,
                },
            }
        )
    m = {
        "model": model,
        "run_dir": str(run_dir),
        "rows": rows,
        "config": {"model": {"name": model, "alpha": alpha}, "data": {"image_size": 32}},
    }
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.json").write_text(json.dumps(m))
    return run_dir


@pytest.fixture()
def runs(tmp_path):
    _metrics(tmp_path / "runs" / "m", "mobilenet")
    _metrics(tmp_path / "runs" / "l", "lenet5", alpha=1.0)
    device = {
        "status": "ok",
        "kind": "bench",
        "model": "/pi/model_int8.tflite",
        "sha256": "bbmobilenet",
        "size_bytes": 1000,
        "device": "pi4",
        "cpu": "Cortex-A72",
        "threads": 4,
        "runtime": "tflite_runtime",
        "runtime_version": "2.14.0",
        "median_ms": 3.0,
        "p90_ms": 3.5,
    }
    (tmp_path / "pi.json").write_text(json.dumps(device))
    evaluation = {
        "kind": "eval",
        "model": "/pi/model_int8.tflite",
        "sha256": "bbmobilenet",
        "device": "pi4",
        "accuracy": 0.93,
        "confusion": [[1]],
        "samples": 10,
    }
    (tmp_path / "pi-eval.json").write_text(json.dumps(evaluation))
    return tmp_path


def test_device_results_merge_with_their_run(runs):
    from edgecnn.report.results import load_results

    rows = load_results([runs / "runs", runs / "pi.json", runs / "pi-eval.json"])
    assert len(rows) == 5
    pi = [r for r in rows if r["device"] == "pi4"]
    assert len(pi) == 1 and pi[0]["label"] == "mobilenet-a0.50-32px int8"
    assert pi[0]["latency_median_ms"] == 3.0 and pi[0]["tflite_accuracy"] == 0.93 and pi[0]["macs"] == 1000
    ws = [r for r in rows if r["device"] == "ws" and r["sha256"] == "bbmobilenet"]
    assert ws[0]["tflite_accuracy"] == 0.94  # the workstation row keeps its own accuracy


def test_sort_filter_and_pareto():
    from edgecnn.report.pareto import pareto_front
    from edgecnn.report.tables import filter_rows, sort_rows

    rows = [
        {"model": "a", "l": 3.0, "acc": 0.9},
        {"model": "b", "l": 1.0, "acc": 0.8},
        {"model": "c", "l": 2.0, "acc": 0.7},
        {"model": "d", "l": None, "acc": 0.99},
    ]
    assert [r["model"] for r in sort_rows(rows, "l")] == ["b", "c", "a", "d"]
    assert [r["model"] for r in sort_rows(rows, "l", descending=True)] == ["a", "c", "b", "d"]
    with pytest.raises(ValueError, match="no column"):
        sort_rows(rows, "nope")
    assert [r["model"] for r in pareto_front(rows, "l", "acc")] == ["b", "a"]
    assert [r["model"] for r in filter_rows(rows, "[ab]")] == ["a", "b"]


def test_cli_writes_table_and_plot(runs):
    from PIL import Image

    from edgecnn.cli import main

    out = runs / "report"
    res = CliRunner().invoke(
        main,
        [
            "report",
            str(runs / "runs"),
            str(runs / "pi.json"),
            "--sort",
            "median ms",
            "--filter",
            "mobile*",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "pi4" in res.output and "lenet5" not in res.output
    table = json.loads((out / "report.json").read_text())
    assert [r["latency_median_ms"] for r in table] == [0.4, 1.0, 3.0]
    assert "mobilenet-a0.50-32px int8" in (out / "report.md").read_text()
    assert "latency_median_ms" in (out / "report.csv").read_text().splitlines()[0]
    with Image.open(out / "pareto.png") as img:
        assert img.size[0] > 400 and img.size[1] > 300


def test_cli_bad_inputs_are_one_line(runs):
    from edgecnn.cli import main

    (runs / "junk.json").write_text("{not json")
    for args, words in (
        (["report", str(runs / "missing")], "does not exist"),
        (["report", str(runs / "junk.json")], "not valid JSON"),
        (["report", str(runs / "runs"), "--sort", "colour"], "no column"),
        (["report", str(runs / "runs"), "--filter", "resnet*"], "no results match"),
    ):
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 2 and words in res.output, res.output
