"""``edgecnn list``: the registry, with parameters and MACs at a given input size.

At each model's canonical setting (no size, classes, width or builder argument given) the
figures are the ones its registry entry records, so the listing builds nothing; otherwise
it builds the models it shows and counts them.
"""

from __future__ import annotations

import contextlib

import click

from edgecnn.cli._main import main
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
    from edgecnn.report.tables import MACS, MODEL, PARAMS, Column, format_table

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
    recorded = {name: _recorded_row(model_info(name), image_size, classes, alpha, args) for name in found}
    to_build = [name for name in found if recorded[name] is None]
    built = _build_rows(to_build, image_size, classes, alpha, args, alone=len(found) == 1)
    rows = [recorded[name] or built[name] for name in found]
    for row in rows:  # registry metadata: which Keras Applications weights --weights imagenet loads
        row["pretrained"] = model_info(row["model"]).pretrained or "-"
    columns = [
        MODEL,
        Column("family", "family", str, "<"),
        Column("input", "input", str, "<"),
        PARAMS,
        MACS,
        Column("pretrained", "pretrained", str, "<"),
        Column("note", "description", str, "<"),
    ]
    click.echo(format_table(rows, columns))


def _recorded_row(entry, image_size, classes, alpha, args) -> dict | None:
    """The row of ``entry`` from its recorded figures when the request is its canonical
    setting, else ``None`` (the model must be built)."""
    size = entry.preferred_resolution()
    canonical = (
        not args
        and image_size in (None, size)
        and classes in (None, entry.classes)
        and alpha in (None, 1.0)
        and entry.params is not None
        and entry.macs is not None
    )
    if not canonical:
        return None
    return {
        "model": entry.name,
        "family": entry.family,
        "input": f"{size}x{size}x{entry.channels}",
        "params": entry.params,
        "macs": entry.macs,
        "note": entry.doc,
    }


def _build_rows(names, image_size, classes, alpha, args, alone: bool) -> dict:
    """``{name: row}`` for models built and counted at the requested setting; a model that
    fails to build gets a row with the error as its note (or, shown ``alone``, raises it)."""
    from edgecnn.errors import UserError
    from edgecnn.models import count_macs, count_params, create_model, model_info

    rows = {}
    progress = (
        click.progressbar(
            names,
            label="building",
            file=click.get_text_stream("stderr"),
            show_pos=True,
            item_show_func=lambda n: n or "",
        )
        if len(names) > 1
        else contextlib.nullcontext(names)  # one model: its errors are the user's, shown alone
    )
    with progress as bar:
        for name in bar:
            entry = model_info(name)
            n_classes = classes or entry.classes
            try:
                h = image_size or entry.preferred_resolution(**args)
                shape = (h, h, entry.channels)
                model = create_model(name, input_shape=shape, classes=n_classes, alpha=alpha, **args)
            except Exception as exc:  # report, don't stop the listing
                if isinstance(exc, UserError) and alone:
                    raise
                h = image_size or entry.input_shape[0]
                rows[name] = {
                    "model": name,
                    "family": entry.family,
                    "input": f"{h}x{h}x{entry.channels}",
                    "note": str(exc).splitlines()[0],
                }
                continue
            rows[name] = {
                "model": name,
                "family": entry.family,
                "input": f"{h}x{h}x{entry.channels}",
                "params": count_params(model)["trainable"],
                "macs": count_macs(model),
                "note": entry.doc,
            }
            del model
    return rows
