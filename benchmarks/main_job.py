"""The README's main job, timed and checked against the foundation issue's targets.

Runs ``edgecnn optimize mobilenet --alpha 0.5 --int8`` as a user would (a fresh output
folder, the installed console script or ``python -m edgecnn``), then reads its
``metrics.json``:

- wall time under 5 minutes on this machine;
- float test accuracy >= 0.95, int8 ``.tflite`` within 1.0 point of it;
- int8 file size <= 0.3x the float32 file.

Usage: ``python benchmarks/main_job.py [--seeds 0 1 2]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import update_section  # noqa: E402


def run_once(seed: int, workdir: Path) -> dict:
    out = workdir / f"seed{seed}"
    cmd = [
        sys.executable,
        "-m",
        "edgecnn",
        "optimize",
        "mobilenet",
        "--alpha",
        "0.5",
        "--int8",
        "--seed",
        str(seed),
        "--out",
        str(out),
        "--allow-outside",
    ]
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.time() - t0
    if proc.returncode != 0:
        raise SystemExit(f"main job failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    rows = {r["variant"]: r for r in metrics["rows"]}
    f32, i8 = rows["float32"], rows["int8"]
    return {
        "seed": seed,
        "seconds": seconds,
        "keras": metrics["stages"]["trained"]["keras_accuracy"],
        "float32": f32["tflite_accuracy"],
        "int8": i8["tflite_accuracy"],
        "size_ratio": i8["size_bytes"] / f32["size_bytes"],
        "f32_ms": f32.get("latency_median_ms"),
        "i8_ms": i8.get("latency_median_ms"),
        "table": proc.stdout[proc.stdout.find("CPU: ") :].strip(),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="edgecnn-main-job-"))
    try:
        results = [run_once(s, workdir) for s in args.seeds]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    lines = [
        "| seed | wall time | Keras float | float32 .tflite | int8 .tflite | int8 - float (pts) | int8/float32 size "
        "| float32 ms | int8 ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['seed']} | {r['seconds']:.0f} s | {100 * r['keras']:.2f}% | {100 * r['float32']:.2f}% | "
            f"{100 * r['int8']:.2f}% | {100 * (r['int8'] - r['float32']):+.2f} | {r['size_ratio']:.3f} | "
            f"{r['f32_ms']:.3f} | {r['i8_ms']:.3f} |"
        )
    ok = all(
        r["seconds"] < 300 and r["float32"] >= 0.95 and r["float32"] - r["int8"] <= 0.01 and r["size_ratio"] <= 0.3
        for r in results
    )
    body = "\n".join(lines) + (
        "\n\nTargets: under 5 minutes; float >= 95%; int8 within 1.0 point; int8 size <= 0.3x float32. "
        f"All met: **{'yes' if ok else 'no'}**.\n\nThe table the job printed (last seed):\n\n```\n"
        f"{results[-1]['table']}\n```"
    )
    print(body)
    update_section("main-job", "Main job: edgecnn optimize mobilenet --alpha 0.5 --int8 (digits)", body)


if __name__ == "__main__":
    main()
