"""``edgecnn report``: one table and one plot from any set of runs and device results."""

from __future__ import annotations

import click

from edgecnn.cli._main import main


@main.command("report")
@click.argument("sources", nargs=-1, required=True, metavar="RUNS...")
@click.option("--sort", "sort_by", default=None, help="Column to sort by (key or header, e.g. latency_median_ms).")
@click.option("--desc", is_flag=True, help="Sort in descending order.")
@click.option("--filter", "pattern", default=None, help="Keep models whose name matches (glob or substring).")
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default="runs/report",
    show_default=True,
    help="Folder for report.{md,csv,json} and pareto.png.",
)
@click.option("--title", default="edgecnn report", show_default=True)
@click.option(
    "--device-name",
    default=None,
    help="Device label for benchmark_model logs without a 'device:' line (default: the log's file name).",
)
def report_cmd(sources, sort_by, desc, pattern, out, title, device_name):
    """Gather run folders (metrics.json), bench/eval JSON and benchmark_model logs into one table and plot.

    \b
    Device results (edgecnn-device bench/eval -o FILE, and the text output of TFLite's
    benchmark_model on Android) are matched to the runs' .tflite files by content and
    shown as extra rows labelled with the device.
    Examples:
      edgecnn report runs/sweep --sort latency_median_ms --out runs/report
      edgecnn report runs/mobilenet-a0.50-32px pi4.json --filter "mobilenet*"
      edgecnn report runs/lenet5-32px android.log pi.json --device-name "Pixel 7"
    """
    from edgecnn.errors import UserError
    from edgecnn.report.results import load_results
    from edgecnn.report.tables import (
        cpu_lines,
        filter_rows,
        format_table,
        int8_speed_notes,
        report_columns,
        sort_rows,
        write_report,
    )
    from edgecnn.settings.run_config import check_out_path

    check_out_path(out, allow_outside=True, where="--out")  # anywhere it can be written, said before any work
    try:
        rows = load_results(sources, device_name=device_name)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    rows = filter_rows(rows, pattern)
    if not rows:
        raise UserError(f"no results match {pattern!r}" if pattern else "no results found in " + ", ".join(sources))
    if sort_by:
        try:
            rows = sort_rows(rows, sort_by, descending=desc)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    for line in cpu_lines(rows):
        click.echo(line)
    click.echo(format_table(rows, report_columns(rows)))
    notes = [f"  {r['label']} ({r.get('device')}): {r['note']}" for r in rows if r.get("note")]
    notes += [f"  {note}" for note in int8_speed_notes(rows)]
    if notes:
        click.echo("\nnotes:\n" + "\n".join(notes))
    paths = write_report(rows, out, title=title)
    click.echo("\n" + "  ".join(f"{k}: {v}" for k, v in paths.items()))
