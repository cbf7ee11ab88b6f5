"""Latency of a ``.tflite`` model: warm-up, timed runs, percentiles, memory.

numpy and a TFLite runtime only, so it runs on the device itself. :func:`benchmark`
measures in a child process with a time limit, so a model that crashes or hangs the
native runtime is reported as such (``status``) instead of taking the caller down;
:func:`measure` is the in-process measurement it runs.

Example:
    >>> r = benchmark("runs/mobilenet/model_int8.tflite", threads=2, runs=100)  # doctest: +SKIP
    >>> r["median_ms"], r["p90_ms"], r["runtime"]                             # doctest: +SKIP
    (1.21, 1.35, 'litert')
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from edgecnn.device.runtime import available_runtimes, check_model_file, load_interpreter


def cpu_name() -> str:
    """A human name for this CPU (``/proc/cpuinfo`` on Linux and Android)."""
    try:
        info = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        info = ""
    for key in ("model name", "Model", "Hardware", "Processor", "cpu model"):
        for line in info.splitlines():
            if line.split(":")[0].strip() == key and ":" in line:
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    """CPU, core count, OS and architecture of this machine."""
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "arch": platform.machine(),
        "os": f"{platform.system()} {platform.release()}",
        "hostname": platform.node(),
        "python": platform.python_version(),
    }


def _rss_mb() -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def random_input(detail: dict, seed: int = 0) -> np.ndarray:
    """Random data of an input tensor's shape and dtype (full range for integers)."""
    rng = np.random.default_rng(seed)
    shape = [max(1, int(d)) for d in detail["shape"]]
    dtype = np.dtype(detail["dtype"])
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    if dtype == np.bool_:
        return rng.integers(0, 2, size=shape).astype(bool)
    return rng.uniform(-1.0, 1.0, size=shape).astype(dtype)


def _stats(times_ms: list) -> dict:
    t = np.asarray(times_ms, dtype=np.float64)
    return {
        "median_ms": float(np.median(t)),
        "p90_ms": float(np.percentile(t, 90)),
        "p99_ms": float(np.percentile(t, 99)),
        "mean_ms": float(t.mean()),
        "std_ms": float(t.std()),
        "min_ms": float(t.min()),
        "max_ms": float(t.max()),
    }


def measure(
    model_path,
    threads: int = 1,
    warmup: int = 5,
    runs: int = 50,
    min_time: float = 0.0,
    runtime: str = "auto",
    input_path: str | None = None,
    seed: int = 0,
) -> dict:
    """Benchmark ``model_path`` in this process (see :func:`benchmark` for the safe way).

    Times ``runs`` invocations after ``warmup`` untimed ones, continuing until at least
    ``min_time`` seconds of timed runs have passed. Input is random (seeded) unless
    ``input_path`` names a ``.npy`` file with the input tensor.
    """
    rss_before = _rss_mb()
    t0 = time.perf_counter()
    interpreter, name, version = load_interpreter(model_path, num_threads=threads, runtime=runtime)
    init_ms = (time.perf_counter() - t0) * 1e3
    inputs = interpreter.get_input_details()
    for i, detail in enumerate(inputs):
        if input_path and i == 0:
            data = np.load(input_path, allow_pickle=False).astype(detail["dtype"])
            if tuple(data.shape) != tuple(detail["shape"]):
                raise ValueError(f"input {input_path} has shape {data.shape}, model expects {tuple(detail['shape'])}")
        else:
            data = random_input(detail, seed + i)
        interpreter.set_tensor(detail["index"], data)

    t0 = time.perf_counter()
    interpreter.invoke()
    first_ms = (time.perf_counter() - t0) * 1e3
    for _ in range(max(0, warmup)):
        interpreter.invoke()
    times = []
    started = time.perf_counter()
    while len(times) < max(1, runs) or (time.perf_counter() - started) < min_time:
        t0 = time.perf_counter()
        interpreter.invoke()
        times.append((time.perf_counter() - t0) * 1e3)
    result = {
        "status": "ok",
        "model": str(model_path),
        "size_bytes": os.path.getsize(model_path),
        "runtime": name,
        "runtime_version": version,
        "threads": int(threads),
        "warmup": int(warmup),
        "runs": len(times),
        "init_ms": init_ms,
        "first_run_ms": first_ms,
        **_stats(times),
        "peak_rss_mb": _rss_mb(),
        "rss_increase_mb": max(0.0, _rss_mb() - rss_before),
        "input": "random" if not input_path else str(input_path),
        **machine_info(),
    }
    return result


def benchmark(
    model_path,
    threads: int = 1,
    warmup: int = 5,
    runs: int = 50,
    min_time: float = 0.0,
    runtime: str = "auto",
    input_path: str | None = None,
    seed: int = 0,
    timeout: float = 300.0,
) -> dict:
    """Benchmark ``model_path`` in a child process with a ``timeout`` in seconds.

    Returns :func:`measure`'s dict, or ``{"status": "crashed" | "timeout" | "error",
    "error": "..."}`` when the model crashes the runtime, hangs, or cannot be loaded.
    """
    try:
        check_model_file(model_path)
    except ValueError as exc:
        return {"status": "error", "model": str(model_path), "error": str(exc)}
    args = {
        "model_path": str(model_path),
        "threads": threads,
        "warmup": warmup,
        "runs": runs,
        "min_time": min_time,
        "runtime": runtime,
        "input_path": input_path,
        "seed": seed,
    }
    cmd = [sys.executable, "-m", "edgecnn.device.bench", json.dumps(args)]
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(
            filter(None, [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH")])
        ),
    )
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {
            "status": "timeout",
            "model": str(model_path),
            "error": f"no result within {timeout:g} s (the runtime hung or the model is too slow)",
        }
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode == 0 and lines:
        return json.loads(lines[-1])
    if proc.returncode < 0:
        import signal

        sig = signal.Signals(-proc.returncode).name
        return {
            "status": "crashed",
            "model": str(model_path),
            "error": f"the runtime crashed ({sig}) running this model",
        }
    tail = (proc.stderr.strip().splitlines() or ["unknown error"])[-1]
    return {"status": "error", "model": str(model_path), "error": tail}


def _child(argv) -> int:
    args = json.loads(argv[0])
    try:
        result = measure(**args)
    except Exception as exc:  # reported to the parent as one line
        print(f"{exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))


__all__ = ["available_runtimes", "benchmark", "cpu_name", "machine_info", "measure", "random_input"]
