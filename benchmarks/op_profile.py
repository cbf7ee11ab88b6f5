"""Where the main job's int8 model spends its time, op by op, against float32 (``bench --profile``).

Profiles ``model_float32.tflite`` and ``model_int8.tflite`` of the README's main job
(``edgecnn optimize mobilenet --alpha 0.5 --int8``, digits, 32x32) with LiteRT's C API
profiler (:mod:`edgecnn.device.profile`), and benchmarks them the usual way
(:func:`edgecnn.device.bench.benchmark`), on this machine's CPU. Writes the per-op-type
comparison and each model's per-partition table into ``benchmarks/RESULTS.md``.

Without ``--run``, it trains the main job for ``--epochs`` (1 by default): the weights do
not change the ops, their shapes or the kernels XNNPACK picks, only the accuracy, which
this benchmark does not report. ``--run runs/main`` profiles a finished run's files.

Usage: ``python benchmarks/op_profile.py [--run RUN_FOLDER] [--runs 300] [--threads 1]``
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import update_section  # noqa: E402

from edgecnn.device.bench import benchmark, cpu_line  # noqa: E402
from edgecnn.device.profile import profile, summary_line  # noqa: E402


def train_main_job(workdir: Path, epochs: int) -> Path:
    out = workdir / "main"
    cmd = [sys.executable, "-m", "edgecnn", "optimize", "mobilenet", "--alpha", "0.5", "--int8", "--no-bench"]
    cmd += ["--epochs", str(epochs), "--out", str(out), "--allow-outside"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"main job failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    return out


def measure(run: Path, runs: int, threads: int) -> dict:
    out = {}
    for precision in ("float32", "int8"):
        model = run / f"model_{precision}.tflite"
        bench = benchmark(model, threads=threads, runs=runs)
        prof = profile(model, threads=threads, runs=runs)
        for name, r in (("bench", bench), ("profile", prof)):
            if r.get("status") != "ok":
                raise SystemExit(f"{name} of {model} failed: {r.get('status')}: {r.get('error')}")
        out[precision] = {"bench": bench, "profile": prof}
    return out


def _ms(v) -> str:
    return "-" if v is None else f"{v:.4f}"


def comparison(results: dict) -> list:
    """One row per op type (by TFLite op where XNNPACK's operators line up), float32 vs int8."""
    rows: dict = {}
    for precision in ("float32", "int8"):
        for r in results[precision]["profile"]["op_types"]:
            row = rows.setdefault(r["op"], {"op": r["op"]})
            row[precision] = r
    lines = [
        "| op type | float32: kernel | count | ms/run | int8: kernel | count | ms/run | int8/float32 |",
        "|---|---|---:|---:|---|---:|---:|---:|",
    ]
    for row in sorted(rows.values(), key=lambda r: -max(r.get(p, {}).get("ms", 0) for p in ("float32", "int8"))):
        f, i = row.get("float32", {}), row.get("int8", {})
        ratio = f"{i['ms'] / f['ms']:.2f}" if f.get("ms") and i.get("ms") else "-"
        lines.append(
            f"| {row['op']} | {f.get('kernel', '-')} | {f.get('count', '-')} | {_ms(f.get('ms'))} | "
            f"{i.get('kernel', '-')} | {i.get('count', '-')} | {_ms(i.get('ms'))} | {ratio} |"
        )
    return lines


def partitions(p: dict) -> list:
    lines = ["| partition | ops | ms/run | % invoke | TFLite ops |", "|---|---:|---:|---:|---|"]
    for r in p["partitions"]:
        lines.append(f"| {r['partition']} | {r['ops']} | {r['ms']:.4f} | {r['pct']:.1f} | {r['tflite_ops'] or '-'} |")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, default=None, help="A finished main-job run folder to profile.")
    parser.add_argument("--epochs", type=int, default=1, help="Epochs when training the main job here.")
    parser.add_argument("--runs", type=int, default=300, help="Timed (and profiled) runs per model.")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    workdir = None
    try:
        if args.run is None:
            workdir = Path(tempfile.mkdtemp(prefix="edgecnn-op-profile-"))
            run = train_main_job(workdir, args.epochs)
            source = f"trained here with `--epochs {args.epochs}` (the ops and shapes of the main job; weights aside)"
        else:
            run, source = args.run, f"the files of a finished main-job run (`{args.run}`)"
        results = measure(run, args.runs, args.threads)
    finally:
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
    f32, i8 = results["float32"], results["int8"]
    speed = f32["bench"]["median_ms"] / i8["bench"]["median_ms"]
    body = [
        cpu_line(i8["bench"]) + " (shared with other jobs: latencies are upper bounds)",
        "",
        f"Main job `edgecnn optimize mobilenet --alpha 0.5 --int8` (digits, 32x32), {source}; "
        f"{i8['bench']['runtime']} {i8['bench']['runtime_version']}, {args.threads} thread(s), {args.runs} runs each. "
        f"Bench medians (Interpreter): float32 {f32['bench']['median_ms']:.4f} ms, int8 "
        f"{i8['bench']['median_ms']:.4f} ms (int8 {speed:.2f}x as fast).",
        "",
        *[
            f"- {name} profile: {summary_line(r['profile'])}; the CompiledModel's whole run, median: "
            f"{r['profile']['run_median_ms']:.4f} ms unprofiled, {r['profile']['run_median_profiled_ms']:.4f} ms "
            "profiled"
            for name, r in (("float32", f32), ("int8", i8))
        ],
        "",
        "Time per op type (mean per run over the runs kept):",
        "",
        *comparison(results),
        "",
        "int8 partitions:",
        "",
        *partitions(i8["profile"]),
        "",
        "float32 partitions:",
        "",
        *partitions(f32["profile"]),
        "",
        "The per-op sum falls short of the interpreter's invoke by what no op event covers: the "
        "interpreter's and XNNPACK's own dispatch, and XNNPACK's per-op times in whole microseconds "
        "(on a model of ~30 ops of a few µs each, that is a large share). The profile runs LiteRT's "
        "CompiledModel (C API), the bench its Interpreter: same kernels, slightly different overhead; "
        "profiling itself slows each run (compare the CompiledModel's medians unprofiled and profiled), so "
        "read the per-op figures as shares of the invoke, and the bench medians as the latency.",
    ]
    text = "\n".join(body)
    print(text)
    update_section("op-profile", "Per-op time of the main job: int8 vs float32 (`bench --profile`)", text)


if __name__ == "__main__":
    main()
