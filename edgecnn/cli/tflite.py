"""``edgecnn bench`` and ``edgecnn eval``: measure any ``.tflite`` file.

The flags and output are those of ``edgecnn-device`` (:mod:`edgecnn.device.cli`), so the
JSON from the workstation and from a device merge in ``edgecnn report``; ``eval`` here
also knows the built-in ``digits`` data and the run's own train/val/test split.
"""

from __future__ import annotations

import click

from edgecnn.cli._main import main
from edgecnn.device.cli import bench_options, eval_options, finish_eval, model_input_shape, run_bench


@main.command()
@bench_options
def bench(**flags):
    """Latency of MODEL.tflite (median, p90, p99...), measured in a child process.

    \b
    Also reports which ops XNNPACK runs and whether tflite_runtime 2.14 can load the model.
    Examples:
      edgecnn bench model.tflite --threads 1 --threads 2 --runs 200
      edgecnn bench model.tflite --min-time 5 --json -o bench.json
      edgecnn bench model.tflite --runtime tflite_runtime
    """
    run_bench(**flags)


@main.command("eval")
@eval_options
@click.option("--data", default="digits", show_default=True, help="'digits', an image folder or an .npz file.")
@click.option("--split", type=click.Choice(["test", "val", "train", "all"]), default="test", show_default=True)
def eval_cmd(model_path, preprocess_path, threads, runtime, device_name, as_json, output, data, split):
    """Accuracy (top-1, top-5) and confusion matrix of MODEL.tflite on labelled images."""
    import os

    from edgecnn.data import load_dataset
    from edgecnn.device.bench import benchmark
    from edgecnn.device.evaluate import evaluate_tflite
    from edgecnn.device.preprocess import CONVENTION_KEYS, DEFAULT_OFFSET, DEFAULT_SCALE, read_spec
    from edgecnn.errors import UserError

    # Open the file in a child process first: a damaged model that crashes or hangs the
    # native runtime is then reported in one line instead of taking this process down.
    probe = benchmark(model_path, threads=threads, warmup=0, runs=1, runtime=runtime, timeout=120)
    if probe.get("status") == "error":
        raise UserError(probe.get("error"))  # already names the file and what is wrong
    if probe.get("status") != "ok":
        raise UserError(f"{model_path}: {probe.get('status')}: {probe.get('error')}")
    if device_name:
        os.environ["EDGECNN_DEVICE"] = device_name
    h, w, c = model_input_shape(model_path, runtime)
    spec = read_spec(model_path, preprocess_path)
    # The same seeded split as training, so "test" means images the model never saw.
    split_args = {"val_split": spec.get("val_split", 0.1), "test_split": spec.get("test_split", 0.2)}
    if split == "all":
        split_args = {"val_split": 0.0, "test_split": 0.0}
    ds = load_dataset(
        data,
        image_size=(h, w),
        channels=c,
        scale=spec.get("scale", DEFAULT_SCALE),
        offset=spec.get("offset", DEFAULT_OFFSET),
        convention={k: spec[k] for k in CONVENTION_KEYS if k in spec},
        seed=spec.get("seed", 0),
        **split_args,
    )
    s = "train" if split == "all" else split
    metrics = evaluate_tflite(model_path, ds.normalized(s), ds.y[s], num_threads=threads, runtime=runtime)
    metrics["split"] = split
    finish_eval(metrics, model_path, data, ds.class_names, as_json, output)
