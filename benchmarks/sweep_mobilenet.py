"""Sweep MobileNet v1 alpha 0.25/0.5/0.75/1.0 x {float32, int8} at 128x128 on digits.

Target (issue 6): finishes in under 20 minutes on the 2-core reference machine and
yields the table and the Pareto plot. Writes runs/sweep-mobilenet/ (table, plot),
copies the plot to benchmarks/sweep_mobilenet.png and records the table and the wall
time in benchmarks/RESULTS.md.

    python benchmarks/sweep_mobilenet.py [--epochs 4] [--out runs/sweep-mobilenet]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _results import update_section  # noqa: E402

from edgecnn.report.tables import REPORT_COLUMNS, to_markdown  # noqa: E402
from edgecnn.sweep import SweepSpec, run_sweep  # noqa: E402

TARGET_S = 20 * 60


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--runs", type=int, default=50, help="timed runs per benchmark")
    parser.add_argument("--out", default="runs/sweep-mobilenet")
    parser.add_argument("--fresh", action="store_true", help="delete the sweep folder first (time a cold sweep)")
    args = parser.parse_args()
    if args.fresh:
        shutil.rmtree(args.out, ignore_errors=True)
    spec = SweepSpec(
        models=["mobilenet"],
        alphas=[0.25, 0.5, 0.75, 1.0],
        sizes=[128],
        precisions=["float32", "int8"],
        base={"data": {"source": "digits"}, "train": {"epochs": args.epochs}, "bench": {"runs": args.runs}},
        out=args.out,
    )
    t0 = time.time()
    result = run_sweep(spec)
    seconds = time.time() - t0
    skipped = sum(p["status"] == "skipped" for p in result["points"])
    failed = [p for p in result["points"] if p["status"] == "failed"]
    plot = result["paths"].get("plot")
    if plot:
        shutil.copyfile(plot, Path(__file__).with_name("sweep_mobilenet.png"))
    verdict = "PASS" if seconds < TARGET_S and not failed and not skipped else ("FAIL" if seconds >= TARGET_S else "-")
    body = [
        f"Wall time: **{seconds / 60:.1f} min** for {len(result['points'])} runs / "
        f"{sum(len(spec.precisions) for _ in result['points'])} variants "
        f"({skipped} skipped as already done, {len(failed)} failed); target < 20 min on a cold sweep: {verdict}.",
        f"Training: {args.epochs} epochs per width on digits at 128x128 (train split), Adam; latency: 1 thread, "
        f"{args.runs} runs, LiteRT with XNNPACK.",
        "",
        to_markdown(result["rows"], REPORT_COLUMNS),
        "",
        "Plot: `benchmarks/sweep_mobilenet.png` (accuracy vs median latency, marker area ~ file size, "
        "dashed line = Pareto front).",
    ]
    load = os.getloadavg()
    loadavg = "/".join(f"{v:.1f}" for v in load)
    body.append(f"\nLoad average when it finished (1/5/15 min, {os.cpu_count()} cores): {loadavg}")
    update_section("sweep_mobilenet", "MobileNet v1 sweep (4 widths x float32/int8, 128px, digits)", "\n".join(body))
    print(f"sweep: {seconds / 60:.1f} min ({verdict})")
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
