"""How far off is the latency model? Predicted against measured latency of search candidates.

Builds an op table on this machine (``edgecnn latency-grid`` then ``edgecnn-device bench
--table``) once per setting (1 thread and 2 threads), converts a set of candidates that
``edgecnn search`` would consider (untrained: the weights do not change the ops, their
shapes or the kernels XNNPACK picks), measures each with :func:`edgecnn.device.bench.benchmark`
and compares with :meth:`edgecnn.device.latency_model.LatencyTable.predict`: per-candidate
error, median and worst, per table. Writes the section ``latency_model`` of RESULTS.md.

Op models, tables, candidates and their measured latencies are kept in ``--work``: a rerun
reuses them (delete a file there to redo that step). Usage:
``python benchmarks/latency_model.py [--work /tmp/latency_model] [--threads 1,2] [--resolutions 96,160]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import update_section  # noqa: E402

# (model, alpha) pairs at the widths each family accepts (``python -m edgecnn list``).
CANDIDATES = (
    ("mobilenet", 0.25),
    ("mobilenet", 0.5),
    ("mobilenet_v2", 0.35),
    ("mobilenet_v2", 0.5),
    ("mobilenet_v3_small", 0.75),
    ("mobilenet_v3_small", 1.0),
    ("shufflenet_v2", 0.5),
    ("shufflenet_v2", 1.0),
    ("efficientnet_b0", 0.5),
)
RESOLUTIONS = (96, 160)
PRECISIONS = ("float32", "int8")
NUM_CLASSES = 5


def candidate_path(folder: Path, name: str, alpha: float, size: int, precision: str) -> Path:
    return folder / f"{name}_a{alpha:g}_{size}px_{precision}.tflite"


def make_candidates(folder: Path, resolutions=RESOLUTIONS) -> list:
    """Convert every candidate once (kept in ``folder``: a rerun reuses them)."""
    from edgecnn.models import create_model
    from edgecnn.tflite.convert import convert, exported_once

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for size in resolutions:  # every family at the first resolution first: a cut-short run still spans them
        for name, alpha in CANDIDATES:
            todo = [p for p in PRECISIONS if not candidate_path(folder, name, alpha, size, p).exists()]
            paths += [candidate_path(folder, name, alpha, size, p) for p in PRECISIONS]
            if not todo:
                continue
            model = create_model(name, alpha=alpha, input_shape=(size, size, 3), classes=NUM_CLASSES)
            calib = np.random.default_rng(0).uniform(-1, 1, (4, 1, size, size, 3)).astype(np.float32)

            def rep(calib=calib):
                for row in calib:
                    yield [row]

            t0 = time.perf_counter()
            with exported_once(model):
                for precision in todo:
                    path = candidate_path(folder, name, alpha, size, precision)
                    convert(model, path, precision, representative=rep if precision == "int8" else None)
            print(f"converted {name} a{alpha:g} {size}px in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return paths


def _run(cmd: list) -> float:
    """Run a CLI step; its wall time in seconds (it fails loudly)."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, *cmd], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    return time.perf_counter() - t0


def make_tables(work: Path, threads_list) -> dict:
    """The op grid (once) and one table per thread count, through the two CLIs as a user runs them;
    ``{"grid_s": ..., "files": ..., "tables": {threads: (path, seconds)}}``. Existing ones are reused."""
    ops = work / "ops"
    manifest = ops / "manifest.json"
    if not manifest.exists():
        _run(["-m", "edgecnn", "latency-grid", str(ops)])
    info = json.loads(manifest.read_text())
    out = {"grid_s": info["seconds"], "files": len(info["models"]), "tables": {}}
    for threads in threads_list:
        path = work / f"table_{threads}t.json"
        if not path.exists():
            _run(["-m", "edgecnn.device.cli", "bench", "--table", str(path), str(ops), "--threads", str(threads)])
        out["tables"][threads] = (path, json.loads(path.read_text())["seconds"])
    return out


def measure_candidates(candidates: list, threads: int, min_time: float, cache: Path) -> dict:
    """``{file name: median ms}`` of every candidate with ``threads`` threads, kept in ``cache``
    (a rerun after a change to the model predicts again without measuring again)."""
    from edgecnn._io import write_json
    from edgecnn.device.bench import benchmark

    measured = json.loads(cache.read_text()) if cache.exists() else {}
    for path in candidates:
        if path.name in measured:
            continue
        r = benchmark(path, threads=threads, min_time=min_time)
        if r.get("status") != "ok":
            raise SystemExit(f"bench of {path} failed: {r.get('status')}: {r.get('error')}")
        measured[path.name] = r["median_ms"]
        write_json(cache, measured)
    return measured


def compare(table_path: Path, candidates: list, measured: dict, threads: int) -> list:
    """``[(candidate, predicted ms, measured ms, error)]`` with error = predicted / measured - 1."""
    from edgecnn.device.latency_model import LatencyTable

    table = LatencyTable.load(table_path)
    rows = []
    for path in candidates:
        predicted, ms = table.predict(path), measured[path.name]
        rows.append((path.stem, predicted.ms, ms, predicted.ms / ms - 1))
        print(f"{threads}t {path.stem}: predicted {predicted.ms:.2f} measured {ms:.2f} ({rows[-1][3]:+.0%})",
              file=sys.stderr)
    return rows


def summary(rows: list) -> dict:
    """Median and worst absolute error, and which candidate is the worst."""
    errors = np.abs([r[3] for r in rows])
    worst = rows[int(np.argmax(errors))]
    return {"median": float(np.median(errors)), "worst": float(errors.max()), "worst_name": worst[0],
            "within_15": int((errors <= 0.15).sum()), "n": len(rows)}


def report(tables: dict, results: dict, describe: dict, load: tuple) -> str:
    lines = [
        f"Op grid: {tables['files']} op models (`edgecnn latency-grid`), made in {tables['grid_s']:.0f} s. "
        f"Load average before/after measuring: {load[0]:.1f} / {load[1]:.1f} (2 cores shared with other jobs).",
        "",
        "| table | timing the grid | candidates | median error | worst error | within 15% |",
        "|---|---|---|---|---|---|",
    ]
    for threads, rows in results.items():
        s = summary(rows)
        lines.append(f"| {describe[threads]} | {tables['tables'][threads][1]:.0f} s | {s['n']} | {s['median']:.1%} | "
                     f"{s['worst']:.1%} ({s['worst_name']}) | {s['within_15']}/{s['n']} |")
        for precision in PRECISIONS:
            sub = [r for r in rows if r[0].endswith(precision)]
            if sub:
                p = summary(sub)
                lines.append(f"| ... {precision} only | | {p['n']} | {p['median']:.1%} | {p['worst']:.1%} "
                             f"({p['worst_name']}) | {p['within_15']}/{p['n']} |")
    lines += ["", "Per candidate (predicted / measured ms, error = predicted / measured - 1):", ""]
    threads_list = list(results)
    lines.append("| candidate | " + " | ".join(f"{t} thread(s)" for t in threads_list) + " |")
    lines.append("|---|" + "---|" * len(threads_list))
    for i, row in enumerate(results[threads_list[0]]):
        cells = [f"{results[t][i][1]:.2f} / {results[t][i][2]:.2f} ({results[t][i][3]:+.0%})" for t in threads_list]
        lines.append(f"| {row[0]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/latency_model"), help="Op models, tables, candidates.")
    ap.add_argument("--threads", default="1,2", help="One table per thread count.")
    ap.add_argument("--resolutions", default=",".join(map(str, RESOLUTIONS)))
    ap.add_argument("--min-time", type=float, default=0.5, help="Seconds each candidate is timed at least.")
    args = ap.parse_args()
    from edgecnn.device.latency_model import LatencyTable

    threads_list = [int(t) for t in args.threads.split(",")]
    candidates = make_candidates(args.work / "candidates", [int(r) for r in args.resolutions.split(",")])
    tables = make_tables(args.work, threads_list)
    load_before = os.getloadavg()[0]
    measured = {t: measure_candidates(candidates, t, args.min_time, args.work / f"measured_{t}t.json")
                for t in threads_list}
    results = {t: compare(tables["tables"][t][0], candidates, measured[t], t) for t in threads_list}
    describe = {t: LatencyTable.load(tables["tables"][t][0]).describe() for t in threads_list}
    body = report(tables, results, describe, (load_before, os.getloadavg()[0]))
    print(body)
    update_section("latency_model", "Latency model: predicted against measured (edgecnn-device bench --table)", body)


if __name__ == "__main__":
    main()
