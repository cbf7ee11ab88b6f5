"""``edgecnn latency-grid``: the op models a device times into a latency table (docs/latency.md)."""

from __future__ import annotations

import click

from edgecnn.cli._main import main


@main.command("latency-grid")
@click.argument("out_dir", type=click.Path(file_okay=False), metavar="OUT_DIR")
@click.option("--precisions", default="float32,int8", show_default=True, metavar="P,P",
              help="Precisions of the op models (float32, int8).")
@click.option("--quick", is_flag=True, help="Three op models instead of the full grid (a first look, tests).")
def latency_grid_cmd(out_dir, precisions, quick):
    """Write one tiny .tflite per (op, shape, precision) into OUT_DIR, and a manifest.json.

    \b
    Copy OUT_DIR to the device and time it there:
      edgecnn latency-grid ops/
      edgecnn-device bench --table pi4-1t.json ops/ --threads 1
    The search then predicts each candidate's latency from that table.
    """
    from edgecnn.tflite.op_grid import write_grid

    chosen = tuple(p.strip() for p in precisions.split(",") if p.strip())
    manifest = write_grid(out_dir, precisions=chosen, quick=quick, echo=lambda line: click.echo(line, err=True))
    click.echo(f"written: {manifest}")
