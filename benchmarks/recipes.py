"""Run every recipe in recipes/ and record its figures in benchmarks/RESULTS.md (section ``recipes``).

Recipes too long for a shared 2-core machine are reduced with ``--set`` overrides (listed
in the table, so every figure says how it was made); ``lenet5_digits`` and
``mlp_digits_int8`` run in full, and ``lenet5_digits`` runs twice to check that a second
run reproduces the first (target: within 0.1 point).

    PYTHONPATH=. python benchmarks/recipes.py [--epochs 3] [--only NAME ...] [--full NAME ...]

Recipes whose model family or compression stage is not in this checkout yet are listed
as skipped, with the reason.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._results import RESULTS, update_section  # noqa: E402

FULL = {"lenet5_digits", "mlp_digits_int8"}
REPEAT = "lenet5_digits"


def run(recipe: Path, overrides: list, out: str) -> tuple:
    cmd = [sys.executable, "-m", "edgecnn", "run", str(recipe), "--set", f"out={out}", "--set", "train.verbose=2"]
    for o in overrides:
        cmd += ["--set", o]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t0 = time.time()
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    return res, time.time() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3, help="training epochs for the reduced recipes")
    ap.add_argument("--only", nargs="*", default=None, help="recipe names to run (default: all)")
    ap.add_argument("--full", nargs="*", default=[], help="more recipe names to run as written, not reduced")
    args = ap.parse_args(argv)
    recipes = sorted((ROOT / "recipes").glob("*.yaml"))
    if args.only:
        recipes = [r for r in recipes if r.stem in args.only]
    parts, summary = [], []
    for recipe in recipes:
        name = recipe.stem
        full = name in FULL or name in args.full
        overrides = [] if full else [f"train.epochs={args.epochs}", "bench.runs=30"]
        for section, key in (("prune", "epochs"), ("qat", "epochs"), ("distill", "teacher_epochs")):
            if not full and section in recipe.read_text():
                overrides.append(f"{section}.{key}=1")
        check = subprocess.run(
            [
                sys.executable,
                "-m",
                "edgecnn",
                "run",
                str(recipe),
                "--check",
                *sum([["--set", o] for o in overrides], []),
            ],
            cwd=ROOT,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
            capture_output=True,
            text=True,
        )
        how = " ".join(f"`--set {o}`" for o in overrides) or "as written"
        if check.returncode != 0:
            reason = check.stderr.strip().splitlines()[-1] if check.stderr.strip() else "invalid"
            parts.append(f"### {name}\n\nSkipped in this checkout: {reason}\n")
            summary.append(f"| [{name}](#{name}) | skipped | | | | |")
            print(f"{name}: skipped ({reason})", flush=True)
            continue
        out = f"runs/recipes/{name}"
        print(f"{name}: running ({how})", flush=True)
        res, secs = run(recipe, overrides, out)
        if res.returncode != 0:
            tail = (res.stderr.strip().splitlines() or ["?"])[-1]
            parts.append(f"### {name}\n\nFailed ({how}): {tail}\n")
            summary.append(f"| [{name}](#{name}) | failed | | | | |")
            print(f"{name}: FAILED {tail}", flush=True)
            continue
        table = (ROOT / out / "table.md").read_text().strip()
        table = re.sub(r"^#.*\n+", "", table)
        metrics = json.loads((ROOT / out / "metrics.json").read_text())
        text = (
            f"### {name}\n\n`edgecnn run recipes/{name}.yaml` {how} ({secs:.0f} s; {metrics['dataset']}):\n\n{table}\n"
        )
        best = metrics["rows"][-1]
        if name == REPEAT:
            res2, _ = run(recipe, overrides, out + "-second")
            if res2.returncode == 0:
                m2 = json.loads((ROOT / out / ".." / f"{name}-second" / "metrics.json").resolve().read_text())
                pairs = [
                    f"{a['variant']} {100 * a['tflite_accuracy']:.2f}% / {100 * b['tflite_accuracy']:.2f}% "
                    f"(difference {100 * abs(a['tflite_accuracy'] - b['tflite_accuracy']):.2f} points)"
                    for a, b in zip(metrics["rows"], m2["rows"])
                ]
                text += "\nSecond run from scratch (another folder, same recipe and seed): " + "; ".join(pairs) + ".\n"
        parts.append(text)
        summary.append(
            f"| [{name}](#{name}) | {best['variant']} | {100 * best['tflite_accuracy']:.2f}% | "
            f"{best['size_bytes'] / 1024:.1f} KB | "
            f"{best.get('latency_median_ms', float('nan')):.3f} | {how} |"
        )
        print(f"{name}: done in {secs:.0f} s", flush=True)
    body = (
        "Every recipe in `recipes/`, run by `edgecnn run`; accuracy is top-1 of the `.tflite` on the digits "
        "test split, latency the median of single-image runs on 1 thread of this machine (shared with other "
        "jobs, so latency is indicative).\n\n"
        "| recipe | shipped variant | TFLite acc | size | median ms | how it was run |\n|---|---|---|---|---|---|\n"
        + "\n".join(summary)
        + "\n\n"
        + "\n".join(parts)
    )
    update_section("recipes", "Recipes", body)
    print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
