"""int8 MobileNet v1 alpha 0.5 at 224x224: edgecnn's vs keras.applications', side by side.

Both are converted to full-integer int8 (the stock way for Keras': ``from_keras_model``,
``Optimize.DEFAULT``, a representative dataset, int8 input/output), then timed in
alternating child processes with the same runtime, threads, warm-up and runs; the
figure is the median over rounds of each round's median.

Usage: ``python benchmarks/mobilenet_vs_keras.py [--rounds 5] [--threads 1] [--runs 50]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import update_section  # noqa: E402

from edgecnn._tf import keras, tf  # noqa: E402
from edgecnn.device.bench import benchmark  # noqa: E402
from edgecnn.models import create_model  # noqa: E402
from edgecnn.tflite.convert import convert  # noqa: E402


def representative():
    rng = np.random.default_rng(0)
    for _ in range(32):
        yield [rng.uniform(-1, 1, (1, 224, 224, 3)).astype(np.float32)]


def stock_int8(path: Path):
    model = keras.applications.MobileNet(weights=None, alpha=0.5, input_shape=(224, 224, 3))
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    path.write_bytes(converter.convert())
    return model.count_params()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="edgecnn-vs-keras-"))
    ours_model = create_model("mobilenet", alpha=0.5, input_shape=(224, 224, 3), classes=1000)
    ours, stock = tmp / "edgecnn_int8.tflite", tmp / "keras_int8.tflite"
    convert(ours_model, ours, "int8", representative=representative)
    stock_params = stock_int8(stock)
    medians = {"edgecnn": [], "keras.applications": []}
    runtime = None
    for r in range(args.rounds):
        for name, path in (("edgecnn", ours), ("keras.applications", stock))[:: 1 if r % 2 == 0 else -1]:
            res = benchmark(path, threads=args.threads, warmup=10, runs=args.runs)
            if res["status"] != "ok":
                raise SystemExit(f"{name}: {res}")
            medians[name].append(res["median_ms"])
            runtime = f"{res['runtime']} {res['runtime_version']}"
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{k} {v[-1]:.2f} ms" for k, v in medians.items()))
    summary = {k: statistics.median(v) for k, v in medians.items()}
    ratio = summary["edgecnn"] / summary["keras.applications"]
    body = (
        f"Runtime {runtime}, {args.threads} thread(s), {args.runs} runs after 10 warm-up, {args.rounds} alternating "
        f"rounds (child processes).\n\n| model | params (Keras total) | int8 size | median of medians |\n"
        f"|---|---:|---:|---:|\n"
        f"| edgecnn mobilenet alpha 0.5 | {ours_model.count_params():,} | {ours.stat().st_size:,} B | "
        f"{summary['edgecnn']:.2f} ms |\n"
        f"| keras.applications.MobileNet(alpha=0.5) | {stock_params:,} | {stock.stat().st_size:,} B | "
        f"{summary['keras.applications']:.2f} ms |\n\n"
        f"Ratio edgecnn / Keras: **{ratio:.3f}** (target: no slower, i.e. <= 1 within noise). "
        f"Per-round medians: " + "; ".join(f"{k}: " + ", ".join(f"{x:.2f}" for x in v) for k, v in medians.items())
    )
    print(body)
    update_section("mobilenet-vs-keras", "int8 MobileNet v1 alpha 0.5 at 224x224: edgecnn vs keras.applications", body)


if __name__ == "__main__":
    main()
