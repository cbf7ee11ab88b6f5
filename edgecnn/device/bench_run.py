"""What ``edgecnn-device bench`` and ``edgecnn bench`` do: measure each thread count, print, save.

The measuring itself is :mod:`edgecnn.device.bench` (a child process per thread count); this
module checks the inputs before any work, prints the results, writes the JSON (and, with
``--profile``, the per-op tables beside it) and turns a failed measurement into one line.

Example:
    >>> run_bench("model_int8.tflite", threads=(1, 2), runs=50)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os

import click

from edgecnn.device.bench import DEFAULT_RUNS, DEFAULT_WARMUP
from edgecnn.errors import UserError


def write_result(path, obj):
    """Write the result file; a failure is one line (the result was printed before)."""
    from edgecnn._io import write_json

    try:
        write_json(path, obj)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UserError(f"cannot write {path}: {reason}; the result is printed above") from None


def run_bench(
    model_path,
    threads=(),
    warmup=DEFAULT_WARMUP,
    runs=DEFAULT_RUNS,
    min_time=0.0,
    runtime="auto",
    input_path=None,
    timeout=300.0,
    device_name=None,
    as_json=False,
    output=None,
    echo=click.echo,
    annotate=None,
    profile=False,
) -> list:
    """What the ``bench`` commands do: benchmark once per thread count, print, save.

    ``annotate(results)`` may add to the results before they are printed and saved
    (``edgecnn bench`` adds the GPU-delegate check, which needs TensorFlow). ``profile``
    adds each thread count's per-op profile (:mod:`edgecnn.device.profile`) under the
    result's ``"profile"`` key, prints its tables and, with ``output``, saves them beside it.

    Example:
        >>> run_bench("model_int8.tflite", threads=(1, 2), runs=50)  # doctest: +SKIP
    """
    from edgecnn.device.bench import benchmark_threads

    if device_name:
        os.environ["EDGECNN_DEVICE"] = device_name
    _check_before_work(model_path, runtime, input_path, profile)
    threads = list(threads) or [1]

    def progress(i, n, t):
        if n > 1 and not as_json:
            click.echo(f"[{i + 1}/{n}] {t} thread(s)...", err=True)

    results = benchmark_threads(
        model_path,
        threads=threads,
        progress=progress,
        warmup=warmup,
        runs=runs,
        min_time=min_time,
        runtime=runtime,
        input_path=input_path,
        timeout=timeout,
    )
    if profile:
        _add_profiles(results, model_path, warmup, runs, timeout, as_json)
    if annotate is not None:
        annotate(results)
    payload = results[0] if len(results) == 1 else results
    # Printed first, written after: a file that cannot be written never loses a measurement.
    if as_json:
        echo(json.dumps(payload, indent=2))
    else:
        _echo_results(results, echo, profile)
    if output:
        _save(payload, results, output, profile, echo if not as_json else None)
    _raise_failures(model_path, results)
    return results


def _check_before_work(model_path, runtime: str, input_path, profile: bool) -> None:
    """A runtime that is not installed or has no profiler, a missing or corrupt model, an input
    over the budget: one clear line each, before any child process starts."""
    from edgecnn.device.runtime import check_model_file, resolve_runtime

    resolve_runtime(runtime)
    if profile:
        from edgecnn.device.profile import ProfilerUnavailable, why_no_profiler

        reason = why_no_profiler(runtime)
        if reason:
            raise ProfilerUnavailable(reason)
    check_model_file(model_path)
    if input_path and not os.path.isfile(input_path):
        raise UserError(f"input file {input_path} does not exist")
    if input_path:
        from edgecnn.device.arrays import check_npy

        check_npy(input_path)


def _echo_results(results: list, echo, profile: bool) -> None:
    """The terminal lines: model, runtime and machine, one line per thread count, delegation,
    the op-version checks and, with ``profile``, the per-op tables."""
    from edgecnn.device.bench import cpu_line
    from edgecnn.device.delegation import describe as describe_delegation

    ok = [r for r in results if r.get("status") == "ok"]
    if ok:
        r = ok[0]
        echo(f"{r['model']}  ({r['size_bytes']:,} bytes)  {r['runtime']} {r['runtime_version']}  on {r['device']}")
        echo("  " + cpu_line(r))
    for r in ok:
        echo(
            f"  {r['threads']} thread(s): init {r['init_ms']:.2f} ms, first run {r['first_run_ms']:.3f} ms, "
            f"{r['runs']} runs: median {r['median_ms']:.3f} ms, p90 {r['p90_ms']:.3f}, p99 {r['p99_ms']:.3f}, "
            f"mean {r['mean_ms']:.3f} +- {r['std_ms']:.3f}, min {r['min_ms']:.3f}; "
            f"peak memory {r['peak_rss_mb']:.1f} MB"
        )
    if ok:
        echo("  " + describe_delegation(ok[0]["delegation"]))
        for label, c in ok[0].get("compat", {}).items():
            echo(f"  {label}: {c['note']}")
    if profile:
        _echo_profiles(ok, echo)


def _save(payload, results: list, output, profile: bool, echo) -> None:
    """The JSON at ``output`` and, with ``profile``, the profile tables beside it; ``echo``
    (None under ``--json``) names what was written."""
    write_result(output, payload)
    written = [output] + (_save_profiles(results, output) if profile else [])
    for path in written if echo is not None else []:
        echo(f"  written: {path}")


def _raise_failures(model_path, results: list) -> None:
    failed = [r for r in results if r.get("status") != "ok"]
    if failed:
        r = failed[0]
        raise UserError(f"{model_path}: {r.get('status')} with {r.get('threads')} thread(s): {r.get('error')}")
    bad = [r["profile"] for r in results if r.get("profile", {}).get("status", "ok") != "ok"]
    if bad:
        raise UserError(f"{model_path}: profile {bad[0].get('status')}: {bad[0].get('error')}")


def _add_profiles(results: list, model_path, warmup, runs, timeout, quiet: bool) -> None:
    """Each measured thread count's per-op profile, nested under ``"profile"`` (the bench
    JSON stays a bench JSON: ``edgecnn report`` merges it as before)."""
    from edgecnn.device.profile import PROFILE_KEYS
    from edgecnn.device.profile import profile as run_profile

    ok = [r for r in results if r.get("status") == "ok"]
    for i, r in enumerate(ok):
        if not quiet:
            click.echo(f"[profile {i + 1}/{len(ok)}] {r['threads']} thread(s), {max(1, runs)} runs...", err=True)
        p = run_profile(model_path, threads=r["threads"], warmup=warmup, runs=runs, timeout=timeout)
        r["profile"] = {k: p[k] for k in PROFILE_KEYS if k in p}


def _echo_profiles(ok: list, echo) -> None:
    from edgecnn.device.profile import format_profile

    for r in ok:
        p = r.get("profile") or {}
        echo("")
        if p.get("status") != "ok":
            echo(f"  profile, {r['threads']} thread(s): {p.get('status')}: {p.get('error')}")
            continue
        echo("\n".join("  " + line if line else "" for line in format_profile(p).splitlines()))


def _save_profiles(results: list, output) -> list:
    """``<output stem>_profile[_<n>t]_ops.*`` and ``..._partitions.*`` (Markdown, CSV, JSON)."""
    from pathlib import Path

    from edgecnn.device.bench import cpu_line
    from edgecnn.device.profile import save_profile

    ok = [r for r in results if r.get("profile", {}).get("status") == "ok"]
    paths = []
    for r in ok:
        tail = f"_{r['threads']}t" if len(ok) > 1 else ""
        stem = Path(output).with_suffix("")
        header = [
            cpu_line(r),
            f"{Path(r['model']).name} ({r['size_bytes']:,} bytes), {r['runtime']} "
            f"{r['runtime_version']}, {r['threads']} thread(s), {r['profile']['runs']} runs on {r['device']}",
        ]
        try:
            saved = save_profile(r["profile"], f"{stem}_profile{tail}", header)
        except OSError as exc:
            raise UserError(f"cannot write the profile tables beside {output}: {exc.strerror or exc}") from None
        paths += [saved[t]["markdown"] for t in ("ops", "partitions")]
    return paths
