"""``edgecnn list``: the registry, with parameters and MACs at a given input size."""

from __future__ import annotations

import click

from edgecnn.cli import main


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
def list_cmd(pattern, image_size, classes, alpha, names):
    """List the registered models matching PATTERN (a glob, e.g. 'resnet*')."""
    from edgecnn.models import list_models, model_info
    from edgecnn.report import MACS, MODEL, PARAMS, Column, format_table

    found = list_models(pattern)
    if not found:
        from edgecnn.errors import UserError

        raise UserError(f"no model matches {pattern!r}; run 'edgecnn list' to see every model")
    if names:
        click.echo("\n".join(found))
        return
    from edgecnn.models import count_macs, count_params, create_model

    rows = []
    with click.progressbar(
        found, label="building", file=click.get_text_stream("stderr"), show_pos=True, item_show_func=lambda n: n or ""
    ) as bar:
        for name in bar:
            entry = model_info(name)
            h = image_size or entry.input_shape[0]
            shape = (h, h, entry.channels)
            n_classes = classes or (10 if entry.channels == 1 else 1000)
            try:
                model = create_model(name, input_shape=shape, classes=n_classes, alpha=alpha)
            except Exception as exc:  # report, don't stop the listing
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
