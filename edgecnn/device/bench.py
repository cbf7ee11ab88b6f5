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

from edgecnn._io import sha256_file
from edgecnn.device.runtime import ModelLoadError, available_runtimes, check_model_file, load_interpreter

# Untimed and timed invocations per measurement, for every caller (the pipeline's bench
# stage, ``edgecnn bench``, ``edgecnn-device bench``), so their figures compare.
DEFAULT_WARMUP = 5
DEFAULT_RUNS = 50


def cpu_name() -> str:
    """A human name for this CPU (``/proc/cpuinfo`` on Linux and Android).

    Example:
        >>> cpu_name()  # doctest: +SKIP
        'Intel(R) Xeon(R) Processor'
    """
    try:
        info = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        info = ""
    for key in ("model name", "Model", "Hardware", "Processor", "cpu model"):
        for line in info.splitlines():
            if line.split(":")[0].strip() == key and ":" in line:
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


# The CPU features that decide int8 and float16 speed, as Linux names them in /proc/cpuinfo
# (x86 ``flags``, ARM ``Features``). int8 dot-product instructions: x86 VNNI (AVX-512 or AVX)
# and AMX, ARM ``asimddp`` (Armv8.2 dot product, Raspberry Pi 5 and most phones; the Pi 4
# lacks it) and ``i8mm`` (int8 matrix multiply). XNNPACK picks its int8 kernels by them.
CPU_FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimd", "asimddp", "i8mm", "fphp")
INT8_DOT_FEATURES = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")


def cpu_features(cpuinfo: str | None = None) -> list | None:
    r"""The :data:`CPU_FEATURES` this CPU has, from ``/proc/cpuinfo`` (or the text given);
    ``None`` when the flags cannot be read (not Linux/Android).

    Example:
        >>> cpu_features("flags : fpu sse2 avx2 fma avx512f avx512_vnni\n")
        ['avx2', 'avx512f', 'avx512_vnni']
        >>> cpu_features("Features : fp asimd evtstrm crc32 cpuid asimddp\n")
        ['asimd', 'asimddp']
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return None
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("flags", "Features"):
            have = set(value.split())
            return [f for f in CPU_FEATURES if f in have]
    return None


def has_int8_dot(features) -> bool | None:
    """Whether ``features`` include an int8 dot-product extension (``None``: unknown).

    Example:
        >>> has_int8_dot(["avx2"]), has_int8_dot(["asimd", "asimddp"]), has_int8_dot(None)
        (False, True, None)
    """
    if features is None:
        return None
    return any(f in INT8_DOT_FEATURES for f in features)


def bench_fields(bench: dict) -> dict:
    """The machine fields a table row keeps from a bench result: CPU, its features, cores,
    architecture and the ops XNNPACK left to the reference kernels.

    Example:
        >>> bench_fields({"cpu": "Cortex-A72", "cpu_features": ["asimd"], "delegation": {"fallback_ops": {}}})
        {'cpu': 'Cortex-A72', 'cpu_features': ['asimd'], 'xnnpack_fallback': {}}
    """
    out = {k: bench[k] for k in ("cpu", "cpu_features", "cores", "arch") if k in bench}
    delegation = bench.get("delegation")
    if isinstance(delegation, dict) and "fallback_ops" in delegation:
        out["xnnpack_fallback"] = delegation["fallback_ops"]
    return out


def cpu_line(info: dict) -> str:
    """``'CPU: Intel(R) Xeon(R) Processor, 2 cores, x86_64 (avx2 avx512f avx512_vnni)'``: the
    header every latency table carries, from a bench result or :func:`machine_info`.

    Example:
        >>> cpu_line({"cpu": "Cortex-A72", "cores": 4, "arch": "aarch64", "cpu_features": ["asimd"]})
        'CPU: Cortex-A72, 4 cores, aarch64 (asimd; no int8 dot product)'
    """
    parts = [str(info.get("cpu") or "unknown CPU")]
    if info.get("cores"):
        parts.append(f"{info['cores']} cores")
    if info.get("arch"):
        parts.append(str(info["arch"]))
    feats = info.get("cpu_features")
    if feats is None:
        tail = "features unknown"
    else:
        tail = " ".join(feats) or "none of " + " ".join(CPU_FEATURES)
        if not has_int8_dot(feats):
            tail += "; no int8 dot product"
    return f"CPU: {', '.join(parts)} ({tail})"


def device_name() -> str:
    """The name results are labelled with: ``$EDGECNN_DEVICE`` if set, else the host name.

    Example:
        >>> import os; os.environ["EDGECNN_DEVICE"] = "pi4"; device_name()
        'pi4'
    """
    return os.environ.get("EDGECNN_DEVICE") or platform.node() or "unknown"


def machine_info() -> dict:
    """Device name, CPU, its relevant features (:func:`cpu_features`), core count, OS and
    architecture of this machine.

    Example:
        >>> sorted(machine_info())[:3]
        ['arch', 'cores', 'cpu']
    """
    return {
        "device": device_name(),
        "cpu": cpu_name(),
        "cpu_features": cpu_features(),
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
    """Random data of an input tensor's shape and dtype (full range for integers).

    Example:
        >>> random_input({"shape": [1, 2], "dtype": np.int8}).dtype
        dtype('int8')
    """
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
    warmup: int = DEFAULT_WARMUP,
    runs: int = DEFAULT_RUNS,
    min_time: float = 0.0,
    runtime: str = "auto",
    input_path: str | None = None,
    seed: int = 0,
) -> dict:
    """Benchmark ``model_path`` in this process (see :func:`benchmark` for the safe way).

    Times ``runs`` invocations after ``warmup`` untimed ones, continuing until at least
    ``min_time`` seconds of timed runs have passed. Input is random (seeded) unless
    ``input_path`` names a ``.npy`` file with the input tensor.

    Example:
        >>> measure("model_int8.tflite", threads=1, runs=20)["median_ms"]  # doctest: +SKIP
        0.031
    """
    from edgecnn.device.runtime import _interpreter_class, resolve_runtime

    _interpreter_class(resolve_runtime(runtime))  # import the runtime first: init time is the model's alone
    rss_before = _rss_mb()
    t0 = time.perf_counter()
    interpreter, name, version = load_interpreter(model_path, num_threads=threads, runtime=runtime)
    init_ms = (time.perf_counter() - t0) * 1e3
    inputs = interpreter.get_input_details()
    for i, detail in enumerate(inputs):
        if input_path and i == 0:
            data = load_input(input_path, detail)
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
    timed_seconds = time.perf_counter() - started  # wall time of the timed runs, loop overhead included
    from edgecnn.device.delegation import interpreter_delegation

    result = {
        "status": "ok",
        "kind": "bench",
        "model": str(model_path),
        "size_bytes": os.path.getsize(model_path),
        "sha256": sha256_file(model_path),
        "runtime": name,
        "runtime_version": version,
        "threads": int(threads),
        "warmup": int(warmup),
        "runs": len(times),
        "timed_seconds": timed_seconds,
        "init_ms": init_ms,
        "first_run_ms": first_ms,
        **_stats(times),
        "peak_rss_mb": _rss_mb(),
        "rss_increase_mb": max(0.0, _rss_mb() - rss_before),
        "input": "random" if not input_path else str(input_path),
        "delegation": interpreter_delegation(interpreter),
        "compat": _compat_summary(model_path, name, version),
        **machine_info(),
    }
    return result


def _compat_summary(model_path, runtime: str, version: str) -> dict:
    """Op-version check against the measured runtime (TF numbering) and tflite_runtime 2.14."""
    from edgecnn.device.compat import compatibility, describe
    from edgecnn.device.flatbuffer import FlatbufferError

    out = {}
    targets = {"tflite_runtime 2.14": "2.14"}
    if runtime in ("tflite_runtime", "tensorflow") and version:
        targets[f"{runtime} {version}"] = version  # LiteRT numbers its releases differently
    for label, target in targets.items():
        try:
            rep = compatibility(model_path, target)
        except FlatbufferError as exc:
            out[label] = {"compatible": None, "note": str(exc)}
            continue
        out[label] = {"compatible": rep["compatible"], "required": rep["required"], "note": describe(rep)}
    return out


def load_input(path, detail: dict) -> np.ndarray:
    """Read a ``.npy`` input for the tensor ``detail``: batch axis added if missing, float
    data quantized for an integer input.

    Example:
        >>> load_input("image.npy", interpreter.get_input_details()[0])  # doctest: +SKIP
    """
    from edgecnn.device.arrays import check_npy
    from edgecnn.device.evaluate import quantize_input

    check_npy(path)  # the header and the declared size first, as for .npz data
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read input {path}: {exc}") from None
    want = tuple(int(d) for d in detail["shape"])
    if data.ndim == len(want) - 1:
        data = data[None]
    if tuple(data.shape) != want:
        raise ValueError(f"input {path} has shape {tuple(data.shape)}, the model expects {want}")
    dtype = np.dtype(detail["dtype"])
    if np.issubdtype(data.dtype, np.floating) and not np.issubdtype(dtype, np.floating):
        return quantize_input(data.astype(np.float32), detail)
    return data.astype(dtype)


def child_command(module: str = "edgecnn.device.bench") -> list:
    """The command line that runs ``module``'s ``_child`` (this module's measurement) in a child process.

    ``python -m`` puts the current directory first on ``sys.path``, so a folder holding an
    ``edgecnn/`` of its own would run that code instead of ours: the child starts with
    ``-P`` (Python 3.11+), or on older Pythons drops that entry before importing anything.

    Example:
        >>> child_command()[1:4]  # doctest: +SKIP
        ['-P', '-m', 'edgecnn.device.bench']
    """
    if sys.version_info >= (3, 11):
        return [sys.executable, "-P", "-m", module]
    code = f"import sys; sys.path.pop(0); from {module} import _child; sys.exit(_child(sys.argv[1:]))"
    return [sys.executable, "-c", code]


def benchmark(
    model_path,
    threads: int = 1,
    warmup: int = DEFAULT_WARMUP,
    runs: int = DEFAULT_RUNS,
    min_time: float = 0.0,
    runtime: str = "auto",
    input_path: str | None = None,
    seed: int = 0,
    timeout: float = 300.0,
) -> dict:
    """Benchmark ``model_path`` in a child process with a ``timeout`` in seconds.

    Returns :func:`measure`'s dict, or ``{"status": "crashed" | "timeout" | "error",
    "error": "..."}`` when the model crashes the runtime, hangs, or cannot be loaded.

    Example:
        >>> benchmark("model_int8.tflite", threads=2, min_time=5.0)["status"]  # doctest: +SKIP
        'ok'
        >>> benchmark("truncated.tflite")["status"]  # doctest: +SKIP
        'error'
    """

    def failed(status: str, error: str) -> dict:
        return {
            "status": status,
            "kind": "bench",
            "model": str(model_path),
            "threads": int(threads),
            "error": error,
            **machine_info(),
        }

    try:
        check_model_file(model_path)
    except ModelLoadError as exc:
        return failed("error", str(exc))
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
    return run_in_child(
        "edgecnn.device.bench",
        args,
        timeout,
        failed,
        timed_out=f"no result within {timeout:g} s (the runtime hung or the model is too slow)",
        crashed="running this model",
    )


def run_in_child(module: str, args: dict, timeout, failed, timed_out: str, crashed: str) -> dict:
    """Run ``module``'s ``_child`` on ``args`` in a fresh process and return its JSON result, or
    ``failed(status, error)`` when it timed out, crashed (a signal: the runtime died in native
    code) or reported an error line. A child keeps a native crash or hang away from the caller."""
    cmd = [*child_command(module), json.dumps(args)]
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(
            filter(None, [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH")])
        ),
    )
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return failed("timeout", timed_out)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode == 0 and lines:
        return json.loads(lines[-1])
    if proc.returncode < 0:
        import signal

        sig = signal.Signals(-proc.returncode).name
        return failed("crashed", f"the runtime crashed ({sig}) {crashed}")
    return failed("error", (proc.stderr.strip().splitlines() or ["unknown error"])[-1])


def benchmark_threads(model_path, threads=(1,), progress=None, **kwargs) -> list:
    """:func:`benchmark` once per thread count; ``progress(i, n, threads)`` is called before each.

    Example:
        >>> [r["median_ms"] for r in benchmark_threads("m.tflite", threads=[1, 2], runs=50)]  # doctest: +SKIP
        [1.21, 0.74]
    """
    threads = list(threads)
    results = []
    for i, n in enumerate(threads):
        if progress:
            progress(i, len(threads), n)
        results.append(benchmark(model_path, threads=n, **kwargs))
    return results


def _load_failure_hint(model_path, runtime: str) -> str:
    """When an old runtime refuses a model, say which op versions it lacks."""
    from edgecnn.device.compat import compatibility, describe
    from edgecnn.device.runtime import RuntimeUnavailable, resolve_runtime

    try:
        name = resolve_runtime(runtime)
        version = available_runtimes().get(name)
        if name == "litert" or not version:
            return ""
        rep = compatibility(model_path, version)
    except (RuntimeUnavailable, ValueError, OSError):
        return ""
    return f" ({name} {version}: {describe(rep)})" if rep["compatible"] is False else ""


def run_child(measure_fn, argv, hint=None) -> int:
    """A child process's body: ``measure_fn(**json argv[0])`` printed as JSON on stdout, exit 0;
    any failure one line on stderr (plus ``hint(args)``), exit 1, for the parent to report."""
    args = json.loads(argv[0])
    try:
        result = measure_fn(**args)
    except Exception as exc:  # reported to the parent as one line
        message = f"{exc.__class__.__name__}: {exc}{hint(args) if hint else ''}"
        print(message.replace("\n", " "), file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


def _child(argv) -> int:
    return run_child(
        measure, argv, lambda args: _load_failure_hint(args.get("model_path"), args.get("runtime", "auto"))
    )


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))


__all__ = [
    "DEFAULT_RUNS",
    "DEFAULT_WARMUP",
    "available_runtimes",
    "benchmark",
    "benchmark_threads",
    "CPU_FEATURES",
    "INT8_DOT_FEATURES",
    "cpu_features",
    "cpu_line",
    "cpu_name",
    "has_int8_dot",
    "device_name",
    "load_input",
    "machine_info",
    "measure",
    "random_input",
]
