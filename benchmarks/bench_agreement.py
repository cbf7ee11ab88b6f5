"""Our median vs LiteRT's own benchmark tool, and repeatability of ``edgecnn bench``.

Target (issue 6): on the same model, threads and runs, the median of
``edgecnn.device.bench.benchmark`` agrees with ``python -m
ai_edge_litert.tools.benchmark_litert_model --model=... --num_threads=... --num_runs=...``
within 15% (measured in one run, interleaved: ours, theirs, ours, ...), and repeated
``bench`` runs of one model agree within 10% at the median (max/min - 1).

    python benchmarks/bench_agreement.py [MODEL.tflite] [--threads 1] [--runs 100] [--rounds 3]

Without MODEL it builds MobileNet v1 alpha 1.0 at 224x224 float32 (random weights) in runs/.
(The brief's ``--graph`` flag is the C++ tool's; the Python tool shipped with
ai-edge-litert 2.3 takes ``--model``.)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _results import update_section  # noqa: E402

from edgecnn.device.bench import benchmark  # noqa: E402


def default_model() -> Path:
    path = Path("runs/benchmarks/mobilenet_1.0_224_float32.tflite")
    if not path.exists():
        import edgecnn
        from edgecnn.tflite.convert import convert

        convert(edgecnn.create_model("mobilenet", alpha=1.0, input_shape=(224, 224, 3), classes=1000), path)
    return path


def upstream(model, threads: int, runs: int, warmup: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        cmd = [
            sys.executable,
            "-m",
            "ai_edge_litert.tools.benchmark_litert_model",
            f"--model={model}",
            f"--num_threads={threads}",
            f"--num_runs={runs}",
            f"--warmup_runs={warmup}",
            f"--result_json={out}",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0 or not out.exists():
            raise SystemExit(f"upstream tool failed: {proc.stderr.strip()[-500:]}")
        return float(json.loads(out.read_text())["latency"]["median_ms"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    model = Path(args.model) if args.model else default_model()
    ours, theirs = [], []
    for i in range(args.rounds):
        r = benchmark(model, threads=args.threads, warmup=args.warmup, runs=args.runs, runtime="litert", timeout=1800)
        if r["status"] != "ok":
            raise SystemExit(f"edgecnn bench failed: {r}")
        ours.append(r["median_ms"])
        theirs.append(upstream(model, args.threads, args.runs, args.warmup))
        print(f"round {i + 1}: edgecnn {ours[-1]:.3f} ms, benchmark_litert_model {theirs[-1]:.3f} ms", flush=True)
    med_ours, med_theirs = statistics.median(ours), statistics.median(theirs)
    agreement = abs(med_ours - med_theirs) / med_theirs
    spread = max(ours) / min(ours) - 1
    ok_agree, ok_repeat = agreement <= 0.15, spread <= 0.10
    body = "\n".join(
        [
            f"Model: `{model}` ({model.stat().st_size:,} bytes), {args.threads} thread(s), {args.warmup} warm-up + "
            f"{args.runs} timed runs, {args.rounds} interleaved rounds; runtime LiteRT ({r['runtime_version']}), "
            f"{r['delegation'].get('delegated')}/{r['delegation'].get('total')} ops on XNNPACK.",
            "",
            "| round | edgecnn bench median (ms) | benchmark_litert_model median (ms) |",
            "|---:|---:|---:|",
            *[f"| {i + 1} | {a:.3f} | {b:.3f} |" for i, (a, b) in enumerate(zip(ours, theirs))],
            "",
            f"- Agreement: medians {med_ours:.3f} vs {med_theirs:.3f} ms, difference **{100 * agreement:.1f}%** "
            f"(target <= 15%: {'PASS' if ok_agree else 'FAIL'}).",
            f"- Repeatability of edgecnn bench: max/min - 1 = **{100 * spread:.1f}%** over {args.rounds} runs "
            f"(target <= 10% on a quiet machine: {'PASS' if ok_repeat else 'FAIL'}).",
            "- Note: the upstream tool runs the model through LiteRT's CompiledModel API, ours through the "
            "Interpreter API; both use XNNPACK on CPU.",
        ]
    )
    load = os.getloadavg()
    loadavg = "/".join(f"{v:.1f}" for v in load)
    body += f"\n- Load average when it finished (1/5/15 min, {os.cpu_count()} cores): {loadavg}"
    update_section("bench_agreement", "Latency: agreement with benchmark_litert_model, repeatability", body)
    print(f"agreement {100 * agreement:.1f}%, repeatability {100 * spread:.1f}%")
    return 0 if ok_agree and ok_repeat else 1


if __name__ == "__main__":
    sys.exit(main())
