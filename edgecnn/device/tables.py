"""Tables for the terminal, Markdown and CSV: the one table writer, device side and toolkit.

A row is a flat dict; a :class:`Column` says how to show one key. It lives under
``device/`` because the device's per-op profile (:mod:`edgecnn.device.profile`) prints and
saves tables, and ``device/`` imports only itself, :mod:`edgecnn.errors` and
:mod:`edgecnn._io` (``tests/test_structure.py``). :mod:`edgecnn.report.tables` builds its columns
(sizes, accuracies, latencies) on these and re-exports them. Every writer is atomic.

Example:
    >>> ms = Column("ms", "ms/run", lambda v: f"{v:.3f}")
    >>> print(format_table([{"op": "CONV_2D", "ms": 0.0921}], [Column("op", "op type", str, "<"), ms]))
    op type  ms/run
    -------  ------
    CONV_2D   0.092
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from edgecnn._io import write_json, write_text


@dataclass(frozen=True)
class Column:
    """How a row key is shown: header, formatter, alignment (``">"`` right, ``"<"`` left).

    Example:
        >>> Column("threads", "threads").show({"threads": 4}), Column("x", "x").show({})
        ('4', '-')
    """

    key: str
    header: str
    fmt: Callable = str
    align: str = ">"

    def show(self, row: dict) -> str:
        value = row.get(self.key)
        if value is None:
            return "-"
        return self.fmt(value) if self.fmt is not str else str(value)


def dash_format(spec: str) -> Callable:
    """A cell formatter: ``format(v, spec)``, ``"-"`` for a missing or NaN value.

    Example:
        >>> dash_format(".2f")(2.5), dash_format(".2f")(None), dash_format(".2f")(float("nan"))
        ('2.50', '-', '-')
    """

    def cell(v):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "-"
        return format(v, spec)

    return cell


def format_table(rows: list, columns: list) -> str:
    """A plain-text table that lines up in any terminal (ASCII only).

    Example:
        >>> columns = [Column("op", "op", str, "<"), Column("count", "count")]
        >>> print(format_table([{"op": "CONV_2D", "count": 3}], columns))
        op       count
        -------  -----
        CONV_2D      3
    """
    cells = [[c.header for c in columns]] + [[c.show(r) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]

    def line(values):
        parts = [f"{v:{c.align}{w}}" for v, c, w in zip(values, columns, widths)]
        return "  ".join(parts).rstrip()

    out = [line(cells[0]), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells[1:]]
    return "\n".join(out)


def to_markdown(rows: list, columns: list) -> str:
    """The same table in GitHub Markdown.

    Example:
        >>> columns = [Column("op", "op", str, "<"), Column("count", "count")]
        >>> print(to_markdown([{"op": "CONV_2D", "count": 3}], columns))
        | op | count |
        |---|---:|
        | CONV_2D | 3 |
    """
    head = "| " + " | ".join(c.header for c in columns) + " |"
    sep = "|" + "|".join("---:" if c.align == ">" else "---" for c in columns) + "|"
    body = ["| " + " | ".join(c.show(r) for c in columns) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def to_csv(rows: list, keys: list | None = None) -> str:
    """CSV with raw (unformatted) values; nested values are left out.

    Example:
        >>> print(to_csv([{"op": "CONV_2D", "ms": 0.0921, "nodes": [1, 2]}]), end="")
        ms,op
        0.0921,CONV_2D
    """
    keys = keys or sorted({k for r in rows for k, v in r.items() if not isinstance(v, (dict, list))})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: r.get(k) for k in keys})
    return buf.getvalue()


def save_table(rows: list, columns: list, stem, title: str | None = None, header=(), footer=()) -> dict:
    """Write ``stem.md``, ``stem.csv`` and ``stem.json``; returns their paths.

    ``header`` lines go above the Markdown table (the CPU: ``edgecnn.report.tables.cpu_lines``),
    ``footer`` lines below it (notes such as ``edgecnn.report.tables.int8_speed_notes``).

    Example:
        >>> save_table(rows, [Column("op", "op type", str, "<")], "bench_ops", "Time per op type")  # doctest: +SKIP
        {'markdown': PosixPath('bench_ops.md'), 'csv': PosixPath('bench_ops.csv'), 'json': PosixPath('bench_ops.json')}
    """
    stem = Path(stem)
    md = (f"# {title}\n\n" if title else "") + "".join(f"{h}\n\n" for h in header)
    md += to_markdown(rows, columns) + "\n" + "".join(f"\n{f}\n" for f in footer)
    paths = {
        "markdown": write_text(stem.with_suffix(".md"), md),
        "csv": write_text(stem.with_suffix(".csv"), to_csv(rows)),
        "json": write_json(stem.with_suffix(".json"), rows),
    }
    return paths


__all__ = ["Column", "format_table", "save_table", "to_csv", "to_markdown"]
