"""``edgecnn-device``: benchmark and evaluate ``.tflite`` files on the device itself.

Needs numpy, Pillow, click and a TFLite runtime (``ai-edge-litert`` or ``tflite-runtime``),
never TensorFlow: ``pip install "edgecnn[device]"`` on a Raspberry Pi or under Termux.
It writes the same JSON as ``edgecnn bench --json`` and ``edgecnn eval --json``,
labelled with the device's name (``--device-name``, ``$EDGECNN_DEVICE`` or the host
name), CPU and runtime version; ``edgecnn report`` merges those files with the runs.

Example:
    $ edgecnn-device bench model_int8.tflite --threads 1 --threads 4 -o pi4-int8.json
    $ edgecnn-device eval model_int8.tflite --data test_images/ -o pi4-int8-eval.json
"""

from __future__ import annotations

import json
import os
import sys

import click

from edgecnn.device.bench import DEFAULT_RUNS, DEFAULT_WARMUP
from edgecnn.errors import UserError

RUNTIME_CHOICES = ["auto", "litert", "tflite_runtime", "tensorflow"]


class DeviceGroup(click.Group):
    """User mistakes (every :class:`UserError`, the device's load and image errors included)
    become one line on stderr and exit code 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as exc:
            click.echo(f"error: {exc}", err=True)
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
        click.option("--json", "as_json", is_flag=True, help="Print the result(s) as JSON."),
        click.option(
            "-o", "--output", type=click.Path(dir_okay=False), default=None, help="Also write the JSON to this file."
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _write_json(path, obj):
    from edgecnn._io import write_json

    write_json(path, obj)


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
) -> list:
    """What the ``bench`` commands do: benchmark once per thread count, print, save.

    Example:
        >>> run_bench("model_int8.tflite", threads=(1, 2), runs=50)  # doctest: +SKIP
    """
    from edgecnn.device.bench import benchmark_threads, cpu_line
    from edgecnn.device.runtime import check_model_file, resolve_runtime

    if device_name:
        os.environ["EDGECNN_DEVICE"] = device_name
    resolve_runtime(runtime)  # a runtime that is not installed: one clear line, before any work
    check_model_file(model_path)
    if input_path and not os.path.isfile(input_path):
        raise UserError(f"input file {input_path} does not exist")
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
    payload = results[0] if len(results) == 1 else results
    if output:
        _write_json(output, payload)
    if as_json:
        echo(json.dumps(payload, indent=2))
    failed = [r for r in results if r.get("status") != "ok"]
    if not as_json:
        from edgecnn.device.delegation import describe as describe_delegation

        ok = [r for r in results if r.get("status") == "ok"]
        if ok:
            r = ok[0]
            echo(
                f"{r['model']}  ({r['size_bytes']:,} bytes)  {r['runtime']} {r['runtime_version']}  "
                f"on {r['device']}"
            )
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
        if output:
            echo(f"  written: {output}")
    if failed:
        r = failed[0]
        raise UserError(f"{model_path}: {r.get('status')} with {r.get('threads')} thread(s): {r.get('error')}")
    return results


@click.group(cls=DeviceGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def main():
    """Measure .tflite models on this device (numpy + a TFLite runtime, no TensorFlow).

    \b
      edgecnn-device bench model.tflite --threads 1 --threads 4 -o pi.json
      edgecnn-device eval model.tflite --data test_images/ -o pi-eval.json
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


def model_input_shape(model_path, runtime: str = "auto") -> tuple:
    """``(H, W, C)`` of an image model's input; :class:`UserError` for anything else."""
    from edgecnn.device.runtime import load_interpreter

    interpreter, _, _ = load_interpreter(model_path, runtime=runtime)
    shape = [int(d) for d in interpreter.get_input_details()[0]["shape"]]
    if len(shape) != 4:
        raise UserError(f"{model_path} takes input of shape {shape}; eval needs an image model (N, H, W, C)")
    return shape[1], shape[2], shape[3]


def finish_eval(metrics: dict, model_path, data, class_names, as_json, output, echo=click.echo) -> dict:
    """Label eval metrics with the device and model, then print and save them."""
    import numpy as np

    from edgecnn._io import sha256_file
    from edgecnn.device.bench import machine_info

    metrics.update(kind="eval", model=str(model_path), sha256=sha256_file(model_path), data=str(data))
    metrics["classes"] = list(class_names)
    metrics["size_bytes"] = os.path.getsize(model_path)
    metrics.update(machine_info())
    if output:
        _write_json(output, metrics)
    if as_json:
        echo(json.dumps(metrics, indent=2))
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
        echo(f"written: {output}")
    return metrics


@main.command("eval")
@eval_options
@click.option("--data", required=True, help="An image folder (one subfolder per class) or an .npz (x, y).")
def eval_cmd(model_path, preprocess_path, threads, runtime, device_name, as_json, output, data):
    """Accuracy (top-1, top-5) and confusion matrix of MODEL.tflite on labelled images.

    Example:
        >>> model_input_shape("model_int8.tflite")  # doctest: +SKIP
        (32, 32, 3)
    """
    from edgecnn.device.evaluate import evaluate_tflite, load_labelled
    from edgecnn.device.preprocess import normalize, read_spec

    if device_name:
        os.environ["EDGECNN_DEVICE"] = device_name
    h, w, c = model_input_shape(model_path, runtime)
    try:
        spec = read_spec(model_path, preprocess_path)
        x, y, names = load_labelled(data, (h, w), c)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if len(y) == 0:
        raise UserError(f"{data} holds no labelled images")
    metrics = evaluate_tflite(model_path, normalize(x, spec), y, num_threads=threads, runtime=runtime)
    finish_eval(metrics, model_path, data, names, as_json, output)


if __name__ == "__main__":
    main()
