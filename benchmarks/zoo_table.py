"""The classic model zoo against its papers, and what each model costs on an edge device.

For every model: trainable parameters and MACs at the canonical setting (224x224x3, 1000
classes; LeNet-5 and the MLP 32x32x1, 10 classes) next to the published figures of
../shared/REFERENCE.md; then, at a small edge setting (alpha 0.25 at the model's small
size, 32x32 for most, 64x64 for AlexNet; LeNet-5 and the MLP at alpha 1), the float32 and
int8 ``.tflite`` sizes and single-thread latency, and the int8 ops that XNNPACK does not
run. The table goes into ``benchmarks/RESULTS.md`` (section ``zoo-classic``).

Usage:
    PYTHONPATH=. python benchmarks/zoo_table.py                    # every classic model
    PYTHONPATH=. python benchmarks/zoo_table.py --models lenet5,resnet18 --runs 20
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# (row label, model, builder kwargs, reference trainable params, reference MACs, note)
CANONICAL = [
    ("mlp", "mlp", {}, None, None, "512-256 hidden, 32x32x1"),
    ("lenet5", "lenet5", {}, 61_706, 0.42e6, "dense C3"),
    ("alexnet", "alexnet", {}, 62_378_344, None, "single tower, BN (0.72G applies to groups=2)"),
    ("alexnet norm=lrn", "alexnet", {"norm": "lrn"}, 62_378_344, None, "the paper's LRN"),
    ("alexnet groups=2", "alexnet", {"groups": 2}, 60_965_224, 0.72e9, "the paper's two streams"),
    ("vgg11", "vgg11", {}, 132_863_336, 7.6e9, ""),
    ("vgg13", "vgg13", {}, 133_047_848, 11.3e9, ""),
    ("vgg16", "vgg16", {}, 138_357_544, 15.5e9, ""),
    ("vgg19", "vgg19", {}, 143_667_240, 19.6e9, ""),
    ("vgg11_bn", "vgg11_bn", {}, None, None, "BN variant"),
    ("vgg13_bn", "vgg13_bn", {}, None, None, "BN variant"),
    ("vgg16_bn", "vgg16_bn", {}, None, None, "BN variant"),
    ("vgg19_bn", "vgg19_bn", {}, None, None, "BN variant"),
    ("googlenet", "googlenet", {}, 6_624_904, 1.5e9, "reference (torchvision): 3x3 '5x5' branch"),
    ("googlenet kernel_5x5=5", "googlenet", {"kernel_5x5": 5}, None, 1.586e9, "paper's 5x5; MACs = sum of Table 1"),
    ("resnet18", "resnet18", {}, 11_689_512, 1.8e9, ""),
    ("resnet34", "resnet34", {}, 21_797_672, 3.6e9, ""),
    ("resnet50", "resnet50", {}, 25_557_032, 4.1e9, "v1.5"),
    ("resnet101", "resnet101", {}, 44_549_160, 7.8e9, "v1.5"),
    ("resnet152", "resnet152", {}, 60_192_808, 11.6e9, "v1.5"),
    ("densenet121", "densenet121", {}, 7_978_856, 2.9e9, "k=32"),
    ("densenet169", "densenet169", {}, 14_149_480, None, "k=32"),
    ("densenet201", "densenet201", {}, 20_013_928, None, "k=32"),
]
MODELS = list(dict.fromkeys(row[1] for row in CANONICAL))
FULL_WIDTH = {"mlp", "lenet5"}  # already edge-sized at their canonical setting
# Options whose edge cost is worth a row of its own.
EDGE_VARIANTS = {
    "lenet5": [{}, {"pool": "max", "activation": "relu"}],
    "alexnet": [{}, {"norm": "lrn"}, {"groups": 2}],
}


def ops_outside_xnnpack(path) -> list:
    """Names of the ops of a ``.tflite`` file that the XNNPACK delegate does not take.

    Loads the model with LiteRT's default XNNPACK delegate and splits its nodes with
    :func:`edgecnn.device.delegation.partition_nodes`: every original node inside a
    DELEGATE partition runs in XNNPACK, the rest on TFLite's own kernels.

    Example:
        >>> ops_outside_xnnpack("alexnet_lrn_int8.tflite")  # doctest: +SKIP
        ['LOCAL_RESPONSE_NORMALIZATION', 'LOCAL_RESPONSE_NORMALIZATION']
    """
    from ai_edge_litert.interpreter import Interpreter

    from edgecnn.device.delegation import partition_nodes

    interpreter = Interpreter(model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()
    ops = interpreter._get_ops_details()  # original nodes, then the DELEGATE nodes
    original, partitions = partition_nodes(ops)
    inside = {index for partition in partitions for index in partition}
    names = {op["index"]: op["op_name"] for op in ops}
    return [names[index] for index in original if index not in inside]


def _fmt_int(n) -> str:
    return "-" if n is None else f"{n:,}"


def _fmt_macs(m) -> str:
    if m is None:
        return "-"
    return f"{m / 1e9:.2f}G" if m >= 1e8 else f"{m / 1e6:.2f}M"


def canonical_rows(models) -> list:
    from edgecnn._tf import keras
    from edgecnn.models import count_macs, count_params, create_model

    rows = []
    for label, name, kwargs, ref_params, ref_macs, note in CANONICAL:
        if name not in models:
            continue
        model = create_model(name, **kwargs)
        params, macs = count_params(model)["trainable"], count_macs(model)
        del model
        keras.backend.clear_session()
        gc.collect()
        match = "-" if ref_params is None else ("exact" if params == ref_params else f"{params - ref_params:+,}")
        dev = "-" if ref_macs is None else f"{100 * (macs / ref_macs - 1):+.1f}%"
        rows.append(
            f"| {label} | {_fmt_int(ref_params)} | {params:,} | {match} | {_fmt_macs(ref_macs)} | {_fmt_macs(macs)} "
            f"| {dev} | {note} |"
        )
        print(rows[-1], flush=True)
    return rows


def edge_rows(models, alpha: float, runs: int, warmup: int, workdir: Path) -> list:
    from edgecnn._tf import keras
    from edgecnn.data.dataset import load_dataset
    from edgecnn.device.bench import benchmark
    from edgecnn.models import count_macs, count_params, create_model, model_info
    from edgecnn.tflite.convert import convert

    rows = []
    for name, kwargs in ((n, kw) for n in models for kw in EDGE_VARIANTS.get(n, [{}])):
        entry = model_info(name)
        size, channels = entry.small_size, entry.channels
        a = 1.0 if name in FULL_WIDTH else alpha
        model = create_model(name, alpha=a, input_shape=(size, size, channels), classes=10, **kwargs)
        data = load_dataset("digits", image_size=size, channels=channels)
        options = "".join(f" {k}={v}" for k, v in kwargs.items())
        cells = [f"{name}{options} a={a:g} {size}x{size}x{channels}", f"{count_params(model)['trainable']:,}"]
        cells.append(_fmt_macs(count_macs(model)))
        outside = []
        for precision in ("float32", "int8"):
            path = convert(model, workdir / f"{model.name}_{precision}.tflite", precision, data.representative(64))
            result = benchmark(path, threads=1, warmup=warmup, runs=runs)
            cells.append(f"{path.stat().st_size / 1024:,.0f}")
            cells.append(f"{result['median_ms']:.2f}" if result.get("status") == "ok" else result.get("status", "?"))
            if precision == "int8":
                outside = ops_outside_xnnpack(path)
        cells.append(", ".join(sorted(set(outside))) or "none")
        rows.append("| " + " | ".join(cells) + " |")
        print(rows[-1], flush=True)
        del model
        keras.backend.clear_session()
        gc.collect()
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated model names (default: all classic)")
    parser.add_argument("--alpha", type=float, default=0.25, help="width multiplier of the edge setting")
    parser.add_argument("--runs", type=int, default=30, help="timed runs per .tflite")
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs first")
    parser.add_argument("--no-write", action="store_true", help="print the table, leave RESULTS.md alone")
    args = parser.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        parser.error(f"not a classic model: {', '.join(unknown)} (choose from {', '.join(MODELS)})")

    head = [
        "### Canonical setting vs the papers",
        "",
        "224x224x3, 1000 classes (LeNet-5, MLP: 32x32x1, 10 classes), alpha 1. "
        "Trainable parameters; MACs of one image.",
        "",
        "| model | reference params | ours | match | reference MACs | ours | MACs vs ref | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    canon = canonical_rows(models)
    edge_head = [
        "",
        f"### Edge setting: alpha {args.alpha:g} (LeNet-5, MLP: 1), small input, 10 classes",
        "",
        f"Single thread, LiteRT with XNNPACK, median of {args.runs} runs after {args.warmup} warm-up runs. int8 is "
        "full-integer post-training quantization calibrated on 64 digits images.",
        "",
        "| model | params | MACs | float32 KB | float32 ms | int8 KB | int8 ms | int8 ops off XNNPACK |",
        "|---|---|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        edge = edge_rows(models, args.alpha, args.runs, args.warmup, Path(tmp))
    body = "\n".join(head + canon + edge_head + edge)
    if args.no_write:
        print(body)
    else:
        from benchmarks._results import update_section

        print(f"wrote {update_section('zoo-classic', 'Model zoo: the classic networks', body)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
