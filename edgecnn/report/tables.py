"""Tables: the terminal, Markdown, CSV and JSON views of the same rows, and report.md.

A row is a flat dict (one variant of one model); a :class:`Column` says how to show one
key. The rows of finished runs and device results come from :mod:`edgecnn.report.results`,
the accuracy-vs-latency plot beside the tables from :mod:`edgecnn.report.pareto`. The
table writers (``Column``, ``format_table``, ``to_markdown``, ``to_csv``, ``save_table``)
live in :mod:`edgecnn.device.tables` and are re-exported here. Every writer is atomic.

Example:
    >>> print(format_table([{"variant": "int8", "size_bytes": 295144}], [VARIANT, SIZE]))
    variant  size
    -------  --------
    int8     288.2 KB
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

from edgecnn.device.bench import bench_fields  # noqa: F401  (declared beside the bench result it reads)

# The table writer is the device side's (its profile prints tables, and device/ imports nothing
# from here); re-exported so ``from edgecnn.report.tables import format_table`` keeps working.
from edgecnn.device.tables import Column, format_table, save_table, to_csv, to_markdown  # noqa: F401
from edgecnn.report.pareto import pareto_front, plot_accuracy_latency
from edgecnn.tflite.debugger import LAYER_COLUMNS, format_layers  # noqa: F401  (the int8 debugger's own table)


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


MODEL = Column("model", "model", str, "<")
VARIANT = Column("variant", "variant", str, "<")
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


# --- Results that are not what they seem ----------------------------------------------------

# A test accuracy within this fraction of the way from chance (1 / classes) to 100% is "near chance".
NEAR_CHANCE = 0.1


def near_chance_lines(rows: list, num_classes: int) -> list:
    """One warning line when any row's ``.tflite`` test accuracy is near chance (within
    :data:`NEAR_CHANCE` of the way from ``1 / num_classes`` to 1); marks those rows
    ``near_chance: True``. A table that would otherwise look normal then says the model has
    not learned the task.

    Example:
        >>> rows = [{"variant": "float32", "tflite_accuracy": 0.25}, {"variant": "int8", "tflite_accuracy": 0.8}]
        >>> near_chance_lines(rows, 5)[0][:60]
        'warning: near chance (20.0% for 5 classes): float32 25.0% on'
        >>> rows[0]["near_chance"], "near_chance" in rows[1]
        (True, False)
    """
    if num_classes < 2:
        return []
    chance = 1.0 / num_classes
    bar = chance + NEAR_CHANCE * (1.0 - chance)
    low = [r for r in rows if isinstance(r.get("tflite_accuracy"), float) and r["tflite_accuracy"] <= bar]
    for r in low:
        r["near_chance"] = True
    if not low:
        return []
    which = ", ".join(f"{r['variant']} {100 * r['tflite_accuracy']:.1f}%" for r in low)
    return [f"warning: near chance ({100 * chance:.1f}% for {num_classes} classes): {which} on the test split; the "
            "model has not learned these classes: check the labels and the data, or lower --lr / --fine-tune-lr"]


# --- Speed explained by the CPU -------------------------------------------------------------

# int8 must run at least this many times faster than float32 (median latency) to count as faster.
INT8_MIN_SPEEDUP = 1.10


def cpu_lines(rows: list) -> list:
    """One ``'CPU: ...'`` line per distinct measuring machine among ``rows`` (those with a
    latency), prefixed with the device name when there are several: the line every table of
    latencies carries above its figures.

    Example:
        >>> cpu_lines([{"latency_median_ms": 1.0, "cpu": "Cortex-A76", "cpu_features": ["asimd", "asimddp"]}])
        ['CPU: Cortex-A76 (asimd asimddp)']
    """
    from edgecnn.device.bench import cpu_line

    seen = {}
    for r in rows:
        if r.get("latency_median_ms") is None:
            continue
        if r.get("cpu") or r.get("cpu_features") is not None:
            seen.setdefault((r.get("device"), cpu_line(r)), None)
        elif r.get("device"):  # a benchmark_model log names no CPU
            seen.setdefault((r.get("device"), "CPU: not recorded"), None)
    several = len({d for d, _ in seen}) > 1
    return [f"{device}: {line}" if several and device else line for device, line in seen]


def _speed_reason(row: dict) -> str:
    from edgecnn.device.bench import INT8_DOT_FEATURES, has_int8_dot

    feats = row.get("cpu_features")
    reasons = []
    dot = has_int8_dot(feats)
    if dot is None:
        reasons.append("CPU features unknown (no /proc/cpuinfo flags)")
    elif not dot:
        arm = "asimd" in feats or str(row.get("arch", "")).startswith(("aarch", "arm"))
        names = [f for f in INT8_DOT_FEATURES if (f in ("asimddp", "i8mm")) == arm]
        reasons.append(f"no int8 dot-product instructions on this CPU (none of {', '.join(names)})")
    fallback = row.get("xnnpack_fallback") or {}
    if fallback:
        ops = ", ".join(f"{k} x{v}" for k, v in fallback.items())
        reasons.append(f"ops outside XNNPACK run on reference kernels ({ops})")
    if not reasons:
        reasons.append(
            "neither usual cause (the CPU has int8 dot product, XNNPACK runs every op): "
            "the model is too small for int8 to pay off, fixed costs per run dominate"
        )
    return "; ".join(reasons)


def int8_speed_notes(rows: list, min_speedup: float = INT8_MIN_SPEEDUP) -> list:
    """One line for each result whose int8 file is not at least ``min_speedup`` times faster
    than its float32 file on the machine measured (rows of the same run, stage, device and
    thread count), with the likely reason: no int8 dot-product instructions (from the row's
    ``cpu_features``) or ops XNNPACK does not run (``xnnpack_fallback``).

    Example:
        >>> rows = [{"precision": "float32", "variant": "float32", "latency_median_ms": 1.00},
        ...         {"precision": "int8", "variant": "int8", "latency_median_ms": 0.98,
        ...          "cpu_features": ["avx2"], "xnnpack_fallback": {}}]
        >>> print(int8_speed_notes(rows)[0])  # doctest: +NORMALIZE_WHITESPACE
        int8 is not faster than float32 here: int8 0.980 ms vs float32 1.000 ms (1.02x, under 1.10x); likely
        reason: no int8 dot-product instructions on this CPU (none of avx512_vnni, avx_vnni, amx_int8)
    """

    def key(r):
        source = str(Path(r["source"]).parent) if r.get("source") else ""
        return source, r.get("stage"), r.get("device"), r.get("threads")

    floats = {}
    for r in rows:
        if r.get("precision") == "float32" and isinstance(r.get("latency_median_ms"), (int, float)):
            floats.setdefault(key(r), r)
    notes = []
    for r in rows:
        base = floats.get(key(r))
        if r.get("precision") != "int8" or base is None or not isinstance(r.get("latency_median_ms"), (int, float)):
            continue
        f_ms, i_ms = base["latency_median_ms"], r["latency_median_ms"]
        speedup = f_ms / i_ms if i_ms > 0 else math.inf
        if speedup >= min_speedup:
            continue
        name = str(r.get("label") or r.get("variant") or "int8")
        ref = str(base.get("label") or base.get("variant") or "float32")
        notes.append(
            f"int8 is not faster than float32 here: {name} {i_ms:.3f} ms vs {ref} {f_ms:.3f} ms "
            f"({speedup:.2f}x, under {min_speedup:.2f}x); likely reason: {_speed_reason(r)}"
        )
    return notes


# --- Gathering runs and device results into one table -------------------------------------

LABEL = Column("label", "variant", str, "<")
DEVICE = Column("device", "device", str, "<")
THREADS = Column("threads", "threads", _fmt("d"))
RUNTIME = Column("runtime_label", "runtime", str, "<")
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


WEIGHTS = Column("weights", "started from", str, "<")


def weights_label(metrics: dict) -> str:
    """Which weights a run started from, for its rows: ``"random"``, ``"imagenet 1a2b3c4d"``,
    ``"run mobilenet-a0.50-32px 1a2b3c4d"`` or the file's name, with the first 8 hex digits
    of the file's sha256 (``metrics.json``'s ``stages.trained.weights``).

    Example:
        >>> weights_label({"stages": {"trained": {"weights": {"source": "imagenet", "sha256": "1a2b3c4d5e"}}}})
        'imagenet 1a2b3c4d'
        >>> weights_label({"config": {"model": {"weights": None}}})
        'random'
    """
    started = _started(metrics)
    source = started.get("source") or ((metrics.get("config") or {}).get("model") or {}).get("weights")
    if not source or str(source).lower() == "none":
        return "random"
    digest = str(started.get("sha256") or "")[:8]
    if str(source).lower() == "imagenet":
        name = "imagenet"
    elif Path(str(source)).suffix == "" and Path(str(started.get("file", ""))).name == "weights.h5":
        name = f"run {Path(str(source)).name}"  # a run folder: its train/weights.h5
    else:
        name = Path(str(source)).name
    return f"{name} {digest}".strip()


def _started(metrics: dict) -> dict:
    """The weights the training stage started from, as ``metrics.json`` records them under its row."""
    from edgecnn.stages.train import ROW

    return ((metrics.get("stages") or {}).get(ROW) or {}).get("weights") or {}


def report_columns(rows: list) -> list:
    """:data:`REPORT_COLUMNS`, with a ``started from`` column after the variant when any row
    started from weights (``imagenet``, a file or a run folder) rather than at random."""
    if not any(r.get("weights") not in (None, "random") for r in rows):
        return list(REPORT_COLUMNS)
    return [REPORT_COLUMNS[0], WEIGHTS, *REPORT_COLUMNS[1:]]


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
    for c in columns or [*REPORT_COLUMNS, WEIGHTS, *VARIANT_COLUMNS]:
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


def write_report(rows: list, out_dir, title: str = "edgecnn report", columns: list | None = None) -> dict:
    """Write ``report.md``, ``report.csv``, ``report.json`` and ``pareto.png`` into ``out_dir``.

    Example:
        >>> from edgecnn.report.results import load_results
        >>> write_report(load_results(["runs/sweep"]), "runs/sweep")  # doctest: +SKIP
    """
    columns = columns or report_columns(rows)
    out_dir = Path(out_dir)
    front = {id(r) for r in pareto_front(rows)}
    for r in rows:
        r["pareto"] = id(r) in front
    paths = save_table(rows, columns, out_dir / "report", title=title, header=cpu_lines(rows),
                       footer=int8_speed_notes(rows))
    plot = plot_accuracy_latency(rows, out_dir / "pareto.png", title=title)
    if plot:
        paths["plot"] = plot
    return paths


def _delegation_lines(rows: list) -> list:
    """Where XNNPACK leaves ops to the reference kernels (all of an int16x8 file), one line per row."""
    lines = [
        f"- {r.get('variant')}: reference kernels (outside XNNPACK): "
        + ", ".join(f"{k} x{v}" for k, v in r["xnnpack_fallback"].items())
        for r in rows
        if r.get("xnnpack_fallback")
    ]
    return ["## Ops outside XNNPACK", "", *lines, ""] if lines else []


# The per-layer int8 error (:mod:`edgecnn.tflite.debugger`): one row per quantized layer.
def layers_markdown(summary: dict) -> str:
    """The worst layers as a Markdown table for ``report.md``."""
    text = to_markdown(summary["worst_layers"], LAYER_COLUMNS)
    return text + "".join(f"\n\nNote: {n}" for n in summary.get("notes", []))


def _int8_lines(rows: list) -> list:
    """report.md's int8 sections: the worst layers of each int8 file, what int8_mixed kept in float."""
    out = []
    for r in rows:
        info = r.get("int8_layers")
        if not isinstance(info, dict):
            continue
        out += [f"## int8 error per layer: {r.get('variant')}", ""]
        if "error" in info:
            out += [f"Not measured: {info['error']}", ""]
            continue
        out += [
            f"The {len(info['worst_layers'])} worst of {info['layers_measured']} quantized layers, on "
            f"{info['samples']} validation images (TFLite's quantization debugger). `rmse/scale` is the "
            "root-mean-square difference from float in quantization steps (about 0.29 is rounding alone); "
            "`mean error` is the bias.",
            "",
            layers_markdown(info),
            "",
        ]
        if "val_drop_points" in info:
            out += [f"Validation: float32 {100 * info['val_accuracy_float32']:.2f}%, int8 "
                    f"{100 * info['val_accuracy_int8']:.2f}% ({info['val_drop_points']:+.2f} points of drop).", ""]
    for r in rows:
        mixed = r.get("int8_mixed")
        if not isinstance(mixed, dict):
            continue
        layers = ", ".join(f"`{name}` ({op})" for name, op in zip(mixed["float_layers"], mixed["float_ops"]))
        out += [
            f"## {r.get('variant')}: float fallback",
            "",
            f"{len(mixed['float_layers'])} of {mixed['layers_measured']} layers kept in float "
            f"({100 * mixed['float_fraction']:.0f}%): {layers}. Validation accuracy "
            f"{100 * mixed['val_accuracy']:.2f}% vs float32 {100 * mixed['val_accuracy_float32']:.2f}% "
            f"(drop {mixed['val_drop_points']:+.2f} points, budget {mixed['budget_points']:g}"
            f"{'' if mixed['within_budget'] else ', not met'}). Tried (layers in float, accuracy): "
            + ", ".join(f"{k}: {100 * a:.2f}%" for k, a in mixed["tried"])
            + ".",
            "",
        ]
    return out


def _started_file(metrics: dict) -> str:
    started = _started(metrics)
    return f"{started['file']}, sha256 {started.get('sha256')}" if started.get("file") else ""


def run_report_md(cfg, data, rows: list, metrics: dict, notes: list) -> str:
    """``report.md`` of one run: settings, the variants table, and one line per compression stage."""
    runtime = next((r.get("runtime") for r in rows if r.get("runtime")), cfg.bench.runtime)
    lines = [
        f"# {cfg.model.name} (alpha {cfg.model.alpha}, {cfg.data.image_size}px) on {data.name}",
        "",
        f"- Data: {data.summary()}",
        f"- Started from: {weights_label(metrics)}"
        + (f" ({_started_file(metrics)})" if _started_file(metrics) else ""),
        f"- Training: {cfg.train.epochs} epochs, batch {cfg.train.batch_size}, {cfg.train.optimizer} "
        f"lr {cfg.train.learning_rate} ({cfg.train.schedule})",
        f"- Latency: {cfg.bench.threads} thread(s), {cfg.bench.runs} runs after {cfg.bench.warmup} warm-up, "
        f"runtime {runtime}",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in metrics["versions"].items() if isinstance(v, str)),
        "",
        *[f"{line}  " for line in cpu_lines(rows)],
        "",
        to_markdown(rows, VARIANT_COLUMNS),
        "",
        *[f"{note}\n" for note in int8_speed_notes(rows)],
        "Accuracy is top-1 on the test split; `delta pts` is the .tflite's accuracy minus the Keras model's, "
        "in points.",
        "",
        *_delegation_lines(rows),
        *_int8_lines(rows),
        *(["", "## Compression stages", "", *notes] if notes else []),
    ]
    return "\n".join(lines) + "\n"
