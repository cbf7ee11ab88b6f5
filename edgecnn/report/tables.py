"""Tables and plots: the terminal, Markdown, CSV and JSON views of the same rows.

A row is a flat dict (one variant of one model); a :class:`Column` says how to show one
key. The table writers (``Column``, ``format_table``, ``to_markdown``, ``to_csv``,
``save_table``) live in :mod:`edgecnn.device.tables` and are re-exported here. Every
writer is atomic.

Example:
    >>> print(format_table([{"variant": "int8", "size_bytes": 295144}], [VARIANT, SIZE]))
    variant  size
    -------  --------
    int8     288.2 KB
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable

# The table writer is the device side's (its profile prints tables, and device/ imports nothing
# from here); re-exported so ``from edgecnn.report.tables import format_table`` keeps working.
from edgecnn.device.tables import Column, format_table, save_table, to_csv, to_markdown  # noqa: F401


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


def bench_fields(bench: dict) -> dict:
    """The machine fields a table row keeps from a bench result: CPU, its features, cores,
    architecture and the ops XNNPACK left to the reference kernels.

    Example:
        >>> bench_fields({"cpu": "Cortex-A72", "cpu_features": ["asimd"], "delegation": {"fallback_ops": {}}})
        {'cpu': 'Cortex-A72', 'cpu_features': ['asimd'], 'xnnpack_fallback': {}}
    """
    out = {k: bench[k] for k in ("cpu", "cpu_features", "cores", "arch") if k in bench}
    delegation = bench.get("delegation")
    if isinstance(delegation, dict) and "fallback_ops" in delegation:
        out["xnnpack_fallback"] = delegation["fallback_ops"]
    return out


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
    started = ((metrics.get("stages") or {}).get("trained") or {}).get("weights") or {}
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


def report_columns(rows: list) -> list:
    """:data:`REPORT_COLUMNS`, with a ``started from`` column after the variant when any row
    started from weights (``imagenet``, a file or a run folder) rather than at random."""
    if not any(r.get("weights") not in (None, "random") for r in rows):
        return list(REPORT_COLUMNS)
    return [REPORT_COLUMNS[0], WEIGHTS, *REPORT_COLUMNS[1:]]


def _needs_runtime(bench: dict) -> str | None:
    """The oldest TFLite runtime the model's op versions allow (from the bench's compat check)."""
    for check in (bench.get("compat") or {}).values():
        if check.get("required"):
            return str(check["required"])
    return None


def _label(model: str, config: dict | None, variant: str) -> str:
    """``"mobilenet-a0.50-32px int8"``: the run's name (:func:`~edgecnn.settings.run_config.run_name`) and variant."""
    from edgecnn.settings.run_config import run_name

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
            weights=weights_label(metrics),
            device=bench.get("device") or "workstation",
            threads=bench.get("threads"),
            cpu=bench.get("cpu"),
            **{k: v for k, v in bench_fields(bench).items() if k != "cpu"},
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
        **{k: v for k, v in bench_fields(b).items() if k != "cpu"},
    }
    if b.get("status") == "ok":
        delegate = f" ({b['delegate']})" if b.get("delegate") else ""
        nodes = b.get("delegated_nodes")  # benchmark_model: "Replacing N out of M node(s) with delegate"
        if b.get("delegate") and nodes and len(nodes) >= 2:
            delegate = f" ({b['delegate']} {nodes[0]}/{nodes[1]} nodes)"
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
    text logs of TFLite's ``benchmark_model`` (Android, see :mod:`edgecnn.report.benchmark_log`).

    Device results are merged with the run rows of the same ``.tflite`` (matched by its
    SHA-256; a log without one by file name and size): each device measurement becomes a
    row with the run's accuracy, size and MACs and the device's latency, labelled with the
    device name (a log's ``device:`` line, else ``device_name``, else the log's file name).
    Raises ``ValueError`` naming a path that is missing or is not one of those files, and a
    log that is truncated or matches none of the runs' files.

    Example:
        >>> rows = load_results(["runs/mobilenet-a0.50-32px", "pi4.json", "pixel7.log"])  # doctest: +SKIP
    """
    from edgecnn.report.benchmark_log import looks_like_benchmark_log, match_to_runs, parse_benchmark_log

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
            # The device's, even when it has none (a log: no p90, no CPU): never the workstation's.
            for key in ("latency_p90_ms", "cpu", "cores", "arch", "cpu_features", "threads"):
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


def plot_accuracy_latency(rows: list, path, title: str = "Accuracy vs latency", budget_ms=None) -> Path | None:
    """PNG of accuracy against median latency: marker area ~ file size, colour per device,
    the Pareto front joined and labelled, and ``budget_ms`` (``edgecnn search``'s latency
    budget) as a vertical line. Returns ``None`` when no row has both figures.

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
    if budget_ms is not None:
        ax.axvline(budget_ms, color="red", linewidth=1.2, label=f"budget {budget_ms:g} ms")
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
LAYER_COLUMNS = [
    Column("layer", "layer", str, "<"),
    Column("op", "op", str, "<"),
    Column("rmse_scale", "rmse/scale", _fmt(".2f")),
    Column("mean_error", "mean error", _fmt("+.2e")),
]


def format_layers(summary: dict) -> str:
    """The worst layers as a terminal table (``edgecnn eval --int8-debug``, the pipeline's output).

    Example:
        >>> print(format_layers({"layers_measured": 3, "samples": 10, "notes": [], "worst_layers": [
        ...     {"layer": "conv1_relu", "op": "CONV_2D", "rmse_scale": 2.5, "mean_error": 0.01}]}))
        int8 error per layer (worst 1 of 3, on 10 validation images; rmse/scale ~0.29 is rounding alone)
        layer       op       rmse/scale  mean error
        ----------  -------  ----------  ----------
        conv1_relu  CONV_2D        2.50   +1.00e-02
    """
    rows = summary["worst_layers"]
    cols = LAYER_COLUMNS
    head = (
        f"int8 error per layer (worst {len(rows)} of {summary['layers_measured']}, on {summary['samples']} "
        "validation images; rmse/scale ~0.29 is rounding alone)"
    )
    lines = [head, format_table(rows, cols)]
    lines += [f"note: {n}" for n in summary.get("notes", [])]
    return "\n".join(lines)


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
    started = ((metrics.get("stages") or {}).get("trained") or {}).get("weights") or {}
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
