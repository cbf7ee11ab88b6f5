"""Data at real scale (issue 16): peak memory, time to the first training step and input
throughput of a streamed image folder, measured on synthetic JPEG folders.

For each size (default 3,000 and 30,000 images; 10 classes, 256x256, textured noise so the
JPEG files have realistic sizes) it
- trains ``edgecnn optimize mobilenet --alpha 0.25 --image-size 224 --epochs 1 --no-bench``
  on the folder in a child process, and reads that process's peak RSS (``ru_maxrss``) and
  the time from its start to the end of its first training step;
- measures input-pipeline throughput (images/s, no model): edgecnn's training pipeline
  (decode, resize, augment, batch) against ``keras.utils.image_dataset_from_directory``
  on the same files, alternating, the median over ``--rounds``.

Targets: peak RSS of the 30,000-image run <= 2.5 GB; the two sizes within 300 MB; the
throughput ratio >= 1.0; start to first step <= 60 s.

Usage:
    PYTHONPATH=. python benchmarks/data_scale.py                       # 3,000 and 30,000
    PYTHONPATH=. python benchmarks/data_scale.py --sizes 3000 10000    # what fits a small machine
    PYTHONPATH=. python benchmarks/data_scale.py --sizes 10000         # adds a size to those measured before
    PYTHONPATH=. python benchmarks/data_scale.py --sizes 3000 --cache memory --no-write   # the old footprint

The folders go to ``--root`` (default ``/tmp/edgecnn_data_scale``) and are reused.
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
sys.path.insert(0, str(Path(__file__).resolve().parent))

CLASSES = 10
SIZE = 256


def generate(folder: Path, n: int, seed: int = 0) -> Path:
    """``n`` 256x256 JPEGs in 10 class folders: smooth colour fields plus fine noise."""
    import numpy as np
    from PIL import Image

    folder = Path(folder)
    done = folder / ".complete"
    if done.is_file() and done.read_text().strip() == str(n):
        return folder
    rng = np.random.default_rng(seed)
    for c in range(CLASSES):
        (folder / f"class_{c:02d}").mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    for i in range(n):
        c = i % CLASSES
        coarse = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        coarse[..., c % 3] = np.clip(coarse[..., c % 3].astype(int) // 2 + 20 * c, 0, 255)
        base = np.asarray(Image.fromarray(coarse).resize((SIZE, SIZE), Image.BICUBIC), dtype=np.int16)
        fine = rng.normal(0, 18, (SIZE, SIZE, 1)).astype(np.int16)
        img = np.clip(base + fine, 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"class_{c:02d}" / f"{i:06d}.jpg", quality=90)
        if i and i % 5000 == 0:
            print(f"  generated {i}/{n} ({time.time() - t0:.0f} s)", flush=True)
    done.write_text(str(n))
    return folder


def _child_train(argv):
    """Child mode: run the CLI, report the first step's wall time and the peak RSS."""
    import atexit
    import resource

    def report():
        rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(f"BENCH maxrss_kb={rss_kb}", flush=True)

    atexit.register(report)
    from tf_keras.callbacks import CallbackList

    original = CallbackList.on_train_batch_end
    seen = []

    def on_train_batch_end(self, batch, logs=None):
        if not seen:
            seen.append(time.time())
            print(f"BENCH first_step_at={seen[0]:.3f}", flush=True)
        return original(self, batch, logs)

    CallbackList.on_train_batch_end = on_train_batch_end
    from edgecnn.cli import main

    sys.argv = ["edgecnn", *argv]
    try:
        main()
    except SystemExit as exc:
        if exc.code:
            raise


def pack(folder: Path, out: Path, shards: int = 16) -> str:
    """``edgecnn data pack FOLDER OUT --shards 16`` once; the shards' glob pattern."""
    done = out / ".complete"
    if not done.is_file():
        cmd = [sys.executable, "-c", "from edgecnn.cli import main; main()", "data", "pack", str(folder), str(out)]
        cmd += ["--shards", str(shards)]
        env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode:
            raise SystemExit(f"pack failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
        done.write_text("done\n")
    return str(out / "*.tfrecord")


def train_run(folder: Path, out: Path, cache: str) -> dict:
    import shutil

    shutil.rmtree(out, ignore_errors=True)  # a fresh run: a stored stage would skip training
    cmd = [
        sys.executable,
        __file__,
        "--child-train",
        "optimize",
        "mobilenet",
        "--alpha",
        "0.25",
        "--data",
        str(folder),
        "--image-size",
        "224",
        "--epochs",
        "1",
        "--no-bench",
        "--cache",
        cache,
        "--out",
        str(out),
        "--allow-outside",
    ]
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    start = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.time() - start
    text = proc.stdout + proc.stderr
    if proc.returncode:
        raise SystemExit(f"training run failed ({proc.returncode}):\n{text[-3000:]}")
    first = float(re.search(r"BENCH first_step_at=([\d.]+)", text).group(1))
    rss = int(re.search(r"BENCH maxrss_kb=(\d+)", text).group(1))
    metrics = json.loads((out / "metrics.json").read_text())
    acc = metrics["rows"][0]["tflite_accuracy"]
    return {
        "first_step_s": first - start,
        "peak_rss_mb": rss / 1024,
        "wall_s": wall,
        "tflite_accuracy": acc,
        "dataset": metrics["dataset"],
    }


def _child_throughput(folder: str, images: int, rounds: int, shards: str = ""):
    """Child mode: images/s of the input pipelines, alternating: Keras', and edgecnn's with
    each resize (``antialias``, the default, and ``bilinear``, Keras' own) without
    augmentation (Keras' pipeline does none) and with its shift+flip; edgecnn's from its
    disk cache (``--cache disk`` or ``auto`` over the memory budget: every epoch after the
    first); with ``shards``, edgecnn's on the TFRecord shards (with augmentation)."""
    import tempfile

    from edgecnn._tf import keras, tf
    from edgecnn.data.contract import LoadSpec
    from edgecnn.data.stream import load_stream
    from edgecnn.settings.sections import TrainConfig
    from edgecnn.train import make_datasets

    antialias = load_stream(folder, LoadSpec((224, 224), 3, cache="none"), run_dir=None)
    bilinear_spec = LoadSpec((224, 224), 3, cache="none", convention={"resize": "bilinear"})
    bilinear = load_stream(folder, bilinear_spec, run_dir=None)
    cache_dir = tempfile.mkdtemp(prefix="edgecnn-bench-cache-")
    cached = load_stream(folder, LoadSpec((224, 224), 3, cache="disk"), run_dir=None, cache_dir=cache_dir)
    keep = min(len(cached.y["train"]), images + 64)  # the cache holds what one timed pass reads
    cached.files["train"], cached.y["train"] = cached.files["train"][:keep], cached.y["train"][:keep]
    theirs = keras.utils.image_dataset_from_directory(folder, image_size=(224, 224), batch_size=32, seed=0)

    def ours(data, augment):
        return make_datasets(data, TrainConfig(batch_size=32), augment=augment)[0]

    pipelines = {
        "keras": theirs.prefetch(tf.data.AUTOTUNE),
        "edgecnn": ours(antialias, "shift_flip"),
        "edgecnn_noaug": ours(antialias, "none"),
        "edgecnn_bilinear": ours(bilinear, "shift_flip"),
        "edgecnn_bilinear_noaug": ours(bilinear, "none"),
        "edgecnn_cached_noaug": ours(cached, "none"),
    }
    for _ in ours(cached, "none"):  # the first epoch fills the disk cache
        pass
    if shards:
        from edgecnn.data.contract import LoadSpec
        from edgecnn.data.tfrecord import load_tfrecords

        records = load_tfrecords(shards, LoadSpec((224, 224), 3))
        pipelines["edgecnn_tfrecord"] = make_datasets(records, TrainConfig(batch_size=32), augment="shift_flip")[0]
    steps = max(2, images // 32)

    import gc
    import shutil
    import statistics

    def rate(ds):
        it = iter(ds.repeat())
        next(it)  # warm-up: the first batch pays for tracing and thread start
        t0 = time.time()
        for _ in range(steps):
            next(it)
        took = time.time() - t0
        del it  # its threads stop before the next pipeline is timed
        gc.collect()
        return steps * 32 / took

    def filling():  # a fresh disk cache: the first epoch decodes (TensorFlow's kernels) and stores
        fresh_dir = tempfile.mkdtemp(dir=cache_dir)
        fresh = load_stream(folder, LoadSpec((224, 224), 3, cache="disk"), run_dir=None, cache_dir=fresh_dir)
        fresh.files["train"], fresh.y["train"] = fresh.files["train"][:keep], fresh.y["train"][:keep]
        return ours(fresh, "none")

    # Every round times each pipeline once, right after Keras'; a figure is the median over the rounds, and
    # a ratio the median of the rounds' ratios to Keras' (the machine's speed drifts between rounds).
    runs = {name: [] for name in [*pipelines, "edgecnn_disk_fill_noaug"]}
    for _ in range(rounds):
        for name, ds in pipelines.items():
            runs[name].append(rate(ds))
        runs["edgecnn_disk_fill_noaug"].append(rate(filling()))
    shutil.rmtree(cache_dir, ignore_errors=True)
    best = {name: statistics.median(v) for name, v in runs.items()}
    best["ratios"] = {
        name: statistics.median(a / k for a, k in zip(v, runs["keras"])) for name, v in runs.items() if name != "keras"
    }
    best["rounds"] = runs
    print("BENCH " + json.dumps(best), flush=True)


def _child_profile(folder: str, images: int):
    """Child mode: CPU milliseconds per image (this process's user + system time over
    ``images`` images, every stage in parallel as tf.data runs it) of each step of the input
    pipeline: where the time goes."""
    import resource

    import numpy as np

    from edgecnn._tf import tf
    from edgecnn.data.decode import JPEG, PNG, decode_resize, probe_file
    from edgecnn.data.stream import tf_normalize
    from edgecnn.data.tf_read import read_files
    from edgecnn.device.preprocess import load_image
    from edgecnn.train import _augment_fn

    files = sorted(str(f) for f in Path(folder).rglob("*.jpg"))
    names = np.asarray(files + [""], dtype=object)[:-1]
    size = (224, 224)
    spec = {"scale": 1 / 127.5, "offset": -1.0}

    def decode(p):
        return tf.io.decode_jpeg(tf.io.read_file(p), channels=0, dct_method="INTEGER_ACCURATE")

    def via(method):
        return lambda p: decode_resize(tf.io.read_file(p), size, 3, tf, method)

    routes = np.asarray([probe_file(f) in (JPEG, PNG) for f in files], dtype=np.int8)

    def edgecnn(method, augment=False):  # what an image folder's training pipeline runs, batched by the read
        shift = _augment_fn("shift_flip", (*size, 3), 0)
        keys = tf.data.Dataset.range(len(files)).map(lambda i: (i, i))

        def then(x, i, k):
            x = tf_normalize(x, spec, tf)
            return shift(x, None, k)[0] if augment else x

        ds = read_files(keys, names, routes, size, 3, lambda i, k: None, method=method, then=then, batch=32)
        return ds.map(lambda x, i, k: x)

    steps = {
        "read file": lambda p: tf.strings.length(tf.io.read_file(p)),
        "TF decode (INTEGER_ACCURATE)": decode,
        "TF decode + Pillow resize (antialias, numpy_function)": via("antialias"),
        "TF decode + TF bilinear resize of the uint8 array": lambda p: tf.raw_ops.ResizeBilinear(
            images=decode(p)[None], size=size, align_corners=False, half_pixel_centers=True
        ),
        "TF decode + TF bilinear resize of it as float32, rounded (edgecnn)": via("bilinear"),
        "edgecnn pipeline, antialias (read, decode, resize, normalise, batched; headers checked before)": edgecnn(
            "antialias"
        ),
        "edgecnn pipeline, bilinear": edgecnn("bilinear"),
        "edgecnn pipeline, bilinear + shift+flip": edgecnn("bilinear", True),
        "before: Pillow load_image in numpy_function": lambda p: tf.numpy_function(
            lambda q: load_image(q.decode(), size, 3), [p], tf.uint8, stateful=False
        ),
        "Keras: TF decode (default) + tf.image.resize": lambda p: tf.image.resize(
            tf.io.decode_jpeg(tf.io.read_file(p), channels=3), size
        ),
    }

    def cpu():
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    out = {}
    for name, fn in steps.items():
        if isinstance(fn, tf.data.Dataset):  # batched by its read
            ds = fn
        else:
            ds = tf.data.Dataset.from_tensor_slices(files).map(fn, num_parallel_calls=tf.data.AUTOTUNE).batch(32)
        it = iter(ds.repeat())
        next(it)
        c0, t0 = cpu(), time.time()
        for _ in range(images // 32):
            next(it)
        n = images // 32 * 32
        out[name] = {"cpu_ms": 1000 * (cpu() - c0) / n, "img_s": n / (time.time() - t0)}
        print(f"  {name}: {out[name]['cpu_ms']:.2f} ms CPU/image, {out[name]['img_s']:.0f} img/s", flush=True)
    print("BENCH " + json.dumps(out), flush=True)


def throughput(folder: Path, images: int, rounds: int, shards: str = "") -> dict:
    cmd = [sys.executable, __file__, "--child-throughput", str(folder), str(images), str(rounds), shards]
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise SystemExit(f"throughput run failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
    return json.loads(re.search(r"BENCH (\{.*\})", proc.stdout).group(1))


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child-train":
        return _child_train(sys.argv[2:])
    if len(sys.argv) > 1 and sys.argv[1] == "--child-profile":
        return _child_profile(sys.argv[2], int(sys.argv[3]))
    if len(sys.argv) > 1 and sys.argv[1] == "--child-throughput":
        return _child_throughput(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), *sys.argv[5:6])
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[3000, 30000])
    ap.add_argument("--root", default="/tmp/edgecnn_data_scale")
    ap.add_argument("--cache", default="none", choices=("auto", "memory", "disk", "none"))
    ap.add_argument("--throughput-images", type=int, default=1600)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument(
        "--throughput-only",
        action="store_true",
        help="measure the input pipelines only; the training figures of an earlier run of that size are kept",
    )
    ap.add_argument(
        "--tfrecord", action="store_true", help="train on the same images packed as 16 TFRecord shards instead"
    )
    ap.add_argument("--no-write", action="store_true", help="print the figures, leave RESULTS.md alone")
    ap.add_argument("--render", action="store_true", help="only rewrite RESULTS.md from the sizes measured before")
    ap.add_argument("--note", action="append", default=[], help="a line added under the table (repeatable)")
    args = ap.parse_args()
    root = Path(args.root)
    store = root / f"results_{args.cache}.json"  # sizes measured by earlier invocations are kept
    results = json.loads(store.read_text()) if store.is_file() else {}  # "3000", "30000 tfrecord", ...
    for n in [] if args.render else args.sizes:
        folder = generate(root / f"jpeg_{n}", n)
        mb = sum(f.stat().st_size for f in folder.rglob("*.jpg")) / 1e6
        if args.tfrecord:
            shards = pack(folder, root / f"shards_{n}")
            print(f"{n} images as 16 TFRecord shards: training ...", flush=True)
            run = train_run(shards, root / f"run_{n}_tfrecord", "none")
            print(f"  {run}", flush=True)
            tp = throughput(folder, args.throughput_images, args.rounds, shards)
            print(f"  throughput {tp}", flush=True)
            results[f"{n} tfrecord"] = {"jpeg_mb": mb, **run, **tp, "trained_with": "edgecnn.data.decode, batched"}
        elif args.throughput_only:
            tp = throughput(folder, args.throughput_images, args.rounds)
            print(f"  throughput {tp}", flush=True)
            kept = {k: v for k, v in results.get(str(n), {}).items() if not k.startswith(("edgecnn", "keras"))}
            results[str(n)] = {"jpeg_mb": mb, **kept, **tp}
        else:
            print(f"{n} images ({mb:.0f} MB of JPEG): training ...", flush=True)
            run = train_run(folder, root / f"run_{n}_{args.cache}", args.cache)
            print(f"  {run}", flush=True)
            tp = throughput(folder, args.throughput_images, args.rounds)
            print(f"  throughput {tp}", flush=True)
            results[str(n)] = {"jpeg_mb": mb, **run, **tp, "trained_with": "edgecnn.data.decode, headers checked once"}
        store.write_text(json.dumps(results, indent=1))
    results = dict(sorted(results.items(), key=lambda kv: (int(kv[0].split()[0]), kv[0])))
    lines = [
        "| images | JPEG on disk | peak RSS | start to first step | wall (1 epoch + export) | "
        "keras image_dataset_from_directory img/s | edgecnn img/s, no augmentation | ratio | "
        "edgecnn img/s, shift+flip | ratio | edgecnn --resize bilinear img/s, no augmentation | ratio | "
        "edgecnn --resize bilinear, shift+flip | ratio | edgecnn --cache disk, first epoch (decodes and fills the "
        "cache), no augmentation | ratio | edgecnn from its disk cache (epoch >= 2), no augmentation "
        "| ratio | TFLite acc | training run read with |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]

    def label(key):
        n, *kind = key.split()
        return f"{int(n):,}" + (" as 16 TFRecord shards" if kind else " (folder)")

    def fig(r, name):
        if name not in r:
            return "- | -"
        ratio = r["ratios"][name] if "ratios" in r else r[name] / r["keras"]
        return f"{r[name]:.0f} | {ratio:.2f}"

    def folder_only(key, r, name):  # a shards row's process measures these on the folder: shown there only
        return "- | -" if key.endswith("tfrecord") else fig(r, name)

    for key, r in results.items():
        aug = "edgecnn_tfrecord" if key.endswith("tfrecord") else "edgecnn"
        noaug = "-" if key.endswith("tfrecord") else "edgecnn_noaug"
        lines.append(
            f"| {label(key)} | {r['jpeg_mb']:.0f} MB | {r['peak_rss_mb']:.0f} MB | {r['first_step_s']:.1f} s | "
            f"{r['wall_s']:.0f} s | {r['keras']:.0f} | {fig(r, noaug)} | {fig(r, aug)} | "
            f"{folder_only(key, r, 'edgecnn_bilinear_noaug')} | {folder_only(key, r, 'edgecnn_bilinear')} | "
            f"{folder_only(key, r, 'edgecnn_disk_fill_noaug')} | {folder_only(key, r, 'edgecnn_cached_noaug')} | "
            f"{100 * r['tflite_accuracy']:.1f}% | {r.get('trained_with', 'Pillow in numpy_function (before)')} |"
        )
    folders = sorted((k for k in results if k.isdigit()), key=int)
    verdict = []
    if len(folders) >= 2:
        lo, hi = results[folders[0]], results[folders[-1]]
        verdict.append(
            f"- Peak RSS {int(folders[-1]):,} vs {int(folders[0]):,} images: "
            f"{hi['peak_rss_mb'] - lo['peak_rss_mb']:+.0f} MB (target within 300 MB); largest folder run "
            f"{hi['peak_rss_mb']:.0f} MB (target <= 2,500 MB for 30,000)."
        )
    for key in (k for k in results if k.endswith("tfrecord")):
        verdict.append(
            f"- {label(key)}: peak RSS {results[key]['peak_rss_mb']:.0f} MB (target <= 2,500 MB), "
            f"start to first step {results[key]['first_step_s']:.1f} s."
        )
    body = "\n".join(
        [
            f"`edgecnn optimize mobilenet --alpha 0.25 --data DIR --image-size 224 --epochs 1 --no-bench "
            f"--cache {args.cache}` on synthetic folders (10 classes, 256x256 JPEG, quality 90, textured noise). "
            "Peak RSS is the training process's own `ru_maxrss`; start to first step is from the process's "
            "launch to the end of its first training batch; throughput is images/s of the input pipeline alone "
            f"(224x224, batch 32, {args.throughput_images} images after one warm-up batch, the pipelines "
            f"alternating in one process for {args.rounds} rounds: the median img/s, and the median of the rounds' "
            "ratios to Keras'): Keras' does no augmentation, so edgecnn's is given "
            "without augmentation (the like-for-like figure) and with its shift+flip (what training reads). "
            "Measured, not assumed.",
            "",
            *lines,
            "",
            *verdict,
            "- Throughput: edgecnn reads an image folder through `edgecnn.data.tf_read.read_files` (every file's "
            "headers checked once, when the pipeline is built; then read, decoded, resized and normalised by "
            "TensorFlow in one parallel step fused with the batching, no Python per file; JPEG and PNG decoded by "
            "one TensorFlow decoder with "
            "`dct_method='INTEGER_ACCURATE'`, where Keras' decoder uses libjpeg's faster, less accurate integer DCT; "
            "anything TF cannot decode identically goes to `edgecnn.device.preprocess.load_image`; the rounded "
            "pixels then normalised), so training and the device "
            "see bit-identical tensors (tests/test_tf_image.py, tests/test_preprocess_resize.py). The default "
            "resize (`antialias`) is Pillow's bilinear filter stretched by the shrink factor (3 to 5 taps here), run "
            "by Pillow on the decoded array; `--resize bilinear` is Keras' own resize (TensorFlow's ResizeBilinear, "
            "2 taps, no antialiasing), which the device side reproduces bit for bit in numpy: the like-for-like "
            "comparison with Keras. The disk-cache columns: the first epoch of a fresh cache (decoded as above, "
            "each image stored as it passes) and every epoch after it (the decoded uint8 images read back), what "
            "`--cache disk`, and `--cache auto` over the memory budget, give.",
            *(f"- {note}" for note in args.note),
        ]
    )
    print(body)
    if not args.no_write:
        from _results import update_section

        update_section("data_scale", "Data at real scale: streamed image folders (issue 16)", body)


if __name__ == "__main__":
    main()
