"""Recipes: validation with line numbers, variables, stages, overrides, and real runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _metadata_reader import assert_matches_preprocess
from click.testing import CliRunner

from edgecnn.cli import main
from edgecnn.errors import UserError
from edgecnn.recipe import load_recipe, parse_override, parse_recipe, run_recipe
from edgecnn.settings.run_config import check_out_path

ROOT = Path(__file__).resolve().parent.parent
RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))


def error_of(text: str, overrides=(), **kw) -> str:
    with pytest.raises(UserError) as info:
        parse_recipe(text, "r.yaml", overrides, **kw)
    return str(info.value)


def test_unknown_key_names_line_and_suggests():
    text = "model:\n  name: lenet5\ntrain:\n  batch_size: 8\n  epoch: 3\n"
    assert error_of(text) == "r.yaml line 5: unknown key train.epoch (did you mean epochs?)"
    assert error_of("modle: {name: lenet5}\n").startswith("r.yaml line 1: unknown key modle (did you mean model?)")


def test_wrong_type_and_range_name_the_key_and_line():
    msg = error_of("model: {name: lenet5}\ntrain:\n  epochs: many\n")
    assert msg.startswith("r.yaml line 3:") and "train.epochs must be an integer" in msg
    msg = error_of("model: {name: lenet5}\ntrain:\n  learning_rate: 50\n")
    assert msg.startswith("r.yaml line 3:") and "learning_rate" in msg
    msg = error_of("model: {name: lenet5}\ndata:\n  seed: 0\n  test_split: 1.5\n")
    assert msg.startswith("r.yaml line 4:") and "data.test_split" in msg


def test_unknown_model_and_missing_file():
    assert error_of("model:\n  name: lenet6\n").startswith("r.yaml line 2: unknown model 'lenet6'")
    msg = error_of("model: {name: lenet5}\ndata:\n  source: no/such/photos\n")
    assert msg.startswith("r.yaml line 3:") and "not found" in msg


def test_yaml_is_read_safely_and_duplicates_refused():
    msg = error_of("model: !!python/object/apply:os.system ['echo hacked']\n")
    assert "line 1" in msg and "refused" in msg
    assert "appears twice" in error_of("model: {name: lenet5}\nmodel: {name: mlp}\n")
    assert "not valid YAML" in error_of("model: [unclosed\n")
    assert "mapping of sections" in error_of("- just\n- a list\n")


def test_variables_keep_types_and_interpolate():
    r = parse_recipe(
        "vars: {size: 40, tag: small, n: '${size}'}\nmodel: {name: lenet5}\n"
        "data: {image_size: '${n}'}\nout: runs/lenet-${tag}-${size}\n",
        "r.yaml",
    )
    assert r.config.data.image_size == 40 and r.config.out == "runs/lenet-small-40"
    assert "vars" in error_of("model: {name: '${model}'}\n") and "line 1" in error_of("model: {name: '${x}'}\n")
    assert "refers to itself" in error_of("vars: {a: '${b}', b: '${a}'}\n")


def test_stages_map_onto_sections_in_order():
    r = parse_recipe(
        "model: {name: mobilenet}\nstages:\n  - width: 0.25\n  - convert: {precisions: [int8, fp16]}\n  - evaluate\n",
        "r.yaml",
    )
    assert r.stages == ["width", "convert", "evaluate"]
    c = r.config
    assert (c.model.alpha, c.convert.int8, c.convert.fp16, c.convert.dynamic, c.bench.enabled) == (
        0.25,
        True,
        True,
        False,
        False,
    )
    assert "cannot come after" in error_of("model: {name: mobilenet}\nstages: [evaluate, convert]\n")
    assert "line 3: unknown stage 'prun'" in error_of("model: {name: mobilenet}\nstages:\n  - prun\n")
    assert "listed twice" in error_of("model: {name: mobilenet}\nstages: [evaluate, evaluate]\n")
    assert "unknown precision" in error_of("model: {name: mobilenet}\nstages: [{convert: {precisions: [int4]}}]\n")


def test_every_compression_stage_is_a_recipe_stage():
    text = "model: {name: mobilenet}\nstages:\n  - channel_prune: {fraction: 0.25}\n  - prune: {sparsity: 0.5}\n"
    r = parse_recipe(text + "  - evaluate\n", "r.yaml")
    assert (r.config.channel_prune.fraction, r.config.prune.sparsity) == (0.25, 0.5)
    assert r.stages == ["channel_prune", "prune", "convert", "evaluate"]
    assert "r.yaml line 4: prune.sparsity must be between 0 and 1" in error_of(text.replace("0.5", "1.5"))
    # Left out of the list: off, even when its section is set at the top level.
    off = parse_recipe("model: {name: mobilenet}\nprune: {sparsity: 0.5}\nstages: [evaluate]\n", "r.yaml")
    assert off.config.prune.sparsity is None and off.stages == ["convert", "evaluate"]


def test_precedence_defaults_recipe_then_set():
    text = "vars: {seed: 3}\nmodel: {name: lenet5}\ntrain: {epochs: 5, seed: '${seed}'}\n"
    assert parse_recipe(text, "r.yaml").config.train.batch_size == 32  # default
    r = parse_recipe(text, "r.yaml", ["train.epochs=2", "vars.seed=7", "model.args.pool=max"])
    assert (r.config.train.epochs, r.config.train.seed, r.config.model.args) == (2, 7, {"pool": "max"})
    assert parse_override("convert.int8=true") == ("convert.int8", True)
    assert error_of(text, ["train.epoch=2"]) == "--set train.epoch=2: unknown key train.epoch (did you mean epochs?)"
    assert "KEY.PATH=VALUE" in error_of(text, ["train.epochs"])
    assert "--set train.epochs=x" in error_of(text, ["train.epochs=x"])


def test_out_must_stay_inside_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for out in ("../../etc", "runs/../../x", "/etc/edgecnn"):
        msg = error_of(f"model: {{name: lenet5}}\nout: {out}\n")
        assert msg.startswith("r.yaml line 2: out ") and "--allow-outside" in msg
    assert parse_recipe("model: {name: lenet5}\nout: /tmp/x\n", "r.yaml", allow_outside=True).config.out == "/tmp/x"
    (tmp_path / "link").symlink_to("/tmp")
    with pytest.raises(UserError, match="symbolic link"):
        check_out_path("link/run")


def test_resolved_recipe_round_trips():
    r = parse_recipe("model: {name: mobilenet}\nstages: [{width: 0.5}, {bench: {runs: 7}}]\n", "r.yaml")
    again = parse_recipe(r.to_yaml(), "resolved.yaml")
    assert again.config == r.config and again.stages == r.stages


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_every_recipe_is_valid(path):
    r = load_recipe(path)  # a UserError fails the test: every family and stage is merged
    assert r.config.out == f"runs/{path.stem}" and r.stages[-2:] in (["evaluate", "bench"], ["convert", "evaluate"])


def test_cli_check_and_errors(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("model: {name: lenet5}\nstages: [evaluate]\n")
    res = CliRunner().invoke(main, ["run", str(good), "--check", "--set", "train.epochs=1"])
    assert res.exit_code == 0 and "epochs: 1" in res.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {name: lenet5}\ntrain:\n  epoch: 1\n")
    res = CliRunner().invoke(main, ["run", str(bad)])
    assert res.exit_code == 2 and "bad.yaml line 3: unknown key train.epoch" in res.output
    assert "Traceback" not in res.output
    res = CliRunner().invoke(main, ["run", str(tmp_path / "missing.yaml")])
    assert res.exit_code == 2 and "not found" in res.output


TINY = (
    "vars: {seed: 0}\nmodel: {name: lenet5}\n"
    "data: {train_fraction: 0.2, seed: '${seed}'}\ntrain: {epochs: 2, seed: '${seed}', verbose: 0}\n"
    "stages: [{convert: {precisions: [int8], calibration_samples: 16}}, evaluate]\nout: runs/tiny\n"
)


def test_run_saves_resolved_recipe_and_manifest_and_matches_optimize(tmp_path, monkeypatch):
    from edgecnn._io import sha256_file
    from edgecnn.pipeline import optimize
    from edgecnn.settings.run_config import RunConfig

    monkeypatch.chdir(tmp_path)
    Path("tiny.yaml").write_text(TINY)
    lines = []
    metrics = run_recipe("tiny.yaml", echo=lines.append)
    out = Path("runs/tiny")
    assert load_recipe(out / "recipe.yaml").config == load_recipe("tiny.yaml").config
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["inputs"]["recipe"]["sha256"] == sha256_file("tiny.yaml")
    assert "data:digits" in manifest["inputs"] and manifest["versions"]["tensorflow"]
    for name in ("model_int8.tflite", "metrics.json", "train/weights.h5", "recipe.yaml"):
        assert manifest["outputs"][name]["sha256"] == sha256_file(out / name)

    # The other door: the same settings through optimize() give the same figures.
    cfg = RunConfig.from_dict({**json.loads((out / "config.json").read_text()), "out": "runs/by-optimize"})
    other = optimize(cfg, echo=lambda *a: None)
    pick = ("variant", "size_bytes", "keras_accuracy", "tflite_accuracy", "params", "macs")
    assert [[r[k] for k in pick] for r in other["rows"]] == [[r[k] for k in pick] for r in metrics["rows"]]

    # Running again skips the finished training stage.
    lines.clear()
    again = run_recipe("tiny.yaml", echo=lines.append)
    assert any("reusing trained weights" in str(line) for line in lines)
    assert [r["tflite_accuracy"] for r in again["rows"]] == [r["tflite_accuracy"] for r in metrics["rows"]]


FAST = {"lenet5_digits", "mlp_digits_int8"}
REDUCED = [pytest.param(p, id=p.stem, marks=() if p.stem in FAST else pytest.mark.slow) for p in RECIPES]
# 2 epochs on the whole training split at batch 8 (~310 steps): enough for batch-norm
# statistics to settle. (1 epoch on 5% of it left every batch-norm model at chance.)
REDUCED_SETTINGS = [
    "train.epochs=2",
    "train.batch_size=8",
    "train.verbose=0",
    "data.train_fraction=1.0",
    "bench.enabled=false",
    "convert.calibration_samples=8",
    "prune.epochs=1",
    "qat.epochs=1",
    "distill.teacher_epochs=1",
    "out=runs/reduced",
]
# Test-split accuracy every .tflite of a reduced run must reach (chance is 10%). Measured
# once at seed 0 on 2 CPU cores (lowest row, in the comment); the floor is the higher of
# halfway from chance to it and 15 points under it, rounded down to 5 points, for seed
# and thread-order noise. A new recipe needs its floor here.
FLOORS = {
    "alexnet_025_int8": 0.70,  # 89.7%
    "densenet121_050_int8": 0.75,  # 90.0%
    "efficientnet_b0_distill_int8": 0.25,  # 43.9% (the distilled rows; the plain ones 80.8%)
    "googlenet_050_int8": 0.55,  # 70.8%
    "lenet5_digits": 0.80,  # 95.8%
    "mlp_digits_int8": 0.75,  # 94.2%
    "mobilenet_v1_050_int8": 0.20,  # 39.4%
    "mobilenet_v2_035_int8": 0.15,  # 28.3%
    "mobilenet_v3_small_075_int8": 0.75,  # 92.2%
    "resnet18_prune50_qat": 0.80,  # 95.6%
    "shufflenet_v2_050_int8": 0.20,  # 36.9%
    "vgg11_025_int8": 0.65,  # 83.9%
}


@pytest.mark.parametrize("path", REDUCED)
def test_every_recipe_runs_reduced(path, tmp_path, monkeypatch):
    """Each recipe end to end, reduced (:data:`REDUCED_SETTINGS`), above its accuracy floor."""
    assert path.stem in FLOORS, f"recipes/{path.name} has no accuracy floor in tests/test_recipe.py FLOORS"
    monkeypatch.chdir(tmp_path)
    metrics = run_recipe(path, REDUCED_SETTINGS, echo=lambda *a: None)
    assert metrics["rows"] and (tmp_path / "runs/reduced/recipe.yaml").is_file()
    accuracy = [(row["variant"], round(row["tflite_accuracy"], 4)) for row in metrics["rows"]]
    assert min(a for _, a in accuracy) >= FLOORS[path.stem], f"{path.stem}: {accuracy}, floor {FLOORS[path.stem]}"
    # Every exported file (every family, float32 and int8) carries metadata equal to preprocess.json.
    files = sorted((tmp_path / "runs/reduced").glob("*.tflite"))
    assert files
    for tflite in files:
        assert_matches_preprocess(tflite, tmp_path / "runs/reduced/preprocess.json")
