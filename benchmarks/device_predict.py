"""``edgecnn-device predict`` on the main job's files: same accuracy as ``eval``, time per image.

Runs the README's main job (``edgecnn optimize mobilenet --alpha 0.5 --int8``, without the
latency stage) unless ``--run`` names a finished run folder, writes the digits test split
(the run's own split, from its ``preprocess.json``) as PNGs, one folder per class, then as
a Pi user would, through the console scripts:

- ``edgecnn-device eval MODEL --data pngs/`` and ``edgecnn-device predict MODEL pngs/ --json``
  on the int8 and float32 files: predict's top-1 accuracy must equal eval's;
- predict's per-image time, split into decode, resize (with normalisation) and invoke;
- the same for camera-sized JPEGs (1920x1080 and 4608x2592, Camera Module 3's full
  resolution), where decoding dominates.

    python benchmarks/device_predict.py [--run RUN_DIR] [--epochs N] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _results import update_section  # noqa: E402

from edgecnn.data.dataset import write_split_images  # noqa: E402


def _cli(name: str) -> list:
    exe = shutil.which(name)
    module = "edgecnn.device.cli" if name == "edgecnn-device" else "edgecnn"
    return [exe] if exe else [sys.executable, "-m", module]


def run(cmd: list, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    return proc


def main_job(workdir: Path, epochs: int | None) -> tuple[Path, float]:
    out = workdir / "mobilenet"
    cmd = [
        *_cli("edgecnn"),
        "optimize",
        "mobilenet",
        "--alpha",
        "0.5",
        "--int8",
        "--no-bench",
        "--allow-outside",
        "--out",
        str(out),
    ]
    if epochs:
        cmd += ["--epochs", str(epochs)]
    t0 = time.time()
    run(cmd, timeout=3600)
    return out, time.time() - t0


def camera_jpegs(root: Path) -> list:
    """Photo-like JPEGs (smooth gradients plus noise, quality 90) at camera resolutions."""
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for w, h in ((1920, 1080), (4608, 2592)):
        yy, xx = np.mgrid[0:h, 0:w]
        img = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) * 255 // (w + h)], axis=-1).astype(np.int16)
        img = np.clip(img + rng.integers(-20, 21, img.shape), 0, 255).astype(np.uint8)
        path = root / f"camera_{w}x{h}.jpg"
        Image.fromarray(img).save(path, quality=90)
        paths.append(path)
    return paths


def percentile(values, q) -> float:
    return float(np.percentile(np.asarray(values, float), q))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, default=None, help="a finished run folder (default: run the main job)")
    ap.add_argument("--epochs", type=int, default=None, help="train the main job this many epochs (reduced run)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="edgecnn-predict-") as tmp:
        tmp = Path(tmp)
        job_s = None
        run_dir = args.run
        if run_dir is None:
            run_dir, job_s = main_job(tmp, args.epochs)
        pngs = tmp / "pngs"
        n = write_split_images(run_dir, pngs)
        photos = camera_jpegs(tmp)
        rows, photo_rows, cpu = [], [], "?"
        for precision in ("int8", "float32"):
            model = run_dir / f"model_{precision}.tflite"
            threads = ["--threads", str(args.threads)]
            ev = json.loads(
                run([*_cli("edgecnn-device"), "eval", str(model), "--data", str(pngs), "--json", *threads]).stdout
            )
            t0 = time.time()
            pr = json.loads(
                run(
                    [*_cli("edgecnn-device"), "predict", str(model), str(pngs), "--json", "--top-k", "1", *threads]
                ).stdout
            )
            wall = time.time() - t0
            cpu = pr["cpu"]
            hits = [r["top_k"][0]["label"] == Path(r["image"]).parent.name for r in pr["images"]]
            timed = pr["images"][1:]  # the first invoke also allocates; it is reported, not averaged
            rows.append(
                (
                    precision,
                    len(hits),
                    float(np.mean(hits)),
                    ev["accuracy"],
                    {
                        k: (percentile([r[k] for r in timed], 50), percentile([r[k] for r in timed], 90))
                        for k in ("decode_ms", "resize_ms", "invoke_ms")
                    },
                    pr["images"][0]["invoke_ms"],
                    wall,
                    f"{pr['runtime']} {pr['runtime_version']}",
                )
            )
            ph = json.loads(
                run(
                    [
                        *_cli("edgecnn-device"),
                        "predict",
                        str(model),
                        *map(str, photos),
                        str(photos[0]),
                        "--json",
                        *threads,
                    ]
                ).stdout
            )
            for r in ph["images"][1:]:  # after the first image: a warm interpreter
                photo_rows.append((precision, Path(r["image"]).stem, r["decode_ms"], r["resize_ms"], r["invoke_ms"]))
    same = all(abs(r[2] - r[3]) < 1e-12 for r in rows)
    lines = [
        f"Run: {'`' + str(args.run) + '`' if args.run else 'the main job, run by this script'}"
        + (f" ({job_s:.0f} s)" if job_s else "")
        + (f", **reduced: {args.epochs} epoch(s)**" if args.epochs else "")
        + f". {n} digits test images as PNGs (the run's own test split). CPU reported by predict: {cpu}; "
        f"{args.threads} interpreter thread(s). Load average (1 min) at the start {load_before:.1f}, at the end "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores: above the core count, other jobs shared the CPU "
        "and the times are upper bounds.",
        "",
        "| file | images | predict top-1 | eval top-1 | same | decode ms (p50/p90) | resize ms (p50/p90) "
        "| invoke ms (p50/p90) | first invoke ms | wall s | runtime |",
        "|---|---:|---:|---:|:---:|---:|---:|---:|---:|---:|---|",
    ]
    for precision, count, acc_p, acc_e, t, first, wall, rt in rows:
        lines.append(
            f"| model_{precision}.tflite | {count} | {100 * acc_p:.2f}% | {100 * acc_e:.2f}% | "
            f"{'yes' if abs(acc_p - acc_e) < 1e-12 else '**no**'} | "
            + " | ".join(f"{t[k][0]:.3f} / {t[k][1]:.3f}" for k in ("decode_ms", "resize_ms", "invoke_ms"))
            + f" | {first:.2f} | {wall:.1f} | {rt} |"
        )
    lines += [
        "",
        "Camera-sized JPEGs (synthetic: gradients plus noise, quality 90), one predict each after a warm-up image:",
        "",
        "| file | image | decode ms | resize ms | invoke ms |",
        "|---|---|---:|---:|---:|",
    ]
    lines += [f"| model_{p}.tflite | {name} | {d:.1f} | {r:.1f} | {i:.3f} |" for p, name, d, r, i in photo_rows]
    lines += [
        "",
        f"predict's accuracy equals eval's on every file: **{'yes' if same else 'no'}**. Wall time includes "
        "starting Python and loading the model. Decode is open + read + colour conversion (Pillow); resize "
        "is the bilinear resize to the model's input plus normalisation and quantisation; invoke is "
        "set_tensor + invoke + get_tensor.",
    ]
    body = "\n".join(lines)
    print(body)
    update_section("device-predict", "edgecnn-device predict: accuracy against eval, time per image", body)
    if not same:
        raise SystemExit("predict and eval disagree")


if __name__ == "__main__":
    main()
