"""``edgecnn bench`` and ``edgecnn eval``: measure any ``.tflite`` file."""

from __future__ import annotations

import json

import click

from edgecnn.cli import main


@main.command()
@click.argument("model_path", metavar="MODEL.tflite")
@click.option("--threads", type=click.IntRange(1, 256), default=1, show_default=True)
@click.option("--warmup", type=click.IntRange(0), default=10, show_default=True)
@click.option("--runs", type=click.IntRange(1), default=100, show_default=True)
@click.option(
    "--runtime",
    type=click.Choice(["auto", "litert", "tflite_runtime", "tensorflow"]),
    default="auto",
    show_default=True,
)
@click.option(
    "--timeout", type=float, default=300, show_default=True, help="Seconds before the run is reported as hung."
)
@click.option("--json", "as_json", is_flag=True, help="Print the full result as JSON.")
def bench(model_path, threads, warmup, runs, runtime, timeout, as_json):
    """Latency of MODEL.tflite (median, p90, p99...), measured in a child process."""
    from edgecnn.device.bench import benchmark
    from edgecnn.errors import UserError

    result = benchmark(model_path, threads=threads, warmup=warmup, runs=runs, runtime=runtime, timeout=timeout)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    if result.get("status") != "ok":
        raise UserError(f"{model_path}: {result.get('status')}: {result.get('error')}")
    if not as_json:
        r = result
        click.echo(
            f"{r['model']}  ({r['size_bytes']:,} bytes)  {r['runtime']} {r['runtime_version']}, "
            f"{r['threads']} thread(s), {r['cpu']}"
        )
        click.echo(
            f"init {r['init_ms']:.2f} ms, first run {r['first_run_ms']:.3f} ms, {r['runs']} runs: "
            f"median {r['median_ms']:.3f} ms, p90 {r['p90_ms']:.3f}, p99 {r['p99_ms']:.3f}, "
            f"mean {r['mean_ms']:.3f} +- {r['std_ms']:.3f}, min {r['min_ms']:.3f}; "
            f"peak memory {r['peak_rss_mb']:.1f} MB"
        )


@main.command("eval")
@click.argument("model_path", metavar="MODEL.tflite")
@click.option("--data", default="digits", show_default=True, help="'digits', an image folder or an .npz file.")
@click.option("--split", type=click.Choice(["test", "val", "train", "all"]), default="test", show_default=True)
@click.option(
    "--preprocess",
    "preprocess_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="preprocess.json of the run (default: the one beside the model, else pixels/127.5-1).",
)
@click.option("--threads", type=click.IntRange(1, 256), default=1, show_default=True)
@click.option("--runtime", type=click.Choice(["auto", "litert", "tflite_runtime", "tensorflow"]), default="auto")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
def eval_cmd(model_path, data, split, preprocess_path, threads, runtime, as_json):
    """Accuracy (top-1, top-5) and confusion matrix of MODEL.tflite on labelled images."""
    import numpy as np

    from edgecnn.data import load_dataset
    from edgecnn.device.bench import benchmark
    from edgecnn.device.evaluate import evaluate_tflite
    from edgecnn.device.preprocess import DEFAULT_OFFSET, DEFAULT_SCALE, read_spec
    from edgecnn.device.runtime import load_interpreter
    from edgecnn.errors import UserError

    # Open the file in a child process first: a damaged model that crashes or hangs the
    # native runtime is then reported in one line instead of taking this process down.
    probe = benchmark(model_path, threads=threads, warmup=0, runs=1, runtime=runtime, timeout=120)
    if probe.get("status") != "ok":
        raise UserError(f"{model_path}: {probe.get('status')}: {probe.get('error')}")
    interpreter, _, _ = load_interpreter(model_path, runtime=runtime)
    shape = interpreter.get_input_details()[0]["shape"]
    del interpreter
    spec = read_spec(model_path, preprocess_path)
    if len(shape) != 4:
        raise UserError(f"{model_path} takes input of shape {list(shape)}; eval needs an image model (N, H, W, C)")
    # The same seeded split as training, so "test" means images the model never saw.
    split_args = {"val_split": spec.get("val_split", 0.1), "test_split": spec.get("test_split", 0.2)}
    if split == "all":
        split_args = {"val_split": 0.0, "test_split": 0.0}
    ds = load_dataset(
        data,
        image_size=(int(shape[1]), int(shape[2])),
        channels=int(shape[3]),
        scale=spec.get("scale", DEFAULT_SCALE),
        offset=spec.get("offset", DEFAULT_OFFSET),
        seed=spec.get("seed", 0),
        **split_args,
    )
    s = "train" if split == "all" else split
    x, y = ds.normalized(s), ds.y[s]
    metrics = evaluate_tflite(model_path, x, y, num_threads=threads, runtime=runtime)
    metrics.update(model=str(model_path), data=data, split=split, classes=ds.class_names)
    if as_json:
        click.echo(json.dumps(metrics, indent=2))
        return
    top5 = f", top-5 {100 * metrics['top5']:.2f}%" if "top5" in metrics else ""
    click.echo(
        f"{model_path} on {ds.name} ({split}, {metrics['samples']} images): "
        f"top-1 {100 * metrics['accuracy']:.2f}%{top5}"
    )
    conf = np.asarray(metrics["confusion"])
    width = max(4, max(len(c) for c in ds.class_names) + 1, len(str(conf.max())) + 1)
    click.echo("confusion (rows: true class, columns: predicted)")
    click.echo(" " * width + "".join(f"{c[: width - 1]:>{width}}" for c in ds.class_names))
    for name, row in zip(ds.class_names, conf):
        click.echo(f"{name[: width - 1]:>{width}}" + "".join(f"{v:>{width}}" for v in row))
