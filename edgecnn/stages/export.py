"""The export steps applied to every model a stage produced: convert -> evaluate -> bench.

Each precision of each result becomes one ``.tflite`` file and one table row: converted
(:func:`edgecnn.convert.convert`), evaluated on the test split with the TFLite
interpreter (:func:`edgecnn.device.evaluate.evaluate_tflite`) and timed
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
            "leave out --int16x8 or use --runtime litert"
        ) from None


def export_and_measure(ctx: Context, result: StageResult, keras_accuracy: float) -> list:
    """Convert ``result.model`` to each precision, then evaluate and benchmark each file."""
    from edgecnn._io import sha256_file
    from edgecnn.convert import convert
    from edgecnn.device.bench import benchmark
    from edgecnn.models._profile import count_macs, count_params
    from edgecnn.optimize.prune import strip_pruning_if_wrapped
    from edgecnn.report import bench_fields

    cfg = ctx.cfg
    counts = count_params(strip_pruning_if_wrapped(result.model))
    macs = count_macs(result.model)
    rows = []
    prefix = "model" if result.name == TRAINED else result.name
    x_test, y_test = ctx.data.normalized("test"), ctx.data.y["test"]
    for precision in result.precisions:
        path = ctx.out / f"{prefix}_{precision}.tflite"
        label = precision if result.name == TRAINED else f"{result.name} {precision}"
        # Only a model with zeros has anything to store sparsely (the converter picks the tensors).
        sparse = cfg.convert.sparse_storage and precision == "float32" and counts["nonzero"] < counts["trainable"]
        ctx.echo(f"      {label}: converting" + (" (sparse storage)" if sparse else ""))
        t0 = time.time()
        rep = (
            ctx.data.representative(cfg.convert.calibration_samples, seed=cfg.data.seed)
            if precision in ("int8", "int16x8")
            else None
        )
        convert(result.model, path, precision, representative=rep, sparse=sparse)
        convert_s = time.time() - t0
        metrics = evaluate_or_explain(path, precision, x_test, y_test, cfg.bench.threads, cfg.bench.runtime)
        row = {
            "model": cfg.model.name,
            "variant": label,
            "stage": result.name,
            "precision": precision,
            "file": path.name,
            "sparse_storage": sparse,
            "size_bytes": path.stat().st_size,
            "size_gzip": _gzip_size(path),
            "params": counts["trainable"],
            "nonzero_params": counts["nonzero"],
            "sparsity": 1.0 - counts["nonzero"] / max(1, counts["trainable"]),
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
        rows.append(row)
    return rows
