"""``edgecnn bench`` and ``edgecnn eval``: measure any ``.tflite`` file.

The flags and output are those of ``edgecnn-device`` (:mod:`edgecnn.device.cli`), so the
JSON from the workstation and from a device merge in ``edgecnn report``; ``eval`` here
also knows the built-in ``digits`` data and the run's own train/val/test split.
"""

from __future__ import annotations

import click

from edgecnn.cli._main import main
from edgecnn.device.bench_run import run_bench
from edgecnn.device.cli import (
    bench_options,
    classifier_shape,
    eval_options,
    finish_eval,
    probe_in_child,
    read_preprocessing,
)


@main.command()
@bench_options
def bench(**flags):
    """Latency of MODEL.tflite (median, p90, p99...), measured in a child process.

    \b
    Also reports which ops XNNPACK runs, whether tflite_runtime 2.14 can load the model,
    and which ops the mobile GPU delegate would not run (TFLite's GPU rules, gpu_compatibility.cc:
    TensorFlow <= 2.18's analyzer, else edgecnn's port of them).
    Examples:
      edgecnn bench model.tflite --threads 1 --threads 2 --runs 200
      edgecnn bench model.tflite --min-time 5 --json -o bench.json
      edgecnn bench model.tflite --runtime tflite_runtime
      edgecnn bench model_int8.tflite --profile -o bench.json   (time per op and per XNNPACK partition)
    """
    run_bench(**flags, annotate=_add_gpu_compatibility)


def _add_gpu_compatibility(results: list) -> None:
    """The GPU-delegate verdict (:func:`~edgecnn.tflite.gpu_compatibility.gpu_compatibility`) in ``compat``."""
    from edgecnn.tflite.gpu_compatibility import gpu_compatibility

    ok = [r for r in results if r.get("status") == "ok"]
    if not ok:
        return
    check = gpu_compatibility(ok[0]["model"])
    for r in ok:
        r.setdefault("compat", {})["mobile GPU delegate"] = dict(check)


@main.command("eval")
@eval_options
@click.option("--data", default="digits", show_default=True, help="'digits', an image folder or an .npz file.")
@click.option("--split", type=click.Choice(["test", "val", "train", "all"]), default="test", show_default=True)
@click.option(
    "--int8-debug",
    is_flag=True,
    help="MODEL is a run folder (or its model.keras): print the int8 error per layer on its validation images.",
)
@click.option(
    "--explain",
    is_flag=True,
    help="MODEL is a run folder (or its int8 .tflite): per layer, the int8 error beside the op's time in float32 "
    "and int8 and whether XNNPACK runs it; then what keeping each of the worst layers in float buys and costs.",
)
@click.option(
    "--explain-top",
    type=click.IntRange(0, 64),
    default=3,
    show_default=True,
    help="With --explain: how many of the worst layers are kept in float, one at a time.",
)
def eval_cmd(
    model_path, preprocess_path, threads, runtime, device_name, as_json, output, data, split, int8_debug, explain,
    explain_top, **flags
):
    """Accuracy (top-1, top-5) and confusion matrix of MODEL.tflite on labelled images.

    \b
    Class folders (or an .npz's class_names) are matched to the model's class names
    (preprocess.json, metadata or --labels; case and _/space ignored), so a class missing
    from the data keeps its index.

    \b
    With --int8-debug, MODEL is a run folder: TFLite's quantization debugger compares each
    int8 layer with float on the run's validation images and prints the worst layers.
      edgecnn eval runs/mobilenet-a0.50-32px --int8-debug

    \b
    With --explain, MODEL is a run folder: one row per layer joins the debugger's int8 error,
    the op's time in model_float32.tflite and model_int8.tflite (LiteRT's profiler, as
    bench --profile) and whether XNNPACK runs it; then each of the --explain-top worst
    layers is kept in float alone, and its validation accuracy and time are measured.
    Saved as RUN/explain.{md,csv,json} and RUN/explain_full.json.
      edgecnn eval runs/mobilenet-a0.50-32px --explain
    """
    import os

    if int8_debug and explain:
        raise click.UsageError("--int8-debug and --explain are two reports: choose one")
    if int8_debug:
        _int8_debug(model_path, as_json, output)
        return
    if explain:
        _explain(model_path, explain_top, threads, runtime, as_json, output)
        return

    from edgecnn.data.dataset import load_dataset
    from edgecnn.device.evaluate import evaluate_tflite, labels_by_name
    from edgecnn.device.preprocess import CONVENTION_KEYS, fit_to_model

    probe_in_child(model_path, threads, runtime)
    if device_name:
        os.environ["EDGECNN_DEVICE"] = device_name
    spec = read_preprocessing(model_path, preprocess_path, **flags)
    h, w, c, k = classifier_shape(model_path, runtime, spec)
    model_names, skip = fit_to_model(spec, c, k, model_path)
    # The same seeded split as training, so "test" means images the model never saw.
    split_args = {"val_split": spec.get("val_split", 0.1), "test_split": spec.get("test_split", 0.2)}
    if split == "all":
        split_args = {"val_split": 0.0, "test_split": 0.0}
    ds = load_dataset(
        data,
        image_size=(h, w),
        channels=c,
        convention={k: spec[k] for k in ("scale", "offset", *CONVENTION_KEYS) if k in spec},
        seed=spec.get("seed", 0),
        **split_args,
    )
    s = "train" if split == "all" else split
    # Labels by class name, not folder position: a class missing from the data keeps its index.
    y, names = labels_by_name(ds.y[s], ds.class_names if ds.named else None, model_names, k - skip, data, model_path)
    metrics = evaluate_tflite(
        model_path, ds.normalized(s), y, num_threads=threads, runtime=runtime, background_class=bool(skip)
    )
    metrics["split"] = split
    finish_eval(metrics, model_path, data, names, as_json, output)


def _int8_debug(path, as_json: bool, output) -> None:
    import json

    from edgecnn._io import write_json
    from edgecnn.report.run import debug_run
    from edgecnn.tflite.debugger import format_layers

    summary = debug_run(path)
    click.echo(json.dumps(summary, indent=2) if as_json else format_layers(summary))  # printed before written
    if output:
        write_json(output, summary)


def _explain(path, top: int, threads: int, runtime: str, as_json: bool, output) -> None:
    import json

    from edgecnn._io import run_lock, write_json
    from edgecnn.report.explain import explain_run, find_run, format_explain, save_explain

    run = find_run(path)
    with run_lock(run, "edgecnn eval --explain"):
        result = explain_run(run, top=top, threads=threads, runtime=runtime,
                             echo=lambda line: click.echo(line, err=as_json))
        click.echo(json.dumps(result, indent=2) if as_json else format_explain(result))  # printed before written
        paths = save_explain(result, run)
    if output:
        write_json(output, result)
    click.echo(f"saved: {paths['markdown']}, .csv, .json and {paths['full'].name}", err=as_json)
