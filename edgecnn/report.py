"""Tables and plots: the terminal, Markdown, CSV and JSON views of the same rows.

A row is a flat dict (one variant of one model); a :class:`Column` says how to show one
key. Every writer is atomic.

Example:
    >>> print(format_table([{"variant": "int8", "size_bytes": 295144}], [VARIANT, SIZE]))
    variant  size
    -------  --------
    int8     288.2 KB
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from edgecnn._io import write_json, write_text


def human_bytes(n) -> str:
    """``295144 -> '288.2 KB'``."""
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return "-"
    n = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def human_count(n) -> str:
    """``1331592 -> '1.33M'``."""
    if n is None:
        return "-"
    n = float(n)
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            return f"{n / div:.2f}{suffix}"
    return f"{n:.0f}"


def _fmt(fmt: str) -> Callable:
    def f(v):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "-"
        return format(v, fmt)

    return f


def _pct(v):
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.2f}%"


def _delta(v):
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:+.2f}"


@dataclass(frozen=True)
class Column:
    """How a row key is shown: header, formatter, alignment."""

    key: str
    header: str
    fmt: Callable = str
    align: str = ">"

    def show(self, row: dict) -> str:
        value = row.get(self.key)
        if value is None:
            return "-"
        return self.fmt(value) if self.fmt is not str else str(value)


MODEL = Column("model", "model", str, "<")
VARIANT = Column("variant", "variant", str, "<")
STAGE = Column("stage", "stage", str, "<")
PRECISION = Column("precision", "precision", str, "<")
SIZE = Column("size_bytes", "size", human_bytes, "<")
SIZE_GZ = Column("size_gzip", "gzipped", human_bytes)
PARAMS = Column("params", "params", human_count)
NONZERO = Column("nonzero_params", "non-zero", human_count)
MACS = Column("macs", "MACs", human_count)
KERAS_ACC = Column("keras_accuracy", "Keras acc", _pct)
TFLITE_ACC = Column("tflite_accuracy", "TFLite acc", _pct)
DELTA = Column("delta_points", "delta pts", _delta)
LAT_MEDIAN = Column("latency_median_ms", "median ms", _fmt(".3f"))
LAT_P90 = Column("latency_p90_ms", "p90 ms", _fmt(".3f"))

VARIANT_COLUMNS = [VARIANT, SIZE, SIZE_GZ, PARAMS, NONZERO, MACS, KERAS_ACC, TFLITE_ACC, DELTA, LAT_MEDIAN, LAT_P90]


def format_table(rows: list, columns: list) -> str:
    """A plain-text table that lines up in any terminal (ASCII only)."""
    cells = [[c.header for c in columns]] + [[c.show(r) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]

    def line(values):
        parts = [f"{v:{c.align}{w}}" for v, c, w in zip(values, columns, widths)]
        return "  ".join(parts).rstrip()

    out = [line(cells[0]), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells[1:]]
    return "\n".join(out)


def to_markdown(rows: list, columns: list) -> str:
    """The same table in GitHub Markdown."""
    head = "| " + " | ".join(c.header for c in columns) + " |"
    sep = "|" + "|".join("---:" if c.align == ">" else "---" for c in columns) + "|"
    body = ["| " + " | ".join(c.show(r) for c in columns) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def to_csv(rows: list, keys: list | None = None) -> str:
    """CSV with raw (unformatted) values; nested values are left out."""
    keys = keys or sorted({k for r in rows for k, v in r.items() if not isinstance(v, (dict, list))})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: r.get(k) for k in keys})
    return buf.getvalue()


def save_table(rows: list, columns: list, stem, title: str | None = None) -> dict:
    """Write ``stem.md``, ``stem.csv`` and ``stem.json``; returns their paths."""
    stem = Path(stem)
    md = (f"# {title}\n\n" if title else "") + to_markdown(rows, columns) + "\n"
    paths = {
        "markdown": write_text(stem.with_suffix(".md"), md),
        "csv": write_text(stem.with_suffix(".csv"), to_csv(rows)),
        "json": write_json(stem.with_suffix(".json"), rows),
    }
    return paths
