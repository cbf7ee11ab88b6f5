"""``edgecnn search`` on real photos against hand-picked recipes within the same latency budget.

The issue's question: "which model, width, resolution and precision gives the best accuracy
on my photos within B ms?" Two answers on the same split (the same ``--seed``):

1. ``search``: ``edgecnn search --budget-ms B`` over MobileNet v1/V2/V3-Small, ShuffleNet v2
   and EfficientNet-B0, a few widths, 96/128/160 px, float32 and int8, with a wall-time
   budget for the whole search (timing every candidate untrained, pruning, then successive
   halving). Run as a subprocess; a rerun resumes it (nothing done is redone).
2. ``hand-picked``: what a user would type without a search, each a plain ``edgecnn
   optimize`` with its default epochs: the README's photo command (MobileNet v1 0.25 from
   ImageNet, int8) at the largest resolution whose int8 file fits B by the search's own
   measurement, the same at 96 px, and MobileNetV2 0.35 at 96 px int8 from scratch
   (Keras' V2 file is not in the cache here), 10 epochs.

Every arm reports validation accuracy (what the search ranks on) and test accuracy of its
int8 (or chosen) ``.tflite``, its latency on this machine (1 thread) and its wall time.
Offline, ``--weights imagenet`` for MobileNet v1 0.25 reads Keras' cache, where
``../shared/data/keras_models/mobilenet_2_5_224_tf_no_top.h5`` is copied first; the
128/160 px runs start from that 224 px file (Keras publishes one per resolution, the
convolution weights fit any).

Usage:
    python benchmarks/search_photos.py --data ../shared/data/flowers_dev --budget-ms 0.5 --time-budget 45
    python benchmarks/search_photos.py --only search &      # the two side by side
    python benchmarks/search_photos.py --only baselines; wait; python benchmarks/search_photos.py
    python benchmarks/search_photos.py --render   # RESULTS.md from the stored rows
    python benchmarks/search_photos.py --data /work/data/intel_scenes --tag intel_scenes --out runs/search_intel

Baseline rows are kept in ``<out>/baselines.jsonl``; a rerun skips those it has.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import command, update_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHARED_MODELS = ROOT.parent / "shared" / "data" / "keras_models"
V1_FILE = "mobilenet_2_5_224_tf_no_top.h5"
SIZES = (96, 128, 160)
SEARCH_GRID = [
    "--families", "mobilenet,mobilenet_v2,mobilenet_v3_small,shufflenet_v2,efficientnet_b0",
    "--widths", "0.25,0.5", "--widths-of", "mobilenet_v2=0.35", "--widths-of", "mobilenet_v3_small=0.75",
    "--widths-of", "shufflenet_v2=0.5", "--widths-of", "efficientnet_b0=1.0",
    "--sizes", ",".join(map(str, SIZES)), "--precisions", "float32,int8",
    "--epochs", "2", "--eta", "3", "--rungs", "3",
]


def keras_cache_file() -> Path:
    """The MobileNet v1 0.25 ImageNet file in Keras' cache (copied from the shared folder)."""
    cache = Path(os.path.expanduser("~/.keras/models"))
    cache.mkdir(parents=True, exist_ok=True)
    if not (cache / V1_FILE).is_file() and (SHARED_MODELS / V1_FILE).is_file():
        shutil.copy(SHARED_MODELS / V1_FILE, cache / V1_FILE)
    return cache / V1_FILE


def run_search(args, out: Path) -> None:
    """The search (its log: ``<out>.log``), resumed if it was started before."""
    cmd = [sys.executable, "-m", "edgecnn", "search", "--budget-ms", str(args.budget_ms), "--data",
           str(args.data), "--time-budget", str(args.time_budget), "--out", str(out), *SEARCH_GRID]
    with open(out.with_suffix(".log"), "a") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT), check=False)
    if proc.returncode != 0:
        raise SystemExit(f"the search failed (exit {proc.returncode}); see {out.with_suffix('.log')}")


def baselines(out: Path, budget_ms: float, weights: Path) -> list:
    """The hand-picked recipes: ``(name, optimize args)``; the README command at the largest
    resolution whose int8 file the search measured within the budget (its ``search.jsonl``)."""
    records = [json.loads(line) for line in (out / "search.jsonl").read_text().splitlines() if line.strip()]
    lat = {r["name"]: r.get("latency_ms") for r in records if r["kind"] == "latency"}
    fits = [s for s in SIZES if (lat.get(f"mobilenet-a0.25-{s}px-int8") or 1e9) <= budget_ms]
    best = max(fits) if fits else min(SIZES)
    v1 = ["mobilenet", "--alpha", "0.25", "--weights", str(weights), "--int8"]
    picks = [(f"README command, {best} px", [*v1, "--image-size", str(best)])]
    if best != min(SIZES):
        picks.append((f"README command, {min(SIZES)} px", [*v1, "--image-size", str(min(SIZES))]))
    picks.append((f"mobilenet_v2 0.35, {min(SIZES)} px, scratch, 10 epochs",
                  ["mobilenet_v2", "--alpha", "0.35", "--int8", "--image-size", str(min(SIZES)), "--epochs", "10"]))
    return picks


def run_baseline(name: str, flags: list, data: str, out: Path) -> dict:
    """One ``edgecnn optimize`` run; its int8 file's validation and test accuracy and latency."""
    from edgecnn.search.train import val_accuracies

    run = out / name.replace(" ", "_").replace(",", "")
    cmd = [sys.executable, "-m", "edgecnn", "optimize", *flags, "--data", data, "--out", str(run)]
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=str(ROOT), check=False)
    seconds = time.time() - t0
    run.mkdir(parents=True, exist_ok=True)
    (run.parent / f"{run.name}.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        return {"name": name, "error": (proc.stderr or proc.stdout).strip().splitlines()[-1:], "seconds": seconds}
    metrics = json.loads((run / "metrics.json").read_text())
    row = next(r for r in metrics["rows"] if r.get("stage") == "trained" and r["precision"] == "int8")
    acc = val_accuracies(SimpleNamespace(out=run, model=flags[0]), ["int8"])["int8"]
    return {"name": name, "command": "edgecnn optimize " + " ".join(flags) + f" --data {data}",
            "val": acc["val"], "test": acc["test"], "latency_ms": row.get("latency_median_ms"),
            "size_bytes": row.get("size_bytes"), "seconds": seconds, "run": str(run)}


def winner_history(out: Path, winner: dict) -> str:
    """``rung 0, 2 epochs: 72 / 79; ...``: the winner's group at every run of the search."""
    state = out / "search.jsonl"
    if not winner or not state.is_file():
        return ""
    group = Path(winner["run"]).name  # a run folder is named after its group
    parts = []
    for line in state.read_text().splitlines():
        r = json.loads(line)
        res = r.get("results", {}).get(winner["precision"]) if r.get("group") == group else None
        if res:
            where = "final (optimize's schedule)" if r.get("final") else f"rung {r['rung']}"
            parts.append(f"{where}, {r['epochs']} epochs: {100 * res['val']:.0f} / {100 * res['test']:.0f}")
    return "; ".join(parts)


def render(result: dict, rows: list, args) -> str:
    """The section's Markdown: the search's line and figures, its Pareto table, the baselines, the verdict."""
    w = result["winner"] or {}
    pct = lambda v: "-" if v is None else f"{100 * v:.1f}"  # noqa: E731
    trained = [r for r in result["rows"] if r.get("val_accuracy") is not None]
    pruned = [r for r in result["rows"] if str(r.get("status", "")).startswith("pruned")]
    out = [f"**{result['choice']}**", "",
           f"- Budget {args.budget_ms:g} ms (1 thread, this machine); search time budget {args.time_budget:g} min; "
           f"search wall time {result['seconds_total'] / 60:.1f} min (timing untrained candidates and training, "
           f"summed over its calls).",
           f"- {len(result['rows'])} candidates, {len(pruned)} pruned before training (over the budget, or no faster "
           f"than one that is), {len(trained)} trained; winner's run folder "
           f"`{os.path.relpath(w.get('run', ''), ROOT)}`.",
           "", "Trained candidates and the Pareto front (*):", "",
           "| candidate | started from | latency ms | size KB | val % | test % | epochs | best run | Pareto |",
           "|---|---|---:|---:|---:|---:|---:|---|---|"]
    for r in sorted(trained, key=lambda r: r["latency_ms"]):
        out.append(f"| {r['label']} | {r['weights']} | {r['latency_ms']:.3f} | {r['size_bytes'] / 1024:.0f} | "
                   f"{pct(r['val_accuracy'])} | {pct(r['test_accuracy'])} | {r['epochs']} | "
                   f"{r['status'].replace('trained in full ', '').replace('trained, ', '')} | "
                   f"{'*' if r.get('pareto') else ''} |")
    history = winner_history(Path(w.get("run", ".")).parent.parent, w)
    if history:
        out += ["", f"The winner's group at each of its runs ({w.get('precision')}, val / test): {history}."]
    out += ["", "Hand-picked recipes within the budget (int8 file):", "",
            "| recipe | val % | test % | latency ms | wall s |", "|---|---:|---:|---:|---:|",
            f"| search winner: {w.get('label')} | {pct(w.get('val_accuracy'))} | {pct(w.get('test_accuracy'))} | "
            f"{w.get('latency_ms', 0):.3f} | {result['seconds_total']:.0f} (whole search) |"]
    for r in rows:
        if "error" in r:
            out.append(f"| {r['name']} | failed: {r['error']} | | | {r['seconds']:.0f} |")
            continue
        out.append(f"| {r['name']} (`{r['command']}`) | {pct(r['val'])} | {pct(r['test'])} | "
                   f"{(r['latency_ms'] or 0):.3f} | {r['seconds']:.0f} |")
    ok = [r for r in rows if "error" not in r and (r["latency_ms"] or 1e9) <= args.budget_ms]
    if ok and w:
        verdicts = []
        for key, what in (("val", "validation"), ("test", "test")):
            best = max(ok, key=lambda r: r[key])  # the best hand-pick on this split, each split its own
            mine = w[f"{key}_accuracy"]
            verdicts.append(f"{what}: {pct(mine)}% against {pct(best[key])}% ({best['name']}), "
                            f"{'met' if mine >= best[key] else 'NOT met'}")
        out += ["", f"Verdict, the search's choice against the best hand-picked recipe within {args.budget_ms:g} ms "
                f"on each split: {'; '.join(verdicts)}. The search ranks on validation; test is never seen."]
        splits = Path(w["run"]) / "splits.json"
        if splits.is_file():
            n = {k: len(v) for k, v in json.loads(splits.read_text())["splits"].items()}
            out.append(f"The split is {n['train']} train, {n['val']} validation and {n['test']} test images: one "
                       f"validation image is {100 / n['val']:.0f} points, one test image {100 / n['test']:.0f}.")
    return "\n".join(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "flowers_dev"))
    p.add_argument("--budget-ms", type=float, default=0.5)
    p.add_argument("--time-budget", type=float, default=45.0, help="Minutes for the whole search.")
    p.add_argument("--out", default="runs/search_photos")
    p.add_argument("--tag", default=None,
                   help="Another photo set: its RESULTS.md section is 'search-TAG' and its plot search_photos_TAG.png.")
    p.add_argument("--only", choices=["search", "baselines"], default=None,
                   help="Run only the search, or only the baselines (beside a search still running).")
    p.add_argument("--render", action="store_true", help="Only rewrite RESULTS.md from the stored rows.")
    p.add_argument("--no-write", action="store_true", help="Do not touch RESULTS.md.")
    args = p.parse_args(argv)
    out = (ROOT / args.out).resolve()
    weights = keras_cache_file()
    if args.only != "baselines" and not args.render:
        run_search(args, out)
    store = out.parent / f"{out.name}_baselines.jsonl"
    rows = [json.loads(line) for line in store.read_text().splitlines() if line.strip()] if store.is_file() else []
    if not args.render and args.only != "search":
        for name, flags in baselines(out, args.budget_ms, weights):
            if any(r["name"] == name for r in rows):
                continue
            print(f"baseline: {name} ...", flush=True)
            row = run_baseline(name, flags, str(args.data), out.parent / f"{out.name}_baselines")
            print(f"    {json.dumps({k: row.get(k) for k in ('val', 'test', 'latency_ms', 'seconds', 'error')})}",
                  flush=True)
            rows.append(row)
            with store.open("a") as f:
                f.write(json.dumps(row) + "\n")
    if args.only or not (out / "result.json").is_file():
        return
    result = json.loads((out / "result.json").read_text())
    body = render(result, rows, args)
    print(body)
    if not args.no_write:
        name = f"search_photos_{args.tag}.png" if args.tag else "search_photos.png"
        png = Path(__file__).resolve().parent / name
        if Path(result["paths"].get("plot", "")).is_file():
            shutil.copy(result["paths"]["plot"], png)
            body += f"\n\n![search on real photos]({png.name})"
        cmd = command().replace(" --render", "")  # the command that made the figures
        if args.tag:
            update_section(f"search-{args.tag}", f"edgecnn search on real photos: {Path(args.data).name}", body, cmd)
        else:
            update_section("search", "edgecnn search on real photos", body, cmd)


if __name__ == "__main__":
    main()
