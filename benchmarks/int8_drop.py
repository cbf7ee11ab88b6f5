"""The zoo's post-training int8 drop on digits, the worst layers, and the float fallback.

Runs recipes from recipes/ with ``convert.max_int8_drop`` (and int16x8) switched on, then
reads each run's ``metrics.json``: float32, int8, int16x8 and int8_mixed test accuracy,
the int8 validation drop, the layer with the largest int8 error, which layers the
fallback kept in float, sizes and latencies. Writes section ``int8-drop`` of RESULTS.md,
with the CPU (and its int8 features) the latencies come from.

    PYTHONPATH=. python benchmarks/int8_drop.py [--epochs 3] [--only NAME ...] [--seeds 0 1 2] [--budget 0.5]
        [--data digits|pngs|DIR] [--val-split F] [--qat EPOCHS] [--no-int16x8] [--store FILE] [--render]
        [--note TEXT]

``--val-split`` sets the validation split the fallback is judged on (the recipes' 10% of
digits is 180 images, so the 0.5-point budget is one image). ``--epochs`` reduces the
recipes' training (the table says so); ``--train-fraction``
trains on part of the training split. ``--data pngs`` writes the digits as a folder of
64x64 RGB PNGs (one folder per class) and trains from it, through the streaming image
folder pipeline (``data.source`` a folder); ``--data DIR`` uses any image folder.
``--qat EPOCHS`` adds a ``qat`` stage before ``convert`` (its rows are the QAT rows).
Every invocation adds its results to ``--store`` (a JSON file under ``runs/``, kept
between invocations, so a long search runs one or a few recipes at a time under the
heavy-run lock); the table is rendered from everything stored, ``--render`` renders
without running. Every figure says how it was made.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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


STORE = ROOT / "runs" / "int8_drop" / "results.json"
PNG_ROOT = Path(tempfile.gettempdir()) / "edgecnn_int8_drop" / "digits_64x64_rgb"


def digits_pngs(root: Path = PNG_ROOT, size: int = 64) -> Path:
    """The sklearn digits as ``root/<class>/<i>.png``, RGB, upscaled to ``size`` (written once), by
    :func:`edgecnn.data.dataset.write_split_images` (``split="all"``: the pixels of the in-memory digits)."""
    if (root / "9").is_dir():
        return root
    from edgecnn.data.dataset import write_split_images

    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    write_split_images(None, tmp, "all", image_size=size, channels=3)
    os.replace(tmp, root)
    return root


def recipe_file(recipe: Path, qat_epochs: int | None, tmp: Path) -> Path:
    """The recipe, with a ``qat`` stage before ``convert`` when ``qat_epochs`` is given."""
    if not qat_epochs:
        return recipe
    lines = recipe.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith("- convert"))
    indent = lines[at][: len(lines[at]) - len(lines[at].lstrip())]
    lines.insert(at, f"{indent}- qat: {{epochs: {qat_epochs}}}")
    out = tmp / f"{recipe.stem}_qat.yaml"
    out.write_text("\n".join(lines) + "\n")
    return out


def data_label(args) -> str:
    """The table's data name: the source, and the validation split when ``--val-split`` changes it."""
    return args.data + (f" val{round(100 * args.val_split)}" if args.val_split is not None else "")


def key(r: dict) -> str:
    return f"{r['data']}|{r['recipe']}|{r['variant']}|{r['seed']}"


def run(recipe: Path, seed: int, args, out: Path, tmp: Path) -> dict:
    sets = [
        f"out={out}",
        "train.verbose=2",
        "bench.runs=30",
        f"data.seed={seed}",
        f"train.seed={seed}",
    ]
    if not args.qat:  # the QAT rows are the QAT model's int8 against the trained float32: nothing else
        sets += [f"convert.max_int8_drop={args.budget}"] + ([] if args.no_int16x8 else ["convert.int16x8=true"])
    if args.epochs:
        sets.append(f"train.epochs={args.epochs}")
    if args.train_fraction:
        sets.append(f"data.train_fraction={args.train_fraction}")
    if args.val_split is not None:
        sets.append(f"data.val_split={args.val_split}")
    if args.data != "digits":
        sets.append(f"data.source={args.data_dir}")
    variant = f"qat{args.qat}" if args.qat else "ptq"
    tag = {"data": data_label(args), "variant": variant, "epochs": args.epochs or "recipe"}
    recipe_name = recipe.stem
    recipe = recipe_file(recipe, args.qat, tmp)
    cmd = [sys.executable, "-m", "edgecnn", "run", str(recipe), "--allow-outside"]
    for s in sets:
        cmd += ["--set", s]
    t0 = time.time()
    res = subprocess.run(cmd, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True)
    if res.returncode != 0:
        tail = (res.stderr.strip().splitlines() or ["?"])[-1]
        return {**tag, "recipe": recipe_name, "seed": seed, "error": tail, "seconds": time.time() - t0}
    metrics = json.loads((out / "metrics.json").read_text())
    last = metrics["rows"][-1]["stage"]  # the model the last stage made (trained, or qat)
    if not args.qat and last != "trained":  # the recipe's own stages (resnet18_prune50_qat): not a ptq row
        tag["variant"] = "+".join(dict.fromkeys(r["stage"] for r in metrics["rows"] if r["stage"] != "trained"))
    # float32 is the trained model's; int8 (and the rest) the last stage's: QAT's int8 against the float model
    rows = {r["precision"]: r for r in metrics["rows"] if r["stage"] == "trained"}
    if last != "trained":
        rows = {"float32": rows["float32"], **{r["precision"]: r for r in metrics["rows"] if r["stage"] == last}}
    i8 = rows["int8"]
    layers = i8.get("int8_layers") or {}
    worst = (layers.get("worst_layers") or [{}])[0]
    worst_text = f"{worst['layer']} ({worst['op']}, {worst['rmse_scale']:.2f})" if worst else "-"
    mixed = rows.get("int8_mixed")
    return {
        **tag,
        "recipe": recipe_name,
        "seed": seed,
        "seconds": time.time() - t0,
        "epochs": metrics["config"]["train"]["epochs"],
        "stage": last,
        "float_layer_fraction": mixed["int8_mixed"]["float_fraction"] if mixed else None,
        "mixed_val_drop": mixed["int8_mixed"]["val_drop_points"] if mixed else None,
        "mixed_within": mixed["int8_mixed"]["within_budget"] if mixed else None,
        "tried": mixed["int8_mixed"]["tried"] if mixed else None,
        "worst_layers": [f"{w['layer']} ({w['op']}, {w['rmse_scale']:.2f})"
                         for w in layers.get("worst_layers", [])[:5]],
        "float32": rows["float32"]["tflite_accuracy"],
        "int8": i8["tflite_accuracy"],
        "int16x8": rows.get("int16x8", {}).get("tflite_accuracy"),
        "val_drop": layers.get("val_drop_points"),
        "worst": worst_text,
        "measured": layers.get("layers_measured"),
        "mixed": mixed["tflite_accuracy"] if mixed else None,
        "float_layers": mixed["int8_mixed"]["float_layers"] if mixed else [],
        "mixed_size": mixed["size_bytes"] / rows["float32"]["size_bytes"] if mixed else None,
        "int8_size": i8["size_bytes"] / rows["float32"]["size_bytes"],
        "ms": {p: r.get("latency_median_ms") for p, r in rows.items()},
        "sizes": {p: r["size_bytes"] for p, r in rows.items()},
        "cpu": next((r.get("cpu") for r in rows.values() if r.get("cpu")), None),
        "cpu_features": next((r.get("cpu_features") for r in rows.values() if "cpu_features" in r), None),
    }


def _pct(v):
    return "-" if v is None else f"{100 * v:.2f}%"


def _ms(v):
    return "-" if v is None else f"{v:.3f}"


def render(results: list, budget: float, notes: list) -> str:
    ok = [r for r in results if "error" not in r]
    from edgecnn.device.bench import cpu_line

    head = cpu_line({"cpu": ok[0]["cpu"], "cpu_features": ok[0]["cpu_features"]}) if ok else "CPU: -"
    lines = [head, ""]
    data_names = {"digits": "digits (sklearn, 1,797 8x8 images, in memory)",
                  "pngs": "digits written as a folder of 64x64 RGB PNGs (streaming image-folder pipeline)",
                  "digits val30": "digits, validation split 30% (540 images: one image = 0.19 points) and test 20%"}
    for data in sorted({r["data"] for r in results}, key=lambda d: (d != "digits", d)):
        lines += [
            f"**Data: {data_names.get(data, data)}**",
            "",
            "| recipe | rows | seed | epochs | float32 | int8 | int8 drop (test pts) | int8 drop (val pts) "
            "| worst layers (op, rmse/scale) | int8_mixed | mixed drop (test pts) | float layers | int8/f32 size "
            "| mixed/f32 size | int16x8 | i16x8/f32 size | f32 ms | int8 ms | mixed ms | int16x8 ms |",
            "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        mine = [r for r in results if r["data"] == data]
        for r in sorted(mine, key=lambda r: (r["recipe"], r["variant"], r["seed"])):
            if "error" in r:  # the error's first line, without the run folder's local paths
                err = r["error"].split(" (traceback in ")[0]
                lines.append(f"| {r['recipe']} | {r['variant']} | {r['seed']} | failed: {err} |" + " |" * 16)
                continue
            names = r["float_layers"][:4] + (["..."] if len(r["float_layers"]) > 4 else [])
            fl = f"{len(r['float_layers'])}/{r['measured'] or '?'}: " + ", ".join(names) if r["float_layers"] else "-"
            mixed_size = "-" if r["mixed_size"] is None else f"{r['mixed_size']:.3f}"
            mixed_drop = "-" if r["mixed"] is None else f"{100 * (r['float32'] - r['mixed']):+.2f}"
            val = "-" if r["val_drop"] is None else f"{r['val_drop']:+.2f}"
            sizes = r.get("sizes") or {}
            i16_size = f"{sizes['int16x8'] / sizes['float32']:.3f}" if {"int16x8", "float32"} <= set(sizes) else "-"
            worst = "; ".join((r.get("worst_layers") or [r["worst"]])[:3])
            lines.append(
                f"| {r['recipe']} | {r['variant']} | {r['seed']} | {r['epochs']} | {_pct(r['float32'])} | "
                f"{_pct(r['int8'])} | {100 * (r['float32'] - r['int8']):+.2f} | {val} | {worst} | "
                f"{_pct(r['mixed'])} | {mixed_drop} | {fl} | {r['int8_size']:.3f} | {mixed_size} "
                f"| {_pct(r['int16x8'])} | {i16_size} | {_ms(r['ms'].get('float32'))} | {_ms(r['ms'].get('int8'))} | "
                f"{_ms(r['ms'].get('int8_mixed'))} | {_ms(r['ms'].get('int16x8'))} |"
            )
        lines.append("")
    groups: dict = {}
    for r in ok:
        groups.setdefault((r["data"], r["recipe"], r["variant"]), []).append(r)
    spread = []
    for (data, name, variant), rs in sorted(groups.items()):
        if len(rs) < 2:
            continue
        drops = [100 * (r["float32"] - r["int8"]) for r in rs]
        text = (f"- {data} / {name} / {variant}: float32 {statistics.mean(r['float32'] for r in rs) * 100:.2f}%, "
                f"int8 drop {statistics.mean(drops):+.2f} +- {statistics.stdev(drops):.2f} points")
        mixed = [r for r in rs if r["mixed"] is not None]
        if mixed:
            md = [100 * (r["float32"] - r["mixed"]) for r in mixed]
            frac = [r["float_layer_fraction"] for r in mixed]
            text += (f"; int8_mixed in {len(mixed)}/{len(rs)} seeds, drop {statistics.mean(md):+.2f}"
                     + (f" +- {statistics.stdev(md):.2f}" if len(md) > 1 else "")
                     + f" points, {100 * min(frac):.0f}-{100 * max(frac):.0f}% of layers in float, "
                     f"size {min(r['mixed_size'] for r in mixed):.3f}-"
                     f"{max(r['mixed_size'] for r in mixed):.3f}x float32")
        spread.append(text + f" (seeds {[r['seed'] for r in rs]})")
    note = (
        f"Budget `--max-int8-drop {budget:g}`: `int8_mixed` appears only when int8 loses more than that on the "
        "validation split (10% of the images: about 180 for digits, so one image is 0.56 points). Drops are "
        "test-split points (float32 minus int8 .tflite accuracy; 20% of the images, one image = 0.28 points); "
        "worst layers by the quantization debugger (rmse/scale ~0.29 is rounding alone). rows: `ptq` the recipe as "
        "written, `qatN` with a `qat` stage of N epochs before convert (its int8 row is the QAT model's); a recipe "
        "with its own stages after training (`pruned+qat`) gives the last stage's int8 against the trained float32. "
        "The machine was shared with other jobs while measuring: latencies are upper bounds, ratios are indicative."
    )
    return "\n".join(lines) + "\n" + note + ("\n\n" + "\n".join(spread) if spread else "") + (
        "\n\n" + "\n\n".join(notes) if notes else "")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", default=DEFAULT, help="recipe names")
    ap.add_argument("--epochs", type=int, default=None, help="training epochs (default: the recipe's)")
    ap.add_argument("--train-fraction", type=float, default=None)
    ap.add_argument("--val-split", type=float, default=None,
                    help="data.val_split (the fallback's budget is judged on it; default: the recipe's, 10%%)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--budget", type=float, default=0.5, help="--max-int8-drop, in points")
    ap.add_argument("--data", default="digits", help="digits, pngs (the digits as a PNG folder) or an image folder")
    ap.add_argument("--qat", type=int, default=None, metavar="EPOCHS", help="add a qat stage of EPOCHS epochs")
    ap.add_argument("--no-int16x8", action="store_true",
                    help="leave out the int16x8 row (a model with an op the converter cannot quantize to 16x8)")
    ap.add_argument("--store", type=Path, default=STORE, help="results kept between invocations")
    ap.add_argument("--render", action="store_true", help="only rewrite RESULTS.md from the stored results")
    ap.add_argument("--note", action="append", default=[], help="a line added under the table (repeatable)")
    ap.add_argument("--no-write", action="store_true", help="print the table, leave RESULTS.md alone")
    args = ap.parse_args(argv)
    args.data_dir = str(digits_pngs()) if args.data == "pngs" else args.data
    stored = {key(r): r for r in json.loads(args.store.read_text())} if args.store.is_file() else {}
    # One run folder per (data, recipe, seed, epochs) beside the store: the QAT invocation reuses the trained
    # model of the post-training one (the trained stage's cache key matches), rather than training it again.
    data_tag = "digits" if args.data == "digits" else "pngs" if args.data == "pngs" else Path(args.data).name
    with tempfile.TemporaryDirectory(prefix="edgecnn-int8-drop-") as tmp:
        for name in [] if args.render else args.only:
            for seed in args.seeds:
                val = "" if args.val_split is None else f"-v{round(100 * args.val_split)}"
                out = args.store.parent / f"{data_tag}-{name}-s{seed}-e{args.epochs or 'recipe'}{val}"
                r = run(ROOT / "recipes" / f"{name}.yaml", seed, args, out, Path(tmp))
                print(json.dumps({k: v for k, v in r.items() if k != "ms"}), flush=True)
                stored[key(r)] = r
                args.store.parent.mkdir(parents=True, exist_ok=True)
                tmp_store = args.store.with_suffix(".tmp")
                tmp_store.write_text(json.dumps(list(stored.values()), indent=1))
                os.replace(tmp_store, args.store)
    body = render(list(stored.values()), args.budget, args.note)
    print(body)
    if not args.no_write:
        # the --note texts are the lines under the table: not repeated in the command
        shown = ["'...'" if prev == "--note" else a for prev, a in zip([""] + sys.argv, sys.argv)]
        cmd = "python " + " ".join(shown) + (" (the notes are the lines under the table)" if args.note else "")
        update_section("int8-drop", "int8 drop per model, worst layers, float fallback, QAT and int16x8", body, cmd=cmd)
    return 0

if __name__ == "__main__":
    sys.exit(main())
