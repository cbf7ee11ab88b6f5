import json

import pytest

from edgecnn.pipeline import optimize
from edgecnn.settings.run_config import RunConfig


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "mb"
    cfg = RunConfig.from_dict(
        {
            "model": {"name": "mobilenet", "alpha": 0.25},
            "data": {"train_fraction": 0.3},
            "train": {"epochs": 2, "verbose": 0},
            "convert": {"int8": True, "fp16": True, "calibration_samples": 20},
            "bench": {"runs": 3, "warmup": 1},
            "out": str(out),
        }
    )
    lines = []
    metrics = optimize(cfg, echo=lines.append)
    return cfg, out, metrics, lines


def test_run_folder_holds_every_output(tiny_run):
    _, out, metrics, lines = tiny_run
    for name in ("config.json", "preprocess.json", "metrics.json", "report.md", "table.md", "table.csv",
                 "table.json", "model_float32.tflite", "model_float16.tflite", "model_int8.tflite",
                 "train/weights.h5", "train/model.keras", "train/stage.json"):
        assert (out / name).is_file(), name
    assert not list(out.rglob("*.tmp*")), "no temporary files left behind"
    saved = json.loads((out / "metrics.json").read_text())
    assert [r["variant"] for r in saved["rows"]] == ["float32", "float16", "int8"]
    assert saved["versions"]["tensorflow"].startswith("2.21")
    preprocess = json.loads((out / "preprocess.json").read_text())
    assert preprocess["image_size"] == [32, 32] and preprocess["channels"] == 3
    assert any(line.startswith("variant") for line in "\n".join(lines).splitlines())


def test_rows_measure_each_file(tiny_run):
    _, out, metrics, _ = tiny_run
    for row in metrics["rows"]:
        path = out / row["file"]
        assert row["size_bytes"] == path.stat().st_size
        assert 0.0 <= row["tflite_accuracy"] <= 1.0 and row["bench"]["status"] == "ok"
        assert row["latency_median_ms"] > 0 and row["macs"] > 0 and row["params"] > 0
        assert abs(row["delta_points"] - 100 * (row["tflite_accuracy"] - row["keras_accuracy"])) < 1e-9
    by = {r["variant"]: r for r in metrics["rows"]}
    assert by["int8"]["size_bytes"] < 0.4 * by["float32"]["size_bytes"]


def test_rerun_reuses_the_trained_stage(tiny_run):
    cfg, out, metrics, _ = tiny_run
    before = json.loads((out / "train" / "stage.json").read_text())
    lines = []
    again = optimize(cfg, echo=lines.append)
    assert any("reusing trained weights" in line for line in lines)
    assert json.loads((out / "train" / "stage.json").read_text()) == before
    assert again["stages"]["trained"]["keras_accuracy"] == metrics["stages"]["trained"]["keras_accuracy"]


def test_a_killed_stage_resumes_only_its_own_settings(tmp_path):
    from edgecnn.pipeline import StageStore

    first = StageStore(tmp_path, "pruned", "key-a")
    assert first.load() is None  # nothing stored: training starts, and its settings are noted
    (first.dir / "_backup" / "chief").mkdir(parents=True)
    (first.dir / "_backup" / "chief" / "ckpt-1.index").write_text("epoch checkpoint of key-a")
    # The same settings again (after a kill): the checkpoint is kept, so fit resumes it.
    assert StageStore(tmp_path, "pruned", "key-a").load() is None
    assert (first.dir / "_backup" / "chief" / "ckpt-1.index").is_file()
    # Other settings: the old checkpoint must not be resumed.
    assert StageStore(tmp_path, "pruned", "key-b").load() is None
    assert not (first.dir / "_backup").exists()
    assert (first.dir / "pending.key").read_text().strip() == "key-b"


def test_a_model_near_chance_says_so(tmp_path):
    """An untrained model prints a table like any other: the run says it is near chance, in
    metrics.json, the saved table and the terminal, rather than passing it off as a result."""
    out = tmp_path / "mlp"
    cfg = RunConfig.from_dict({"model": {"name": "mlp"}, "train": {"epochs": 0, "verbose": 0},
                               "bench": {"enabled": False}, "out": str(out)})
    lines = []
    metrics = optimize(cfg, echo=lines.append)
    assert metrics["rows"][0]["tflite_accuracy"] <= 0.19  # 10 classes: within 10% of chance
    (warning,) = metrics["warnings"]
    assert warning.startswith("warning: near chance (10.0% for 10 classes): float32 ")
    assert warning in lines and warning in (out / "table.md").read_text()
    assert json.loads((out / "metrics.json").read_text())["rows"][0]["near_chance"] is True
