"""``edgecnn-device bench --table TABLE.json OPS_DIR``: time every op model of a grid on this
device and write the latency table :class:`edgecnn.device.latency_model.LatencyTable` reads.

The op models come from the host (``edgecnn latency-grid OPS_DIR``: this side has no
TensorFlow to make them). Each is timed with :func:`edgecnn.device.bench.measure`, the
measurement ``edgecnn-device bench`` makes, in child processes of :data:`BATCH` models each: a
model that crashes or hangs the runtime loses its batch's remaining models (recorded under
``"failed"``), not the table, and a process per model would spend more time starting than timing.

Example:
    $ edgecnn-device bench --table pi4-1t.json ops/ --threads 1
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from edgecnn.device.bench import DEFAULT_RUNS, DEFAULT_WARMUP
from edgecnn.errors import UserError

BATCH = 16  # op models per child process
TABLE_MIN_TIME = 0.2  # seconds each op model is timed at least: tiny ops need many runs to settle
# bench flags that have no meaning for a table.
NOT_FOR_TABLES = {"input_path": "--input", "profile": "--profile", "output": "-o", "as_json": "--json"}


def _echo(line: str, err: bool = False) -> None:
    """click.echo's signature without click (click is the device CLI's alone: tests/test_structure.py)."""
    print(line, file=sys.stderr if err else sys.stdout, flush=True)


def op_models(ops_dir) -> list:
    """The ``.tflite`` files of ``ops_dir``, sorted; none (or no folder) is one line."""
    folder = Path(ops_dir)
    if not folder.is_dir():
        raise UserError(f"{ops_dir}: not a folder of op models (make one on the host: edgecnn latency-grid OPS_DIR)")
    files = sorted(folder.glob("*.tflite"))
    if not files:
        raise UserError(f"{ops_dir}: no .tflite op models (make them on the host: edgecnn latency-grid OPS_DIR)")
    return files


def _measure_batch(paths, threads, warmup, runs, min_time, runtime) -> dict:
    """In the child: each model's median ms, or its error; the runtime that ran them."""
    from edgecnn.device.bench import measure

    times, failed, used = {}, {}, {}
    for path in paths:
        try:
            r = measure(path, threads=threads, warmup=warmup, runs=runs, min_time=min_time, runtime=runtime)
        except Exception as exc:  # one model the runtime refuses is a row of "failed", not the end
            failed[path] = f"{type(exc).__name__}: {exc}".replace("\n", " ")
            continue
        times[path] = r["median_ms"]
        used = {k: r[k] for k in ("runtime", "runtime_version", "delegation") if k in r}
    return {"times": times, "failed": failed, **used}


def time_op_models(files, threads=1, warmup=DEFAULT_WARMUP, runs=DEFAULT_RUNS, min_time=TABLE_MIN_TIME,
                   runtime="auto", timeout=300.0, progress=None) -> dict:
    """``{"times": {path: median ms}, "failed": {path: error}, "runtime": ...}`` over ``files``,
    :data:`BATCH` per child process; ``progress(done, total)`` after each batch."""
    from edgecnn.device.bench import run_in_child

    out = {"times": {}, "failed": {}}
    files = [str(f) for f in files]
    for start in range(0, len(files), BATCH):
        batch = files[start : start + BATCH]
        args = {"paths": batch, "threads": threads, "warmup": warmup, "runs": runs, "min_time": min_time,
                "runtime": runtime}
        r = run_in_child("edgecnn.device.op_table", args, timeout * len(batch),
                         lambda status, error: {"status": status, "error": error},
                         timed_out="the batch hung", crashed="timing this batch")
        if "times" not in r:
            out["failed"].update({p: f"{r['status']}: {r['error']}" for p in batch})
        else:
            out["times"].update(r["times"])
            out["failed"].update(r["failed"])
            out.update({k: r[k] for k in ("runtime", "runtime_version") if k in r})
        if progress is not None:
            progress(min(start + BATCH, len(files)), len(files))
    return out


def build_table(files, timing: dict, settings: dict, seconds: float) -> dict:
    """The table's JSON: this machine, the runtime and settings, and one entry per op model
    (its op, group, features and work as :func:`~edgecnn.device.latency_model.op_size` reads them)."""
    from edgecnn.device.bench import cpu_line, machine_info
    from edgecnn.device.latency_model import TABLE_KIND, TABLE_VERSION, model_ops

    machine = machine_info()
    entries, chains = [], []
    failed = [{"file": Path(p).name, "error": e} for p, e in sorted(timing["failed"].items())]
    for path in files:
        ops = model_ops(path)
        sizes = [size for _, size in ops if size is not None]
        ms = timing["times"].get(str(path))
        if not sizes or ms is None:
            if not sizes:
                failed.append({"file": path.name, "error": "no op that does work"})
            continue
        if len(sizes) > 1:  # a calibration chain: the whole graph against the sum of its ops
            chains.append({"file": path.name, "ms": ms, "ops": [_op_row(name, size) for name, size in ops]})
            continue
        entries.append({"file": path.name, **_op_row(sizes[0].op, sizes[0]), "ms": ms})
    return {"kind": TABLE_KIND, "version": TABLE_VERSION, "machine": machine, "cpu_line": cpu_line(machine),
            "runtime": timing.get("runtime"), "runtime_version": timing.get("runtime_version"), **settings,
            "seconds": round(seconds, 1), "entries": entries, "chains": chains, "failed": failed}


def _op_row(name: str, size) -> dict:
    """An op as the table stores it (a layout op: its name only)."""
    if size is None:
        return {"op": name}
    return {"op": size.op, "group": size.group, "features": list(size.features), "work": size.work,
            "shape": size.shape}


def bench_table(table_path, model_path, threads=(), warmup=DEFAULT_WARMUP, runs=DEFAULT_RUNS, min_time=0.0,
                runtime="auto", timeout=300.0, device_name=None, echo=_echo, **unused) -> dict:
    """What ``edgecnn-device bench --table TABLE.json OPS_DIR`` does: time every op model of
    OPS_DIR (``model_path``) with one thread count and runtime, and write the table atomically.

    Example:
        >>> bench_table("pi4-1t.json", "ops/", threads=(1,))  # doctest: +SKIP
    """
    import os

    from edgecnn._io import write_json
    from edgecnn.device.runtime import resolve_runtime

    given = [NOT_FOR_TABLES[k] for k, v in unused.items() if k in NOT_FOR_TABLES and v]
    if given:
        raise UserError(f"--table writes a latency table; {', '.join(given)} do(es) not apply to it")
    if len(threads) > 1:
        raise UserError("--table: one --threads per table (a table is one thread count); run it once per count")
    if device_name:
        os.environ["EDGECNN_DEVICE"] = device_name
    resolve_runtime(runtime)  # a runtime that is not installed: one clear line, before any work
    files = op_models(model_path)
    n_threads = threads[0] if threads else 1
    settings = {"threads": n_threads, "warmup": warmup, "runs": runs, "min_time": max(min_time, TABLE_MIN_TIME),
                "ops_dir": str(model_path)}
    started = time.perf_counter()

    def progress(done, total):
        echo(f"[{done}/{total}] op models timed ({time.perf_counter() - started:.0f} s)", err=True)

    timing = time_op_models(files, n_threads, warmup, runs, settings["min_time"], runtime, timeout, progress)
    table = build_table(files, timing, settings, time.perf_counter() - started)
    try:
        write_json(table_path, table)
    except OSError as exc:
        raise UserError(f"cannot write {table_path}: {exc.strerror or type(exc).__name__}") from None
    echo(f"{len(table['entries'])} op models and {len(table['chains'])} calibration chains timed, "
         f"{len(table['failed'])} failed, in {table['seconds']:.0f} s; written: {table_path}")
    if not table["entries"]:
        raise UserError(f"{model_path}: no op model could be timed; first error: {table['failed'][0]['error']}")
    return table


def prediction_check(table_path, model_path, quiet: bool = False, echo=_echo):
    """``bench --predict TABLE.json``: the table is read first (a missing one is one line before any
    timing), then each result gets ``"predicted_ms"`` and ``"prediction_error"`` (predicted over
    measured, minus 1) and, unless ``quiet``, one line saying how far off the prediction was."""
    from edgecnn.device.latency_model import LatencyTable

    table = LatencyTable.load(table_path)
    prediction = table.predict(model_path)

    def annotate(results: list) -> None:
        for r in results:
            if r.get("status") != "ok":
                continue
            error = prediction.ms / r["median_ms"] - 1.0
            r.update(predicted_ms=prediction.ms, prediction_error=error, prediction_note=prediction.note)
            if not quiet:
                echo(f"  {r['threads']} thread(s): predicted {prediction.ms:.3f} ms against {r['median_ms']:.3f} ms "
                     f"measured ({error:+.0%}); {prediction.note}; table: {table.describe()}")

    return annotate


def _child(argv) -> int:
    from edgecnn.device.bench import run_child

    return run_child(_measure_batch, argv)


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))


__all__ = ["BATCH", "bench_table", "build_table", "op_models", "prediction_check", "time_op_models"]
