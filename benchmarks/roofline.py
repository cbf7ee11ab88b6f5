"""Share of the hardware limit: MobileNet v1 1.0 224x224 float32 vs this machine's sgemm rate.

Achieved MAC/s = ``count_macs(model)`` / median latency (``edgecnn.device.bench``), divided
by the fp32 matrix-multiply rate of numpy (a large sgemm, 2*n^3 flops = n^3 MACs, same
thread count via the BLAS thread variables set before numpy loads) measured in the same
run. MobileNet paper: https://arxiv.org/abs/1704.04861.

    python benchmarks/roofline.py [--threads 1] [--runs 50] [--n 2048] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def sgemm_macs_per_s(n: int, repeats: int = 5) -> float:
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return n**3 / best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--n", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=3, help="bench rounds; the lowest median is used")
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)  # before numpy's BLAS starts

    from _results import update_section

    import edgecnn
    from edgecnn.device.bench import benchmark
    from edgecnn.models import count_macs
    from edgecnn.tflite.convert import convert

    model = edgecnn.create_model("mobilenet", alpha=1.0, input_shape=(224, 224, 3), classes=1000)
    macs = count_macs(model)
    path = Path("runs/benchmarks/mobilenet_1.0_224_float32.tflite")
    if not path.exists():
        convert(model, path)
    peak_before = sgemm_macs_per_s(args.n)
    medians = []
    for _ in range(args.rounds):
        r = benchmark(path, threads=args.threads, runs=args.runs, warmup=10, runtime="litert", timeout=1800)
        if r["status"] != "ok":
            raise SystemExit(f"bench failed: {r}")
        medians.append(r["median_ms"])
    peak_after = sgemm_macs_per_s(args.n)
    peak = max(peak_before, peak_after)
    best = min(medians)  # the least disturbed round: other jobs on a shared machine only slow it down
    achieved = macs / (best / 1e3)
    share = achieved / peak
    line = (
        f"MobileNet v1 1.0 224 float32: {macs / 1e6:.1f}M MACs, median {best:.2f} ms "
        f"-> {achieved / 1e9:.2f} GMAC/s; numpy sgemm n={args.n}: {peak / 1e9:.2f} GMAC/s "
        f"({peak_before / 1e9:.2f} before, {peak_after / 1e9:.2f} after) -> {100 * share:.1f}% of the limit"
    )
    print(line)
    delegated = f"{r['delegation'].get('delegated')}/{r['delegation'].get('total')}"
    body = "\n".join(
        [
            f"- Threads: {args.threads} (interpreter and BLAS); {args.runs} timed runs after 10 warm-up; "
            f"LiteRT {r['runtime_version']}, {delegated} ops on XNNPACK.",
            f"- MACs: {macs:,} (edgecnn.models.count_macs; the paper: 569M).",
            f"- Median latency: {best:.2f} ms (lowest of {args.rounds} rounds: "
            f"{', '.join(f'{m:.2f}' for m in medians)} ms) "
            f"-> achieved **{achieved / 1e9:.2f} GMAC/s**.",
            f"- numpy fp32 matmul ({args.n}x{args.n}, best of 5, before and after): **{peak / 1e9:.2f} GMAC/s**.",
            f"- Share of the hardware limit: **{100 * share:.1f}%**.",
        ]
    )
    load = os.getloadavg()
    loadavg = "/".join(f"{v:.1f}" for v in load)
    body += f"\n- Load average when it finished (1/5/15 min, {os.cpu_count()} cores): {loadavg}"
    update_section("roofline", "MobileNet v1 1.0 224 float32 vs the machine's sgemm rate", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
