"""``edgecnn sweep``: a grid of models x widths x resolutions x precisions, each measured."""

from __future__ import annotations

import click

from edgecnn.cli._main import main
from edgecnn.cli.options import setting_options, settings_from_flags
from edgecnn.settings.run_config import PRECISIONS
from edgecnn.stages import precision_stages


def _split(text, cast, what):
    from edgecnn.errors import UserError

    if text is None:
        return None
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    try:
        return [None if t == "default" else cast(t) for t in items]
    except ValueError:
        raise UserError(f"--{what} takes a comma-separated list, got {text!r}") from None


SWEEP_FLAGS = (
    "--data",
    "--epochs",
    "--batch-size",
    "--train-fraction",
    "--seed",
    "--threads",
    "--runs",
    "--weights",
    "--freeze-epochs",
    "--fine-tune-lr",
)


@main.command()
@click.option("--models", required=True, help="Comma-separated model names (e.g. mobilenet,lenet5).")
@click.option("--alphas", default=None, help="Width multipliers, e.g. 0.25,0.5,1.0 (default: each model's).")
@click.option("--sizes", default=None, help="Input resolutions, e.g. 96,128 (default: per data).")
@click.option(
    "--precisions",
    default="float32,int8",
    show_default=True,
    help=f"Any of {', '.join(PRECISIONS)} (post-training), "
    + ", ".join(f"{name} ({stage.title})" for name, stage in precision_stages().items())
    + ".",
)
@click.option("--sparsity", "sparsities", default=None, help="Pruning sparsities, e.g. 0.5,0.75 (0 = dense).")
@setting_options(only=SWEEP_FLAGS)
@click.option("--out", type=click.Path(file_okay=False), default="runs/sweep", show_default=True)
@click.option("--stop-on-error", is_flag=True, help="Stop at the first failing run instead of going on.")
def sweep(models, alphas, sizes, precisions, sparsities, out, stop_on_error, **flags):
    """Train (or reuse), convert, evaluate and benchmark every point of a grid.

    \b
    Runs already done are skipped when the command is run again; an interrupted run
    resumes. Writes OUT/report.{md,csv,json} and OUT/pareto.png.
    Example:
      edgecnn sweep --models mobilenet --alphas 0.25,0.5,0.75,1.0 --sizes 128 \\
                    --precisions float32,int8 --epochs 3 --out runs/sweep-mobilenet
    """
    from edgecnn.settings.run_config import check_out_path
    from edgecnn.sweep import SweepSpec, run_sweep

    check_out_path(out, allow_outside=True, where="--out")  # typed by the user: anywhere it can be written
    spec = SweepSpec(
        models=_split(models, str, "models"),
        alphas=_split(alphas, float, "alphas") or [None],
        sizes=_split(sizes, int, "sizes") or [None],
        precisions=_split(precisions, str, "precisions"),
        sparsities=_split(sparsities, float, "sparsity") or [0.0],
        base=settings_from_flags(flags, only=SWEEP_FLAGS),
        out=out,
    )
    run_sweep(spec, echo=click.echo, stop_on_error=stop_on_error)
