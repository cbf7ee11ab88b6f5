"""The pipeline: data -> model -> train -> (compression stages) -> convert -> evaluate -> bench -> report.

:func:`optimize` is what ``edgecnn optimize`` and recipes both call. It only orchestrates:
the stages themselves are the registered units of :mod:`edgecnn.stages`, run in their
declared order when the configuration switches them on. Each stage that produces a Keras
model stores its weights in ``<run>/<stage>/`` with a ``stage.json`` holding a key derived
from its configuration and inputs; running again with the same settings reuses the stage
instead of training again, and a training stage killed mid-way resumes from its last
epoch (Keras' ``BackupAndRestore``).

What a run folder guarantees (see :func:`optimize`): one run at a time (the advisory lock
``<run>/.lock``, :func:`edgecnn._io.run_lock`); no outputs of an earlier run mixed with
this one's (they are moved to ``<run>/.previous/<time>/`` before anything is written);
``config.json`` and ``metrics.json`` describe the same run, even after a failure; and
``manifest.json`` lists only the files this run wrote or reused.

Example:
    >>> from edgecnn.settings.run_config import RunConfig
    >>> result = optimize(RunConfig.from_dict({"model": {"name": "mobilenet", "alpha": 0.5},
    ...                                        "convert": {"int8": True}}))  # doctest: +SKIP
    >>> [(r["variant"], r["tflite_accuracy"]) for r in result["rows"]]     # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import shutil
import time
from pathlib import Path
from typing import Callable

from edgecnn._io import run_lock, write_json, write_text
from edgecnn.data.contract import RunData
from edgecnn.data.loader import load_run_data
from edgecnn.errors import UserError
from edgecnn.report.tables import (
    VARIANT_COLUMNS,
    cpu_lines,
    format_table,
    int8_speed_notes,
    near_chance_lines,
    run_report_md,
    save_table,
)
from edgecnn.settings.run_config import RunConfig, resolve, run_folder
from edgecnn.stages import Context, StageResult, StageStore, config_key, model_stages
from edgecnn.stages.export import export_and_measure
from edgecnn.stages.train import train

__all__ = ["optimize", "check_stages", "load_run_data", "Context", "StageResult", "StageStore", "config_key"]


def check_stages(ctx: Context, active: list) -> None:
    """Fail early, before any training, on stage settings that cannot work with this model.

    Each active stage checks the model the previous one's check returned: a teacher that
    cannot be loaded or has another number of classes or input shape, a model channel
    pruning cannot trace, a layer QAT cannot quantize all raise
    :class:`~edgecnn.errors.UserError`.
    """
    if not active:
        return
    model = ctx.build_model()
    for stage in active:
        model = stage.check(ctx, model)


def started_from(stage_info: dict) -> dict:
    """The weight files this run started from, for ``manifest.json``'s inputs (with their
    sha256): ``{"weights:<file>": path}`` for the model and ``{"teacher_weights:<file>": path}``
    for a registered teacher started from ``--teacher-weights``.

    Example:
        >>> started_from({"trained": {"weights": {"file": "/k/models/x.h5"}}})
        {'weights:x.h5': '/k/models/x.h5'}
    """
    found = {}
    for info in stage_info.values():
        for key in ("weights", "teacher_weights"):
            started = info.get(key) if isinstance(info, dict) else None
            if isinstance(started, dict) and started.get("file"):
                found[f"{key}:{Path(str(started['file'])).name}"] = str(started["file"])
    return found


def optimize(
    config: RunConfig,
    echo: Callable = print,
    on_stage: Callable | None = None,
    *,
    extra_outputs: dict | None = None,
    extra_inputs: dict | None = None,
) -> dict:
    """Run the whole pipeline for ``config``; returns the metrics written to ``metrics.json``.

    ``echo`` receives the progress lines; ``on_stage(name, index, total)`` (optional) is
    called as each step starts (``data``, ``train``, each active stage, ``export``), so a
    caller knows which step failed without reading the lines. ``extra_outputs`` maps file
    names to text written into the run folder first (a recipe's ``recipe.yaml``);
    ``extra_inputs`` maps labels to input files recorded in ``manifest.json``.

    Outputs in the run folder (``runs/<model>-<settings>/`` unless ``config.out``):
    ``config.json`` (resolved settings), ``preprocess.json`` (how to prepare images on the
    device), ``train/`` (weights, ``model.keras``), one ``.tflite`` per variant,
    ``metrics.json``, ``report.md``, ``table.{md,csv,json}`` and ``manifest.json``.

    The run folder holds one run: the run takes the lock ``<run>/.lock`` for its whole
    length (a second run on the same folder is a :class:`UserError` naming the holder), and
    before it writes anything it moves the top-level outputs of an earlier run (the files
    above, ``recipe.yaml``, ``error.log``) to ``<run>/.previous/<UTC time>/``, keeping the
    last :data:`KEEP_PREVIOUS` such sets. The cached stage folders (``train/``, ``pruned/``,
    ...) stay: each is keyed by its settings and reused only when they match. So after a
    failure the folder holds this run's ``config.json`` and no ``metrics.json`` (a
    ``config.json`` without ``metrics.json`` is a run that did not finish), never a
    ``metrics.json`` of another run. ``metrics.json`` is written after the tables and the
    report, then ``manifest.json``, which lists only this run's files.

    With ``train.strategy`` ``multiworker`` every worker runs this with the same config;
    the model-producing stages run in the strategy's scope on all of them, then only the
    chief converts, evaluates, benchmarks and writes; the workers wait for it to finish.
    A ``TF_CONFIG`` in the environment with strategy ``auto`` selects ``multiworker``
    (see :func:`edgecnn.distribute.strategy_for_environment`).
    """
    from edgecnn.distribute import get_strategy, is_chief, strategy_for_environment
    from edgecnn.models import model_info

    cfg = resolve(config, model_info(config.model.name))
    name, note = strategy_for_environment(cfg.train.strategy)
    if note:
        echo(note)
    # First thing: MultiWorkerMirroredStrategy must start before TensorFlow runs an operation.
    strategy = get_strategy(name)
    out = run_folder(cfg)
    if out.exists() and not out.is_dir():
        raise UserError(f"output path {out} exists and is not a folder; choose another --out")
    trained = []
    lock = run_lock(out) if is_chief(strategy) else contextlib.nullcontext()
    with lock:
        try:
            stage_cb = on_stage or (lambda name, index, total: None)
            return _optimize(config, echo, stage_cb, strategy, trained, extra_outputs or {}, extra_inputs or {})
        except OSError as exc:
            if exc.errno in _NO_WRITE and (exc.filename is None or _inside(exc.filename, out)):
                raise UserError(
                    f"cannot write to {exc.filename or out}: {exc.strerror}; the run stopped (free space or choose "
                    "another --out)"
                ) from None
            raise
        finally:
            if trained:  # every worker got through training: release them together once the chief is done
                _release(strategy)


def _release(strategy) -> None:
    """Wait for every worker at the end of a run (a worker already gone is no error: the chief's
    outputs are complete anyway)."""
    from edgecnn.distribute import WorkerLost, barrier, collective_errors

    try:
        barrier(strategy)
    except (WorkerLost, *collective_errors()):
        pass


_NO_WRITE = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT}
KEEP_PREVIOUS = 3
PREVIOUS = ".previous"
# Files at the top of a run folder that belong to one run (stage folders are keyed, and stay).
RUN_FILES = (
    "config.json",
    "preprocess.json",
    "metrics.json",
    "manifest.json",
    "report.md",
    "table.md",
    "table.csv",
    "table.json",
    "recipe.yaml",
    "error.log",
)


def _inside(path, folder: Path) -> bool:
    try:
        Path(os.path.abspath(path)).relative_to(os.path.abspath(folder))
        return True
    except ValueError:
        return False


def set_aside_earlier_outputs(out: Path, echo: Callable = print) -> Path | None:
    """Move the top-level outputs of an earlier run to ``<out>/.previous/<UTC time>/``.

    Called with the run folder locked, before the run writes anything. The files are those
    of :data:`RUN_FILES` and every ``*.tflite``; stage folders and anything else stay. Only
    the last :data:`KEEP_PREVIOUS` sets are kept. Returns the folder they went to (``None``
    when there was nothing to move).

    Example:
        >>> set_aside_earlier_outputs(Path("runs/lenet5"))  # doctest: +SKIP
        PosixPath('runs/lenet5/.previous/20261130T021500.123456Z')
    """
    found = sorted(p for p in out.iterdir() if p.is_file() and (p.name in RUN_FILES or p.suffix == ".tflite"))
    if not found:
        return None
    try:
        old = json.loads((out / "config.json").read_text())
    except (OSError, ValueError):
        old = None
    now = time.time_ns()  # the name sorts by time: UTC to the microsecond
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now / 1e9)) + f".{now // 1000 % 1_000_000:06d}Z"
    dest, n = out / PREVIOUS / stamp, 1
    while dest.exists():
        dest, n = out / PREVIOUS / f"{stamp}-{n}", n + 1
    dest.mkdir(parents=True)
    for path in found:
        os.replace(path, dest / path.name)
    sets = sorted(p for p in (out / PREVIOUS).iterdir() if p.is_dir())
    for stale in sets[:-KEEP_PREVIOUS]:
        shutil.rmtree(stale, ignore_errors=True)
    what = "an unfinished run" if old is None or not (dest / "metrics.json").exists() else "the earlier run"
    echo(f"      moved {len(found)} file(s) of {what} to {dest}")
    return dest


def _optimize(
    config: RunConfig,
    echo: Callable,
    on_stage: Callable,
    strategy,
    trained: list,
    extra_outputs: dict,
    extra_inputs: dict,
) -> dict:
    from edgecnn.distribute import describe, is_chief, local_copy, weights_digest
    from edgecnn.manifest import versions
    from edgecnn.models import batch_norm_defaults, model_info

    started = time.time()
    entry = model_info(config.model.name)
    cfg = resolve(config, entry)
    out = run_folder(cfg)
    if is_chief(strategy):  # the folder is locked (see optimize): nothing of another run stays beside this one
        set_aside_earlier_outputs(out, echo)
        for name, text in extra_outputs.items():
            write_text(out / name, text)
    active = [stage for stage in model_stages() if stage.enabled(cfg)]
    total = 2 + len(active) + 1

    def step(index: int, name: str, line: str):
        on_stage(name, index, total)
        echo(f"[{index}/{total}] {line}")

    note = entry.resolution_note(cfg.data.image_size, **cfg.model.args)
    if note:
        echo(note)
    step(1, "data", f"data: loading {cfg.data.source}")
    data = _load_data(cfg, entry, out, strategy, echo)
    dist = describe(strategy)
    if dist["workers"] > 1 or dist["strategy"] != "default":
        role = "the chief: writes the run folder" if dist["chief"] else "not the chief: writes nothing"
        echo(f"      strategy {dist['strategy']}: {dist['workers']} worker(s), {dist['replicas']} replica(s); {role}")
    if is_chief(strategy):
        # config.json first, metrics.json last: the earlier run's metrics.json is already moved
        # aside, so a failure in between leaves this run's config.json and no metrics.json.
        write_json(out / "config.json", cfg.to_dict())
        write_json(out / "preprocess.json", data.preprocess)
    ctx = Context(cfg=cfg, data=data, out=out, echo=echo, entry=entry, strategy=strategy)
    check_stages(ctx, active)  # bad stage settings fail before any training
    with batch_norm_defaults():
        results = _train_stages(ctx, active, step)
        trained.append(True)
        results = [dataclasses.replace(res, model=local_copy(res.model)) for res in results]
        dist["weights_digest"] = {res.name: weights_digest(res.model) for res in results}
        if not ctx.is_chief:
            echo(f"worker done: weights {json.dumps(dist['weights_digest'])}; the chief converts and benchmarks")
            return {"model": cfg.model.name, "run_dir": str(out), "rows": [], "distribute": dist}
        step(total, "export", "export: convert, evaluate and benchmark each .tflite")
        rows, stage_info = _export(ctx, results)
    metrics = {
        "model": cfg.model.name,
        "run_dir": str(out),
        "dataset": data.summary(),
        "stages": stage_info,
        "rows": rows,
        "versions": versions(),
        "seconds": time.time() - started,
        "config": cfg.to_dict(),
        "distribute": dist,
    }
    return _write_outputs(ctx, active, metrics, extra_outputs, extra_inputs)


def _load_data(cfg: RunConfig, entry, out: Path, strategy, echo: Callable) -> RunData:
    """The run's data, checked to be the same on every worker of a multi-worker run."""
    from edgecnn.distribute import is_chief, same_everywhere

    data = load_run_data(cfg, entry, run_dir=out, chief=is_chief(strategy))
    echo(f"      {data.summary()}")
    digest = data.split_digest()
    if digest is not None and not same_everywhere(digest, strategy):
        raise UserError(
            f"the workers see different data in {cfg.data.source}: every worker needs the same files at the same "
            "path (or the same shards); see docs/distributed.md"
        )
    return data


def _train_stages(ctx: Context, active: list, step: Callable) -> list:
    """Train, then run each active stage, in the strategy's scope (build, tfmot wrapping,
    compile and fit of every stage are distributed); their results in order."""
    cfg = ctx.cfg
    with ctx.scope():
        step(2, "train", f"train: {ctx.entry.name} alpha {cfg.model.alpha} at {cfg.data.image_size}px")
        result = train(ctx)
        results = [result]
        for index, stage in enumerate(active, start=3):
            step(index, stage.name, stage.name)
            result = stage.run(ctx, result)
            if result is not None:
                results.append(result)
    return results


def _export(ctx: Context, results: list) -> tuple[list, dict]:
    """Convert, evaluate and benchmark each result: the table's rows and each stage's info."""
    from edgecnn.train import evaluate_keras

    rows, stage_info = [], {}
    for res in results:
        keras_acc = evaluate_keras(res.model, ctx.data)
        stage_info[res.name] = {"keras_accuracy": keras_acc, **res.info}
        rows += export_and_measure(ctx, res, keras_acc)
    return rows, stage_info


def _write_outputs(ctx: Context, active: list, metrics: dict, extra_outputs: dict, extra_inputs: dict) -> dict:
    """The chief's outputs after export: the tables, ``report.md``, ``metrics.json`` (with the
    warnings and skipped files), then ``manifest.json``; the table on the terminal."""
    from edgecnn.manifest import write_manifest

    cfg, data, out, echo, rows = ctx.cfg, ctx.data, ctx.out, ctx.echo, metrics["rows"]
    warnings = ctx.warnings + near_chance_lines(rows, data.num_classes)
    if warnings:  # a run that did not learn says so, in metrics.json, the table and the terminal
        metrics["warnings"] = warnings
    skipped = sorted(data.skipped)
    if skipped:  # a streamed folder skips unreadable images rather than stopping mid-epoch
        metrics["skipped_files"] = skipped
        echo(f"      skipped {len(skipped)} unreadable image(s), e.g. {skipped[0]} (listed in metrics.json)")
    table_rows = [{k: v for k, v in r.items() if k not in ("confusion", "bench")} for r in rows]
    tables = save_table(
        table_rows,
        VARIANT_COLUMNS,
        out / "table",
        title=f"{cfg.model.name} on {data.name}",
        header=cpu_lines(table_rows),
        footer=[*int8_speed_notes(table_rows), *warnings],
    )
    stage_info = metrics["stages"]
    notes = [stage.notes(stage_info[stage.row]) for stage in active if stage.row in stage_info]
    write_text(out / "report.md", run_report_md(cfg, data, table_rows, metrics, notes))
    write_json(out / "metrics.json", metrics)
    # The files this run wrote, and the stage folders it wrote or reused; not what else the folder holds.
    stage_dirs = ["train"] + [folder for stage in active for folder in stage.folders()]
    written = ["config.json", "preprocess.json", *extra_outputs, *(row["file"] for row in rows)]
    written += [Path(p).name for p in tables.values()] + ["report.md", "metrics.json"]
    inputs = {**(extra_inputs or {}), **started_from(stage_info)}
    write_manifest(out, cfg, inputs, outputs=written + [d for d in stage_dirs if (out / d).is_dir()])
    echo("")
    for line in cpu_lines(table_rows):
        echo(line)
    echo(format_table(table_rows, VARIANT_COLUMNS))
    for note in [*int8_speed_notes(table_rows), *warnings]:
        echo(note)
    echo(f"\nrun folder: {out}  ({metrics['seconds']:.0f} s)")
    return metrics
