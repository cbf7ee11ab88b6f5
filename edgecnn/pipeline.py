"""The pipeline: data -> model -> train -> (compression stages) -> convert -> evaluate -> bench -> report.

:func:`optimize` is what ``edgecnn optimize`` and recipes both call. Each stage that
produces a Keras model stores its weights in ``<run>/<stage>/`` with a ``stage.json``
holding a key derived from its configuration and inputs; running again with the same
settings reuses the stage instead of training again, and a training stage killed
mid-way resumes from its last epoch (Keras' ``BackupAndRestore``).

Example:
    >>> from edgecnn.config import RunConfig
    >>> result = optimize(RunConfig.from_dict({"model": {"name": "mobilenet", "alpha": 0.5},
    ...                                        "convert": {"int8": True}}))  # doctest: +SKIP
    >>> [(r["variant"], r["tflite_accuracy"]) for r in result["rows"]]     # doctest: +SKIP
"""

from __future__ import annotations

import gzip
import hashlib
import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from edgecnn import __version__
from edgecnn._io import sha256_file, write_json, write_text
from edgecnn.config import RunConfig, resolve, run_name
from edgecnn.errors import UserError
from edgecnn.report import VARIANT_COLUMNS, format_table, save_table, to_markdown


def config_key(*parts) -> str:
    """A short stable hash of JSON-able ``parts`` (stage cache keys)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclass
class Context:
    """What every stage sees: the resolved config, the data, the run folder, a printer."""

    cfg: RunConfig
    data: object
    out: Path
    echo: Callable
    entry: object
    steps: list = field(default_factory=list)

    def build_model(self, alpha: float | None = None, name: str | None = None, **overrides):
        """Build the configured architecture (or ``name``/``alpha`` variants of it) for this data."""
        from edgecnn.models import create_model, model_info

        entry = model_info(name) if name else self.entry
        args = dict(self.cfg.model.args) if name is None else {}
        args.update(overrides)
        h, w, c = self.data.input_shape
        return create_model(
            entry.name,
            alpha=self.cfg.model.alpha if alpha is None else alpha,
            input_shape=(h, w, c),
            classes=self.data.num_classes,
            **args,
        )


@dataclass
class StageResult:
    """A Keras model a stage produced, and which TFLite precisions to export it as."""

    name: str
    model: object
    precisions: list
    info: dict = field(default_factory=dict)


class StageStore:
    """``<run>/<stage>/stage.json`` + weights: skip a stage whose key is unchanged."""

    def __init__(self, out: Path, name: str, key: str):
        self.dir = Path(out) / name
        self.key = key
        self.meta_path = self.dir / "stage.json"
        self.weights = self.dir / "model.weights.h5"

    def load(self) -> dict | None:
        try:
            meta = json.loads(self.meta_path.read_text())
        except (OSError, ValueError):
            return None
        if meta.get("key") != self.key or not self.weights.exists():
            return None
        if meta.get("weights_sha256") != sha256_file(self.weights):
            return None  # changed or damaged since it was stored: redo the stage
        return meta

    def restore(self, model) -> dict | None:
        """Load the stored weights into ``model``; ``None`` (redo the stage) if they don't fit."""
        meta = self.load()
        if meta is None:
            return None
        try:
            model.load_weights(self.weights)
        except (ValueError, KeyError, OSError):
            return None
        return meta

    def save(self, model, meta: dict, full_model: bool = True):
        from edgecnn._io import atomic_path

        self.dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.weights) as tmp:
            model.save_weights(tmp)
        if full_model:
            try:
                with atomic_path(self.dir / "model.keras") as tmp:
                    model.save(tmp)
            except Exception as exc:  # a model tfmot wrapped may not serialize whole
                meta["model_file_error"] = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        meta = {"key": self.key, **meta, "weights_sha256": sha256_file(self.weights)}
        write_json(self.meta_path, meta)
        return meta


def train_stage(ctx: Context) -> StageResult:
    """Build the model and train it from scratch (or reuse the stored weights)."""
    from edgecnn.models._profile import count_params
    from edgecnn.train import fit

    cfg = ctx.cfg
    key = config_key("train", cfg.model, cfg.data, cfg.train, ctx.data.fingerprint(), __version__)
    store = StageStore(ctx.out, "train", key)
    from edgecnn._tf import keras

    keras.utils.set_random_seed(cfg.train.seed)  # the initial weights too: same seed, same model
    model = ctx.build_model()
    meta = store.restore(model)
    if meta is not None:
        ctx.echo(f"      reusing trained weights from {store.dir}")
    else:
        n = len(ctx.data.y["train"])
        ctx.echo(
            f"      {model.name}: {count_params(model)['trainable']:,} parameters, "
            f"{n} training images, {cfg.train.epochs} epochs"
        )
        t0 = time.time()
        hist = fit(model, ctx.data, cfg.train, out_dir=store.dir)
        meta = store.save(model, {"fit": hist, "seconds": time.time() - t0})
    return StageResult(
        "trained",
        model,
        cfg.convert.precisions,
        {"train": {k: v for k, v in meta.items() if k != "fit"}, "history": meta.get("fit", {}).get("history")},
    )


# The model-producing stages, in the order of the design. Compression stages append
# themselves here: each takes the Context and the previous stage's result.
MODEL_STAGES: list = []


def _gzip_size(path: Path) -> int:
    return len(gzip.compress(path.read_bytes(), compresslevel=9))


def _versions() -> dict:
    from edgecnn.device.runtime import available_runtimes

    versions = {"edgecnn": __version__, "python": platform.python_version()}
    from importlib.metadata import PackageNotFoundError, version

    for dist in (
        "tensorflow",
        "tf-keras",
        "tensorflow-model-optimization",
        "ai-edge-litert",
        "tflite-runtime",
        "numpy",
    ):
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            pass
    versions["runtimes"] = available_runtimes()
    return versions


def export_and_measure(ctx: Context, result: StageResult, keras_accuracy: float) -> list:
    """Convert ``result.model`` to each precision, then evaluate and benchmark each file."""
    from edgecnn.convert import convert
    from edgecnn.device.bench import benchmark
    from edgecnn.device.evaluate import evaluate_tflite
    from edgecnn.models._profile import count_macs, count_params

    cfg = ctx.cfg
    counts = count_params(_stripped(result.model))
    macs = count_macs(result.model)
    rows = []
    prefix = "model" if result.name == "trained" else result.name
    x_test, y_test = ctx.data.normalized("test"), ctx.data.y["test"]
    for precision in result.precisions:
        path = ctx.out / f"{prefix}_{precision}.tflite"
        label = precision if result.name == "trained" else f"{result.name} {precision}"
        ctx.echo(f"      {label}: converting")
        t0 = time.time()
        rep = (
            ctx.data.representative(cfg.convert.calibration_samples, seed=cfg.data.seed)
            if precision == "int8"
            else None
        )
        convert(result.model, path, precision, representative=rep)
        convert_s = time.time() - t0
        metrics = evaluate_tflite(path, x_test, y_test, num_threads=cfg.bench.threads, runtime=cfg.bench.runtime)
        row = {
            "model": cfg.model.name,
            "variant": label,
            "stage": result.name,
            "precision": precision,
            "file": path.name,
            "size_bytes": path.stat().st_size,
            "size_gzip": _gzip_size(path),
            "params": counts["trainable"],
            "nonzero_params": counts["nonzero"],
            "macs": macs,
            "keras_accuracy": keras_accuracy,
            "tflite_accuracy": metrics["accuracy"],
            "top5": metrics.get("top5"),
            "delta_points": 100 * (metrics["accuracy"] - keras_accuracy),
            "convert_seconds": convert_s,
            "confusion": metrics["confusion"],
            "sha256": sha256_file(path),
        }
        if cfg.bench.enabled:
            ctx.echo(f"      {label}: benchmarking ({cfg.bench.runs} runs, {cfg.bench.threads} thread(s))")
            bench = benchmark(
                path,
                threads=cfg.bench.threads,
                warmup=cfg.bench.warmup,
                runs=cfg.bench.runs,
                runtime=cfg.bench.runtime,
                timeout=cfg.bench.timeout,
            )
            row["bench"] = bench
            if bench.get("status") == "ok":
                row.update(
                    latency_median_ms=bench["median_ms"],
                    latency_p90_ms=bench["p90_ms"],
                    runtime=bench["runtime"],
                    runtime_version=bench["runtime_version"],
                )
            else:
                ctx.echo(f"      {label}: benchmark {bench.get('status')}: {bench.get('error')}")
        rows.append(row)
    return rows


def _stripped(model):
    if any(layer.__class__.__name__ == "PruneLowMagnitude" for layer in model.layers):
        from edgecnn.optimize.prune import strip_pruning

        return strip_pruning(model)
    return model


def optimize(config: RunConfig, echo: Callable = print) -> dict:
    """Run the whole pipeline for ``config``; returns the metrics written to ``metrics.json``.

    Outputs in the run folder (``runs/<model>-<settings>/`` unless ``config.out``):
    ``config.json`` (resolved settings), ``preprocess.json`` (how to prepare images on the
    device), ``train/`` (weights, ``model.keras``), one ``.tflite`` per variant,
    ``metrics.json``, ``report.md`` and ``table.{md,csv,json}``.
    """
    from edgecnn.data import load_dataset
    from edgecnn.models import batch_norm_defaults, model_info
    from edgecnn.train import evaluate_keras

    started = time.time()
    entry = model_info(config.model.name)
    cfg = resolve(config, entry)
    out = Path(cfg.out or Path("runs") / run_name(cfg))
    _check_out_dir(out)
    stages_total = 2 + len(MODEL_STAGES) + 1
    note = entry.resolution_note(cfg.data.image_size, **cfg.model.args)
    if note:
        echo(note)
    echo(f"[1/{stages_total}] data: loading {cfg.data.source}")
    data = load_dataset(
        cfg.data.source,
        image_size=cfg.data.image_size,
        channels=entry.channels,
        val_split=cfg.data.val_split,
        test_split=cfg.data.test_split,
        seed=cfg.data.seed,
        train_fraction=cfg.data.train_fraction,
    )
    echo(f"      {data.summary()}")
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", cfg.to_dict())
    write_json(out / "preprocess.json", data.preprocess)
    ctx = Context(cfg=cfg, data=data, out=out, echo=echo, entry=entry)

    rows, stages = [], {}
    with batch_norm_defaults():
        echo(f"[2/{stages_total}] train: {entry.name} alpha {cfg.model.alpha} at {cfg.data.image_size}px")
        result = train_stage(ctx)
        results = [result]
        for i, stage in enumerate(MODEL_STAGES, start=3):
            echo(f"[{i}/{stages_total}] {stage.__name__.replace('_stage', '')}")
            result = stage(ctx, result)
            if result is not None:
                results.append(result)
        echo(f"[{stages_total}/{stages_total}] export: convert, evaluate and benchmark each .tflite")
        for res in results:
            keras_acc = evaluate_keras(res.model, data)
            stages[res.name] = {"keras_accuracy": keras_acc, **res.info}
            rows += export_and_measure(ctx, res, keras_acc)

    metrics = {
        "model": cfg.model.name,
        "run_dir": str(out),
        "dataset": data.summary(),
        "stages": stages,
        "rows": rows,
        "versions": _versions(),
        "seconds": time.time() - started,
        "config": cfg.to_dict(),
    }
    write_json(out / "metrics.json", metrics)
    table_rows = [{k: v for k, v in r.items() if k not in ("confusion", "bench")} for r in rows]
    save_table(table_rows, VARIANT_COLUMNS, out / "table", title=f"{cfg.model.name} on {data.name}")
    write_text(out / "report.md", _report_md(cfg, data, table_rows, metrics))
    from edgecnn.manifest import write_manifest

    write_manifest(out, cfg)  # sha256 of every input and output
    echo("")
    echo(format_table(table_rows, VARIANT_COLUMNS))
    echo(f"\nrun folder: {out}  ({metrics['seconds']:.0f} s)")
    return metrics


def _check_out_dir(out: Path):
    if out.exists() and not out.is_dir():
        raise UserError(f"output path {out} exists and is not a folder; choose another --out")


def _report_md(cfg, data, rows, metrics) -> str:
    lines = [
        f"# {cfg.model.name} (alpha {cfg.model.alpha}, {cfg.data.image_size}px) on {data.name}",
        "",
        f"- Data: {data.summary()}",
        f"- Training: {cfg.train.epochs} epochs, batch {cfg.train.batch_size}, {cfg.train.optimizer} "
        f"lr {cfg.train.learning_rate} ({cfg.train.schedule})",
        f"- Latency: {cfg.bench.threads} thread(s), {cfg.bench.runs} runs after {cfg.bench.warmup} warm-up, "
        f"runtime {next((r.get('runtime') for r in rows if r.get('runtime')), cfg.bench.runtime)}",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in metrics["versions"].items() if isinstance(v, str)),
        "",
        to_markdown(rows, VARIANT_COLUMNS),
        "",
        "Accuracy is top-1 on the test split; `delta pts` is the .tflite's accuracy minus the Keras model's, "
        "in points.",
    ]
    return "\n".join(lines) + "\n"
