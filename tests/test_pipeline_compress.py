"""The compression stages through ``edgecnn optimize``, as a user runs them (LeNet-5, 1 epoch)."""

from __future__ import annotations

import gzip
import json

import pytest
from click.testing import CliRunner

import edgecnn  # noqa: F401
from edgecnn.cli import main
from edgecnn.settings.run_config import RunConfig, resolve


def _invoke(*args):
    return CliRunner().invoke(main, ["optimize", "--allow-outside", *args], catch_exceptions=False)


def test_every_stage_is_a_row_matching_its_file(tmp_path):
    out = tmp_path / "run"
    result = _invoke(
        "lenet5",
        "--epochs", "1",
        "--train-fraction", "0.3",
        "--prune-channels", "0.5",
        "--prune", "0.5",
        "--prune-epochs", "1",
        "--distill-from", "lenet5:2.0",
        "--teacher-epochs", "1",
        "--qat",
        "--qat-epochs", "1",
        "--no-bench",
        "--out", str(out),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    variants = [r["variant"] for r in metrics["rows"]]
    assert variants == [
        "float32",
        "int8",  # --qat brings post-training int8 along, to compare against
        "distilled float32",
        "distilled int8",
        "channel_pruned float32",
        "channel_pruned int8",
        "pruned float32",
        "pruned int8",
        "qat int8",
    ]
    rows = {r["variant"]: r for r in metrics["rows"]}
    for row in metrics["rows"]:
        path = out / row["file"]
        assert row["size_bytes"] == path.stat().st_size
        assert row["size_gzip"] == len(gzip.compress(path.read_bytes(), compresslevel=9))
    assert rows["channel_pruned float32"]["params"] < 0.5 * rows["float32"]["params"]
    assert rows["channel_pruned float32"]["macs"] < 0.5 * rows["float32"]["macs"]
    pruned = rows["pruned float32"]
    assert pruned["nonzero_params"] < 0.7 * pruned["params"]
    assert rows["qat int8"]["nonzero_params"] == pruned["nonzero_params"]  # QAT kept the zeros
    stages = metrics["stages"]
    assert stages["qat"]["scheme"] == "prune-preserving 8-bit"
    assert stages["pruned"]["layer_sparsity"]["c1"] == 0.0
    assert stages["pruned"]["layer_sparsity"]["c3"] == pytest.approx(0.5, abs=0.02)
    assert stages["distilled"]["teacher"] == "lenet5:2.0"
    assert "pruned" in (out / "report.md").read_text()

    # Same settings again: every stage comes from its cache, nothing is retrained.
    again = _invoke("lenet5", "--epochs", "1", "--train-fraction", "0.3", "--prune", "0.5", "--prune-epochs", "1",
                    "--prune-channels", "0.5", "--distill-from", "lenet5:2.0", "--teacher-epochs", "1", "--qat",
                    "--qat-epochs", "1", "--no-bench", "--out", str(out))  # fmt: skip
    assert again.exit_code == 0
    assert again.output.count("reusing") == 6  # train, teacher, distilled, channel_pruned, pruned, qat
    assert "Epoch" not in again.output


def test_sparse_storage_shrinks_the_pruned_file_not_its_outputs(tmp_path):
    from edgecnn.device.flatbuffer import read_model

    out = tmp_path / "run"
    flags = ["lenet5", "--epochs", "1", "--prune", "0.5", "--prune-epochs", "1", "--no-bench", "--out", str(out)]
    assert _invoke(*flags).exit_code == 0
    plain = {r["variant"]: r for r in json.loads((out / "metrics.json").read_text())["rows"]}
    stored = _invoke(*flags, "--sparse-storage")  # same settings: the stages come from the cache
    assert stored.exit_code == 0, stored.output
    assert "pruned float32: converting (sparse storage)" in stored.output
    rows = {r["variant"]: r for r in json.loads((out / "metrics.json").read_text())["rows"]}
    before, after = plain["pruned float32"], rows["pruned float32"]
    assert after["sparse_storage"] and not before["sparse_storage"]
    assert after["size_bytes"] < 0.8 * before["size_bytes"]
    assert after["size_gzip"] < before["size_gzip"]
    assert after["size_bytes"] == (out / after["file"]).stat().st_size
    assert after["confusion"] == before["confusion"]  # the same confusion matrix on the test split
    assert "DENSIFY" in {op for op, _ in read_model(out / after["file"]).op_counts()}
    # The dense model has no zeros to store sparsely: it is exported as before.
    assert "      float32: converting\n" in stored.output
    assert not rows["float32"]["sparse_storage"]
    assert rows["float32"]["size_bytes"] == plain["float32"]["size_bytes"]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--prune", "1.5"], "prune.sparsity must be between 0 and 1"),
        (["--prune-channels", "0"], "channel_prune.fraction must be between 0 and 1"),
        (["--prune-structure", "2:4", "--prune", "0.7"], "2:4 structured sparsity is always 50%"),
        (["--distill-from", "nosuchnet"], "unknown model"),
        (["--distill-alpha", "2"], "distill.alpha must be in"),
        (["--prune", "0.5", "--prune-epochs", "0"], "prune.epochs must be >= 1"),
        (["--distill-from", "resnet18", "--distill-mixup", "-1"], "distill.mixup must be >= 0"),
    ],
)
def test_bad_combinations_fail_in_one_line(tmp_path, flags, message):
    result = CliRunner().invoke(main, ["optimize", "lenet5", "--allow-outside", "--out", str(tmp_path / "r"), *flags])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "r" / "train").exists()  # failed before any training


def test_teacher_on_the_full_split_and_the_student_from_the_same_start(tmp_path):
    out = tmp_path / "run"
    flags = ["lenet5", "--epochs", "1", "--train-fraction", "0.2", "--distill-from", "lenet5:0.5",
             "--teacher-epochs", "1", "--teacher-data", "full", "--distill-alpha", "1.0", "--no-bench",
             "--out", str(out)]  # fmt: skip
    result = _invoke(*flags)
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    stages = metrics["stages"]
    assert stages["distilled"]["teacher_train_images"] == 1257  # the whole training split
    assert "train 251," in result.output  # while the student saw a fifth of it
    # alpha 1: the label loss alone, from the same initial weights and batches as the plain
    # model, so the distilled row is the plain model again.
    rows = {r["variant"]: r for r in metrics["rows"]}
    assert rows["distilled float32"]["tflite_accuracy"] == rows["float32"]["tflite_accuracy"]
    assert not list(out.rglob("pending.key"))  # every stage finished: nothing in progress


def test_full_teacher_data_needs_a_registered_teacher(tmp_path):
    from edgecnn.models import create_model

    path = tmp_path / "teacher.keras"
    create_model("lenet5", input_shape=(32, 32, 1), classes=10).save(path)
    flags = ["optimize", "lenet5", "--allow-outside", "--distill-from", str(path), "--teacher-data", "full"]
    flags += ["--out", str(tmp_path / "r")]
    result = CliRunner().invoke(main, flags)
    assert result.exit_code == 2, result.output
    assert "a saved teacher" in result.output and "Traceback" not in result.output


def test_teacher_with_other_classes_fails_before_training(tmp_path):
    from edgecnn.models import create_model

    path = tmp_path / "teacher.keras"
    create_model("lenet5", input_shape=(32, 32, 1), classes=3).save(path)
    flags = ["optimize", "lenet5", "--allow-outside", "--distill-from", str(path), "--out", str(tmp_path / "r")]
    result = CliRunner().invoke(main, flags)
    assert result.exit_code == 2, result.output
    assert "has 3 classes but the student" in result.output
    assert not (tmp_path / "r" / "train").exists()


def test_config_defaults_follow_training():
    cfg = resolve(RunConfig.from_dict({"model": {"name": "lenet5"}, "train": {"epochs": 30, "learning_rate": 1e-3},
                                       "prune": {"structure": "2:4"}, "qat": {"enabled": True}}))  # fmt: skip
    assert cfg.prune.sparsity == 0.5 and cfg.prune.epochs == 15 and cfg.prune.learning_rate == pytest.approx(5e-4)
    assert cfg.qat.epochs == 6 and cfg.convert.int8
