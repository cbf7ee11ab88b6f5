"""Stock ``keras.applications`` vs edgecnn's efficient models, int8 TFLite, side by side.

For MobileNetV2, MobileNetV3-Small/Large and EfficientNet-B0 at 224x224x3, 1000 classes
(untrained weights: latency and op placement do not depend on the values):

- edgecnn's model, full-integer int8 by post-training quantization (random representative
  data), and its QAT copy (``edgecnn.optimize.qat.quantize_model``, untrained, run once in
  training mode over the calibration images so that its input quantizer has a range)
  converted to int8;
- the stock model (``input_shape=(224, 224, 3), weights=None``; V3 with
  ``include_preprocessing=False`` so that both sides compute the same network) converted
  the stock way (post-training int8, the same representative data);
- what stock ``tfmot.quantization.keras.quantize_model`` does on the stock model as a user
  gets it (default arguments) and, for V3, without the preprocessing layer; where it
  succeeds, that QAT model is converted to int8 and timed too;
- latency of every ``.tflite`` measured in ONE run, with the same runtime
  (:func:`edgecnn.device.bench.benchmark`, a child process per measurement), 1 thread,
  interleaved (A, B, C, A, B, C, ...) over several repeats; the median of the repeat
  medians is reported; and the same on TFLite's own kernels (XNNPACK off);
- op placement of every int8 file under LiteRT's default XNNPACK delegate: which ops the
  delegate takes and which stay on TFLite's own kernels (:func:`ops_outside_xnnpack`), for
  the four models above and for ShuffleNet v1 (g3) / v2 (1x), whose exceptions
  :mod:`edgecnn.models.shufflenet` lists.

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
from edgecnn.models import count_params, create_model  # noqa: E402
from edgecnn.optimize.qat import quantize_model  # noqa: E402
from edgecnn.tflite.convert import convert  # noqa: E402

apps = keras.applications
SHAPE = (224, 224, 3)  # stated: keras.applications' MobileNetV3 defaults to (None, None, 3)
# (title, edgecnn name, stock model for latency, stock model as a user gets it, or None if the same)
MODELS = [
    ("MobileNetV2", "mobilenet_v2", lambda: apps.MobileNetV2(input_shape=SHAPE, weights=None), None),
    (
        "MobileNetV3-Small",
        "mobilenet_v3_small",
        lambda: apps.MobileNetV3Small(input_shape=SHAPE, weights=None, include_preprocessing=False),
        lambda: apps.MobileNetV3Small(input_shape=SHAPE, weights=None),
    ),
    (
        "MobileNetV3-Large",
        "mobilenet_v3_large",
        lambda: apps.MobileNetV3Large(input_shape=SHAPE, weights=None, include_preprocessing=False),
        lambda: apps.MobileNetV3Large(input_shape=SHAPE, weights=None),
    ),
    ("EfficientNet-B0", "efficientnet_b0", lambda: apps.EfficientNetB0(input_shape=SHAPE, weights=None), None),
]
# Op placement only (no stock counterpart in keras.applications).
PLACEMENT_ONLY = [
    ("ShuffleNet v1 (g3, 1x)", "shufflenet_v1", {"groups": 3}),
    ("ShuffleNet v2 (1x)", "shufflenet_v2", {}),
]
KINDS = ("edgecnn", "edgecnn QAT", "stock", "stock QAT")


def representative(samples: int = 8, seed: int = 0):
    data = np.random.default_rng(seed).uniform(-1, 1, size=(samples, 224, 224, 3)).astype("float32")

    def gen():
        for row in data:
            yield [row[None]]

    return gen


def ops_outside_xnnpack(path) -> tuple[Counter, Counter]:
    """``(all ops, ops left to TFLite's own kernels)`` of a ``.tflite`` under LiteRT's
    default XNNPACK delegate.

    ``_get_ops_details()`` lists the model's nodes, then one ``DELEGATE`` node per
    partition XNNPACK took; walking back from a partition's outputs to its inputs through
    the original nodes finds the nodes inside it. The rest run on TFLite's kernels.

    Example:
        >>> ops_outside_xnnpack("mobilenet_v2_edgecnn_int8.tflite")[1]  # doctest: +SKIP
        Counter({'SOFTMAX': 1})
    """
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()
    ops = interpreter._get_ops_details()
    first_delegate = min((op["index"] for op in ops if op["op_name"] == "DELEGATE"), default=len(ops))
    original = [op for op in ops if op["index"] < first_delegate]
    producer = {int(t): op["index"] for op in original for t in op["outputs"]}
    inside: set = set()
    for node in (op for op in ops if op["op_name"] == "DELEGATE"):
        boundary, stack = {int(t) for t in node["inputs"]}, [int(t) for t in node["outputs"]]
        while stack:
            tensor = stack.pop()
            if tensor in boundary or tensor not in producer or producer[tensor] in inside:
                continue
            inside.add(producer[tensor])
            stack.extend(int(t) for t in ops[producer[tensor]]["inputs"])
    all_ops = Counter(op["op_name"] for op in original)
    outside = Counter(op["op_name"] for op in original if op["index"] not in inside)
    return all_ops, outside


def placement(path) -> tuple[Counter, Counter] | str:
    """:func:`ops_outside_xnnpack` in a child process (a native abort must not end the run):
    the two counters, or the error as a string."""
    import json
    import subprocess

    cmd = [sys.executable, __file__, "--placement", str(path)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if run.returncode != 0:
        last = (run.stderr.strip().splitlines() or ["no output"])[-1]
        return f"fails to load (exit {run.returncode}: {last[:120]})"
    all_ops, outside = json.loads(run.stdout.strip().splitlines()[-1])
    return Counter(all_ops), Counter(outside)


def latency(path, runs: int, warmup: int) -> float | None:
    from edgecnn.device.bench import benchmark

    result = benchmark(path, threads=1, warmup=warmup, runs=runs, timeout=600)
    if "median_ms" not in result:
        print(f"benchmark of {path} failed: {result.get('status')}: {result.get('error')}", flush=True)
        return None
    return float(result["median_ms"])


def reference_latency(path, runs: int, warmup: int) -> float | None:
    """Median ms of ``path`` on TFLite's own kernels (XNNPACK off), timed in a child process
    (``edgecnn.device.runtime.load_interpreter(delegate=False)``, random int8 input, 1 thread)."""
    import subprocess

    cmd = [sys.executable, __file__, "--reference-latency", str(path), "--runs", str(runs), "--warmup", str(warmup)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    if run.returncode != 0:
        print(f"reference-kernel timing of {path} failed: {run.stderr.strip().splitlines()[-1:]}", flush=True)
        return None
    return float(run.stdout.strip().splitlines()[-1])


def _time_reference(path, runs: int, warmup: int) -> float:
    from edgecnn.device.bench import random_input
    from edgecnn.device.runtime import load_interpreter

    interpreter, _, _ = load_interpreter(path, num_threads=1, delegate=False)
    for i, detail in enumerate(interpreter.get_input_details()):
        interpreter.set_tensor(detail["index"], random_input(detail, i))
    for _ in range(warmup):
        interpreter.invoke()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        interpreter.invoke()
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def calibrate(qat_model, rep) -> None:
    """Run the QAT model in training mode on the calibration images, so that its input
    quantizer (tfmot's AllValuesQuantizer starts at [0, 0]) holds the real input range."""
    for (row,) in rep():
        qat_model(row, training=True)


def stock_qat(model):
    """Stock tfmot QAT on ``model``: ``(the QAT model or None, 'ok' or the first line of its error)``."""
    try:
        return tfmot().quantization.keras.quantize_model(model), "ok"
    except Exception as exc:  # noqa: BLE001 - recording whatever tfmot raises
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        return None, f"fails: {exc.__class__.__name__}: {' '.join(lines[:2])[:240]}"


def _fmt_ops(counter: Counter) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counter.items())) or "none"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--out", default=None, help="folder for the .tflite files (default: a temporary one)")
    parser.add_argument("--no-write", action="store_true", help="print the results, leave RESULTS.md alone")
    parser.add_argument("--placement", default=None, help=argparse.SUPPRESS)  # child process of placement()
    parser.add_argument("--reference-latency", default=None, help=argparse.SUPPRESS)  # of reference_latency()
    args = parser.parse_args(argv)
    if args.placement:
        import json

        print(json.dumps(ops_outside_xnnpack(args.placement)))
        return 0
    if args.reference_latency:
        print(_time_reference(args.reference_latency, args.runs, args.warmup))
        return 0
    out = Path(args.out or tempfile.mkdtemp(prefix="stock_vs_edgecnn_"))
    out.mkdir(parents=True, exist_ok=True)
    rep = representative()
    started = time.time()

    rows, files = [], {}
    for title, ours_name, stock_fn, stock_default_fn in MODELS:
        t0 = time.time()
        ours = create_model(ours_name)
        files[(title, "edgecnn")] = convert(ours, out / f"{ours_name}_edgecnn_int8.tflite", "int8", representative=rep)
        qat_ours = quantize_model(ours)
        calibrate(qat_ours, rep)
        files[(title, "edgecnn QAT")] = convert(
            qat_ours, out / f"{ours_name}_edgecnn_qat_int8.tflite", "int8", representative=rep
        )
        stock = stock_fn()
        files[(title, "stock")] = convert(stock, out / f"{ours_name}_stock_int8.tflite", "int8", representative=rep)
        qat_notes = []
        default = stock_default_fn() if stock_default_fn else stock
        qat, note = stock_qat(default)
        qat_notes.append(note if stock_default_fn is None else f"as built by default: {note}")
        if stock_default_fn is not None:
            qat_bare, note = stock_qat(stock)
            qat_notes.append(f"without preprocessing: {note}")
            qat = qat or qat_bare
        if qat is not None:
            calibrate(qat, rep)
            files[(title, "stock QAT")] = convert(
                qat, out / f"{ours_name}_stock_qat_int8.tflite", "int8", representative=rep
            )
        rows.append(
            {
                "title": title,
                "ours_params": count_params(ours)["trainable"],
                "stock_params": int(sum(np.prod(w.shape) for w in stock.trainable_weights)),
                "stock_qat": "; ".join(qat_notes),
            }
        )
        print(f"{title}: converted in {time.time() - t0:.0f}s; stock QAT: {rows[-1]['stock_qat']}", flush=True)
        del ours, qat_ours, stock, default, qat
        keras.backend.clear_session()

    placement_files = {}
    for title, name, kwargs in PLACEMENT_ONLY:
        placement_files[title] = convert(
            create_model(name, **kwargs), out / f"{name}_edgecnn_int8.tflite", "int8", representative=rep
        )
        keras.backend.clear_session()

    times = {key: [] for key in files}
    ref_times = {key: [] for key in files}
    for r in range(args.repeats):
        for key, path in files.items():  # interleaved: every file once per repeat
            times[key].append(latency(path, args.runs, args.warmup))
            ref_times[key].append(reference_latency(path, args.runs, args.warmup))
        print(f"repeat {r + 1}/{args.repeats} done", flush=True)

    def ms(title, kind, table=times):
        measured = [t for t in table.get((title, kind), []) if t is not None]
        return statistics.median(measured) if measured else None

    def cell(title, kind, table=times):
        measured = [t for t in table.get((title, kind), []) if t is not None]
        if not measured:
            return "-"
        return f"{statistics.median(measured):.2f} ({min(measured):.2f}-{max(measured):.2f})"

    lines = [
        "int8 TFLite at 224x224x3, 1000 classes, untrained weights, 1 thread, LiteRT with its default XNNPACK "
        "delegate (`edgecnn.device.bench.benchmark`), all files measured interleaved in one run; "
        f"median over {args.repeats} repeats of the median of {args.runs} runs (after {args.warmup} warm-up), "
        "with the lowest and highest repeat median in brackets. "
        "PTQ = post-training full-integer quantization (8 random calibration images), QAT = the "
        "quantization-aware model (untrained; one training-mode pass over the calibration images sets its "
        "input range) converted to int8.",
        "",
        "| model | edgecnn PTQ ms | edgecnn QAT ms | stock PTQ ms | stock QAT ms | edgecnn PTQ / stock PTQ | "
        "trainable params (ours / stock) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        t = row["title"]
        med = {kind: ms(t, kind) for kind in KINDS}
        cells = [cell(t, k) for k in KINDS]
        ratio = f"{med['edgecnn'] / med['stock']:.2f}" if med["edgecnn"] and med["stock"] else "-"
        lines.append(f"| {t} | {' | '.join(cells)} | {ratio} | {row['ours_params']:,} / {row['stock_params']:,} |")
    lines += [
        "",
        "The same files on TFLite's own kernels (XNNPACK off: `load_interpreter(delegate=False)`, timed in a child "
        "process the same way):",
        "",
        "| model | edgecnn PTQ ms | edgecnn QAT ms | stock PTQ ms | stock QAT ms | edgecnn PTQ / stock PTQ |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        t = row["title"]
        med = {kind: ms(t, kind, ref_times) for kind in KINDS}
        cells = [cell(t, k, ref_times) for k in KINDS]
        ratio = f"{med['edgecnn'] / med['stock']:.2f}" if med["edgecnn"] and med["stock"] else "-"
        lines.append(f"| {t} | {' | '.join(cells)} | {ratio} |")
    lines += ["", "What stock `tfmot.quantization.keras.quantize_model` does on the stock models:", ""]
    lines += [f"- {row['title']}: {row['stock_qat']}" for row in rows]
    lines += ["", "Op placement of each int8 file (ops, then those XNNPACK leaves to TFLite's own kernels):", ""]
    placed = [((row["title"], kind), files.get((row["title"], kind))) for row in rows for kind in KINDS]
    placed = [(key, path) for key, path in placed if path is not None]
    placed += [((title, "edgecnn"), path) for title, path in placement_files.items()]
    for (title, kind), path in placed:
        found = placement(path)
        if isinstance(found, str):
            lines.append(f"- {title}, {kind}: {found}")
        else:
            lines.append(f"- {title}, {kind}: {_fmt_ops(found[0])}. **Not on XNNPACK: {_fmt_ops(found[1])}.**")
    lines += ["", f"Total time {time.time() - started:.0f} s."]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        update_section("stock-vs-edgecnn", "Stock Keras Applications vs edgecnn, int8 latency and op placement", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
