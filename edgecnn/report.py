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
import json
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


# --- Gathering runs and device results into one table -------------------------------------

LABEL = Column("label", "variant", str, "<")
DEVICE = Column("device", "device", str, "<")
THREADS = Column("threads", "threads", _fmt("d"))
RUNTIME = Column("runtime_label", "runtime", str, "<")
SPARSITY = Column("sparsity", "sparsity", _pct)
NEEDS_RUNTIME = Column("needs_runtime", "needs TFLite", str, "<")
REPORT_COLUMNS = [
    LABEL,
    DEVICE,
    PRECISION,
    SIZE,
    PARAMS,
    MACS,
    TFLITE_ACC,
    LAT_MEDIAN,
    LAT_P90,
    THREADS,
    RUNTIME,
    NEEDS_RUNTIME,
]


def _needs_runtime(bench: dict) -> str | None:
    """The oldest TFLite runtime the model's op versions allow (from the bench's compat check)."""
    for check in (bench.get("compat") or {}).values():
        if check.get("required"):
            return str(check["required"])
    return None


def _label(model: str, config: dict | None, variant: str) -> str:
    """``"mobilenet-a0.50-32px int8"``: the run's name (:func:`edgecnn.config.run_name`) and the variant."""
    from edgecnn.config import run_name

    cfg = config or {}
    prune = cfg.get("prune") if isinstance(cfg.get("prune"), dict) else {}
    alpha, size = (cfg.get("model") or {}).get("alpha"), (cfg.get("data") or {}).get("image_size")
    return f"{run_name(model, alpha, size, sparsity=prune.get('sparsity'))} {variant}"


def rows_from_metrics(metrics: dict, source: str = "") -> list:
    """Flat report rows from a run's ``metrics.json`` (one per exported ``.tflite``).

    Example:
        >>> rows = rows_from_metrics(json.load(open("runs/mobilenet-a0.50-32px/metrics.json")))  # doctest: +SKIP
        >>> rows[0]["label"], rows[0]["latency_median_ms"]                                     # doctest: +SKIP
        ('mobilenet-a0.50-32px float32', 0.126)
    """
    cfg = metrics.get("config") or {}
    run_dir = metrics.get("run_dir") or source
    out = []
    for r in metrics.get("rows", []):
        bench = r.get("bench") or {}
        row = {k: v for k, v in r.items() if k not in ("confusion", "bench")}
        prune = cfg.get("prune") if isinstance(cfg.get("prune"), dict) else {}
        row.update(
            label=_label(r.get("model", metrics.get("model", "?")), cfg, r.get("variant", r.get("precision", "?"))),
            alpha=(cfg.get("model") or {}).get("alpha"),
            image_size=(cfg.get("data") or {}).get("image_size"),
            sparsity=prune.get("sparsity") if prune else None,
            device=bench.get("device") or "workstation",
            threads=bench.get("threads"),
            cpu=bench.get("cpu"),
            source=str(Path(run_dir) / r["file"]) if r.get("file") else source,
        )
        if bench.get("status") == "ok":
            row["runtime_label"] = f"{bench['runtime']} {bench['runtime_version']}"
            row["needs_runtime"] = _needs_runtime(bench)
        elif bench:
            row["note"] = f"bench {bench.get('status')}: {bench.get('error')}"
        out.append(row)
    return out


def _bench_row(b: dict, source: str) -> dict:
    name = Path(str(b.get("model", "?"))).name
    row = {
        "label": name,
        "model": Path(name).stem,
        "file": name,
        "sha256": b.get("sha256"),
        "size_bytes": b.get("size_bytes"),
        "device": b.get("device", "?"),
        "cpu": b.get("cpu"),
        "threads": b.get("threads"),
        "source": source,
    }
    if b.get("status") == "ok":
        delegate = f" ({b['delegate']})" if b.get("delegate") else ""
        row.update(
            latency_median_ms=b["median_ms"],
            latency_p90_ms=b["p90_ms"],
            runtime=b["runtime"],
            runtime_version=b["runtime_version"],
            runtime_label=f"{b['runtime']} {b['runtime_version']}{delegate}",
            needs_runtime=_needs_runtime(b),
        )
        for key in ("peak_memory_mb", "latency_statistic", "delegate"):  # benchmark_model logs
            if b.get(key) is not None:
                row[key] = b[key]
        bad = [f"{k}: {v['note']}" for k, v in (b.get("compat") or {}).items() if v.get("compatible") is False]
        if bad:
            row["note"] = "; ".join(bad)
    else:
        row["note"] = f"bench {b.get('status')}: {b.get('error')}"
    return row


def load_results(paths, device_name: str | None = None) -> list:
    """Rows from any mix of run folders (their ``metrics.json``), ``metrics.json`` files,
    JSON from ``edgecnn bench --json`` / ``edgecnn eval --json`` / ``edgecnn-device``, and
    text logs of TFLite's ``benchmark_model`` (Android, see :mod:`edgecnn.benchmark_log`).

    Device results are merged with the run rows of the same ``.tflite`` (matched by its
    SHA-256; a log without one by file name and size): each device measurement becomes a
    row with the run's accuracy, size and MACs and the device's latency, labelled with the
    device name (a log's ``device:`` line, else ``device_name``, else the log's file name).
    Raises ``ValueError`` naming a path that is missing or is not one of those files, and a
    log that is truncated or matches none of the runs' files.

    Example:
        >>> rows = load_results(["runs/mobilenet-a0.50-32px", "pi4.json", "pixel7.log"])  # doctest: +SKIP
    """
    from edgecnn.benchmark_log import looks_like_benchmark_log, match_to_runs, parse_benchmark_log

    run_rows, bench, evals, logs = [], [], [], []
    for p in map(Path, paths):
        files = [p / "metrics.json"] if p.is_dir() else [p]
        if p.is_dir() and not files[0].is_file():
            found = sorted(p.glob("*/metrics.json"))
            if not found:
                raise ValueError(f"{p} holds no metrics.json (not a run folder, nor a folder of runs)")
            files = found
        for f in files:
            if not f.is_file():
                raise ValueError(f"{f} does not exist")
            text = ""
            try:
                text = f.read_text(errors="replace")
                data = json.loads(text)
            except (OSError, ValueError) as exc:
                if looks_like_benchmark_log(text):
                    logs += [(r, str(f)) for r in parse_benchmark_log(text, str(f), device_name)]
                    continue
                raise ValueError(f"{f} is not valid JSON: {exc}") from None
            items = data if isinstance(data, list) else [data]
            for item in items:
                if not isinstance(item, dict):
                    raise ValueError(f"{f} is not a metrics.json or a bench/eval JSON")
                if "rows" in item and "config" in item:
                    run_rows += rows_from_metrics(item, str(f.parent))
                elif item.get("kind") == "eval" or ("accuracy" in item and "confusion" in item):
                    evals.append((item, str(f)))
                elif item.get("kind") == "bench" or "median_ms" in item or "status" in item:
                    bench.append((item, str(f)))
                else:
                    raise ValueError(f"{f} is not a metrics.json or a bench/eval JSON")
    for result, src in logs:
        result["sha256"] = match_to_runs(result, run_rows, src).get("sha256")
        bench.append((result, src))
    rows = list(run_rows)
    by_sha = {}
    for r in run_rows:
        by_sha.setdefault(r.get("sha256"), r)
    for b, src in bench:
        row = _bench_row(b, src)
        base = by_sha.get(b.get("sha256")) if b.get("sha256") else None
        if base is not None:
            merged = dict(base)
            merged.update({k: v for k, v in row.items() if k not in ("label", "model", "file") and v is not None})
            for key in ("latency_p90_ms", "cpu", "threads"):  # the device's, even when it has none (a log: no p90)
                merged[key] = row.get(key)
            if "note" not in row:
                merged.pop("note", None)
            if b.get("status") != "ok":
                merged.pop("latency_median_ms", None)
                merged.pop("latency_p90_ms", None)
                merged.pop("runtime_label", None)
            row = merged
        rows.append(row)
    for e, src in evals:
        targets = [r for r in rows if r.get("sha256") and r.get("sha256") == e.get("sha256")]
        same_device = [r for r in targets if r.get("device") == e.get("device")]
        if same_device:
            for r in same_device:
                r["tflite_accuracy"] = e["accuracy"]
                r["top5"] = e.get("top5")
        else:
            base = (
                dict(targets[0])
                if targets
                else _bench_row(
                    {
                        "status": "ok",
                        **e,
                        "median_ms": None,
                        "p90_ms": None,
                        "runtime": e.get("runtime"),
                        "runtime_version": e.get("runtime_version"),
                    },
                    src,
                )
            )
            base.update(
                device=e.get("device", "?"),
                tflite_accuracy=e["accuracy"],
                top5=e.get("top5"),
                source=src,
                latency_median_ms=None,
                latency_p90_ms=None,
                threads=None,
            )
            rows.append(base)
    return rows


def filter_rows(rows: list, pattern: str | None) -> list:
    """Rows whose model name or label matches ``pattern`` (a glob, or a substring).

    Example:
        >>> [r["model"] for r in filter_rows([{"model": "lenet5"}, {"model": "mobilenet"}], "mobile*")]
        ['mobilenet']
    """
    import fnmatch

    if not pattern:
        return list(rows)
    glob = any(ch in pattern for ch in "*?[")

    def match(text) -> bool:
        text = str(text or "")
        return fnmatch.fnmatch(text, pattern) if glob else pattern in text

    return [r for r in rows if match(r.get("model")) or match(r.get("label"))]


def column_key(name: str, columns: list | None = None) -> str:
    """The row key for a column given by key or header (``'median ms'`` -> ``latency_median_ms``).

    Example:
        >>> column_key("median ms")
        'latency_median_ms'
    """
    for c in columns or REPORT_COLUMNS + VARIANT_COLUMNS:
        if name in (c.key, c.header):
            return c.key
    return name


def sort_rows(rows: list, column: str, descending: bool = False, columns: list | None = None) -> list:
    """Rows sorted by ``column`` (a key or a header); numbers numerically, missing values last.

    Raises ``ValueError`` for a column that no row has.

    Example:
        >>> [r["x"] for r in sort_rows([{"x": 2}, {"x": None}, {"x": 1}], "x")]
        [1, 2, None]
    """
    key = column_key(column, columns)
    if rows and not any(key in r for r in rows):
        known = sorted({k for r in rows for k, v in r.items() if not isinstance(v, (dict, list))})
        raise ValueError(f"no column {column!r}; choose one of: {', '.join(known)}")

    def sort_key(r):
        v = r.get(key)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return (1, 0, "")
        if isinstance(v, (int, float)):
            return (0, -v if descending else v, "")
        return (0, 0, str(v))

    ordered = sorted(rows, key=sort_key)
    if descending and rows and not any(isinstance(r.get(key), (int, float)) for r in rows):
        present = [r for r in ordered if r.get(key) is not None]
        ordered = present[::-1] + [r for r in ordered if r.get(key) is None]
    return ordered


def pareto_front(rows: list, x: str = "latency_median_ms", y: str = "tflite_accuracy") -> list:
    """The rows no other row beats: none is both at least as fast (lower ``x``) and at least
    as accurate (higher ``y``) and strictly better in one. Sorted by ``x``.

    Example:
        >>> pts = [{"l": 1, "a": 0.5}, {"l": 2, "a": 0.9}, {"l": 3, "a": 0.8}]
        >>> [p["l"] for p in pareto_front(pts, "l", "a")]
        [1, 2]
    """
    pts = [r for r in rows if isinstance(r.get(x), (int, float)) and isinstance(r.get(y), (int, float))]
    front, best = [], -math.inf
    for r in sorted(pts, key=lambda r: (r[x], -r[y])):
        if r[y] > best:
            front.append(r)
            best = r[y]
    return front


def plot_accuracy_latency(rows: list, path, title: str = "Accuracy vs latency") -> Path | None:
    """PNG of accuracy against median latency: marker area ~ file size, colour per device,
    the Pareto front joined and labelled. Returns ``None`` when no row has both figures.

    Example:
        >>> plot_accuracy_latency(load_results(["runs/sweep"]), "runs/sweep/pareto.png")  # doctest: +SKIP
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgecnn._io import atomic_path

    pts = [
        r
        for r in rows
        if isinstance(r.get("latency_median_ms"), (int, float)) and isinstance(r.get("tflite_accuracy"), (int, float))
    ]
    if not pts:
        return None
    sizes = [float(r.get("size_bytes") or 0) for r in pts]
    biggest = max(sizes) or 1.0
    fig, ax = plt.subplots(figsize=(9, 6), dpi=110)
    devices = sorted({str(r.get("device")) for r in pts})
    colors = plt.get_cmap("tab10")
    for i, device in enumerate(devices):
        sel = [r for r in pts if str(r.get("device")) == device]
        ax.scatter(
            [r["latency_median_ms"] for r in sel],
            [100 * r["tflite_accuracy"] for r in sel],
            s=[30 + 600 * float(r.get("size_bytes") or 0) / biggest for r in sel],
            alpha=0.55,
            color=colors(i % 10),
            edgecolors="black",
            linewidths=0.5,
            label=device,
        )
    for device in devices:
        front = pareto_front([r for r in pts if str(r.get("device")) == device])
        ax.plot(
            [r["latency_median_ms"] for r in front],
            [100 * r["tflite_accuracy"] for r in front],
            "--",
            color="black",
            linewidth=1,
            drawstyle="steps-post",
        )
        for r in front:
            ax.annotate(
                str(r.get("label", r.get("model"))),
                (r["latency_median_ms"], 100 * r["tflite_accuracy"]),
                textcoords="offset points",
                xytext=(6, -10),
                fontsize=7,
            )
    ax.set_xscale("log")
    ax.set_xlabel("median latency (ms, log scale)")
    ax.set_ylabel("top-1 accuracy of the .tflite (%)")
    ax.set_title(f"{title}\n(marker area ~ file size; dashed: Pareto front, labelled)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(title="device", loc="lower right", fontsize=8, markerscale=0.5)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def write_report(rows: list, out_dir, title: str = "edgecnn report", columns: list | None = None) -> dict:
    """Write ``report.md``, ``report.csv``, ``report.json`` and ``pareto.png`` into ``out_dir``.

    Example:
        >>> write_report(load_results(["runs/sweep"]), "runs/sweep")  # doctest: +SKIP
    """
    columns = columns or REPORT_COLUMNS
    out_dir = Path(out_dir)
    front = {id(r) for r in pareto_front(rows)}
    for r in rows:
        r["pareto"] = id(r) in front
    paths = save_table(rows, columns, out_dir / "report", title=title)
    plot = plot_accuracy_latency(rows, out_dir / "pareto.png", title=title)
    if plot:
        paths["plot"] = plot
    return paths


def run_report_md(cfg, data, rows: list, metrics: dict, notes: list) -> str:
    """``report.md`` of one run: settings, the variants table, and one line per compression stage."""
    runtime = next((r.get("runtime") for r in rows if r.get("runtime")), cfg.bench.runtime)
    lines = [
        f"# {cfg.model.name} (alpha {cfg.model.alpha}, {cfg.data.image_size}px) on {data.name}",
        "",
        f"- Data: {data.summary()}",
        f"- Training: {cfg.train.epochs} epochs, batch {cfg.train.batch_size}, {cfg.train.optimizer} "
        f"lr {cfg.train.learning_rate} ({cfg.train.schedule})",
        f"- Latency: {cfg.bench.threads} thread(s), {cfg.bench.runs} runs after {cfg.bench.warmup} warm-up, "
        f"runtime {runtime}",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in metrics["versions"].items() if isinstance(v, str)),
        "",
        to_markdown(rows, VARIANT_COLUMNS),
        "",
        "Accuracy is top-1 on the test split; `delta pts` is the .tflite's accuracy minus the Keras model's, "
        "in points.",
        *(["", "## Compression stages", "", *notes] if notes else []),
    ]
    return "\n".join(lines) + "\n"
