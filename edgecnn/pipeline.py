"""The pipeline: data -> model -> train -> (compression stages) -> convert -> evaluate -> bench -> report.

:func:`optimize` is what ``edgecnn optimize`` and recipes both call. It only orchestrates:
the stages themselves are the registered units of :mod:`edgecnn.stages`, run in their
declared order when the configuration switches them on. Each stage that produces a Keras
model stores its weights in ``<run>/<stage>/`` with a ``stage.json`` holding a key derived
from its configuration and inputs; running again with the same settings reuses the stage
instead of training again, and a training stage killed mid-way resumes from its last
epoch (Keras' ``BackupAndRestore``).

Example:
    >>> from edgecnn.config import RunConfig
    >>> result = optimize(RunConfig.from_dict({"model": {"name": "mobilenet", "alpha": 0.5},
    ...                                        "convert": {"int8": True}}))  # doctest: +SKIP
    >>> [(r["variant"], r["tflite_accuracy"]) for r in result["rows"]]     # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Callable

from edgecnn._io import write_json, write_text
from edgecnn.config import RunConfig, resolve, run_folder
from edgecnn.errors import UserError
from edgecnn.report import VARIANT_COLUMNS, format_table, run_report_md, save_table
from edgecnn.sources import load_run_data
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


def optimize(config: RunConfig, echo: Callable = print, on_stage: Callable | None = None) -> dict:
    """Run the whole pipeline for ``config``; returns the metrics written to ``metrics.json``.

    ``echo`` receives the progress lines; ``on_stage(name, index, total)`` (optional) is
    called as each step starts (``data``, ``train``, each active stage, ``export``), so a
    caller knows which step failed without reading the lines.

    Outputs in the run folder (``runs/<model>-<settings>/`` unless ``config.out``):
    ``config.json`` (resolved settings), ``preprocess.json`` (how to prepare images on the
    device), ``train/`` (weights, ``model.keras``), one ``.tflite`` per variant,
    ``metrics.json``, ``report.md`` and ``table.{md,csv,json}``.

    With ``train.strategy`` ``multiworker`` every worker runs this with the same config;
    the model-producing stages run in the strategy's scope on all of them, then only the
    chief converts, evaluates, benchmarks and writes; the workers wait for it to finish.
    """
    from edgecnn.distribute import barrier, collective_errors, get_strategy
    from edgecnn.models import model_info

    # First thing: MultiWorkerMirroredStrategy must start before TensorFlow runs an operation.
    strategy = get_strategy(resolve(config, model_info(config.model.name)).train.strategy)
    trained = []
    try:
        return _optimize(config, echo, on_stage or (lambda name, index, total: None), strategy, trained)
    finally:
        if trained:  # every worker got through training: release them together once the chief is done
            try:
                barrier(strategy)
            except collective_errors():
                pass  # a worker already gone: the chief's outputs are complete anyway


def _optimize(config: RunConfig, echo: Callable, on_stage: Callable, strategy, trained: list) -> dict:
    from edgecnn.distribute import describe, is_chief, local_copy, weights_digest
    from edgecnn.manifest import versions, write_manifest
    from edgecnn.models import batch_norm_defaults, model_info
    from edgecnn.train import evaluate_keras

    started = time.time()
    entry = model_info(config.model.name)
    cfg = resolve(config, entry)
    out = run_folder(cfg)
    if out.exists() and not out.is_dir():
        raise UserError(f"output path {out} exists and is not a folder; choose another --out")
    active = [stage for stage in model_stages() if stage.enabled(cfg)]
    total = 2 + len(active) + 1

    def step(index: int, name: str, line: str):
        on_stage(name, index, total)
        echo(f"[{index}/{total}] {line}")

    note = entry.resolution_note(cfg.data.image_size, **cfg.model.args)
    if note:
        echo(note)
    step(1, "data", f"data: loading {cfg.data.source}")
    data = load_run_data(cfg, entry, run_dir=out)
    echo(f"      {data.summary()}")
    dist = describe(strategy)
    if dist["workers"] > 1 or dist["strategy"] != "default":
        role = "the chief: writes the run folder" if dist["chief"] else "not the chief: writes nothing"
        echo(f"      strategy {dist['strategy']}: {dist['workers']} worker(s), {dist['replicas']} replica(s); {role}")
    if is_chief(strategy):
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "config.json", cfg.to_dict())
        write_json(out / "preprocess.json", data.preprocess)
    ctx = Context(cfg=cfg, data=data, out=out, echo=echo, entry=entry, strategy=strategy)
    check_stages(ctx, active)  # bad stage settings fail before any training

    rows, stage_info = [], {}
    with batch_norm_defaults():
        with ctx.scope():  # build, tfmot wrapping, compile and fit of every stage are distributed
            step(2, "train", f"train: {entry.name} alpha {cfg.model.alpha} at {cfg.data.image_size}px")
            result = train(ctx)
            results = [result]
            for index, stage in enumerate(active, start=3):
                step(index, stage.name, stage.name)
                result = stage.run(ctx, result)
                if result is not None:
                    results.append(result)
        trained.append(True)
        results = [dataclasses.replace(res, model=local_copy(res.model)) for res in results]
        dist["weights_digest"] = {res.name: weights_digest(res.model) for res in results}
        if not ctx.is_chief:
            echo(f"worker done: weights {json.dumps(dist['weights_digest'])}; the chief converts and benchmarks")
            return {"model": cfg.model.name, "run_dir": str(out), "rows": [], "distribute": dist}
        step(total, "export", "export: convert, evaluate and benchmark each .tflite")
        for res in results:
            keras_acc = evaluate_keras(res.model, data)
            stage_info[res.name] = {"keras_accuracy": keras_acc, **res.info}
            rows += export_and_measure(ctx, res, keras_acc)

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
    skipped = sorted(getattr(data, "skipped", ()))
    if skipped:  # a streamed folder skips unreadable images rather than stopping mid-epoch
        metrics["skipped_files"] = skipped
        echo(f"      skipped {len(skipped)} unreadable image(s), e.g. {skipped[0]} (listed in metrics.json)")
    write_json(out / "metrics.json", metrics)
    table_rows = [{k: v for k, v in r.items() if k not in ("confusion", "bench")} for r in rows]
    save_table(table_rows, VARIANT_COLUMNS, out / "table", title=f"{cfg.model.name} on {data.name}")
    notes = [stage.notes(stage_info[stage.row]) for stage in active if stage.row in stage_info]
    write_text(out / "report.md", run_report_md(cfg, data, table_rows, metrics, notes))
    write_manifest(out, cfg)  # sha256 of every input and output
    echo("")
    echo(format_table(table_rows, VARIANT_COLUMNS))
    echo(f"\nrun folder: {out}  ({metrics['seconds']:.0f} s)")
    return metrics
