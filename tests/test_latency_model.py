"""The latency model: op models made on the host, timed into a table, a candidate predicted from it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _tiny_tflite import build_tiny_models

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def grid_dir(tmp_path_factory):
    """The quick grid (a conv, a depthwise conv, an add, a two-block chain) in int8, made once."""
    from edgecnn.tflite.op_grid import write_grid

    folder = tmp_path_factory.mktemp("ops")
    write_grid(folder, precisions=("int8",), quick=True)
    return folder


@pytest.fixture(scope="module")
def table_path(grid_dir, tmp_path_factory):
    """The quick grid timed through the device CLI (``bench --table``), as a user runs it."""
    path = tmp_path_factory.mktemp("table") / "table.json"
    proc = _device_cli("bench", "--table", str(path), str(grid_dir), "--runs", "3", "--warmup", "1")
    assert proc.returncode == 0, proc.stderr
    assert "op models timed" in proc.stderr  # progress
    return path


def _device_cli(*argv, cwd=None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), EDGECNN_DEVICE="test-device")
    return subprocess.run([sys.executable, "-m", "edgecnn.device.cli", *argv], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


def test_grid_manifest_lists_every_file(grid_dir):
    manifest = json.loads((grid_dir / "manifest.json").read_text())
    files = sorted(p.name for p in grid_dir.glob("*.tflite"))
    assert sorted(m["file"] for m in manifest["models"]) == files and len(files) == 4
    assert {m["kind"] for m in manifest["models"]} == {"conv", "depthwise", "add", "chain"}


def test_table_round_trip(table_path, grid_dir):
    from edgecnn.device.latency_model import LatencyTable

    data = json.loads(table_path.read_text())
    assert data["kind"] == "latency_table" and data["threads"] == 1 and data["failed"] == []
    assert data["machine"]["device"] == "test-device" and data["cpu_line"].startswith("CPU: ")
    groups = {e["group"] for e in data["entries"]}
    assert groups == {"CONV_2D/int8/k1s1", "DEPTHWISE_CONV_2D/int8/k3s1", "ADD/int8"}
    assert all(e["ms"] > 0 for e in data["entries"])
    # the chain calibrates what an op costs inside a graph: its 4 ops (dw, conv twice) are stored
    assert [[o["op"] for o in c["ops"]] for c in data["chains"]] == [["DEPTHWISE_CONV_2D", "CONV_2D"] * 2]
    table = LatencyTable.load(table_path)
    in_graph = table.per_op_ms["int8"]
    assert set(table.per_op_ms) == {"int8", "*"} and in_graph >= 0
    assert "test-device" in table.describe() and "1 thread(s)" in table.describe()
    # An op model the table holds is predicted as its own time (plus the in-graph cost of one op).
    entry = next(e for e in data["entries"] if e["group"] == "CONV_2D/int8/k1s1")
    p = table.predict(grid_dir / entry["file"])
    assert [row[3] for row in p.per_op] == ["table"]
    assert p.ms == pytest.approx(entry["ms"] + in_graph, rel=1e-6)


def test_predict_a_model_from_its_ops(table_path, tmp_path):
    from edgecnn.device.latency_model import LatencyTable

    tiny = build_tiny_models(tmp_path)
    table = LatencyTable.load(table_path)
    p = table.predict(tiny["int8"])
    assert p.ms > 0 and p.note.startswith("estimate from table.json: ")
    ops = [row[0] for row in p.per_op]
    assert ops[:2] == ["CONV_2D", "DEPTHWISE_CONV_2D"] and "FULLY_CONNECTED" in ops
    hows = dict((row[0], row[3]) for row in p.per_op)
    # a 3x3 stride-2 conv is not in the quick grid: the per-op overhead only, and the note says so
    assert hows["CONV_2D"] == "fixed" and hows["DEPTHWISE_CONV_2D"] in ("interpolated", "extrapolated")
    assert "CONV_2D" in p.note and all(row[2] >= 0 for row in p.per_op)
    # bench --predict: measured, predicted, and how far off, in the bench JSON
    proc = _device_cli("bench", str(tiny["int8"]), "--runs", "3", "--predict", str(table_path), "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["predicted_ms"] == pytest.approx(p.ms)
    assert result["prediction_error"] == pytest.approx(p.ms / result["median_ms"] - 1)


@pytest.mark.parametrize("content", [None, "{not json", '{"kind": "bench"}'])
def test_missing_or_corrupt_table_is_one_line(content, tmp_path):
    from edgecnn.device.latency_model import LatencyTable
    from edgecnn.errors import UserError

    path = tmp_path / "t.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UserError) as exc:
        LatencyTable.load(path)
    assert "\n" not in str(exc.value) and "t.json" in str(exc.value)


def test_bench_table_mistakes_are_one_line_exit_2(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.json").write_text('{"kind": "latency_table", "entries": [')
    for argv, words in ((["bench", "--table", "t.json", "empty"], "no .tflite op models"),
                        (["bench", "m.tflite", "--predict", "missing.json"], "no such latency table"),
                        (["bench", "m.tflite", "--predict", "bad.json"], "not a readable latency table"),
                        (["bench", "--table", "t.json", "nowhere"], "not a folder of op models"),
                        (["bench", "--table", "t.json", "empty", "--threads", "1", "--threads", "2"], "one --threads")):
        proc = _device_cli(*argv, cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        assert words in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
