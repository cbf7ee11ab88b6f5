"""Rows from finished work: run folders, bench/eval JSON and ``benchmark_model`` logs, merged.

:func:`load_results` gathers what ``edgecnn report`` and ``edgecnn sweep`` show: each run's
``metrics.json`` becomes one row per ``.tflite`` (:func:`rows_from_metrics`), each device
result (``edgecnn bench --json``, ``edgecnn-device``, an Android log) one more row merged
with the run row of the same file (by SHA-256), and each eval result fills the accuracy
of the rows of its file on its device. The tables and the plot are :mod:`edgecnn.report.tables`.

Example:
    >>> rows = load_results(["runs/mobilenet-a0.50-32px", "pi4.json"])  # doctest: +SKIP
    >>> rows[-1]["device"], rows[-1]["tflite_accuracy"]                 # doctest: +SKIP
    ('pi4', 0.9721)
"""

from __future__ import annotations

import json
from pathlib import Path

from edgecnn.device.bench import bench_fields
from edgecnn.report.tables import weights_label


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
    alpha, size = (cfg.get("model") or {}).get("alpha"), (cfg.get("data") or {}).get("image_size")
    return f"{run_name(model, alpha, size, sparsity=sparsity_of(cfg))} {variant}"


def sparsity_of(config: dict):
    """A run's sparsity from its ``config.json``: the switch of the stage whose
    :attr:`~edgecnn.stages.Stage.axis` is ``"sparsity"``; ``None`` when that stage is off.

    Example:
        >>> sparsity_of({"prune": {"sparsity": 0.5}}), sparsity_of({})
        (0.5, None)
    """
    from edgecnn.stages import axis_stage

    stage = axis_stage("sparsity")
    section = config.get(stage.name) if stage is not None else None
    return section.get(stage.switch) if isinstance(section, dict) else None


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
        row.update(
            label=_label(r.get("model", metrics.get("model", "?")), cfg, r.get("variant", r.get("precision", "?"))),
            alpha=(cfg.get("model") or {}).get("alpha"),
            image_size=(cfg.get("data") or {}).get("image_size"),
            sparsity=sparsity_of(cfg),
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
    from edgecnn.report.benchmark_log import match_to_runs

    found = _Found()
    for p in map(Path, paths):
        for f in _result_files(p):
            _read_results(f, device_name, found)
    for result, src in found.logs:
        result["sha256"] = match_to_runs(result, found.run_rows, src).get("sha256")
        found.bench.append((result, src))
    rows = list(found.run_rows)
    by_sha = {}
    for r in found.run_rows:
        by_sha.setdefault(r.get("sha256"), r)
    for b, src in found.bench:
        base = by_sha.get(b.get("sha256")) if b.get("sha256") else None
        row = _bench_row(b, src)
        rows.append(row if base is None else _on_run_row(base, row, b))
    for e, src in found.evals:
        _add_eval(rows, e, src)
    return rows


class _Found:
    """What the files given to :func:`load_results` hold, by kind: ``(result, source)`` pairs
    (``run_rows``: rows already)."""

    def __init__(self):
        self.run_rows, self.bench, self.evals, self.logs = [], [], [], []


def _result_files(p: Path) -> list:
    """The files a path given to :func:`load_results` stands for: a run folder's ``metrics.json``,
    a folder of runs' ``*/metrics.json``, or the file itself."""
    if not p.is_dir():
        return [p]
    if (p / "metrics.json").is_file():
        return [p / "metrics.json"]
    found = sorted(p.glob("*/metrics.json"))
    if not found:
        raise ValueError(f"{p} holds no metrics.json (not a run folder, nor a folder of runs)")
    return found


def _read_results(f: Path, device_name: str | None, found: _Found) -> None:
    """Sort the results of one file into ``found``: a ``benchmark_model`` log, or JSON (one
    object or a list) of metrics, eval or bench results."""
    from edgecnn.report.benchmark_log import looks_like_benchmark_log, parse_benchmark_log

    if not f.is_file():
        raise ValueError(f"{f} does not exist")
    text = ""
    try:
        text = f.read_text(errors="replace")
        data = json.loads(text)
    except (OSError, ValueError) as exc:
        if looks_like_benchmark_log(text):
            found.logs += [(r, str(f)) for r in parse_benchmark_log(text, str(f), device_name)]
            return
        raise ValueError(f"{f} is not valid JSON: {exc}") from None
    for item in data if isinstance(data, list) else [data]:
        if not isinstance(item, dict):
            raise ValueError(f"{f} is not a metrics.json or a bench/eval JSON")
        if "rows" in item and "config" in item:
            found.run_rows += rows_from_metrics(item, str(f.parent))
        elif item.get("kind") == "eval" or ("accuracy" in item and "confusion" in item):
            found.evals.append((item, str(f)))
        elif item.get("kind") == "bench" or "median_ms" in item or "status" in item:
            found.bench.append((item, str(f)))
        else:
            raise ValueError(f"{f} is not a metrics.json or a bench/eval JSON")


def _on_run_row(base: dict, row: dict, b: dict) -> dict:
    """A device's bench ``row`` of a run's file on top of that file's run row ``base``: the
    run's accuracy, size and MACs with the device's latency and machine."""
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
    return merged


def _add_eval(rows: list, e: dict, src: str) -> None:
    """An eval result's accuracy on the rows of its file on its device; when no row has that
    device, a row of its own (a copy of the file's first row, or one built from the eval)."""
    targets = [r for r in rows if r.get("sha256") and r.get("sha256") == e.get("sha256")]
    same_device = [r for r in targets if r.get("device") == e.get("device")]
    if same_device:
        for r in same_device:
            r["tflite_accuracy"] = e["accuracy"]
            r["top5"] = e.get("top5")
        return
    if targets:
        base = dict(targets[0])
    else:
        untimed = {"median_ms": None, "p90_ms": None, "runtime": e.get("runtime"),
                   "runtime_version": e.get("runtime_version")}
        base = _bench_row({"status": "ok", **e, **untimed}, src)
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
