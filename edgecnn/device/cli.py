"""``edgecnn-device``: benchmark, evaluate and run ``.tflite`` files on the device itself.

Needs numpy, Pillow, click and a TFLite runtime (``ai-edge-litert`` or ``tflite-runtime``),
never TensorFlow: ``pip install "edgecnn[device]"`` on a Raspberry Pi or under Termux.
It writes the same JSON as ``edgecnn bench --json`` and ``edgecnn eval --json``,
labelled with the device's name (``--device-name``, ``$EDGECNN_DEVICE`` or the host
name), CPU and runtime version; ``edgecnn report`` merges those files with the runs.

Example:
    $ edgecnn-device bench model_int8.tflite --threads 1 --threads 4 -o pi4-int8.json
    $ edgecnn-device eval model_int8.tflite --data test_images/ -o pi4-int8-eval.json
    $ edgecnn-device predict model_int8.tflite shot.jpg --top-k 3
"""

from __future__ import annotations

import json
import os
import sys

import click

from edgecnn.device.bench import DEFAULT_RUNS, DEFAULT_WARMUP
from edgecnn.device.runtime import RUNTIMES
from edgecnn.errors import UserError, usage_line

RUNTIME_CHOICES = ["auto", *RUNTIMES]


class DeviceGroup(click.Group):
    """User mistakes (every :class:`UserError`, the device's load and image errors included)
    become one line on stderr and exit code 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except click.UsageError as exc:  # a bad flag value: one line too, not click's usage block
            line = usage_line(exc)
            if line is None:
                raise
            click.echo(line, err=True)
            sys.exit(2)


def bench_options(f):
    """The flags of ``bench`` (shared by ``edgecnn bench`` and ``edgecnn-device bench``).

    Example:
        >>> @click.command()
        ... @bench_options
        ... def my_bench(**flags): run_bench(**flags)
    """
    options = [
        click.argument("model_path", metavar="MODEL.tflite"),
        click.option(
            "--threads",
            type=click.IntRange(1, 256),
            multiple=True,
            help="Interpreter threads; repeat for several (--threads 1 --threads 4). Default 1.",
        ),
        click.option(
            "--warmup", type=click.IntRange(0), default=DEFAULT_WARMUP, show_default=True, help="Untimed runs first."
        ),
        click.option(
            "--runs", type=click.IntRange(1), default=DEFAULT_RUNS, show_default=True, help="Timed runs (at least)."
        ),
        click.option(
            "--min-time",
            type=click.FloatRange(0),
            default=0.0,
            show_default=True,
            help="Keep timing at least this long (s).",
        ),
        click.option("--runtime", type=click.Choice(RUNTIME_CHOICES), default="auto", show_default=True),
        click.option(
            "--input",
            "input_path",
            type=click.Path(dir_okay=False),
            default=None,
            help="A .npy with the input tensor (default: seeded random data).",
        ),
        click.option(
            "--timeout", type=float, default=300, show_default=True, help="Seconds before a run counts as hung."
        ),
        click.option(
            "--device-name", default=None, help="Label for the results (default: $EDGECNN_DEVICE or host name)."
        ),
        click.option(
            "--profile",
            is_flag=True,
            help="Also time every op (LiteRT's profiler, --runs runs, random input): per op type and per XNNPACK "
            "partition / default-kernel op; with -o FILE, tables in FILE_profile_ops.* and FILE_profile_partitions.*.",
        ),
        click.option("--json", "as_json", is_flag=True, help="Print the result(s) as JSON."),
        click.option(
            "-o", "--output", type=click.Path(dir_okay=False), default=None, help="Also write the JSON to this file."
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _write_json(path, obj):
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
    from edgecnn.device.bench import benchmark_threads, cpu_line
    from edgecnn.device.runtime import check_model_file, resolve_runtime

    if device_name:
        os.environ["EDGECNN_DEVICE"] = device_name
    resolve_runtime(runtime)  # a runtime that is not installed: one clear line, before any work
    if profile:
        from edgecnn.device.profile import ProfilerUnavailable, why_no_profiler

        reason = why_no_profiler(runtime)  # a runtime without a profiler: one line, before any work
        if reason:
            raise ProfilerUnavailable(reason)
    check_model_file(model_path)
    if input_path and not os.path.isfile(input_path):
        raise UserError(f"input file {input_path} does not exist")
    if input_path:
        from edgecnn.device.arrays import check_npy

        check_npy(input_path)  # over the budget: one line, before any child process starts
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
    failed = [r for r in results if r.get("status") != "ok"]
    if not as_json:
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
    if output:
        _write_json(output, payload)
        if not as_json:
            echo(f"  written: {output}")
        if profile:
            for path in _save_profiles(results, output):
                if not as_json:
                    echo(f"  written: {path}")
    if failed:
        r = failed[0]
        raise UserError(f"{model_path}: {r.get('status')} with {r.get('threads')} thread(s): {r.get('error')}")
    bad = [r["profile"] for r in results if r.get("profile", {}).get("status", "ok") != "ok"]
    if bad:
        raise UserError(f"{model_path}: profile {bad[0].get('status')}: {bad[0].get('error')}")
    return results


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


@click.group(cls=DeviceGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def main():
    """Measure .tflite models on this device (numpy + a TFLite runtime, no TensorFlow).

    \b
      edgecnn-device bench model.tflite --threads 1 --threads 4 -o pi.json
      edgecnn-device eval model.tflite --data test_images/ -o pi-eval.json
      edgecnn-device predict model.tflite photo.jpg --top-k 3
    Copy the JSON back and merge it: edgecnn report runs/* pi.json
    """


@main.command()
@bench_options
def bench(**flags):
    """Latency of MODEL.tflite (median, p90, p99, ...), each measurement in a child process."""
    run_bench(**flags)


def eval_options(f):
    """Flags shared by both ``eval`` commands.

    Example:
        >>> @click.command()
        ... @eval_options
        ... def my_eval(**flags): ...
    """
    options = [
        click.argument("model_path", metavar="MODEL.tflite"),
        click.option(
            "--preprocess",
            "preprocess_path",
            type=click.Path(dir_okay=False),
            default=None,
            help="preprocess.json of the run (default: the one beside the model, else pixels/127.5-1).",
        ),
        click.option("--threads", type=click.IntRange(1, 256), default=1, show_default=True),
        click.option("--runtime", type=click.Choice(RUNTIME_CHOICES), default="auto", show_default=True),
        click.option(
            "--device-name", default=None, help="Label for the results (default: $EDGECNN_DEVICE or host name)."
        ),
        click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON."),
        click.option(
            "-o", "--output", type=click.Path(dir_okay=False), default=None, help="Also write the JSON to this file."
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def probe_in_child(model_path, threads: int = 1, runtime: str = "auto") -> None:
    """Open and run ``model_path`` once in a child process first: a damaged model that
    crashes or hangs the native runtime is then one :class:`UserError` line instead of
    taking this process down."""
    from edgecnn.device.bench import benchmark
    from edgecnn.device.runtime import check_model_file, resolve_runtime

    resolve_runtime(runtime)  # a runtime that is not installed, a damaged file: one clear line here
    check_model_file(model_path)
    probe = benchmark(model_path, threads=threads, warmup=0, runs=1, runtime=runtime, timeout=120)
    if probe.get("status") == "error":
        raise UserError(probe.get("error"))  # already names the file and what is wrong
    if probe.get("status") != "ok":
        raise UserError(f"{model_path}: {probe.get('status')}: {probe.get('error')}")


def classifier_shape(model_path, runtime: str = "auto", spec: dict | None = None) -> tuple:
    """``(H, W, C, K)`` of an image classifier; one-line :class:`UserError` for anything
    the evaluator cannot judge (see :func:`edgecnn.device.evaluate.check_classifier`)."""
    from edgecnn.device.evaluate import check_classifier
    from edgecnn.device.runtime import load_interpreter

    interpreter, _, _ = load_interpreter(model_path, runtime=runtime)
    return check_classifier(interpreter, model_path, (spec or {}).get("channels"))


def model_input_shape(model_path, runtime: str = "auto", spec: dict | None = None) -> tuple:
    """``(H, W, C)`` of an image model's input; :class:`UserError` for anything else."""
    return classifier_shape(model_path, runtime, spec)[:3]


def finish_eval(metrics: dict, model_path, data, class_names, as_json, output, echo=click.echo) -> dict:
    """Label eval metrics with the device and model, then print and save them."""
    import numpy as np

    from edgecnn._io import sha256_file
    from edgecnn.device.bench import machine_info

    metrics.update(kind="eval", model=str(model_path), sha256=sha256_file(model_path), data=str(data))
    metrics["classes"] = list(class_names)
    metrics["size_bytes"] = os.path.getsize(model_path)
    metrics.update(machine_info())
    # Printed first, written after: a file that cannot be written never loses a measurement.
    if as_json:
        echo(json.dumps(metrics, indent=2))
        if output:
            _write_json(output, metrics)
        return metrics
    top5 = f", top-5 {100 * metrics['top5']:.2f}%" if "top5" in metrics else ""
    echo(
        f"{model_path} on {data} ({metrics['samples']} images, {metrics['runtime']} {metrics['runtime_version']}, "
        f"{metrics['device']}): top-1 {100 * metrics['accuracy']:.2f}%{top5}"
    )
    conf = np.asarray(metrics["confusion"])
    names = [str(c) for c in class_names] + [str(i) for i in range(len(class_names), len(conf))]
    width = max(4, max(len(c) for c in names) + 1, len(str(conf.max(initial=0))) + 1)
    echo("confusion (rows: true class, columns: predicted)")
    echo(" " * width + "".join(f"{c[: width - 1]:>{width}}" for c in names))
    for name, row in zip(names, conf):
        echo(f"{name[: width - 1]:>{width}}" + "".join(f"{v:>{width}}" for v in row))
    if output:
        _write_json(output, metrics)
        echo(f"written: {output}")
    return metrics


@main.command("eval")
@eval_options
@click.option("--data", required=True, help="An image folder (one subfolder per class) or an .npz (x, y).")
def eval_cmd(model_path, preprocess_path, threads, runtime, device_name, as_json, output, data):
    """Accuracy (top-1, top-5) and confusion matrix of MODEL.tflite on labelled images.

    \b
    Class folders (or an .npz's class_names) are matched to the class names in the
    model's preprocess.json, so a class missing from the data keeps its index.

    Example:
        >>> model_input_shape("model_int8.tflite")  # doctest: +SKIP
        (32, 32, 3)
    """
    from edgecnn.device.evaluate import evaluate_tflite, labels_by_name, load_labelled
    from edgecnn.device.preprocess import normalize, read_spec, resize_method

    if device_name:
        os.environ["EDGECNN_DEVICE"] = device_name
    probe_in_child(model_path, threads, runtime)
    spec = read_spec(model_path, preprocess_path)
    h, w, c, k = classifier_shape(model_path, runtime, spec)
    x, y, data_names = load_labelled(data, (h, w), c, resize_method(spec))
    if len(y) == 0:
        raise UserError(f"{data} holds no labelled images")
    y, names = labels_by_name(y, data_names, spec.get("class_names"), k, data, model_path)
    metrics = evaluate_tflite(model_path, normalize(x, spec), y, num_threads=threads, runtime=runtime)
    finish_eval(metrics, model_path, data, names, as_json, output)


@main.command()
@click.argument("model_path", metavar="MODEL.tflite")
@click.argument("images", nargs=-1, required=True, metavar="IMAGE...")
@click.option("--top-k", type=click.IntRange(1), default=5, show_default=True, help="Labels shown per image.")
@click.option(
    "--preprocess",
    "preprocess_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="preprocess.json of the run (default: the one beside the model, else the model's metadata).",
)
@click.option("--threads", type=click.IntRange(1, 256), default=1, show_default=True)
@click.option("--runtime", type=click.Choice(RUNTIME_CHOICES), default="auto", show_default=True)
@click.option("--device-name", default=None, help="Label for the results (default: $EDGECNN_DEVICE or host name).")
@click.option("--json", "as_json", is_flag=True, help="Print the predictions and timings as JSON.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="Also write the JSON to this file.")
def predict(model_path, images, top_k, preprocess_path, threads, runtime, device_name, as_json, output):
    """Top-k labels of IMAGE files, folders, or - (stdin: one image's bytes, or paths one a line).

    Each image is timed: decode, resize (with normalisation) and invoke.

    \b
      edgecnn-device predict model_int8.tflite shot.jpg --top-k 3
      rpicam-still -n -o - | edgecnn-device predict model_int8.tflite -
      find photos -name '*.jpg' | edgecnn-device predict model_int8.tflite - --json
    """
    from edgecnn._io import sha256_file
    from edgecnn.device.bench import machine_info
    from edgecnn.device.predict import collect_images, predict_images

    if device_name:
        os.environ["EDGECNN_DEVICE"] = device_name
    sources = collect_images(images, click.get_binary_stream("stdin") if "-" in images else None)
    result = predict_images(
        model_path, sources, top_k=top_k, preprocess_path=preprocess_path, threads=threads, runtime=runtime
    )
    result.update(model=str(model_path), sha256=sha256_file(model_path), size_bytes=os.path.getsize(model_path))
    result.update(machine_info())
    if output:
        _write_json(output, result)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    for r in result["images"]:
        labels = ", ".join(f"{t['label']} {t['score']:.3f}" for t in r["top_k"])
        click.echo(
            f"{r['image']}: {labels}  "
            f"(decode {r['decode_ms']:.2f} ms, resize {r['resize_ms']:.2f} ms, invoke {r['invoke_ms']:.2f} ms)"
        )
    t = result["timing_ms"]
    click.echo(
        f"{len(result['images'])} image(s), median per image: decode {t['decode_ms']['median']:.2f} ms, "
        f"resize {t['resize_ms']['median']:.2f} ms, invoke {t['invoke_ms']['median']:.2f} ms  "
        f"({result['runtime']} {result['runtime_version']}, {threads} thread(s), {result['device']}, {result['cpu']})"
    )
    if output:
        click.echo(f"written: {output}")


if __name__ == "__main__":
    main()
