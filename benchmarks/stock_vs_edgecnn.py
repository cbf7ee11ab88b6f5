"""Stock ``keras.applications`` vs edgecnn's efficient models, int8 TFLite, side by side.

For MobileNetV2, MobileNetV3-Small/Large and EfficientNet-B0 at 224x224x3, 1000 classes:

- edgecnn's model, full-integer int8 by post-training quantization (random representative
  data), and its QAT copy (``edgecnn.optimize.qat.quantize_model``, untrained) converted
  to int8: both go through;
- the stock model (``weights=None``; V3 with ``include_preprocessing=False``) converted
  the stock way (post-training int8, the same representative data), and what stock
  ``tfmot.quantization.keras.quantize_model`` does on it (the error, if it fails);
- latency of the three ``.tflite`` files measured in ONE run, same runtime, 1 thread,
  interleaved (A, B, C, A, B, C, ...) over several repeats; the median of the repeat
  medians is reported, with the ops each file has and those XNNPACK leaves to TFLite.

Usage: ``PYTHONPATH=. python benchmarks/stock_vs_edgecnn.py [--repeats 5] [--runs 20]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._results import update_section  # noqa: E402
from edgecnn._tf import keras, tfmot  # noqa: E402
from edgecnn.convert import convert  # noqa: E402
from edgecnn.models import count_params, create_model  # noqa: E402
from edgecnn.optimize.qat import quantize_model  # noqa: E402

MODELS = [
    ("MobileNetV2", "mobilenet_v2", lambda: keras.applications.MobileNetV2(weights=None)),
    (
        "MobileNetV3-Small",
        "mobilenet_v3_small",
        lambda: keras.applications.MobileNetV3Small(weights=None, include_preprocessing=False),
    ),
    (
        "MobileNetV3-Large",
        "mobilenet_v3_large",
        lambda: keras.applications.MobileNetV3Large(weights=None, include_preprocessing=False),
    ),
    ("EfficientNet-B0", "efficientnet_b0", lambda: keras.applications.EfficientNetB0(weights=None)),
]


def representative(samples: int = 8, seed: int = 0):
    data = np.random.default_rng(seed).uniform(-1, 1, size=(samples, 224, 224, 3)).astype("float32")

    def gen():
        for row in data:
            yield [row[None]]

    return gen


def xnnpack_split(path) -> tuple[Counter, Counter]:
    """``(op counts, op counts left to TFLite kernels)`` of a ``.tflite`` under the default
    XNNPACK delegate, inferred from the delegate nodes' inputs and outputs."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()
    ops = interpreter._get_ops_details()
    delegates = [op for op in ops if op["op_name"] == "DELEGATE"]
    d_in = {t for op in delegates for t in op["inputs"]}
    d_out = {t for op in delegates for t in op["outputs"]}
    produced = {t for op in ops if op["op_name"] != "DELEGATE" for t in op["outputs"]}
    graph_inputs = {d["index"] for d in interpreter.get_input_details()}
    internal: set = set()
    all_ops, outside = Counter(), Counter()
    for op in ops:
        if op["op_name"] == "DELEGATE":
            continue
        ins = [t for t in op["inputs"] if t in produced or t in graph_inputs]
        delegated = (
            any(t in d_out for t in op["outputs"])
            or any(t in internal for t in ins)
            or any(t in d_in and t not in graph_inputs for t in ins)
        )
        if delegated:
            internal |= {t for t in op["outputs"] if t not in d_out}
        else:
            outside[op["op_name"]] += 1
        all_ops[op["op_name"]] += 1
    return all_ops, outside


def latency(path, runs: int, warmup: int) -> float:
    try:
        from edgecnn.device.bench import benchmark
    except ImportError:  # before the lead's benchmark module is merged
        benchmark = None
    if benchmark is not None:
        result = benchmark(path, threads=1, warmup=warmup, runs=runs)
        if "median_ms" not in result:
            raise RuntimeError(f"benchmark of {path} failed: {result}")
        return float(result["median_ms"])
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    interpreter.set_tensor(inp["index"], np.zeros(inp["shape"], inp["dtype"]))
    for _ in range(warmup):
        interpreter.invoke()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        interpreter.invoke()
        times.append((time.perf_counter() - t) * 1e3)
    return float(np.median(times))


def stock_qat(model) -> str:
    """What stock tfmot QAT does on ``model``: 'ok' or the first line of its error."""
    try:
        tfmot().quantization.keras.quantize_model(model)
        return "ok"
    except Exception as exc:  # noqa: BLE001 - recording whatever tfmot raises
        return f"fails: {exc.__class__.__name__}: {str(exc).strip().splitlines()[0][:160]}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--out", default=None, help="folder for the .tflite files (default: a temporary one)")
    args = parser.parse_args(argv)
    out = Path(args.out or tempfile.mkdtemp(prefix="stock_vs_edgecnn_"))
    out.mkdir(parents=True, exist_ok=True)
    rep = representative()

    rows, files = [], {}
    for title, ours_name, stock_fn in MODELS:
        t0 = time.time()
        ours = create_model(ours_name)
        stock = stock_fn()
        files[(title, "edgecnn")] = convert(ours, out / f"{ours_name}_edgecnn_int8.tflite", "int8", representative=rep)
        files[(title, "edgecnn QAT")] = convert(
            quantize_model(ours), out / f"{ours_name}_edgecnn_qat_int8.tflite", "int8", representative=rep
        )
        files[(title, "stock")] = convert(stock, out / f"{ours_name}_stock_int8.tflite", "int8", representative=rep)
        rows.append(
            {
                "title": title,
                "ours_params": count_params(ours)["trainable"],
                "stock_params": int(sum(np.prod(w.shape) for w in stock.trainable_weights)),
                "stock_qat": stock_qat(stock),
            }
        )
        print(f"{title}: converted in {time.time() - t0:.0f}s; stock QAT: {rows[-1]['stock_qat']}", flush=True)
        keras.backend.clear_session()

    times = {key: [] for key in files}
    for r in range(args.repeats):
        for key, path in files.items():  # interleaved: every file once per repeat
            times[key].append(latency(path, args.runs, args.warmup))
        print(f"repeat {r + 1}/{args.repeats} done", flush=True)

    lines = [
        "int8 TFLite at 224x224x3, 1000 classes, 1 thread, the same runtime "
        "(`edgecnn.device.bench.benchmark`, XNNPACK), files measured interleaved; "
        f"median over {args.repeats} repeats of the median of {args.runs} runs.",
        "",
        "| model | edgecnn int8 (PTQ) ms | edgecnn int8 (QAT) ms | stock int8 (PTQ) ms | edgecnn / stock | "
        "trainable (ours / stock) | stock tfmot QAT |",
        "|---|---|---|---|---|---|---|",
    ]
    op_lines = ["", "Ops per file, and ops XNNPACK leaves to TFLite's own kernels:", ""]
    for row in rows:
        t = row["title"]
        med = {kind: statistics.median(times[(t, kind)]) for kind in ("edgecnn", "edgecnn QAT", "stock")}
        lines.append(
            f"| {t} | {med['edgecnn']:.2f} | {med['edgecnn QAT']:.2f} | {med['stock']:.2f} | "
            f"{med['edgecnn'] / med['stock']:.2f} | {row['ours_params']:,} / {row['stock_params']:,} | "
            f"{row['stock_qat']} |"
        )
        for kind in ("edgecnn", "stock"):
            all_ops, outside = xnnpack_split(files[(t, kind)])
            fmt = ", ".join(f"{k} {v}" for k, v in sorted(all_ops.items()))
            left = ", ".join(f"{k} {v}" for k, v in sorted(outside.items())) or "none"
            op_lines.append(f"- {t}, {kind}: {fmt}. Not on XNNPACK: {left}.")
    body = "\n".join(lines + op_lines)
    print(body)
    update_section("stock-vs-edgecnn", "Stock Keras Applications vs edgecnn, int8 latency", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
