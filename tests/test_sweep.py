"""edgecnn sweep: the grid, settings checks, and skipping finished runs when run again."""

from __future__ import annotations

import json

import pytest

from edgecnn.errors import UserError
from edgecnn.sweep import SweepSpec, plan


def test_plan_groups_precisions_into_one_run_per_point(tmp_path):
    spec = SweepSpec(
        models=["mobilenet"],
        alphas=[0.25, 0.5],
        sizes=[32, 64],
        precisions=["float32", "float16", "dynamic", "int8"],
        out=str(tmp_path),
    )
    points = plan(spec)
    assert len(points) == 4 and len({p.out for p in points}) == 4
    conv = points[0].config["convert"]
    assert conv == {"int8": True, "fp16": True, "dynamic": True}
    assert points[0].out.name == "mobilenet-a0.25-32px"


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"models": ["mobilnet"]}, "did you mean"),
        ({"models": ["mobilenet"], "precisions": ["int4"]}, "precision"),
        ({"models": ["mobilenet"], "sparsities": [1.5]}, "sparsity"),
    ],
)
def test_bad_grids_are_user_errors(kwargs, words, tmp_path):
    with pytest.raises(UserError, match=words):
        plan(SweepSpec(out=str(tmp_path), **kwargs))


def test_qat_and_sparsity_need_the_compression_sections(tmp_path):
    from edgecnn.settings.run_config import RunConfig

    for kwargs, section in (({"precisions": ["qat"]}, "qat"), ({"sparsities": [0.5]}, "prune")):
        spec = SweepSpec(models=["mobilenet"], out=str(tmp_path), **kwargs)
        if section in RunConfig.__dataclass_fields__:  # the compression branch is merged: settings pass through
            assert section in plan(spec)[0].config
        else:
            with pytest.raises(UserError, match=f"section '{section}'"):
                plan(spec)


@pytest.mark.slow
def test_sweep_runs_then_skips_what_is_done(tmp_path):
    from edgecnn.sweep import run_sweep

    spec = SweepSpec(
        models=["mobilenet"],
        alphas=[0.25],
        sizes=[32],
        precisions=["float32", "int8"],
        base={"train": {"epochs": 0}, "data": {"train_fraction": 0.2}, "bench": {"runs": 3}},
        out=str(tmp_path / "sweep"),
    )
    lines = []
    first = run_sweep(spec, echo=lines.append)
    assert [p["status"] for p in first["points"]] == ["ok"]
    assert {r["precision"] for r in first["rows"]} == {"float32", "int8"}
    assert (tmp_path / "sweep" / "report.md").exists() and (tmp_path / "sweep" / "pareto.png").exists()
    assert any("[1/1 runs, 0/2 variants" in line for line in lines)
    again = run_sweep(spec, echo=lines.append)
    assert [p["status"] for p in again["points"]] == ["skipped"] and len(again["rows"]) == 2
    saved = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert saved["points"][0]["status"] == "skipped"
    # A run interrupted after training (no metrics.json yet) resumes from the stored weights.
    (tmp_path / "sweep" / "mobilenet-a0.25-32px" / "metrics.json").unlink()
    lines.clear()
    resumed = run_sweep(spec, echo=lines.append)
    assert [p["status"] for p in resumed["points"]] == ["ok"], lines
    assert any("reusing trained weights" in line for line in lines)
