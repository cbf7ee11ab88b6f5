"""The export steps applied to every model a stage produced: convert -> evaluate -> bench.

Each precision of each result becomes one ``.tflite`` file and one table row: converted
(:func:`edgecnn.tflite.convert.convert`, with TFLite Metadata unless ``convert.metadata`` is off),
evaluated on the test split with the TFLite interpreter (:func:`edgecnn.device.evaluate.evaluate_tflite`) and timed
(:func:`edgecnn.device.bench.benchmark`) when ``bench.enabled``.
"""

from __future__ import annotations

import gzip
import time
from pathlib import Path

from edgecnn.stages._base import Context, StageResult
from edgecnn.stages.train import ROW as TRAINED


def _gzip_size(path: Path) -> int:
    return len(gzip.compress(path.read_bytes(), compresslevel=9))


def evaluate_or_explain(path: Path, precision: str, x, y, threads: int = 1, runtime: str = "auto") -> dict:
    """:func:`edgecnn.device.evaluate.evaluate_tflite`, where a runtime that cannot run an
    ``int16x8`` file (its 16-bit kernels are newer than int8's) is a user's choice to change:
    one line naming the runtime, not a traceback."""
    from edgecnn.device.evaluate import evaluate_tflite
    from edgecnn.errors import UserError

    try:
        return evaluate_tflite(path, x, y, num_threads=threads, runtime=runtime)
    except (RuntimeError, ValueError) as exc:
        if precision != "int16x8":
            raise
        first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
        raise UserError(
            f"the {runtime} runtime cannot run {path.name} (int16 activations): {first}; "
            "leave out the int16x8 precision or use the litert runtime"
        ) from None


def export_and_measure(ctx: Context, result: StageResult, keras_accuracy: float) -> list:
    """Convert ``result.model`` to each precision, then evaluate and benchmark each file.

    Each int8 file also gets the per-layer error report (``int8_layers`` in its row, see
    :mod:`edgecnn.tflite.debugger`) unless ``convert.int8_debug`` is off, and with
    ``convert.max_int8_drop`` an ``int8_mixed`` row right after it when int8 loses more
    validation accuracy than the budget.
    """
    from edgecnn.models._profile import count_macs, count_params
    from edgecnn.optimize.prune import strip_pruning_if_wrapped
    from edgecnn.tflite.convert import exported_once

    cfg = ctx.cfg
    counts = count_params(strip_pruning_if_wrapped(result.model))
    base = {
        "model": cfg.model.name,
        "stage": result.name,
        "params": counts["trainable"],
        "nonzero_params": counts["nonzero"],
        "sparsity": 1.0 - counts["nonzero"] / max(1, counts["trainable"]),
        "macs": count_macs(result.model),
        "keras_accuracy": keras_accuracy,
    }
    with exported_once(result.model):  # one SavedModel for every conversion of this model
        return _export_rows(ctx, result, base, counts)


def _export_rows(ctx: Context, result: StageResult, base: dict, counts: dict) -> list:
    from edgecnn.tflite.convert import convert

    cfg = ctx.cfg
    rows, paths = [], {}
    prefix = "model" if result.name == TRAINED else result.name
    for precision in result.precisions:
        path = paths[precision] = ctx.out / f"{prefix}_{precision}.tflite"
        label = precision if result.name == TRAINED else f"{result.name} {precision}"
        # Only a model with zeros has anything to store sparsely (the converter picks the tensors).
        sparse = cfg.convert.sparse_storage and precision == "float32" and counts["nonzero"] < counts["trainable"]
        ctx.echo(f"      {label}: converting" + (" (sparse storage)" if sparse else ""))
        t0 = time.time()
        rep = _representative(ctx) if precision in ("int8", "int16x8") else None
        metadata = ctx.data.preprocess if cfg.convert.metadata else None
        convert(result.model, path, precision, representative=rep, sparse=sparse, metadata=metadata)
        row = _measure(ctx, path, precision, label, {**base, "sparse_storage": sparse,
                                                      "convert_seconds": time.time() - t0})
        rows.append(row)
        if precision == "int8" and cfg.convert.int8_debug:
            mixed = _int8_debug(ctx, result, row, paths.get("float32"), label, base)
            if mixed is not None:
                rows.append(mixed)
    return rows


# Calibration images decoded once per run and kept for every conversion and the debugger, when
# they take at most this much memory (200 images at 224x224x3 float32: 120 MB).
CALIBRATION_CACHE_BYTES = 256 << 20


def _representative(ctx: Context):
    """The calibration images, decoded once for the run's int8 conversions and the debugger
    (each would otherwise decode them again) when they fit :data:`CALIBRATION_CACHE_BYTES`."""
    import numpy as np

    if ctx.calibration is not None:
        return ctx.calibration
    samples = ctx.cfg.convert.calibration_samples
    draw = ctx.data.representative(samples, seed=ctx.cfg.data.seed)
    if 4 * samples * int(np.prod(ctx.data.input_shape)) > CALIBRATION_CACHE_BYTES:
        return draw
    images = list(draw())
    ctx.calibration = lambda: iter(images)
    return ctx.calibration


def _measure(ctx: Context, path: Path, precision: str, label: str, base: dict) -> dict:
    """One table row: evaluate ``path`` on the test split, then benchmark it."""
    from edgecnn._io import sha256_file
    from edgecnn.device.bench import bench_fields, benchmark

    cfg = ctx.cfg
    x_test, y_test = ctx.data.normalized("test"), ctx.data.y["test"]
    metrics = evaluate_or_explain(path, precision, x_test, y_test, cfg.bench.threads, cfg.bench.runtime)
    row = {
        "model": base["model"],
        "variant": label,
        "stage": base["stage"],
        "precision": precision,
        "file": path.name,
        "sparse_storage": base.get("sparse_storage", False),
        "size_bytes": path.stat().st_size,
        "size_gzip": _gzip_size(path),
        **{k: base[k] for k in ("params", "nonzero_params", "sparsity", "macs", "keras_accuracy")},
        "tflite_accuracy": metrics["accuracy"],
        "top5": metrics.get("top5"),
        "delta_points": 100 * (metrics["accuracy"] - base["keras_accuracy"]),
        "convert_seconds": base.get("convert_seconds"),
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
        row.update(bench_fields(bench))  # the CPU and its features, XNNPACK's fallbacks
        if bench.get("status") == "ok":
            row.update(
                latency_median_ms=bench["median_ms"],
                latency_p90_ms=bench["p90_ms"],
                runtime=bench["runtime"],
                runtime_version=bench["runtime_version"],
            )
        else:
            ctx.echo(f"      {label}: benchmark {bench.get('status')}: {bench.get('error')}")
    return row


def _int8_debug(ctx: Context, result: StageResult, row: dict, float_path, label: str, base: dict) -> dict | None:
    """The per-layer error of the int8 ``row`` (kept in it as ``int8_layers``) and, when its
    validation accuracy misses ``convert.max_int8_drop``, the ``int8_mixed`` row.

    A debugger that cannot work on the model leaves a one-line ``int8_layers.error`` (and
    ``note``) in the row, never a traceback.
    """
    from edgecnn.tflite.debugger import DEBUG_SAMPLES, Int8Debug, format_layers

    cfg = ctx.cfg
    x_val = ctx.data.normalized("val")
    ctx.echo(f"      {label}: per-layer error (quantization debugger, {min(len(x_val), DEBUG_SAMPLES)} val images)")
    t0 = time.time()
    try:
        debug = Int8Debug(result.model, _representative(ctx), x_val[:DEBUG_SAMPLES])
    except RuntimeError as exc:
        row["int8_layers"] = {"error": str(exc)}
        row["note"] = f"int8 per-layer report: {exc}"
        ctx.echo(f"      {label}: {row['note']}")
        return None
    summary = debug.summary()
    summary["seconds"] = time.time() - t0
    row["int8_layers"] = summary
    for line in format_layers({**summary, "worst_layers": summary["worst_layers"][:5]}).splitlines():
        ctx.echo(f"        {line}")
    if cfg.convert.max_int8_drop is None or float_path is None:
        return None
    return _int8_mixed(ctx, result, row, debug, float_path, label, base)


def _int8_mixed(ctx: Context, result: StageResult, row: dict, debug, float_path, label: str, base: dict) -> dict | None:
    """The ``int8_mixed`` row when the int8 file's validation drop misses ``convert.max_int8_drop``:
    the worst layers (``debug``'s ranking) kept in float until the drop is within the budget."""
    from edgecnn._io import write_bytes
    from edgecnn.tflite.debugger import budget_resolution, float_fallback, tflite_accuracy, tflite_scores

    cfg, summary = ctx.cfg, row["int8_layers"]
    budget = cfg.convert.max_int8_drop
    x_val, y_val = ctx.data.normalized("val"), ctx.data.y["val"]

    def val_accuracy(model_bytes: bytes) -> float:
        return tflite_accuracy(model_bytes, x_val, y_val, cfg.bench.threads, cfg.bench.runtime)

    float_val = val_accuracy(Path(float_path).read_bytes())
    int8_val = val_accuracy((ctx.out / row["file"]).read_bytes())
    drop = 100 * (float_val - int8_val)
    summary.update(val_accuracy_float32=float_val, val_accuracy_int8=int8_val, val_drop_points=drop,
                   val_images=len(y_val))
    coarse = budget_resolution(drop, budget, len(y_val)) if drop > budget else None
    if drop <= budget:
        ctx.echo(f"      {label}: validation drop {drop:+.2f} points, within the budget of {budget:g}: no int8_mixed")
        return None
    ctx.echo(f"      {label}: validation drop {drop:.2f} points > {budget:g}: keeping the worst layers in float")
    t0 = time.time()
    float_scores = tflite_scores(Path(float_path).read_bytes(), x_val, cfg.bench.threads, cfg.bench.runtime)

    def output_error(model_bytes: bytes) -> float:  # mean squared difference from float32's outputs
        import numpy as np

        scores = tflite_scores(model_bytes, x_val, cfg.bench.threads, cfg.bench.runtime)
        return float(np.mean((scores - float_scores) ** 2))

    try:
        fb = float_fallback(debug, val_accuracy, float_val, budget, output_error=output_error)
    except RuntimeError as exc:
        row["note"] = f"int8_mixed: {exc}"
        ctx.echo(f"      {label}: {row['note']}")
        return None
    mixed_label = label.replace("int8", "int8_mixed")
    model_bytes = fb["model"]
    if cfg.convert.metadata:  # every exported file carries the metadata, the mixed one too
        from edgecnn.tflite.convert import inference_model
        from edgecnn.tflite.metadata import add_metadata

        model_bytes = add_metadata(model_bytes, ctx.data.preprocess, name=inference_model(result.model).name)
    path = write_bytes(ctx.out / row["file"].replace("_int8.tflite", "_int8_mixed.tflite"), model_bytes)
    mixed = _measure(ctx, path, "int8_mixed", mixed_label, {**base, "convert_seconds": time.time() - t0})
    _describe_mixed(mixed, fb, budget, float_val)
    if coarse:
        mixed["int8_mixed"]["resolution_note"] = coarse
        mixed["note"] = (mixed["note"] + "; " if mixed.get("note") else "") + f"int8_mixed: {coarse}"
        ctx.echo(f"      {mixed_label}: {coarse}")
    ctx.echo(
        f"      {mixed_label}: {len(fb['float_layers'])}/{fb['layers_measured']} layers in float "
        f"({', '.join(fb['float_layers'])}); validation {100 * fb['accuracy']:.2f}% vs float32 {100 * float_val:.2f}%"
    )
    return mixed


def _describe_mixed(mixed: dict, fb: dict, budget: float, float_val: float) -> None:
    """What the ``int8_mixed`` row says of itself: :func:`~edgecnn.tflite.debugger.float_fallback`'s
    result under ``int8_mixed``, its float layers, and a note when no prefix met the budget."""
    mixed["int8_mixed"] = {
        "budget_points": budget,
        "float_layers": fb["float_layers"],
        "float_ops": fb["float_ops"],
        "layers_measured": fb["layers_measured"],
        "float_fraction": len(fb["float_layers"]) / fb["layers_measured"],
        "val_accuracy": fb["accuracy"],
        "val_accuracy_float32": float_val,
        "val_drop_points": 100 * (float_val - fb["accuracy"]),
        "within_budget": fb["within_budget"],
        "tried": fb["tried"],
        "ranking": fb["ranking"],
        "output_error_gains": fb["gains"],
        "notes": fb["notes"],
    }
    mixed["float_layers"] = ", ".join(fb["float_layers"])
    if not fb["within_budget"]:
        mixed["note"] = (
            f"int8_mixed: no prefix of the worst layers kept in float is within {budget:g} points of float32; "
            "the best tried is kept"
        )
