"""Kill a recipe run with SIGKILL at random points, rerun it each time, and check the end result.

Target (issue 7): killed 10 times in a row and rerun each time, the run ends with the same
final metrics as an uninterrupted run, and no file where a finished one is expected is
ever half-written. A tiny recipe (LeNet-5 on the digits, 30 short epochs, int8) keeps
it to a few minutes on 2 cores.

    PYTHONPATH=. python benchmarks/kill_resume.py [--kills 10] [--epochs 8] [--seed 0]

Writes its figures into the ``kill_resume`` section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._results import update_section  # noqa: E402

RECIPE = """\
# kill_resume.py's tiny recipe: LeNet-5 on the digits, int8; training is most of the run time.
vars: {{seed: 0}}
model: {{name: lenet5}}
data: {{source: digits, image_size: 32, seed: "${{seed}}"}}
train: {{epochs: {epochs}, seed: "${{seed}}", verbose: 2}}
stages:
  - convert: {{precisions: [int8]}}
  - evaluate
"""


def run(recipe: Path, out: Path, kill_after: float | None = None) -> tuple:
    """Run the recipe; with ``kill_after`` SIGKILL it after that many seconds. Returns (status, seconds)."""
    cmd = [sys.executable, "-m", "edgecnn", "run", str(recipe), "--set", f"out={out}"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t0 = time.time()
    log = open(out.parent / f"{out.name}.log", "a")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        proc.wait(timeout=kill_after)
        status = "finished" if proc.returncode == 0 else f"failed rc={proc.returncode}"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        status = "killed"
    log.close()
    return status, time.time() - t0


def check_files(out: Path) -> list:
    """Every finished-looking file must be complete: JSON parses, .tflite/.h5/.keras/.npz are whole."""
    problems = []
    if not out.exists():
        return problems
    for f in sorted(out.rglob("*")):
        if not f.is_file() or f.name.startswith("."):
            continue  # temporary files of atomic writes have hidden names by design
        rel = f.relative_to(out)
        try:
            if f.suffix == ".json":
                json.loads(f.read_text())
            elif f.suffix == ".tflite":
                data = f.read_bytes()
                if data[4:8] != b"TFL3":
                    raise ValueError("no TFL3 header")
                from edgecnn.device.runtime import load_interpreter

                load_interpreter(f)
            elif f.suffix == ".h5":
                import h5py

                with h5py.File(f, "r"):
                    pass
            elif f.suffix in (".keras", ".npz"):
                with zipfile.ZipFile(f) as z:
                    bad = z.testzip()
                    if bad:
                        raise ValueError(f"corrupt member {bad}")
        except Exception as exc:  # noqa: BLE001 - any failure to read is corruption
            problems.append(f"{rel}: {exc.__class__.__name__}: {exc}")
    return problems


def figures(out: Path) -> list:
    m = json.loads((out / "metrics.json").read_text())
    return [(r["variant"], r["keras_accuracy"], r["tflite_accuracy"], r["size_bytes"]) for r in m["rows"]]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0, help="seed of the random kill times")
    ap.add_argument("--work", default="runs/kill_resume")
    args = ap.parse_args(argv)
    work = ROOT / args.work
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    recipe = work / "tiny.yaml"
    recipe.write_text(RECIPE.format(epochs=args.epochs))

    print("reference: uninterrupted run", flush=True)
    status, ref_s = run(recipe, work / "reference")
    if status != "finished":
        print(f"reference run {status}; see {work / 'reference.log'}")
        return 1
    reference = figures(work / "reference")
    print(f"  {ref_s:.1f} s, {reference}", flush=True)

    rng = random.Random(args.seed)
    killed_dir = work / "killed"
    lines, all_problems, killed = [], [], 0
    for i in range(1, args.kills + 1):
        after = rng.uniform(2.0, 0.8 * ref_s)
        status, secs = run(recipe, killed_dir, kill_after=after)
        killed += status == "killed"
        problems = check_files(killed_dir)
        all_problems += [f"kill {i}: {p}" for p in problems]
        if status == "finished":
            # It beat the kill: check its figures, then start over so later kills hit training again.
            if figures(killed_dir) != reference:
                all_problems.append(f"run {i} finished with {figures(killed_dir)}, not {reference}")
            shutil.rmtree(killed_dir)
            status = "finished (figures checked; started over)"
        epochs_done = "-"
        backup = killed_dir / "train" / "_backup"
        stage_done = (killed_dir / "train" / "stage.json").exists()
        if stage_done:
            epochs_done = "done"
        elif backup.is_dir():
            epochs_done = "checkpoint"
        lines.append(f"| {i} | {after:.1f} | {status} | {epochs_done} | {len(problems)} |")
        print(
            f"kill {i}: after {after:.1f} s -> {status}; training {epochs_done}; corrupt files {len(problems)}",
            flush=True,
        )
    status, _ = run(recipe, killed_dir)
    final = figures(killed_dir) if status == "finished" else []
    same = final == reference
    print(f"final run {status}: {final}\nsame as uninterrupted: {same}; corrupt files: {len(all_problems)}")
    for p in all_problems:
        print("  " + p)

    rows = "\n".join(f"| {v} | {100 * k:.2f}% | {100 * t:.2f}% | {s:,} |" for v, k, t, s in reference)
    rows_final = "\n".join(f"| {v} | {100 * k:.2f}% | {100 * t:.2f}% | {s:,} |" for v, k, t, s in final)
    body = (
        f"Tiny recipe: LeNet-5 on the digits, {args.epochs} epochs, int8 "
        f"(uninterrupted: {ref_s:.0f} s). SIGKILL at a random time in [2 s, {0.8 * ref_s:.0f} s], "
        f"{args.kills} times in a row, rerunning each time; then one run to the end.\n\n"
        "| kill | after s | outcome | training stage at kill | corrupt files |\n|---|---|---|---|---|\n"
        + "\n".join(lines)
        + f"\n\nUninterrupted run:\n\n| variant | Keras acc | TFLite acc | bytes |\n|---|---|---|---|\n{rows}\n\n"
        f"After {killed} kills and reruns:\n\n| variant | Keras acc | TFLite acc | bytes |\n|---|---|---|---|\n"
        f"{rows_final}\n\n"
        f"**Same final metrics as the uninterrupted run: {'yes' if same else 'NO'}; "
        f"corrupt files found after any kill: {len(all_problems)}.**\n"
    )
    update_section("kill_resume", "Kill and resume (recipes)", body)
    return 0 if same and not all_problems else 1


if __name__ == "__main__":
    sys.exit(main())
