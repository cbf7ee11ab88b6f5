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

import contextlib
import json
import os
import sys

import click

from edgecnn.device.bench import DEFAULT_RUNS, DEFAULT_WARMUP
from edgecnn.device.bench_run import run_bench, write_result
from edgecnn.device.runtime import AUTO_ORDER, RUNTIMES
from edgecnn.errors import UserError, usage_line

RUNTIME_CHOICES = ["auto", *RUNTIMES]
RUNTIME_HELP = f"TFLite runtime; auto tries {', then '.join(AUTO_ORDER)}."


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
        click.option(
            "--runtime", type=click.Choice(RUNTIME_CHOICES), default="auto", show_default=True, help=RUNTIME_HELP
        ),
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
@click.option("--table", type=click.Path(dir_okay=False), help="Write a latency table: time every op model of the "
              "folder given as MODEL.tflite (edgecnn latency-grid) into this JSON (docs/latency.md).")
@click.option("--predict", type=click.Path(dir_okay=False), help="Also predict the latency from this latency table "
              "and say how far off it was.")
def bench(table=None, predict=None, **flags):
    """Latency of MODEL.tflite (median, p90, p99, ...), each measurement in a child process.

    MODEL.tflite ``-`` reads the model from stdin (``edgecnn search --device-command 'ssh pi
    edgecnn-device bench --json -'`` sends each candidate that way)."""
    from edgecnn.device.op_table import bench_table, prediction_check

    if table:
        return bench_table(table, **flags)
    with _model_file(flags["model_path"]) as path:
        annotate = prediction_check(predict, path, flags["as_json"]) if predict else None
        run_bench(**{**flags, "model_path": path}, annotate=annotate)


@contextlib.contextmanager
def _model_file(model_path: str):
    """``model_path`` itself, or for ``-`` the model read from stdin into a temporary file."""
    if model_path != "-":
        yield model_path
        return
    import tempfile

    with tempfile.TemporaryDirectory(prefix="edgecnn-stdin-") as tmp:
        path = os.path.join(tmp, "stdin.tflite")
        with open(path, "wb") as f:
            f.write(sys.stdin.buffer.read())
        yield path


class PerChannel(click.ParamType):
    """One number, or three comma-separated ones (R, G, B): ``127.5`` or ``123.675,116.28,103.53``."""

    name = "V[,V,V]"

    def __init__(self, nonzero: bool = False):
        self.nonzero = nonzero

    def convert(self, value, param, ctx):
        import math

        if isinstance(value, tuple):
            return value
        try:
            values = tuple(float(v) for v in str(value).split(","))
        except ValueError:
            self.fail(f"{value!r} is not one number or three comma-separated numbers", param, ctx)
        if len(values) not in (1, 3) or not all(math.isfinite(v) for v in values):
            self.fail(f"{value!r}: give one finite number, or three comma-separated (one per channel)", param, ctx)
        if self.nonzero and 0.0 in values:
            self.fail(f"{value!r}: cannot divide by 0", param, ctx)
        return values


def preprocessing_options(f):
    """``--labels``, ``--mean``, ``--std`` and ``--background-class``: the preprocessing of a
    model that has neither TFLite Metadata nor a ``preprocess.json`` (the published ImageNet
    MobileNets with their ``labels.txt``), or that overrides what they say.

    Example:
        >>> @click.command()
        ... @preprocessing_options
        ... def my_predict(**flags): spec = read_preprocessing("m.tflite", None, **flags)
    """
    options = [
        click.option(
            "--labels",
            "labels_path",
            type=click.Path(dir_okay=False),
            default=None,
            help="Class names, one a line in output order (labels.txt); overrides the preprocess.json's or metadata's.",
        ),
        click.option(
            "--mean",
            type=PerChannel(),
            default=None,
            help="With --std, the normalisation (pixel - mean) / std on 0..255 pixels, one value or R,G,B; "
            "overrides the preprocess.json's or metadata's. Default 0.",
        ),
        click.option(
            "--std",
            type=PerChannel(nonzero=True),
            default=None,
            help="See --mean (--mean 127.5 --std 127.5: inputs in [-1, 1]). Default 1.",
        ),
        click.option(
            "--background-class",
            is_flag=True,
            help="Output 0 is a background class with no label (TF-slim ImageNet models: 1001 outputs, "
            "1000 labels); it is left out and labels count from output 1.",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def read_preprocessing(
    model_path,
    preprocess_path=None,
    labels_path=None,
    mean=None,
    std=None,
    background_class: bool = False,
    required: bool = False,
) -> dict:
    """The preprocessing of ``model_path``: its ``preprocess.json`` or metadata
    (:func:`~edgecnn.device.preprocess.read_spec`), then the flags of
    :func:`preprocessing_options` over it (:func:`~edgecnn.device.preprocess.override_spec`).

    ``required``: without ``--mean``/``--std``, a model with neither ``preprocess.json`` nor
    metadata is one :class:`UserError` line naming the flags, not a guess.

    Example:
        >>> spec = read_preprocessing("mobilenet_v1.tflite", labels_path="labels.txt", mean=(127.5,),
        ...                           std=(127.5,), background_class=True)  # doctest: +SKIP
    """
    from edgecnn.device.preprocess import override_spec, read_labels, read_spec

    given = mean is not None or std is not None
    try:
        spec = read_spec(model_path, preprocess_path, required=required and not given)
    except ValueError as exc:  # metadata without a usable normalisation
        if isinstance(exc, UserError):
            raise
        raise UserError(f"{model_path}: {exc}") from None
    names = read_labels(labels_path) if labels_path else None
    return override_spec(
        spec, class_names=names, labels_from=labels_path, mean=mean, std=std, background_class=background_class
    )


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
            help="preprocess.json of the run (default: the one beside the model, else its metadata, "
            "else pixels/127.5-1).",
        ),
        preprocessing_options,
        click.option("--threads", type=click.IntRange(1, 256), default=1, show_default=True),
        click.option(
            "--runtime", type=click.Choice(RUNTIME_CHOICES), default="auto", show_default=True, help=RUNTIME_HELP
        ),
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
            write_result(output, metrics)
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
        write_result(output, metrics)
        echo(f"written: {output}")
    return metrics


@main.command("eval")
@eval_options
@click.option("--data", required=True, help="An image folder (one subfolder per class) or an .npz (x, y).")
def eval_cmd(model_path, preprocess_path, threads, runtime, device_name, as_json, output, data, **flags):
    """Accuracy (top-1, top-5) and confusion matrix of MODEL.tflite on labelled images.

    \b
    Class folders (or an .npz's class_names) are matched to the model's class names
    (preprocess.json, metadata or --labels; case and _/space ignored), so a class missing
    from the data keeps its index. A model without metadata (a published ImageNet MobileNet):
      edgecnn-device eval mobilenet_v1.tflite --data val/ --labels labels.txt \\
          --mean 127.5 --std 127.5 --background-class

    Example:
        >>> model_input_shape("model_int8.tflite")  # doctest: +SKIP
        (32, 32, 3)
    """
    from edgecnn.device.evaluate import evaluate_tflite, labels_by_name, load_labelled
    from edgecnn.device.preprocess import fit_to_model, normalize, resize_method

    if device_name:
        os.environ["EDGECNN_DEVICE"] = device_name
    probe_in_child(model_path, threads, runtime)
    spec = read_preprocessing(model_path, preprocess_path, **flags)
    h, w, c, k = classifier_shape(model_path, runtime, spec)
    model_names, skip = fit_to_model(spec, c, k, model_path)
    x, y, data_names = load_labelled(data, (h, w), c, resize_method(spec))
    if len(y) == 0:
        raise UserError(f"{data} holds no labelled images")
    y, names = labels_by_name(y, data_names, model_names, k - skip, data, model_path)
    metrics = evaluate_tflite(
        model_path, normalize(x, spec), y, num_threads=threads, runtime=runtime, background_class=bool(skip)
    )
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
@preprocessing_options
@click.option("--threads", type=click.IntRange(1, 256), default=1, show_default=True)
@click.option("--runtime", type=click.Choice(RUNTIME_CHOICES), default="auto", show_default=True, help=RUNTIME_HELP)
@click.option("--device-name", default=None, help="Label for the results (default: $EDGECNN_DEVICE or host name).")
@click.option("--json", "as_json", is_flag=True, help="Print the predictions and timings as JSON.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="Also write the JSON to this file.")
def predict(model_path, images, top_k, preprocess_path, threads, runtime, device_name, as_json, output, **flags):
    """Top-k labels of IMAGE files, folders, or - (stdin: one image's bytes, or paths one a line).

    Each image is timed: decode, resize (with normalisation) and invoke. A model with
    neither metadata nor preprocess.json takes its preprocessing from --mean/--std (and
    --labels, --background-class); the input size is the model's.

    \b
      edgecnn-device predict model_int8.tflite shot.jpg --top-k 3
      rpicam-still -n -o - | edgecnn-device predict model_int8.tflite -
      find photos -name '*.jpg' | edgecnn-device predict model_int8.tflite - --json
      edgecnn-device predict mobilenet_v1.tflite shot.jpg --labels labels.txt \\
          --mean 127.5 --std 127.5 --background-class
    """
    from edgecnn._io import sha256_file
    from edgecnn.device.bench import machine_info
    from edgecnn.device.predict import collect_images, predict_images
    from edgecnn.device.runtime import check_model_file

    if device_name:
        os.environ["EDGECNN_DEVICE"] = device_name
    sources = collect_images(images, click.get_binary_stream("stdin") if "-" in images else None)
    check_model_file(model_path)  # a missing model is that, not "no metadata"
    spec = read_preprocessing(model_path, preprocess_path, **flags, required=True)
    result = predict_images(model_path, sources, top_k=top_k, threads=threads, runtime=runtime, spec=spec)
    result.update(model=str(model_path), sha256=sha256_file(model_path), size_bytes=os.path.getsize(model_path))
    result.update(machine_info())
    if output:
        write_result(output, result)
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
