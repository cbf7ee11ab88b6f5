"""Sweeps: architectures x width x resolution x precision (x sparsity), each measured.

Every (model, alpha, image size, sparsity) point of the grid is one run of
:func:`edgecnn.pipeline.optimize` with its own :class:`~edgecnn.settings.run_config.RunConfig` and run
folder under the sweep's folder; the precisions are the ``.tflite`` files that one run
exports (the post-training precisions of :data:`~edgecnn.settings.sections.PRECISION_SWITCHES`)
plus the stages whose result is a precision of its own (:attr:`edgecnn.stages.Stage.precision`:
``qat``), and the sparsity is the switch of the stage whose axis it is
(:attr:`edgecnn.stages.Stage.axis`: ``prune.sparsity``). A run whose ``metrics.json`` already holds the same
resolved settings is skipped, a run interrupted mid-way resumes from its stored stages
(the pipeline caches training by key), and the sparse points start from the dense
point's trained weights. At the end the rows of every run go into one table and an
accuracy-vs-latency plot with the Pareto front (:func:`edgecnn.report.tables.write_report`).

Example:
    >>> spec = SweepSpec(models=["mobilenet"], alphas=[0.25, 0.5], sizes=[128],
    ...                  precisions=["float32", "int8"], out="runs/sweep")
    >>> len(plan(spec))
    2
    >>> result = run_sweep(spec)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from edgecnn.errors import UserError
from edgecnn.settings.run_config import PRECISION_SWITCHES
from edgecnn.settings.run_config import PRECISIONS as CONVERT_PRECISIONS
from edgecnn.stages import axis_stage, precision_stages

PRECISIONS = (*CONVERT_PRECISIONS, *precision_stages())


@dataclass
class SweepSpec:
    """The grid. ``None`` in ``alphas``/``sizes`` means the model's default; a sparsity of
    0 is the dense model. ``base`` holds further RunConfig settings as nested dicts
    (``{"train": {"epochs": 5}, "data": {"source": "digits"}}``)."""

    models: list
    alphas: list = field(default_factory=lambda: [None])
    sizes: list = field(default_factory=lambda: [None])
    precisions: list = field(default_factory=lambda: ["float32", "int8"])
    sparsities: list = field(default_factory=lambda: [0.0])
    base: dict = field(default_factory=dict)
    out: str = "runs/sweep"


@dataclass
class Point:
    """One run of the pipeline in the sweep: its settings, folder and variants."""

    model: str
    alpha: float | None
    size: int | None
    sparsity: float
    precisions: list
    config: dict
    out: Path

    @property
    def name(self) -> str:
        return self.out.name


def merge_settings(base: dict, extra: dict) -> dict:
    """``base`` with ``extra`` laid over it, section by section (nested dicts merged, not replaced)."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge_settings(out[k], v)
        else:
            out[k] = v
    return out


def check_spec(spec: SweepSpec) -> None:
    """Reject an empty grid or unknown precision/model with one :class:`UserError` line.

    Example:
        >>> check_spec(SweepSpec(models=["mobilenet"], precisions=["int4"]))  # doctest: +SKIP
        Traceback (most recent call last):
        edgecnn.errors.UserError: unknown precision 'int4' ...
    """
    from edgecnn.errors import suggest
    from edgecnn.models import list_models

    if not spec.models:
        raise UserError("the sweep needs at least one model (--models mobilenet,...)")
    known = list_models()
    for m in spec.models:
        if m not in known:
            raise UserError(f"unknown model {m!r}{suggest(m, known)}; run 'edgecnn list' to see every model")
    for p in spec.precisions:
        if p not in PRECISIONS:
            raise UserError(f"unknown precision {p!r}{suggest(p, PRECISIONS)}; choose from {', '.join(PRECISIONS)}")
    if not spec.precisions:
        raise UserError("the sweep needs at least one precision (--precisions float32,int8)")
    for s in spec.sparsities:
        if not 0.0 <= float(s) < 1.0:
            raise UserError(f"sparsity must be in [0, 1), got {s}")


def plan(spec: SweepSpec) -> list:
    """The runs of the grid, each a :class:`Point` with a validated RunConfig dict.

    Example:
        >>> [p.name for p in plan(SweepSpec(models=["mobilenet"], alphas=[0.5], sizes=[64]))]
        ['mobilenet-a0.50-64px']
    """
    from edgecnn.settings.run_config import RunConfig, run_name

    check_spec(spec)
    points = []
    for model in spec.models:
        for alpha in spec.alphas:
            for size in spec.sizes:
                for sparsity in spec.sparsities:
                    sparsity = float(sparsity)
                    out = Path(spec.out) / run_name(model, alpha, size, sparsity=sparsity)
                    extra = {
                        "model": {"name": model, **({"alpha": float(alpha)} if alpha is not None else {})},
                        "data": {"image_size": int(size)} if size is not None else {},
                        "convert": _convert_switches(spec.precisions),
                        "out": str(out),
                        **_stage_switches(spec.precisions, sparsity),
                    }
                    config = merge_settings(spec.base, extra)
                    RunConfig.from_dict(config)  # every key checked before any training starts
                    points.append(Point(model, alpha, size, sparsity, list(spec.precisions), config, out))
    return points


def _convert_switches(precisions: list) -> dict:
    """A point's ``convert`` settings: each post-training precision's switch, on when
    ``precisions`` names it. int16x8 is only ever switched on: a sweep that does not name it
    leaves the base settings' choice (it came after the others).

    Example:
        >>> _convert_switches(["float32", "int8"])
        {'fp16': False, 'dynamic': False, 'int8': True}
    """
    out = {switch: name in precisions for name, switch in PRECISION_SWITCHES.items() if switch}
    if not out["int16x8"]:
        del out["int16x8"]
    return out


def _stage_switches(precisions: list, sparsity: float) -> dict:
    """The stage sections a point switches on: each stage named as a precision (``qat``),
    and the stage whose axis is the sparsity when it is not 0.

    Example:
        >>> _stage_switches(["int8", "qat"], 0.5)
        {'qat': {'enabled': True}, 'prune': {'sparsity': 0.5}}
    """
    out = {stage.name: stage.switch_on() for name, stage in precision_stages().items() if name in precisions}
    if sparsity:
        stage = axis_stage("sparsity")
        out[stage.name] = stage.switch_on(sparsity)
    return out


def run_done(point: Point, resolved: dict) -> bool:
    """Whether ``point``'s folder holds a finished run of exactly these resolved settings."""
    try:
        metrics = json.loads((point.out / "metrics.json").read_text())
    except (OSError, ValueError):
        return False
    return metrics.get("config") == resolved and bool(metrics.get("rows"))


def _prime_training(point: Point, siblings: list) -> None:
    """Copy a dense sibling's ``train/`` stage so a sparse point reuses its trained weights.

    The pipeline still checks the stage key, so weights are only reused when the model,
    data and training settings are the same.
    """
    if (point.out / "train" / "stage.json").exists():
        return
    for other in siblings:
        src = other.out / "train"
        if other is not point and (src / "stage.json").exists() and (src / "weights.h5").exists():
            point.out.mkdir(parents=True, exist_ok=True)
            tmp = point.out / ".train.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(src, tmp)
            tmp.rename(point.out / "train")
            return


def run_sweep(spec: SweepSpec, echo: Callable = print, stop_on_error: bool = False) -> dict:
    """Run (or resume) the whole grid, then write the combined table and plot.

    Returns ``{"points": [{"name", "status", "seconds", "error"?}], "rows": [...],
    "paths": {...}}``. A run that fails is recorded and the sweep goes on (unless
    ``stop_on_error``); a user mistake in the settings stops it before any training.

    Example:
        >>> run_sweep(SweepSpec(models=["mobilenet"], alphas=[0.25, 0.5], sizes=[96]))  # doctest: +SKIP
    """
    from edgecnn._io import run_lock

    with run_lock(spec.out):  # one sweep per folder; each point's run folder is locked by its own run too
        return _run_sweep(spec, echo, stop_on_error)


def _run_sweep(spec: SweepSpec, echo: Callable, stop_on_error: bool) -> dict:
    from edgecnn._io import write_json
    from edgecnn.models import model_info
    from edgecnn.pipeline import optimize
    from edgecnn.report.results import load_results
    from edgecnn.report.tables import format_table, report_columns, write_report
    from edgecnn.settings.run_config import RunConfig, resolve

    points = plan(spec)
    root = Path(spec.out)
    root.mkdir(parents=True, exist_ok=True)
    write_json(root / "sweep.json", {"spec": spec.__dict__, "points": [p.name for p in points]})
    n_variants = sum(len(p.precisions) for p in points)
    echo(f"sweep: {len(points)} run(s), {n_variants} variant(s) -> {root}")
    status, started, done_variants = [], time.time(), 0
    for i, point in enumerate(points, start=1):
        resolved = resolve(RunConfig.from_dict(point.config), model_info(point.model)).to_dict()
        head = (
            f"[{i}/{len(points)} runs, {done_variants}/{n_variants} variants, "
            f"{time.time() - started:.0f} s] {point.name}: {', '.join(point.precisions)}"
        )
        if run_done(point, resolved):
            echo(f"{head}: already done, skipped")
            status.append({"name": point.name, "status": "skipped"})
            done_variants += len(point.precisions)
            continue
        echo(head)
        _prime_training(
            point,
            [
                p
                for p in points
                if p.model == point.model and p.alpha == point.alpha and p.size == point.size and not p.sparsity
            ],
        )
        t0 = time.time()
        try:
            optimize(RunConfig.from_dict(point.config), echo=lambda msg: echo(f"    {msg}") if msg else None)
            status.append({"name": point.name, "status": "ok", "seconds": time.time() - t0})
        except UserError:
            raise
        except Exception as exc:  # one failing run must not lose the rest of the sweep
            if stop_on_error:
                raise
            msg = str(exc).strip().splitlines()
            echo(f"    FAILED: {exc.__class__.__name__}: {msg[-1] if msg else ''}")
            status.append({"name": point.name, "status": "failed", "error": f"{exc.__class__.__name__}: {exc}"})
        done_variants += len(point.precisions)
        elapsed = time.time() - started
        left = elapsed / done_variants * (n_variants - done_variants) if done_variants else 0
        echo(f"    {done_variants}/{n_variants} variants done, {elapsed:.0f} s so far, about {left:.0f} s left")
    finished = [p.out for p in points if (p.out / "metrics.json").exists()]
    rows = load_results(finished) if finished else []
    paths = write_report(rows, root, title=f"sweep: {', '.join(spec.models)}") if rows else {}
    write_json(root / "sweep.json", {"spec": spec.__dict__, "points": status, "seconds": time.time() - started})
    if rows:
        echo("")
        echo(format_table(rows, report_columns(rows)))
        echo(f"\ntable: {paths.get('markdown')}  plot: {paths.get('plot')}")
    return {"points": status, "rows": rows, "paths": paths}
