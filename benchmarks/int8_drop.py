"""The zoo's post-training int8 drop on digits, the worst layers, and the float fallback.

Runs recipes from recipes/ with ``convert.max_int8_drop`` (and int16x8) switched on, then
reads each run's ``metrics.json``: float32, int8, int16x8 and int8_mixed test accuracy,
the int8 validation drop, the layer with the largest int8 error, which layers the
fallback kept in float, sizes and latencies. Writes section ``int8-drop`` of RESULTS.md,
with the CPU (and its int8 features) the latencies come from.

    PYTHONPATH=. python benchmarks/int8_drop.py [--epochs 3] [--only NAME ...] [--seeds 0 1 2] [--budget 0.5]

``--epochs`` reduces the recipes' training (the table says so); ``--train-fraction``
trains on part of the training split. Every figure says how it was made.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._results import update_section  # noqa: E402

DEFAULT = ["lenet5_digits", "mlp_digits_int8", "mobilenet_v1_050_int8", "mobilenet_v2_035_int8"]


def run(recipe: Path, seed: int, args, out: Path) -> dict:
    sets = [
        f"out={out}",
        "train.verbose=2",
        f"convert.max_int8_drop={args.budget}",
        "convert.int16x8=true",
        "bench.runs=30",
        f"data.seed={seed}",
        f"train.seed={seed}",
    ]
    if args.epochs:
        sets.append(f"train.epochs={args.epochs}")
    if args.train_fraction:
        sets.append(f"data.train_fraction={args.train_fraction}")
    cmd = [sys.executable, "-m", "edgecnn", "run", str(recipe), "--allow-outside"]
    for s in sets:
        cmd += ["--set", s]
    t0 = time.time()
    res = subprocess.run(cmd, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True)
    if res.returncode != 0:
        tail = (res.stderr.strip().splitlines() or ["?"])[-1]
        return {"recipe": recipe.stem, "seed": seed, "error": tail, "seconds": time.time() - t0}
    metrics = json.loads((out / "metrics.json").read_text())
    rows = {r["precision"]: r for r in metrics["rows"] if r["stage"] == "trained"}
    i8 = rows["int8"]
    layers = i8.get("int8_layers") or {}
    worst = (layers.get("worst_layers") or [{}])[0]
    mixed = rows.get("int8_mixed")
    return {
        "recipe": recipe.stem,
        "seed": seed,
        "seconds": time.time() - t0,
        "epochs": metrics["config"]["train"]["epochs"],
        "float32": rows["float32"]["tflite_accuracy"],
        "int8": i8["tflite_accuracy"],
        "int16x8": rows.get("int16x8", {}).get("tflite_accuracy"),
        "val_drop": layers.get("val_drop_points"),
        "worst": f"{worst.get('layer')} ({worst.get('op')}, {worst.get('rmse_scale', float('nan')):.2f})",
        "measured": layers.get("layers_measured"),
        "mixed": mixed["tflite_accuracy"] if mixed else None,
        "float_layers": mixed["int8_mixed"]["float_layers"] if mixed else [],
        "mixed_size": mixed["size_bytes"] / rows["float32"]["size_bytes"] if mixed else None,
        "int8_size": i8["size_bytes"] / rows["float32"]["size_bytes"],
        "ms": {p: r.get("latency_median_ms") for p, r in rows.items()},
        "cpu": next((r.get("cpu") for r in rows.values() if r.get("cpu")), None),
        "cpu_features": next((r.get("cpu_features") for r in rows.values() if "cpu_features" in r), None),
    }


def _pct(v):
    return "-" if v is None else f"{100 * v:.2f}%"


def _ms(v):
    return "-" if v is None else f"{v:.3f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", default=DEFAULT, help="recipe names")
    ap.add_argument("--epochs", type=int, default=None, help="training epochs (default: the recipe's)")
    ap.add_argument("--train-fraction", type=float, default=None)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--budget", type=float, default=0.5, help="--max-int8-drop, in points")
    args = ap.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="edgecnn-int8-drop-") as tmp:
        for name in args.only:
            for seed in args.seeds:
                r = run(ROOT / "recipes" / f"{name}.yaml", seed, args, Path(tmp) / f"{name}-{seed}")
                print(json.dumps({k: v for k, v in r.items() if k != "ms"}), flush=True)
                results.append(r)
    ok = [r for r in results if "error" not in r]
    from edgecnn.device.bench import cpu_line

    head = cpu_line({"cpu": ok[0]["cpu"], "cpu_features": ok[0]["cpu_features"]}) if ok else "CPU: -"
    lines = [
        head,
        "",
        "| recipe | seed | epochs | float32 | int8 | int8 drop (test pts) | int8 drop (val pts) | worst layer "
        "(op, rmse/scale) | int8_mixed | float layers | int8/f32 size | mixed/f32 size | int16x8 | f32 ms "
        "| int8 ms | mixed ms | int16x8 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['recipe']} | {r['seed']} | failed: {r['error']} |" + " |" * 14)
            continue
        names = r["float_layers"][:5] + (["..."] if len(r["float_layers"]) > 5 else [])
        fl = f"{len(r['float_layers'])}/{r['measured']}: " + ", ".join(names) if r["float_layers"] else "-"
        mixed_size = "-" if r["mixed_size"] is None else f"{r['mixed_size']:.3f}"
        lines.append(
            f"| {r['recipe']} | {r['seed']} | {r['epochs']} | {_pct(r['float32'])} | {_pct(r['int8'])} | "
            f"{100 * (r['float32'] - r['int8']):+.2f} | {r['val_drop']:+.2f} | {r['worst']} | {_pct(r['mixed'])} | "
            f"{fl} | {r['int8_size']:.3f} | {mixed_size} "
            f"| {_pct(r['int16x8'])} | {_ms(r['ms'].get('float32'))} | {_ms(r['ms'].get('int8'))} | "
            f"{_ms(r['ms'].get('int8_mixed'))} | {_ms(r['ms'].get('int16x8'))} |"
        )
    by_recipe = {}
    for r in ok:
        by_recipe.setdefault(r["recipe"], []).append(r)
    spread = []
    for name, rs in by_recipe.items():
        if len(rs) > 1:
            drops = [100 * (r["float32"] - r["int8"]) for r in rs]
            spread.append(f"- {name}: int8 drop {statistics.mean(drops):+.2f} +- {statistics.stdev(drops):.2f} "
                          f"points over seeds {[r['seed'] for r in rs]}")
    reduced = []
    if args.epochs:
        reduced.append(f"training reduced to {args.epochs} epoch(s) (the recipes train 20 to 30)")
    if args.train_fraction:
        reduced.append(f"{args.train_fraction:.0%} of the training split")
    note = (
        f"Budget `--max-int8-drop {args.budget:g}`: `int8_mixed` appears only when int8 loses more than that on the "
        "validation split. Drops are test-split points (float32 minus int8 .tflite accuracy), worst layer by the "
        "quantization debugger (rmse/scale ~0.29 is rounding alone). "
        + ("Reduced run: " + "; ".join(reduced) + "; a full run is `python benchmarks/int8_drop.py`." if reduced
           else "Recipes as written.")
        + " The machine was shared with other jobs while measuring: latencies are inflated, ratios are indicative."
    )
    body = "\n".join(lines) + "\n\n" + note + ("\n\n" + "\n".join(spread) if spread else "")
    print(body)
    update_section("int8-drop", "int8 drop per model, worst layers, float fallback and int16x8 (digits)", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
