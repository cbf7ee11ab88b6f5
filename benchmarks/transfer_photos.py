"""Transfer learning on real photos: edgecnn's README command against the plain Keras script
every tutorial gives, and against edgecnn from scratch, on the same split.

For each folder and seed, three arms run one after the other, each in a fresh process:

1. ``edgecnn``: the README's "your own photos" command (``edgecnn optimize MODEL --weights
   imagenet --data FOLDER --int8 --seed S``, its default epochs), float32 and int8
   ``.tflite`` accuracy on the run's test split.
2. ``keras``: a hand-written Keras script (:func:`keras_script`, about 20 lines of real
   code): ``keras.applications`` base with the same ImageNet file, frozen, plus a Dense head,
   Adam 1e-3 for ``--head-epochs``; then the whole network at Adam 1e-4 for
   ``--fine-epochs`` with BatchNorm in inference mode. It reads edgecnn's ``splits.json``
   (same train and test files; its validation files are not used: a tutorial has none) and
   converts its model to int8 with the plain TFLite converter.
3. ``scratch``: the same edgecnn command without ``--weights``, with the same total epochs
   as the script (``--epochs head + fine``).

Each arm reports float32 and int8 test accuracy, wall time (the whole process: data,
training, conversion and, for edgecnn, the int8 report and benchmark) and each phase's
curve (validation accuracy per epoch for edgecnn, training accuracy for the script).
Nothing needs the network: ``--weights imagenet`` reads Keras' cache, where
``../shared/data/keras_models/`` files are copied first.

Usage:
    python benchmarks/transfer_photos.py --data ../shared/data/flowers_dev --seeds 3
    python benchmarks/transfer_photos.py --data A --data B --seeds 3 --arms edgecnn keras
    python benchmarks/transfer_photos.py --render --note-file NOTE.md   # RESULTS.md from the stored rows

Rows are kept in ``<out>/rows.jsonl`` (one per arm, folder and seed): a rerun skips the rows
it has, so a killed run resumes, and ``--render`` rewrites RESULTS.md's section from them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import command, update_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHARED_MODELS = ROOT.parent / "shared" / "data" / "keras_models"

# model -> (edgecnn model, alpha, image size, keras.applications class, preprocess module)
MODELS = {
    "mobilenet": ("mobilenet", 0.25, 224, "MobileNet", "mobilenet"),
    "mobilenet_v2": ("mobilenet_v2", 0.35, 224, "MobileNetV2", "mobilenet_v2"),
    "efficientnet_b0": ("efficientnet_b0", 1.0, 224, "EfficientNetB0", "efficientnet"),
}


def keras_script(split_file: str, data_root: str, model: str, head_epochs: int, fine_epochs: int,
                 seed: int, weights: str, out: str) -> dict:
    """What a user writes by hand: the Keras transfer-learning tutorial, on edgecnn's split."""
    import numpy as np
    import tensorflow as tf
    import tf_keras as keras

    _, alpha, size, app, module = MODELS[model]
    keras.utils.set_random_seed(seed)
    split = json.loads(Path(split_file).read_text())
    names = split["class_names"]
    prep = getattr(keras.applications, module).preprocess_input

    def dataset(part, shuffle):
        files = [str(Path(data_root) / f) for f, _ in split["splits"][part]]
        labels = [c for _, c in split["splits"][part]]
        ds = tf.data.Dataset.from_tensor_slices((files, labels))
        ds = ds.map(lambda f, y: (prep(tf.image.resize(tf.io.decode_image(tf.io.read_file(f), 3,
                                                                           expand_animations=False), (size, size))), y))
        ds = ds.cache()
        return (ds.shuffle(1000, seed=seed) if shuffle else ds).batch(32).prefetch(tf.data.AUTOTUNE)

    t0 = time.time()
    train, test = dataset("train", True), dataset("test", False)
    base = getattr(keras.applications, app)(input_shape=(size, size, 3), include_top=False, pooling="avg",
                                            weights=weights, **({"alpha": alpha} if alpha != 1.0 else {}))
    base.trainable = False
    inputs = keras.Input((size, size, 3))
    outputs = keras.layers.Dense(len(names), activation="softmax")(base(inputs, training=False))
    net = keras.Model(inputs, outputs)
    net.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", ["accuracy"])
    head = net.fit(train, epochs=head_epochs, verbose=2).history
    base.trainable = True
    net.compile(keras.optimizers.Adam(1e-4), "sparse_categorical_crossentropy", ["accuracy"])
    fine = net.fit(train, epochs=fine_epochs, verbose=2).history
    float_acc = net.evaluate(test, verbose=0)[1]
    train_seconds = time.time() - t0

    # int8 with the plain converter, as a user would glue it on
    def representative():
        for x, _ in train.unbatch().batch(1).take(200):
            yield [x]

    converter = tf.lite.TFLiteConverter.from_keras_model(net)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    blob = converter.convert()
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "script_int8.tflite").write_bytes(blob)
    interp = tf.lite.Interpreter(model_content=blob)
    interp.allocate_tensors()
    inp, outp = interp.get_input_details()[0], interp.get_output_details()[0]
    scale, zero = inp["quantization"]
    right = total = 0
    for x, y in test.unbatch():
        q = np.clip(np.round(x.numpy() / scale + zero), -128, 127).astype(np.int8)[None]
        interp.set_tensor(inp["index"], q)
        interp.invoke()
        right += int(np.argmax(interp.get_tensor(outp["index"])[0]) == int(y))
        total += 1
    return {"float32": float_acc, "int8": right / total, "train_seconds": train_seconds,
            "curves": {"head_accuracy": head["accuracy"], "fine_accuracy": fine["accuracy"]}}


def edgecnn_row(run: Path) -> dict:
    """float32/int8 test accuracy, the phases' validation curves and the run's warnings."""
    metrics = json.loads((run / "metrics.json").read_text())
    acc = {r["precision"]: r.get("tflite_accuracy") for r in metrics["rows"] if r.get("stage") == "trained"}
    trained = metrics.get("stages", {}).get("trained", {})
    transfer = trained.get("transfer") or {}
    curves = transfer.get("phases") or {"val_accuracy": (trained.get("history") or {}).get("val_accuracy")}
    return {"float32": acc.get("float32"), "int8": acc.get("int8"), "curves": curves,
            "chosen": transfer.get("chosen"), "train_seconds": (trained.get("train") or {}).get("seconds"),
            "warnings": metrics.get("warnings", [])}


def run_arm(arm: str, folder: Path, seed: int, args, out: Path) -> dict:
    edgecnn_model, alpha, size, _, _ = MODELS[args.model]
    run = out / f"{folder.name}_{args.model}_{arm}_s{seed}"
    shutil.rmtree(run, ignore_errors=True)
    base = [sys.executable, "-m", "edgecnn", "optimize", edgecnn_model, "--data", str(folder), "--image-size",
            str(size), "--int8", "--seed", str(seed), "--out", str(run)]
    if alpha != 1.0:
        base += ["--alpha", str(alpha)]
    total = args.head_epochs + args.fine_epochs
    if arm == "edgecnn":
        cmd = base + ["--weights", "imagenet"] + list(args.edgecnn_args)
    elif arm == "scratch":
        cmd = base + ["--epochs", str(total)]
    else:  # the script reads the split edgecnn's run of this seed recorded
        split = out / f"{folder.name}_{args.model}_edgecnn_s{seed}" / "splits.json"
        if not split.is_file():
            raise SystemExit(f"the keras arm needs {split}: run the edgecnn arm first")
        weights = str(Path(os.path.expanduser("~/.keras/models")) / args.weights_file) if args.weights_file \
            else "imagenet"
        cmd = [sys.executable, __file__, "--_keras", str(split), str(folder), str(seed), weights, str(run)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TRANSFER_MODEL=args.model, TRANSFER_HEAD=str(args.head_epochs),
               TRANSFER_FINE=str(args.fine_epochs))
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(out))
    seconds = time.time() - t0
    (out / f"{run.name}.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
        return {"error": tail[0][:300], "seconds": seconds}
    if arm == "keras":
        row = json.loads(proc.stdout.strip().splitlines()[-1])
    else:
        row = edgecnn_row(run)
    row["seconds"] = seconds
    return row


def folder_hash(folder: Path) -> str:
    lines = []
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            lines.append(f"{p.relative_to(folder).as_posix()} {hashlib.sha256(p.read_bytes()).hexdigest()}")
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def render(rows: list, args) -> str:
    def pct(v):
        return "-" if v is None else f"{100 * v:.1f}"

    out = []
    keyed = {}
    for r in rows:
        keyed.setdefault((r["folder"], r["model"]), {}).setdefault(r["arm"], []).append(r)
    out.append("| folder | model | arm | seeds | float32 test % (per seed) | int8 test % (per seed) | mean int8 | "
               "mean wall s |")
    out.append("|---|---|---|---|---|---|---|---|")
    verdicts = []
    for (folder, model), arms in sorted(keyed.items()):
        means = {}
        for arm in ("edgecnn", "keras", "scratch"):
            rs = sorted(arms.get(arm, []), key=lambda r: r["seed"])
            ok = [r for r in rs if "error" not in r]
            if not rs:
                continue
            f32 = [r.get("float32") for r in ok]
            i8 = [r.get("int8") for r in ok]
            mf = statistics.mean(v for v in f32 if v is not None) if any(v is not None for v in f32) else None
            mi = statistics.mean(v for v in i8 if v is not None) if any(v is not None for v in i8) else None
            ms = statistics.mean(r["seconds"] for r in rs)
            means[arm] = (mf, mi, ms)
            errors = "; ".join(f"seed {r['seed']}: {r['error']}" for r in rs if "error" in r)
            out.append(
                f"| {folder} | {model} | {arm} | {len(rs)} | {pct(mf)} ({', '.join(pct(v) for v in f32)}) | "
                f"{pct(mi)} ({', '.join(pct(v) for v in i8)}) | {pct(mi)} | {ms:.0f}"
                + (f" ({errors})" if errors else "") + " |"
            )
        if {"edgecnn", "keras"} <= set(means) and means["edgecnn"][1] is not None and means["keras"][0] is not None:
            e, k = means["edgecnn"], means["keras"]
            line = (f"- {folder}, {model}: edgecnn int8 {pct(e[1])}% vs script float32 {pct(k[0])}% "
                    f"({'met' if e[1] >= k[0] else 'NOT met'}); wall {e[2] / k[2]:.2f}x the script's "
                    f"({'met' if e[2] <= 1.5 * k[2] else 'NOT met'})")
            if "scratch" in means and means["scratch"][1] is not None:
                s = means["scratch"]
                line += f"; vs scratch int8 {pct(s[1])}%: {100 * (e[1] - s[1]):+.1f} points " \
                        f"({'met' if e[1] - s[1] >= 0.15 else 'NOT met'})"
            verdicts.append(line)
    out.append("")
    out.extend(verdicts)
    out += ["", "Curves, seed 0 (validation accuracy per epoch for edgecnn's two phases; the script has no "
            "validation split, so its training accuracy):", ""]
    for r in sorted(rows, key=lambda r: (r["folder"], r["arm"])):
        if r["seed"] != 0 or "error" in r or r["arm"] == "scratch":
            continue
        for phase, curve in (r.get("curves") or {}).items():
            if curve:
                out.append(f"- {r['folder']} {r['arm']} {phase}: " + " ".join(f"{100 * v:.0f}" for v in curve))
        if r.get("chosen"):
            out.append(f"- {r['folder']} edgecnn kept the {r['chosen']} model")
    return "\n".join(out)


def plot(rows: list, path: Path) -> Path | None:
    """A PNG of mean int8 and float32 test accuracy per folder and arm (the script's float32
    as a line), saved atomically beside RESULTS.md."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    folders = sorted({r["folder"] for r in rows})
    arms = [a for a in ("edgecnn", "keras", "scratch") if any(r["arm"] == a for r in rows)]
    fig, ax = plt.subplots(figsize=(2.2 + 2.2 * len(folders), 4))
    width = 0.8 / max(1, len(arms))
    for j, arm in enumerate(arms):
        for precision, alpha in (("float32", 0.35), ("int8", 1.0)):
            means = []
            for folder in folders:
                vals = [r.get(precision) for r in rows if r["folder"] == folder and r["arm"] == arm
                        and r.get(precision) is not None]
                means.append(100 * statistics.mean(vals) if vals else 0.0)
            xs = [i + (j - (len(arms) - 1) / 2) * width for i in range(len(folders))]
            ax.bar(xs, means, width * (0.9 if precision == "float32" else 0.55), alpha=alpha,
                   color=f"C{j}", label=f"{arm} {precision}")
    ax.set_xticks(range(len(folders)), folders)
    ax.set_ylabel("test accuracy, mean over seeds (%)")
    ax.set_ylim(0, 118)
    ax.set_title("Transfer learning on real photos: edgecnn vs a Keras script vs scratch")
    ax.legend(fontsize=7, ncol=len(arms), loc="upper center")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", action="append", default=[], help="An image folder (repeatable).")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--model", choices=sorted(MODELS), default="mobilenet")
    p.add_argument("--arms", nargs="+", default=["edgecnn", "keras", "scratch"],
                   choices=["edgecnn", "keras", "scratch"])
    p.add_argument("--head-epochs", type=int, default=5, help="The script's frozen-base epochs.")
    p.add_argument("--fine-epochs", type=int, default=10, help="The script's fine-tuning epochs.")
    p.add_argument("--weights-file", default=None, help="A file name in Keras' cache for the script.")
    p.add_argument("--edgecnn-args", nargs=argparse.REMAINDER, default=[],
                   help="Extra flags for the edgecnn arm (last on the line).")
    p.add_argument("--out", default="runs/transfer_photos")
    p.add_argument("--render", action="store_true", help="Only rewrite RESULTS.md from the stored rows.")
    p.add_argument("--no-write", action="store_true", help="Do not touch RESULTS.md.")
    p.add_argument("--note-file", default=None, help="A Markdown file written above the table.")
    args = p.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    store = out / "rows.jsonl"
    rows = [json.loads(line) for line in store.read_text().splitlines() if line.strip()] if store.is_file() else []
    if not args.render:
        (out / "command.txt").write_text(command() + "\n")  # what --render names as the measuring command
        for folder in map(Path, args.data):
            folder = folder.resolve()
            digest = folder_hash(folder)
            for seed in range(args.seeds):
                for arm in args.arms:
                    if any(r["folder"] == folder.name and r["model"] == args.model and r["arm"] == arm
                           and r["seed"] == seed for r in rows):
                        continue
                    print(f"{folder.name} {args.model} seed {seed}: {arm} ...", flush=True)
                    row = run_arm(arm, folder, seed, args, out)
                    row.update(folder=folder.name, folder_sha256=digest, model=args.model, arm=arm, seed=seed)
                    print(f"    {json.dumps({k: row.get(k) for k in ('float32', 'int8', 'seconds', 'error')})}",
                          flush=True)
                    rows.append(row)
                    with store.open("a") as f:
                        f.write(json.dumps(row) + "\n")
    body = render(rows, args)
    print(body)
    if not args.no_write:
        note = Path(args.note_file).read_text().strip() + "\n\n" if args.note_file else ""
        png = plot(rows, Path(__file__).resolve().parent / "transfer_photos.png")
        picture = f"\n\n![transfer on real photos]({png.name})" if png else ""
        measured = (out / "command.txt").read_text().strip() if (out / "command.txt").is_file() else None
        cmd = f"{measured} (rendered by {command()})" if measured and args.render else None
        update_section("transfer_photos", "Transfer learning on real photos", note + body + picture, cmd=cmd)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--_keras":
        split_file, root, seed, weights, out = sys.argv[2:7]
        model = os.environ.get("TRANSFER_MODEL", "mobilenet")
        head, fine = int(os.environ.get("TRANSFER_HEAD", "5")), int(os.environ.get("TRANSFER_FINE", "10"))
        print(json.dumps(keras_script(split_file, root, model, head, fine, int(seed), weights, out)))
    else:
        main()
