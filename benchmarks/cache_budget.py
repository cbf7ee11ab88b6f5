"""What ``--cache auto`` decides, and whether its memory estimate is right (issue 16).

``auto`` decodes an image folder into memory when :func:`edgecnn.data.stream.estimate_memory`
(``MEMORY_BYTES_PER_VALUE`` bytes per pixel and channel: the ``uint8`` images, the normalised
``float32`` copy and the ``tf.constant`` made of it) fits :func:`edgecnn.data.stream.memory_budget` (a quarter of the
physical RAM, or half of what is available now if that is less). This script measures the
in-memory path's real footprint: for each size it decodes a synthetic folder of 256x256
JPEGs (``benchmarks/data_scale.py``'s generator) at ``--image-size`` with ``--cache memory``
in a child process, builds the training and validation pipelines and reads them once (no
model), and records the child's peak RSS. The growth between sizes, per image, is compared
with the estimate; the last lines say what ``auto`` picks on this machine for 3,000 and
30,000 images at 224 px.

Usage:
    PYTHONPATH=. python benchmarks/cache_budget.py                    # 300 and 1,200 images at 224 px
    PYTHONPATH=. python benchmarks/cache_budget.py --sizes 300 600 --no-write
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _child(folder: str, size: int):
    import resource

    from edgecnn.data.contract import LoadSpec
    from edgecnn.data.stream import load_stream
    from edgecnn.train import TrainConfig, make_datasets

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    data = load_stream(folder, LoadSpec((size, size), 3, cache="memory", val_split=0.1, test_split=0.2))
    train, val = make_datasets(data, TrainConfig(batch_size=32))
    for _ in train:
        pass
    for _ in val:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    n = sum(len(data.y[s]) for s in data.y)
    print(json.dumps({"images": n, "peak": peak, "before": base, "streamed": getattr(data, "streamed", False)}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[300, 1200])
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--root", default="/tmp/edgecnn_cache_budget")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()

    from data_scale import generate

    from edgecnn.data.stream import MEMORY_BYTES_PER_VALUE, choose_cache, estimate_memory, memory_budget

    runs = []
    for n in args.sizes:
        folder = generate(Path(args.root) / f"jpeg_{n}", n)
        code = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import cache_budget; "
        code += f"cache_budget._child({str(folder)!r}, {args.image_size})"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        run = json.loads(out.strip().splitlines()[-1])
        assert not run["streamed"]
        run["estimate"] = estimate_memory(run["images"], (args.image_size,) * 2, 3)
        runs.append(run)
        print(run, flush=True)
    values = args.image_size * args.image_size * 3
    lines = [
        "| images | peak RSS | estimate (images only) | peak - estimate |",
        "|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| {r['images']:,} | {r['peak'] / 2**20:,.0f} MB | {r['estimate'] / 2**20:,.0f} MB | "
            f"{(r['peak'] - r['estimate']) / 2**20:,.0f} MB |"
        )
    a, b = runs[0], runs[-1]
    per_image = (b["peak"] - a["peak"]) / max(1, b["images"] - a["images"])
    budget = memory_budget()
    picks = {n: choose_cache("auto", n, (224, 224), 3, Path(args.root), budget=budget) for n in (3000, 30000)}
    body = "\n".join(
        [
            f"`--cache memory` at {args.image_size} px, pipelines built and read once, no model; peak RSS of a "
            "child process (`ru_maxrss`). Measured, not assumed; shared machine, so other jobs do not count "
            "but page-cache effects may.",
            "",
            *lines,
            "",
            f"- Growth per image between {a['images']:,} and {b['images']:,} images: {per_image / 2**20:.2f} MB "
            f"= {per_image / values:.1f} bytes per pixel and channel; the estimate uses {MEMORY_BYTES_PER_VALUE}.",
            f"- Budget on this machine: {budget / 2**30:.1f} GiB (`memory_budget()`: a quarter of the RAM, or "
            "half of the memory available now, whichever is less).",
            f"- `--cache auto` at 224 px picks: 3,000 images -> `{picks[3000]}` "
            f"(estimate {estimate_memory(3000, (224, 224), 3) / 2**30:.1f} GiB), 30,000 images -> "
            f"`{picks[30000]}` (estimate {estimate_memory(30000, (224, 224), 3) / 2**30:.1f} GiB). "
            "The bounded-memory figures of `data_scale` are for streaming, so they are measured with "
            "`--cache none`.",
        ]
    )
    print(body)
    if not args.no_write:
        from _results import update_section

        update_section("cache_budget", "What --cache auto decides (issue 16)", body)


if __name__ == "__main__":
    main()
