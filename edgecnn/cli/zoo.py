"""``edgecnn list``: the registry, with parameters and MACs at a given input size."""

from __future__ import annotations

import contextlib

import click

from edgecnn.cli import main
from edgecnn.cli.optimize import model_arg_options, model_args


@main.command("list")
@click.argument("pattern", default="*")
@click.option(
    "--image-size",
    type=click.IntRange(8, 2048),
    default=None,
    help="Input size for the counts (default: each model's canonical size).",
)
@click.option(
    "--classes", type=click.IntRange(1), default=None, help="Classifier size (default: canonical, 1000 or 10)."
)
@click.option("--alpha", type=float, default=None, help="Width multiplier for the counts (default 1.0).")
@click.option("--names", is_flag=True, help="Only print the names (fast: builds nothing).")
@model_arg_options()[1]
@model_arg_options()[0]
def list_cmd(pattern, image_size, classes, alpha, names, **flags):
    """List the registered models matching PATTERN (a glob, e.g. 'resnet*').

    \b
    Examples:
      edgecnn list 'mobilenet*'
      edgecnn list efficientnet --phi 1.5        (same as --arg phi=1.5)
    """
    from edgecnn.errors import UserError
    from edgecnn.models import list_models, model_info
    from edgecnn.models._registry import unknown_arguments_message
    from edgecnn.report import MACS, MODEL, PARAMS, Column, format_table

    args = model_args(flags)
    found = list_models(pattern)
    if not found:
        raise UserError(f"no model matches {pattern!r}; run 'edgecnn list' to see every model")
    if names:
        click.echo("\n".join(found))
        return
    if args:  # only the models that take these arguments
        found = [name for name in found if not set(args) - model_info(name).arguments]
        if not found:
            entry = model_info(list_models(pattern)[0])
            raise UserError(unknown_arguments_message(entry, sorted(set(args) - entry.arguments)))
    from edgecnn.models import count_macs, count_params, create_model

    rows = []
    progress = (
        click.progressbar(
            found,
            label="building",
            file=click.get_text_stream("stderr"),
            show_pos=True,
            item_show_func=lambda n: n or "",
        )
        if len(found) > 1
        else contextlib.nullcontext(found)  # one model: its errors are the user's, shown alone
    )
    with progress as bar:
        for name in bar:
            entry = model_info(name)
            n_classes = classes or (10 if entry.channels == 1 else 1000)
            try:
                h = image_size or entry.preferred_resolution(**args)
                shape = (h, h, entry.channels)
                model = create_model(name, input_shape=shape, classes=n_classes, alpha=alpha, **args)
            except Exception as exc:  # report, don't stop the listing
                if isinstance(exc, UserError) and len(found) == 1:
                    raise
                h = image_size or entry.input_shape[0]
                rows.append(
                    {
                        "model": name,
                        "family": entry.family,
                        "input": f"{h}x{h}x{entry.channels}",
                        "note": str(exc).splitlines()[0],
                    }
                )
                continue
            rows.append(
                {
                    "model": name,
                    "family": entry.family,
                    "input": f"{h}x{h}x{entry.channels}",
                    "params": count_params(model)["trainable"],
                    "macs": count_macs(model),
                    "note": entry.doc,
                }
            )
            del model
    columns = [
        MODEL,
        Column("family", "family", str, "<"),
        Column("input", "input", str, "<"),
        PARAMS,
        MACS,
        Column("note", "description", str, "<"),
    ]
    click.echo(format_table(rows, columns))
