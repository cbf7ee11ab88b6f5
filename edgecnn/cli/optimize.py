"""``edgecnn optimize``: train a zoo model on your data, convert, evaluate and benchmark it."""

from __future__ import annotations

import click

from edgecnn.cli import main


def config_from_flags(model: str, flags: dict):
    """Turn ``optimize``'s flags into a :class:`~edgecnn.config.RunConfig` (``None`` = default)."""
    from edgecnn.config import RunConfig

    sections = {
        "model": {"name": model, "alpha": flags.get("alpha"), "args": model_args(flags) or None},
        "data": {
            "source": flags.get("data"),
            "image_size": flags.get("image_size"),
            "seed": flags.get("seed"),
            "train_fraction": flags.get("train_fraction"),
        },
        "train": {
            "epochs": flags.get("epochs"),
            "batch_size": flags.get("batch_size"),
            "learning_rate": flags.get("lr"),
            "optimizer": flags.get("optimizer"),
            "seed": flags.get("seed"),
            "augment": flags.get("augment"),
            "tensorboard": flags.get("tensorboard") or None,
            "strategy": flags.get("strategy"),
        },
        "convert": {
            "int8": flags.get("int8") or None,
            "fp16": flags.get("fp16") or None,
            "dynamic": flags.get("dynamic") or None,
            "sparse_storage": flags.get("sparse_storage") or None,
        },
        "bench": {
            "threads": flags.get("threads"),
            "runs": flags.get("runs"),
            "enabled": False if flags.get("no_bench") else None,
            "runtime": flags.get("runtime"),
        },
        "prune": {
            "sparsity": flags.get("prune"),
            "structure": flags.get("prune_structure"),
            "channels": flags.get("prune_channels"),
            "criterion": flags.get("prune_criterion"),
            "epochs": flags.get("prune_epochs"),
            "skip": list(flags.get("prune_skip") or ()) or None,
        },
        "distill": {
            "teacher": flags.get("distill_from"),
            "alpha": flags.get("distill_alpha"),
            "temperature": flags.get("temperature"),
            "teacher_epochs": flags.get("teacher_epochs"),
            "mixup": flags.get("distill_mixup"),
            "teacher_data": flags.get("teacher_data"),
        },
        "qat": {"enabled": flags.get("qat") or None, "epochs": flags.get("qat_epochs")},
        "out": flags.get("out"),
    }
    clean = {
        k: ({kk: vv for kk, vv in v.items() if vv is not None} if isinstance(v, dict) else v)
        for k, v in sections.items()
        if v is not None
    }
    return RunConfig.from_dict(clean)


def strategy_option():
    """The ``--strategy`` flag (``optimize``, ``sweep``): which ``tf.distribute`` strategy trains."""
    from edgecnn.distribute import STRATEGIES

    return click.option(
        "--strategy",
        type=click.Choice(STRATEGIES),
        default=None,
        help="tf.distribute strategy: auto (mirrored with several GPUs, else default), default, mirrored "
        "(every local GPU), multiworker (machines listed in TF_CONFIG; run the same command on each).",
    )


def parse_arg(text: str) -> tuple:
    """``"KEY=VALUE"`` -> ``(key, value)``, the value read as YAML (numbers, booleans, lists).

    Example:
        >>> parse_arg("phi=1.5"), parse_arg("minimalistic=true"), parse_arg("name=b0")
        (('phi', 1.5), ('minimalistic', True), ('name', 'b0'))
    """
    import yaml

    from edgecnn.errors import UserError

    key, sep, value = str(text).partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise UserError(f"--arg expects KEY=VALUE with KEY a builder argument name, got {text!r}")
    try:
        return key, yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
        raise UserError(f"--arg {key}: cannot read the value {value!r}") from None


def model_args(flags: dict) -> dict:
    """Builder arguments from ``--arg KEY=VALUE`` (repeatable) and ``--phi``.

    Example:
        >>> model_args({"arg": ("groups=8",), "phi": 1.5})
        {'groups': 8, 'phi': 1.5}
    """
    args = dict(parse_arg(a) for a in flags.get("arg") or ())
    if flags.get("phi") is not None:
        args["phi"] = flags["phi"]
    return args


def model_arg_options() -> list:
    """``--arg`` and ``--phi``: builder arguments beyond the common flags."""
    return [
        click.option(
            "--arg",
            "arg",
            multiple=True,
            metavar="KEY=VALUE",
            help="Builder argument (repeatable; value read as YAML), e.g. --arg groups=8 --arg minimalistic=true.",
        ),
        click.option(
            "--phi",
            type=float,
            default=None,
            help="EfficientNet compound-scaling coefficient (same as --arg phi=...), e.g. 'efficientnet --phi 1.5'.",
        ),
    ]


def optimize_options(f):
    """The flags shared by ``optimize`` (and reused by ``sweep``)."""
    options = [
        click.option("--alpha", type=float, default=None, help="Width multiplier (e.g. 0.25, 0.5, 1.0)."),
        click.option(
            "--image-size",
            type=click.IntRange(8, 2048),
            default=None,
            help="Input resolution (default: 32 for digits, the model's canonical size otherwise).",
        ),
        click.option(
            "--data",
            default=None,
            metavar="SOURCE",
            help="'digits' (built in), an image folder (one subfolder per class) or an .npz file.",
        ),
        click.option("--epochs", type=click.IntRange(0), default=None, help="Training epochs (default: per family)."),
        click.option("--batch-size", type=click.IntRange(1), default=None, help="Batch size (default 32)."),
        click.option("--lr", type=float, default=None, help="Peak learning rate (default: per family)."),
        click.option("--optimizer", type=click.Choice(["adam", "sgd", "rmsprop"]), default=None),
        click.option(
            "--augment",
            type=click.Choice(["auto", "none", "shift", "shift_flip"]),
            default=None,
            help="Training augmentation (auto: shifts for digits, shifts and flips for photos).",
        ),
        click.option(
            "--train-fraction", type=float, default=None, help="Use only this fraction of the training split."
        ),
        click.option("--seed", type=int, default=None, help="Seed for splits, shuffling and initialisation."),
        click.option("--int8", is_flag=True, help="Also export full-integer int8 (int8 input/output)."),
        click.option("--fp16", is_flag=True, help="Also export float16 weights."),
        click.option("--dynamic", is_flag=True, help="Also export dynamic-range (int8 weights, float activations)."),
        click.option(
            "--sparse-storage",
            is_flag=True,
            help="With --prune: keep the pruned float32 weights in TFLite's sparse format (smaller, same outputs).",
        ),
        click.option(
            "--prune",
            type=float,
            default=None,
            metavar="SPARSITY",
            help="Magnitude pruning to this sparsity, e.g. 0.5 (fine-tuned, then stripped).",
        ),
        click.option(
            "--prune-structure",
            type=click.Choice(["unstructured", "2:4"]),
            default=None,
            help="2:4 = two zeros in every four weights (implies 50% sparsity).",
        ),
        click.option(
            "--prune-channels",
            type=float,
            default=None,
            metavar="FRACTION",
            help="Channel pruning: remove this fraction of filters and rebuild narrower, e.g. 0.5.",
        ),
        click.option(
            "--prune-criterion",
            type=click.Choice(["l1", "bn"]),
            default=None,
            help="Filter importance for --prune-channels: kernel L1 norm or BatchNorm scale.",
        ),
        click.option(
            "--prune-epochs",
            type=click.IntRange(0),
            default=None,
            help="Fine-tuning epochs of each pruning stage (default: half of --epochs).",
        ),
        click.option(
            "--prune-skip", multiple=True, metavar="PATTERN", help="Layer-name glob to leave unpruned (repeatable)."
        ),
        click.option(
            "--distill-from",
            default=None,
            metavar="TEACHER",
            help="Distill from a teacher: 'name[:alpha]' (trained first, cached) or a saved .keras file.",
        ),
        click.option("--distill-alpha", type=float, default=None, help="Weight of the label loss (default 0.1)."),
        click.option("--temperature", type=float, default=None, help="Distillation temperature (default 4)."),
        click.option(
            "--distill-mixup",
            type=float,
            default=None,
            metavar="C",
            help="Mix pairs of images (Beta(C, C)) that teacher and student both see; 0 = off.",
        ),
        click.option(
            "--teacher-data",
            type=click.Choice(["same", "full"]),
            default=None,
            help="Train a registered teacher on the student's data (same) or the whole training split (full).",
        ),
        click.option(
            "--teacher-epochs",
            type=click.IntRange(0),
            default=None,
            help="Epochs to train a registered teacher (default: --epochs).",
        ),
        click.option("--qat", is_flag=True, help="Quantization-aware training, exported as int8 (implies --int8)."),
        click.option(
            "--qat-epochs",
            type=click.IntRange(0),
            default=None,
            help="QAT fine-tuning epochs (default: a fifth of --epochs).",
        ),
        click.option("--threads", type=click.IntRange(1, 256), default=None, help="Interpreter threads (default 1)."),
        click.option("--runs", type=click.IntRange(1), default=None, help="Timed runs per benchmark (default 50)."),
        click.option("--runtime", type=click.Choice(["auto", "litert", "tflite_runtime", "tensorflow"]), default=None),
        click.option("--no-bench", is_flag=True, help="Skip latency measurement."),
        click.option("--tensorboard", is_flag=True, help="Write TensorBoard logs into the run folder."),
        strategy_option(),
        click.option(
            "--out",
            type=click.Path(file_okay=False),
            default=None,
            help="Run folder (default runs/<model>-<settings>/).",
        ),
        *model_arg_options(),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@main.command()
@click.argument("model")
@optimize_options
def optimize(model, **flags):
    """Train MODEL on the data, export it to TFLite, and measure every variant.

    \b
    Examples:
      edgecnn optimize mobilenet --alpha 0.5 --int8
      edgecnn optimize lenet5 --int8 --fp16 --dynamic
      edgecnn optimize resnet18 --alpha 0.25 --data photos/ --image-size 96 --int8
      edgecnn optimize mobilenet --alpha 0.5 --prune 0.5 --distill-from mobilenet:1.0 --qat --int8
      edgecnn optimize mobilenet --prune-channels 0.5 --prune-criterion bn --int8
      edgecnn optimize efficientnet --phi 1.5 --int8
      edgecnn optimize shufflenet_v1 --arg groups=8 --alpha 0.5 --int8
    """
    from edgecnn.pipeline import optimize as run

    run(config_from_flags(model, flags), echo=click.echo)
