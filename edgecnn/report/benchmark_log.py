"""Read the text log of TFLite's official ``benchmark_model`` binary (Android, over adb).

``benchmark_model`` prints its parameters (``INFO: Graph: [...]``, ``INFO: Num threads: [4]``,
``INFO: Use xnnpack: [1]``...), the model's size, the warm-up and timed runs (``INFO:
count=50 first=... avg=... std=... p5=... median=... p95=...``; older builds print no
percentiles) and a summary (``INFO: Inference timings in us: Init: ..., First inference:
..., Warmup (avg): ..., Inference (avg): ...``), then with
``--report_peak_memory_footprint=true`` the memory lines. The format is
``tensorflow/lite/tools/benchmark/benchmark_model.cc``'s.

The log does not carry the model's SHA-256, so the command in docs/device.md prints it first
(``sha256sum`` on the phone) with the phone's name (``device: $(getprop ...)``); a log
without them is matched to a run's ``.tflite`` by file name and size. Each
``STARTING!`` begins one benchmark, so one log may hold several. The same text read from
``adb logcat`` (the benchmark app, or a binary logging there) has each line behind logcat's
prefix (``07-08 15:34:26.202 I/tflite  ( 5395): ...`` or the threadtime form
``07-08 15:34:26.202  5395  5395 I tflite  : ...``); the prefix is dropped.

Example:
    >>> results = parse_benchmark_log(open("android.log").read(), "android.log")  # doctest: +SKIP
    >>> results[0]["median_ms"], results[0]["delegate"]                         # doctest: +SKIP
    (0.2127, 'xnnpack')
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

SUMMARY = re.compile(
    r"Inference timings in us: Init: (?P<init>[\d.e+-]+), First inference: (?P<first>[\d.e+-]+), "
    r"Warmup \(avg\): (?P<warmup>[\d.e+-]+|-?nan), Inference \(avg\): (?P<avg>[\d.e+-]+)"
)
PARAM = re.compile(r"^(?:INFO: )?(?P<key>[A-Za-z#][^:\[\]]*?)\s*: \[(?P<value>[^\]]*)\]\s*$")
SHA_LINE = re.compile(r"^(?P<sha>[0-9a-f]{64})\s+\*?(?P<path>\S.*?)\s*$")
DEVICE_LINE = re.compile(r"^device:\s*(?P<name>\S.*?)\s*$", re.IGNORECASE)
LOGCAT_PREFIX = re.compile(
    r"^(?:\d\d-\d\d\s+\d\d:\d\d:\d\d\.\d+\s+)?"
    r"(?:\d+\s+\d+\s+[VDIWEF]\s+\S+\s*:|[VDIWEF]/[^\s(]+\s*\(\s*\d+\):)\s?"
)
MARKERS = ("STARTING!", "Inference timings in us:", "Graph: [", "benchmark_model")


class LogError(ValueError):
    """A ``benchmark_model`` log that cannot be used (truncated, failed, or not one)."""


def looks_like_benchmark_log(text: str) -> bool:
    """Whether ``text`` is (part of) a ``benchmark_model`` log rather than some other file."""
    return any(m in text for m in MARKERS)


def _stats(line: str) -> dict:
    return {k: float(v) for k, v in re.findall(r"(\w+)=(-?[\d.e+]+)", line)}


def _scan(lines: list) -> tuple:
    """One benchmark's lines read: ``(params, runs, summary, out)``: the ``key: [value]``
    parameters (lower-case keys, the first of each), the ``count=...`` statistics lines, the
    ``Inference timings`` match, and the sizes, memory, version, delegation and errors seen."""
    params = {}
    runs = []
    summary = None
    out: dict = {"notes": []}
    for raw in lines:
        line = raw.strip()
        m = PARAM.match(line)
        if m:
            params.setdefault(m["key"].strip().lower(), m["value"].strip())
            continue
        body = line[len("INFO: ") :] if line.startswith("INFO: ") else line
        if body.startswith("count="):
            runs.append(_stats(body))
        elif "Inference timings in us:" in body:
            summary = SUMMARY.search(body)
        elif body.startswith("The input model file size (MB):"):
            out["model_mb"] = float(body.rsplit(":", 1)[1])
        elif body.startswith("Memory footprint delta from the start of the tool (MB):"):
            mem = _stats(body)
            out["memory_init_mb"], out["memory_overall_mb"] = mem.get("init"), mem.get("overall")
        elif body.startswith("Overall peak memory footprint (MB) via periodic monitoring:"):
            out["peak_memory_mb"] = float(body.rsplit(":", 1)[1])
        elif body.startswith("Tensorflow Version"):
            out["runtime_version"] = body.split(":", 1)[1].strip()
        elif "node(s) with delegate" in body:
            m2 = re.search(r"Replacing (\d+) out of (\d+) node\(s\) with delegate \((\w+)\)", body)
            if m2:
                out["delegated_nodes"] = [int(m2[1]), int(m2[2]), m2[3]]
        elif body.startswith(("ERROR:", "Error")) or "Failed to" in body:
            out["notes"].append(body)
    return params, runs, summary, out


def _delegate(params: dict, out: dict) -> str:
    """Which delegate ran the graph: GPU or NNAPI when asked for, XNNPACK when asked for or
    applied by default (the log's ``Replacing ... with delegate`` line), else the CPU kernels."""
    if params.get("use gpu", "") in ("1", "true"):
        return "gpu"
    if params.get("use nnapi", "") in ("1", "true"):
        return "nnapi"
    if params.get("use xnnpack", "") in ("1", "true"):
        return "xnnpack"
    if "delegated_nodes" in out and out["delegated_nodes"][2] == "TfLiteXNNPackDelegate":
        return "xnnpack"  # applied by default
    return "cpu"


def _segment(lines: list, source: str) -> dict:
    params, runs, summary, out = _scan(lines)
    graph = params.get("graph")
    if not graph:
        raise LogError(f"{source}: a benchmark in the log names no graph (no 'Graph: [...]' line); is it truncated?")
    if summary is None:
        why = f"; it says: {out['notes'][0]}" if out["notes"] else " (did the run finish?)"
        raise LogError(
            f"{source}: the benchmark of {graph} has no 'Inference timings in us' line: truncated or failed{why}"
        )
    timed = runs[-1] if runs else {}
    avg_ms = float(summary["avg"]) / 1000
    threads = params.get("num threads") or params.get("#threads used for cpu inference")
    delegate = _delegate(params, out)
    out.update(
        kind="bench",
        status="ok",
        model=graph,
        file=PurePosixPath(graph).name,
        threads=int(threads) if threads and threads.lstrip("-").isdigit() and int(threads) > 0 else None,
        delegate=delegate,
        init_ms=float(summary["init"]) / 1000,
        first_run_ms=float(summary["first"]) / 1000,
        mean_ms=avg_ms,
        runs=int(timed["count"]) if "count" in timed else None,
        # Newer binaries print the median of the timed runs; older ones only the mean.
        median_ms=timed["median"] / 1000 if "median" in timed else avg_ms,
        latency_statistic="median" if "median" in timed else "mean",
        p90_ms=None,
        p95_ms=timed["p95"] / 1000 if "p95" in timed else None,
        min_ms=timed["min"] / 1000 if "min" in timed else None,
        std_ms=timed["std"] / 1000 if "std" in timed else None,
        runtime="benchmark_model",
        runtime_version=out.get("runtime_version", "?"),
    )
    if not out["notes"]:
        out.pop("notes")
    return out


def parse_benchmark_log(text: str, source: str = "log", device_name: str | None = None) -> list:
    """Each benchmark of a ``benchmark_model`` log as a bench-like dict (times in ms).

    ``device`` comes from a ``device: NAME`` line, else ``device_name``, else the log's file
    name; ``sha256`` from a ``sha256sum`` line for the graph's file name, when present.
    Raises :class:`LogError` naming the log for a truncated or failed run, or a file that
    is not such a log.
    """
    lines = [LOGCAT_PREFIX.sub("", line) for line in text.splitlines()]
    if not looks_like_benchmark_log(text):
        raise LogError(f"{source} is not a benchmark_model log (no 'STARTING!' or 'Inference timings' line)")
    device, shas = None, {}
    for line in lines:
        s = line.strip()
        if (m := DEVICE_LINE.match(s)) and device is None:
            device = m["name"]
        elif m := SHA_LINE.match(s):
            shas[PurePosixPath(m["path"]).name] = m["sha"]
    starts = [i for i, line in enumerate(lines) if "STARTING!" in line] or [0]
    segments = [lines[a:b] for a, b in zip(starts, starts[1:] + [len(lines)])]
    results = []
    for seg in segments:
        r = _segment(seg, source)
        r["device"] = device or device_name or PurePosixPath(source).stem
        if r["file"] in shas:
            r["sha256"] = shas[r["file"]]
        results.append(r)
    return results


def match_to_runs(result: dict, run_rows: list, source: str) -> dict | None:
    """The run row of the ``.tflite`` a log's benchmark ran: by ``sha256`` when the log has
    it, else by file name and the size the log prints (MB, 6 significant digits).

    Raises :class:`LogError` when the log matches no run file, or several different ones.
    """
    if result.get("sha256"):
        for row in run_rows:
            if row.get("sha256") == result["sha256"]:
                return row
        raise LogError(
            f"{source}: {result['file']} (sha256 {result['sha256'][:12]}...) is none of the runs' .tflite files; "
            "a log from another model?"
        )
    named = [r for r in run_rows if r.get("file") == result["file"]]
    mb = result.get("model_mb")
    if mb is not None:
        named = [r for r in named if r.get("size_bytes") and _same_size(r["size_bytes"], mb)]
    distinct = {r.get("sha256") for r in named}
    if len(distinct) == 1:
        return named[0]
    size = f" of {mb} MB" if mb is not None else ""
    if not named:
        raise LogError(
            f"{source}: {result['file']}{size} is none of the runs' .tflite files; a log from another model?"
        )
    raise LogError(
        f"{source}: {result['file']}{size} matches {len(distinct)} different files of the runs given; "
        "give only the run it came from, or log its sha256sum (see docs/device.md)"
    )


def _same_size(size_bytes: int, mb: float) -> bool:
    """The printed size is bytes / 2**20 (older builds: / 1e6), to about 6 significant digits."""
    return any(abs(size_bytes / unit - mb) <= max(5e-6 * mb, 1.1e-6) for unit in (1 << 20, 1e6))
