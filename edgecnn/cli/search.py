"""``edgecnn search``: the best model within a latency budget on a named device."""

from __future__ import annotations

import os

import click

from edgecnn.cli._main import main
from edgecnn.cli.options import setting_options, settings_from_flags
from edgecnn.cli.sweep import _split

SEARCH_FLAGS = ("--batch-size", "--train-fraction", "--seed")


def _family_widths(items) -> dict:
    """``("efficientnet_b0=1.0", "mobilenet_v2=0.35,0.5")`` -> ``{family: [widths]}``."""
    from edgecnn.errors import UserError

    out = {}
    for item in items:
        family, sep, widths = item.partition("=")
        if not sep or not family.strip():
            raise UserError(f"--widths-of takes FAMILY=W1,W2, got {item!r}")
        out[family.strip()] = _split(widths, float, "widths-of")
    return out


@main.command()
@click.option("--budget-ms", type=float, required=True, help="Latency every returned model must meet on the target.")
@click.option("--families", required=True, help="Comma-separated model families, e.g. mobilenet,shufflenet_v2.")
@click.option("--data", default="digits", show_default=True,
              help="Image folder (one subfolder per class), .npz or digits.")
@click.option("--widths", default=None, help="Width multipliers, e.g. 0.25,0.5 (families without one: their own).")
@click.option("--widths-of", "widths_of", multiple=True, metavar="FAMILY=W1,W2",
              help="Widths for one family instead of --widths (repeatable), e.g. efficientnet_b0=1.0.")
@click.option("--sizes", default=None, help="Input resolutions, e.g. 96,128,160 (default: per data).")
@click.option("--precisions", default="float32,int8", show_default=True, help="Any of float32, float16, dynamic, int8.")
@click.option("--max-size-kb", type=float, default=None, help="Drop candidates whose .tflite is larger.")
@click.option("--device", "device_name", default=None, help="Name of the target device, for the tables.")
@click.option("--device-command", default=None,
              help="Time each model on the device: a command running 'edgecnn-device bench --json -' there, "
              "the model on its stdin, e.g. 'ssh pi edgecnn-device bench --json -'.")
@click.option("--latency-table", type=click.Path(dir_okay=False), default=None,
              help="A device latency table (edgecnn-device bench --table): latency is estimated from it, "
              "or, with --measure or --device-command, compared with the measurement.")
@click.option("--measure/--no-measure", default=None,
              help="With --latency-table: also measure (default: only with --device-command).")
@click.option("--threads", type=int, default=1, show_default=True, help="Threads of the latency measurement.")
@click.option("--time-budget", "time_budget_min", type=float, default=30.0, show_default=True,
              help="Minutes for the whole search; no training starts after it, and a later rung trains "
              "the leaders that fit the time left.")
@click.option("--epochs", type=int, default=2, show_default=True, help="Epochs of the first rung (all survivors).")
@click.option("--eta", type=int, default=3, show_default=True,
              help="Keep the best 1/eta at each rung, with eta times the epochs.")
@click.option("--rungs", type=int, default=3, show_default=True, help="Most rungs of successive halving.")
@click.option("--head-epochs", type=int, default=None,
              help="Pretrained candidates: most frozen-base epochs before the first rung's whole-network epochs "
              "(default: the pipeline's, up to 30, stopping when validation loss stops improving).")
@click.option("--final/--no-final", default=True, show_default=True,
              help="Train the best group once more in full, with edgecnn optimize's own schedule, from its "
              "first weights; it is shipped if its validation accuracy is better.")
@click.option("--weights", type=click.Choice(["auto", "imagenet", "none"]), default="auto", show_default=True,
              help="auto: ImageNet weights where the family has them and the file is in Keras' cache; none: scratch.")
@setting_options(only=SEARCH_FLAGS)
@click.option("--out", type=click.Path(file_okay=False), default="runs/search", show_default=True)
@click.option("--plan-only", is_flag=True, help="Measure and prune only; train nothing.")
def search(budget_ms, families, data, widths, widths_of, sizes, precisions, max_size_kb, device_name, time_budget_min,
           out, plan_only, **flags):
    """Find the most accurate model within --budget-ms on the target device.

    \b
    Each candidate (family x width x resolution x precision) is timed untrained on the
    target and dropped if over the budget; the rest train by successive halving, ranked
    on the validation accuracy of their .tflite. Writes OUT/search.{md,csv,json},
    OUT/search.png, OUT/result.json; the winner is a normal run folder. Run the same
    command again to resume.
    Example:
      edgecnn search --budget-ms 5 --families mobilenet,shufflenet_v2 --widths 0.25,0.5 \\
                     --sizes 96,128 --data photos/ --time-budget 30 --out runs/search
    """
    from edgecnn.search import SearchSpec, run_search
    from edgecnn.settings.run_config import check_out_path

    check_out_path(out, allow_outside=True, where="--out")
    if device_name:
        os.environ["EDGECNN_DEVICE"] = device_name
    spec = SearchSpec(
        families=_split(families, str, "families"),
        budget_ms=budget_ms,
        data=data,
        widths=_split(widths, float, "widths") or [None],
        family_widths=_family_widths(widths_of),
        sizes=_split(sizes, int, "sizes") or [None],
        precisions=_split(precisions, str, "precisions"),
        max_size_kb=max_size_kb,
        time_budget_s=60.0 * time_budget_min,
        device=device_name,
        base=settings_from_flags(flags, only=SEARCH_FLAGS),
        out=out,
        **{k: flags[k] for k in ("device_command", "latency_table", "measure", "threads", "epochs", "eta", "rungs",
                                 "head_epochs", "final", "weights")},
    )
    run_search(spec, echo=click.echo, plan_only=plan_only)
