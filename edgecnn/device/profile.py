"""Time per operator and per delegate partition, from LiteRT's own profiler.

The Python ``Interpreter`` of every TFLite runtime has no op profiler, but LiteRT's
``libLiteRt.so`` (shipped inside ``ai-edge-litert``) exports its C API profiler
(``litert/c/litert_profiler.h``). This module drives that API with :mod:`ctypes`: it
builds a ``CompiledModel`` on the CPU accelerator with the runtime option
``enable_profiling = true`` (the TOML payload ``LrtSetRuntimeOptionsEnableProfiling``
writes, identifier ``runtime_options_string``) and ``num_threads`` in the ``xnnpack``
CPU options, runs it ``warmup`` times unprofiled (XNNPACK packs its weights on the first
run), then ``runs`` times with the profiler on, and reads every event back
(``LiteRtGetProfilerEvents``):

- ``OPERATOR_INVOKE_EVENT``: an operator on TFLite's default (built-in) kernels, with its
  node index: these are the ops XNNPACK declined (``QUANTIZE``, an int8 ``AVERAGE_POOL_2D``...);
- ``DELEGATE_[PROFILED_]OPERATOR_INVOKE_EVENT``: one XNNPACK operator inside a delegate
  partition (``Convolution (NHWC, QC8) IGEMM``...), numbered from 0 in each partition;
- the ``Invoke`` event: the interpreter's whole invoke, the figure the per-op sum is
  compared with (the gap is the interpreter's and the delegate's own dispatch).

Each XNNPACK partition is matched with the model's operators between two default-kernel
ones (a chain of layers, the CNN case): the partition table lists its TFLite ops
(``CONV_2D x2, TANH``). When every partition holds one XNNPACK operator per TFLite op, in
order (a ``Static Reshape`` XNNPACK inserts of its own aside, :func:`align_ops`), the per-op
table names them by TFLite op too and gives each its TFLite node index (``node``, as a
default-kernel op has; :mod:`edgecnn.report.explain` joins on it); otherwise every row keeps its XNNPACK name
(``Convolution (NHWC, QC8) IGEMM``). Times come in whole microseconds per
op, so on a model of many sub-microsecond ops the per-op sum falls short of the invoke;
runs preempted on a busy machine (invoke over :data:`OUTLIER_FACTOR` times the median)
are left out and counted.

numpy, ctypes and ``ai-edge-litert`` only (no TensorFlow), so it runs on the device.
``tflite_runtime`` and TensorFlow's ``tf.lite`` have no such API: :func:`why_no_profiler`
says so in one line. XNNPACK: https://arxiv.org/abs/2104.05158.

Example:
    >>> p = profile("model_int8.tflite", threads=1, runs=50)  # doctest: +SKIP
    >>> [(r["op"], round(r["ms"], 3)) for r in p["op_types"]][:2]  # doctest: +SKIP
    [('CONV_2D', 0.112), ('AVERAGE_POOL_2D', 0.017)]
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import struct
import sys
import time
from pathlib import Path

import numpy as np

from edgecnn.device.profile_events import (  # noqa: F401  (part of this module's API)
    DEFAULT_KERNELS,
    OUTLIER_FACTOR,
    XNNPACK,
    align_ops,
    split_runs,
    summarize,
)
from edgecnn.device.tables import Column, format_table, save_table
from edgecnn.errors import UserError

# LiteRtElementType follows TfLiteType.
_ELEMENT_TYPES = {
    1: np.float32,
    2: np.int32,
    3: np.uint8,
    4: np.int64,
    6: np.bool_,
    7: np.int16,
    9: np.int8,
    10: np.float16,
    11: np.float64,
}
_KLITERT_HW_CPU = 1
_LOCK_WRITE = 1
API = "LiteRT CompiledModel C API (libLiteRt.so)"
_SYMBOLS = ("LiteRtCreateProfiler", "LiteRtCompiledModelGetProfiler", "LiteRtGetProfilerEvents")


class ProfilerUnavailable(UserError, RuntimeError):
    """Per-op profiling is not possible with the runtime in use (one line, exit 2)."""


class _Mem(ctypes.Structure):
    _fields_ = [("total", ctypes.c_size_t), ("in_use", ctypes.c_size_t), ("private", ctypes.c_size_t)]


class _Event(ctypes.Structure):
    """``ProfiledEventData`` (unchanged from LiteRT 2.1 to 2.3)."""

    _fields_ = [
        ("tag", ctypes.c_char_p),
        ("event_type", ctypes.c_int),
        ("start_us", ctypes.c_uint64),
        ("elapsed_us", ctypes.c_uint64),
        ("begin_mem", _Mem),
        ("end_mem", _Mem),
        ("metadata1", ctypes.c_uint64),
        ("metadata2", ctypes.c_uint64),
        ("source", ctypes.c_int),
    ]


def litert_library() -> Path | None:
    """``libLiteRt.so`` of the installed ``ai-edge-litert`` (found without importing it), or ``None``.

    Example:
        >>> litert_library()  # doctest: +SKIP
        PosixPath('.../site-packages/ai_edge_litert/libLiteRt.so')
    """
    try:
        spec = importlib.util.find_spec("ai_edge_litert")
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        for name in ("libLiteRt.so", "libLiteRt.dylib", "LiteRt.dll"):
            if (Path(folder) / name).is_file():
                return Path(folder) / name
    return None


def why_no_profiler(runtime: str = "auto") -> str | None:
    """``None`` when per-op profiling works with ``runtime`` here, else the one-line reason.

    Example:
        >>> why_no_profiler("tflite_runtime")  # doctest: +SKIP
        "per-op profiling needs LiteRT's C API (ai-edge-litert's libLiteRt.so); ..."
    """
    from edgecnn.device.runtime import available_runtimes, resolve_runtime

    name = resolve_runtime(runtime)
    if name != "litert":
        version = available_runtimes().get(name, "")
        return (
            f"{name} {version} cannot profile per op (its Python API has no profiler); per-op profiling uses "
            "LiteRT's C API: pip install ai-edge-litert and use --runtime litert (or auto)"
        )
    path = litert_library()
    if path is None:
        return "ai-edge-litert is installed without libLiteRt.so, whose C API profiles per op"
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as exc:
        return f"cannot load {path.name} for per-op profiling: {exc}"
    missing = [s for s in _SYMBOLS if not hasattr(lib, s)]
    if missing:
        return f"{path.name} of this ai-edge-litert has no profiler API ({', '.join(missing)} missing)"
    return None


class _LiteRt:
    """The few C calls a profiled run needs; every handle is destroyed in :meth:`close`."""

    def __init__(self, path: Path):
        self.lib = ctypes.CDLL(str(path))
        self.libc = ctypes.CDLL(None)
        self.libc.strdup.restype = ctypes.c_void_p
        self.libc.strdup.argtypes = [ctypes.c_char_p]
        self._free = ctypes.cast(self.libc.free, ctypes.c_void_p)
        self._cleanup = []

    def call(self, name: str, *args) -> None:
        status = getattr(self.lib, name)(*args)
        if status != 0:
            raise RuntimeError(f"{name} failed (LiteRtStatus {status})")

    def handle(self, name: str, *args, destroy: str | None = None) -> ctypes.c_void_p:
        out = ctypes.c_void_p()
        self.call(name, *args, ctypes.byref(out))
        if destroy and out.value:
            fn = getattr(self.lib, destroy)
            fn.argtypes = [ctypes.c_void_p]
            self._cleanup.append(lambda fn=fn, h=out: fn(h))
        return out

    def opaque_options(self, options, identifier: str, toml: str) -> None:
        """One TOML payload for the options (owned by LiteRT from then on, freed with ``free``)."""
        payload = self.libc.strdup(toml.encode())
        create = self.lib.LiteRtCreateOpaqueOptions
        create.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)]
        out = ctypes.c_void_p()
        status = create(identifier.encode(), payload, self._free, ctypes.byref(out))
        if status != 0:
            self.libc.free(ctypes.c_void_p(payload))
            raise RuntimeError(f"LiteRtCreateOpaqueOptions failed (LiteRtStatus {status})")
        self.lib.LiteRtAddOpaqueOptions.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        self.call("LiteRtAddOpaqueOptions", options, out)

    def close(self) -> None:
        while self._cleanup:
            self._cleanup.pop()()


def _tensor_buffers(rt: _LiteRt, env, model, compiled, signature, kind: str, seed: int) -> list:
    """Managed host buffers for the signature's inputs or outputs; inputs get seeded random data."""
    lib, size_t = rt.lib, ctypes.c_size_t
    n = size_t()
    rt.call(f"LiteRtGetNumSignature{kind}s", signature, ctypes.byref(n))
    buffers = []
    for i in range(n.value):
        tensor = rt.handle(f"LiteRtGetSignature{kind}TensorByIndex", signature, size_t(i))
        ranked = ctypes.create_string_buffer(512)  # LiteRtRankedTensorType: element type, rank, 8 dims, 8 strides
        rt.call("LiteRtGetRankedTensorType", tensor, ranked)
        element, bits, *dims = struct.unpack_from("<iI8i", ranked.raw)
        rank = bits & 0x7F
        dims = [max(1, d) for d in dims[:rank]] + dims[rank:]  # a dynamic batch (-1) runs as 1, as the bench does
        struct.pack_into("<8i", ranked, 8, *dims)
        req = rt.handle(f"LiteRtGetCompiledModel{kind}BufferRequirements", compiled, size_t(0), size_t(i))
        lib.LiteRtCreateManagedTensorBufferFromRequirements.argtypes = [ctypes.c_void_p] * 3 + [
            ctypes.POINTER(ctypes.c_void_p)
        ]
        buf = rt.handle(
            "LiteRtCreateManagedTensorBufferFromRequirements", env, ranked, req, destroy="LiteRtDestroyTensorBuffer"
        )
        if kind == "Input":
            _fill(rt, buf, element, dims[:rank], seed + i)
        buffers.append(buf)
    return buffers


def _fill(rt: _LiteRt, buf, element: int, shape: list, seed: int) -> None:
    from edgecnn.device.bench import random_input

    dtype = _ELEMENT_TYPES.get(element)
    size = ctypes.c_size_t()
    rt.call("LiteRtGetTensorBufferSize", buf, ctypes.byref(size))
    addr = ctypes.c_void_p()
    rt.call("LiteRtLockTensorBuffer", buf, ctypes.byref(addr), _LOCK_WRITE)
    try:
        if dtype is None:
            data = np.zeros(size.value, np.uint8).tobytes()
        else:
            data = random_input({"shape": shape, "dtype": dtype}, seed).tobytes()
        ctypes.memmove(addr, data, min(len(data), size.value))
    finally:
        rt.call("LiteRtUnlockTensorBuffer", buf)


def _events(rt: _LiteRt, profiler) -> list:
    count = ctypes.c_int()
    rt.call("LiteRtGetNumProfilerEvents", profiler, ctypes.byref(count))
    if count.value <= 0:
        return []
    events = (_Event * count.value)()
    rt.call("LiteRtGetProfilerEvents", profiler, count, events)
    return [
        (e.tag.decode("utf-8", "replace") if e.tag else "", int(e.event_type), int(e.elapsed_us), int(e.metadata1))
        for e in events
    ]


def measure_profile(model_path, threads: int = 1, warmup: int = 5, runs: int = 50, seed: int = 0) -> dict:
    """Profile ``model_path`` in this process (see :func:`profile` for the safe way).

    Example:
        >>> measure_profile("model_int8.tflite", runs=20)["coverage"]  # doctest: +SKIP
        0.93
    """
    from edgecnn._io import sha256_file
    from edgecnn.device.bench import machine_info
    from edgecnn.device.runtime import available_runtimes, check_model_file

    check_model_file(model_path)
    reason = why_no_profiler("litert")
    if reason:
        raise ProfilerUnavailable(reason)
    events, unprofiled, profiled = _profiled_runs(model_path, threads, warmup, runs, seed)
    summary = summarize(events, _model_ops(model_path))
    return {
        "status": "ok",
        "kind": "profile",
        "model": str(model_path),
        "size_bytes": os.path.getsize(model_path),
        "sha256": sha256_file(model_path),
        "api": API,
        "runtime": "litert",
        "runtime_version": available_runtimes().get("litert", "unknown"),
        "threads": int(threads),
        "warmup": int(max(1, warmup)),
        "runs": len(profiled),
        "run_median_ms": float(np.median(unprofiled)),
        "run_median_profiled_ms": float(np.median(profiled)),
        "input": "random",
        **summary,
        **machine_info(),
    }


def _profiled_runs(model_path, threads: int, warmup: int, runs: int, seed: int) -> tuple:
    """``(events, unprofiled ms, profiled ms)``: a ``CompiledModel`` on the CPU with profiling on,
    run ``warmup`` times, ``runs`` times unprofiled, then ``runs`` times profiled."""
    rt = _LiteRt(litert_library())
    try:
        env = rt.handle("LiteRtCreateEnvironment", 0, None, destroy="LiteRtDestroyEnvironment")
        rt.lib.LiteRtCreateModelFromFile.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
        model = rt.handle("LiteRtCreateModelFromFile", env, str(model_path).encode(), destroy="LiteRtDestroyModel")
        options = rt.handle("LiteRtCreateOptions", destroy="LiteRtDestroyOptions")
        rt.call("LiteRtSetOptionsHardwareAccelerators", options, _KLITERT_HW_CPU)
        rt.opaque_options(options, "runtime_options_string", "enable_profiling = true\n")
        rt.opaque_options(options, "xnnpack", f"num_threads = {int(threads)}\n")
        rt.lib.LiteRtCreateCompiledModel.argtypes = [ctypes.c_void_p] * 3 + [ctypes.POINTER(ctypes.c_void_p)]
        compiled = rt.handle("LiteRtCreateCompiledModel", env, model, options, destroy="LiteRtDestroyCompiledModel")
        signature = rt.handle("LiteRtGetModelSignature", model, ctypes.c_size_t(0))
        inputs = _tensor_buffers(rt, env, model, compiled, signature, "Input", seed)
        outputs = _tensor_buffers(rt, env, model, compiled, signature, "Output", seed)
        in_arr = (ctypes.c_void_p * len(inputs))(*[b.value for b in inputs])
        out_arr = (ctypes.c_void_p * len(outputs))(*[b.value for b in outputs])
        run = rt.lib.LiteRtRunCompiledModel
        run.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_size_t,
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_void_p,
        ]

        def invoke():
            status = run(compiled, 0, len(inputs), in_arr, len(outputs), out_arr)
            if status != 0:
                raise RuntimeError(f"LiteRtRunCompiledModel failed (LiteRtStatus {status})")

        for _ in range(max(1, warmup)):  # the first run packs XNNPACK's weights: never profiled
            invoke()
        profiler = rt.handle("LiteRtCompiledModelGetProfiler", compiled)
        if not profiler.value:
            raise RuntimeError("the compiled model has no profiler (enable_profiling was not taken)")
        unprofiled = []
        for _ in range(max(1, runs)):
            t0 = time.perf_counter()
            invoke()
            unprofiled.append((time.perf_counter() - t0) * 1e3)
        rt.call("LiteRtResetProfiler", profiler)
        rt.call("LiteRtStartProfiler", profiler)
        profiled = []
        for _ in range(max(1, runs)):
            t0 = time.perf_counter()
            invoke()
            profiled.append((time.perf_counter() - t0) * 1e3)
        rt.call("LiteRtStopProfiler", profiler)
        events = _events(rt, profiler)
    finally:
        rt.close()
    return events, unprofiled, profiled


def _model_ops(model_path) -> list | None:
    """The model's op names in node order (one subgraph), to name XNNPACK's operators by."""
    from edgecnn.device.flatbuffer import FlatbufferError, read_model

    try:
        info = read_model(model_path)
    except FlatbufferError:
        return None
    return [op.name for op in info.operators] if info.subgraphs == 1 else None


def profile(
    model_path, threads: int = 1, warmup: int = 5, runs: int = 50, seed: int = 0, timeout: float = 300.0
) -> dict:
    """:func:`measure_profile` in a child process with a ``timeout`` in seconds.

    Returns its dict, or ``{"status": "crashed" | "timeout" | "error", "error": ...}``.

    Example:
        >>> p = profile("model_int8.tflite", threads=1, runs=50)  # doctest: +SKIP
        >>> p["invoke_ms"], p["ops_ms"], p["partitions"][0]["partition"]  # doctest: +SKIP
        (0.118, 0.109, 'XNNPACK partition 1')
    """
    from edgecnn.device.bench import run_in_child

    def failed(status: str, error: str) -> dict:
        return {"status": status, "kind": "profile", "model": str(model_path), "threads": int(threads), "error": error}

    args = {"model_path": str(model_path), "threads": threads, "warmup": warmup, "runs": runs, "seed": seed}
    return run_in_child(
        "edgecnn.device.profile",
        args,
        timeout,
        failed,
        timed_out=f"no profile within {timeout:g} s",
        crashed="while profiling",
    )


# --- Tables -----------------------------------------------------------------------------------

# The keys of a profile that the bench JSON nests under "profile" (the machine and the model
# are the bench result's own).
PROFILE_KEYS = (
    "status", "error", "api", "runtime", "runtime_version", "threads", "warmup", "runs", "profiled_runs",
    "outlier_runs", "run_median_ms", "run_median_profiled_ms", "input", "invoke_ms", "invoke_median_ms", "ops_ms",
    "coverage",
    "xnnpack_ms", "default_kernels_ms", "litert_overhead_ms", "xnnpack_ops_named_by", "op_types", "partitions",
    "nodes",
)  # fmt: skip


def _columns():
    ms = Column("ms", "ms/run", lambda v: f"{v:.4f}")
    pct = Column("pct", "% invoke", lambda v: f"{v:.1f}")
    ops = [Column("op", "op type", str, "<"), Column("kernel", "kernel", str, "<"), Column("count", "count"), ms, pct]
    parts = [
        Column("partition", "partition", str, "<"),
        Column("ops", "ops"),
        ms,
        pct,
        Column("tflite_ops", "TFLite ops", str, "<"),
        Column("op_list", "kernels run", str, "<"),
    ]
    return ops, parts


def summary_line(p: dict) -> str:
    """``'invoke 0.118 ms/run; per-op sum 0.101 ms (86% of it): XNNPACK 0.088, default kernels 0.013'``

    Example:
        >>> summary_line({"invoke_ms": 0.2, "ops_ms": 0.18, "coverage": 0.9, "xnnpack_ms": 0.15,
        ...               "default_kernels_ms": 0.03, "runs": 50, "outlier_runs": 0})
        'invoke 0.2000 ms/run; per-op sum 0.1800 ms (90% of it): XNNPACK 0.1500 ms, default kernels 0.0300 ms'
    """
    cover = f"{100 * p['coverage']:.0f}% of it" if p.get("coverage") is not None else "no invoke event"
    median = f" (median {p['invoke_median_ms']:.4f})" if p.get("invoke_median_ms") is not None else ""
    line = (
        f"invoke {p['invoke_ms']:.4f} ms/run{median}; per-op sum {p['ops_ms']:.4f} ms ({cover}): "
        f"XNNPACK {p['xnnpack_ms']:.4f} ms, default kernels {p['default_kernels_ms']:.4f} ms"
    )
    if p.get("outlier_runs"):
        line += f"; {p['outlier_runs']} of {p.get('profiled_runs', p['runs'])} runs preempted, left out"
    return line


def format_profile(p: dict) -> str:
    """The per-op-type and per-partition tables of a profile, for the terminal.

    Example:
        >>> print(format_profile(profile("model_int8.tflite")))  # doctest: +SKIP
    """
    ops, parts = _columns()
    head = f"per-op profile ({p.get('api', API)}, {p['threads']} thread(s), {p['runs']} runs"
    if p.get("run_median_ms") is not None:
        head += f"; run median {p['run_median_ms']:.4f} ms unprofiled, {p['run_median_profiled_ms']:.4f} ms profiled"
    head += ")"
    return "\n".join(
        [head, summary_line(p), "", format_table(p["op_types"], ops), "", format_table(p["partitions"], parts)]
    )


def save_profile(p: dict, stem, header=()) -> dict:
    """Write ``<stem>_ops.{md,csv,json}`` and ``<stem>_partitions.{md,csv,json}``; returns their paths.

    ``header``: lines above each Markdown table (the CPU line, the model).

    Example:
        >>> save_profile(p, "bench_profile", header=[cpu_line(p)])  # doctest: +SKIP
    """
    ops, parts = _columns()
    header = [*header, summary_line(p)]
    stem = str(stem)
    return {
        "ops": save_table(p["op_types"], ops, stem + "_ops", "Time per op type", header),
        "partitions": save_table(p["partitions"], parts, stem + "_partitions", "Time per partition", header),
    }


def _child(argv) -> int:
    from edgecnn.device.bench import run_child

    return run_child(measure_profile, argv)


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))


__all__ = [
    "API",
    "align_ops",
    "PROFILE_KEYS",
    "ProfilerUnavailable",
    "format_profile",
    "litert_library",
    "measure_profile",
    "profile",
    "save_profile",
    "summarize",
    "summary_line",
    "why_no_profiler",
]
