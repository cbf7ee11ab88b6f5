"""Accuracy and speed per layer, together: ``edgecnn eval RUN --explain``.

One row per Keras layer (the TFLite op that writes its output, found by the converter's
tensor names: :func:`edgecnn.tflite.debugger.short_layer_name`), joining what three tools
measure apart:

- the int8 error of the layer's output, ``rmse/scale`` (:class:`edgecnn.tflite.debugger.Int8Debug`,
  TFLite's quantization debugger, recomputed on the run's validation images);
- the time of the op in ``model_float32.tflite`` and in ``model_int8.tflite``
  (:func:`edgecnn.device.profile.profile`, LiteRT's own profiler, ``bench --profile``),
  and whether XNNPACK ran it (the profiler's kernel for that node). XNNPACK reports each
  of its operators inside a partition (a ``DELEGATE_OPERATOR`` event per op), so the
  times are measured op by op with XNNPACK on, not apportioned: an op is timed where the
  profile names XNNPACK's operators by TFLite op (:func:`edgecnn.device.profile.align_ops`);
  where it cannot, its time is left blank, never estimated;
- for the worst layers by ``rmse/scale`` (:data:`EXPLAIN_TOP`), what keeping that one
  layer in float does: validation accuracy of the debugger's int8 model with the layer in
  float (its denylist, :meth:`Int8Debug.mixed_model`) against the same model all in int8
  ("costs X points in int8"), and the latency it costs, measured on that mixed file:
  the layer's float op plus the ``DEQUANTIZE``/``QUANTIZE`` the converter puts around it,
  profiled, minus the layer's int8 op time in the table ("+Y ms").

Layers whose int8 op is slower than its float32 op are named as well: int8 saves nothing
there (an op XNNPACK does not take in int8, or a CPU without int8 dot products).

The table goes to the terminal and to ``RUN/explain.{md,csv,json}``
(:func:`edgecnn.device.tables.save_table`, atomic writes); the whole result, notes and
ranking included, to ``RUN/explain_full.json``.

Example:
    >>> result = explain_run("runs/mobilenet-a0.50-32px")  # doctest: +SKIP
    >>> print(format_explain(result))                       # doctest: +SKIP
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable

from edgecnn.device.tables import Column, format_table, save_table
from edgecnn.errors import UserError

#: Layers (the worst by rmse/scale) kept in float one at a time for the ranking.
EXPLAIN_TOP = 3
#: The files of a run that are compared.
FLOAT_FILE, INT8_FILE = "model_float32.tflite", "model_int8.tflite"
_QDQ = ("QUANTIZE", "DEQUANTIZE")
#: What the result keeps of each profile.
PROFILE_KEYS = ("invoke_ms", "ops_ms", "coverage", "threads", "runs", "outlier_runs", "runtime_version",
                "xnnpack_ops_named_by", "cpu", "cores", "arch", "cpu_features", "nodes")


def find_run(path) -> Path:
    """The run folder of ``path``: the folder itself, or the folder of an int8 ``.tflite``
    inside it. It must hold ``config.json``, ``model_float32.tflite`` and ``model_int8.tflite``.

    Example:
        >>> find_run("no/such/run")
        Traceback (most recent call last):
        ...
        edgecnn.errors.UserError: no/such/run does not exist
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} does not exist")
    run = path if path.is_dir() else path.parent
    if path.is_file() and path.suffix != ".tflite":
        raise UserError(f"{path}: --explain takes a run folder or the int8 .tflite inside one")
    if not (run / "config.json").is_file():
        raise UserError(f"{run} holds no config.json: --explain takes a run folder (runs/<name>)")
    for name in (FLOAT_FILE, INT8_FILE):
        if not (run / name).is_file():
            hint = " (run it with --int8)" if name == INT8_FILE else ""
            raise UserError(f"{run} holds no {name}: nothing to compare{hint}")
    return run


def graph_ops(path, output_name: str | None = None) -> list:
    """The operators of the ``.tflite`` at ``path`` in node order: ``{"node", "op", "layer",
    "tensor", "inputs", "outputs"}``, ``layer`` the Keras layer of the op's first output
    (``short_layer_name``); a ``QUANTIZE``/``DEQUANTIZE`` the converter added
    (``tfl.quantize``) is named ``'quantize (node 0)'``.

    Example:
        >>> [(o["op"], o["layer"]) for o in graph_ops("runs/lenet5/model_int8.tflite")][:1]  # doctest: +SKIP
        [('CONV_2D', 'c1')]
    """
    from edgecnn.device.runtime import load_interpreter
    from edgecnn.tflite.debugger import short_layer_name

    interpreter, _, _ = load_interpreter(path, preserve_all_tensors=True)  # no delegate: the model's own nodes
    names = {d["index"]: d["name"] for d in interpreter.get_tensor_details()}
    ops = []
    for op in interpreter._get_ops_details():
        tensor = names.get(op["outputs"][0], "") if len(op["outputs"]) else ""
        if op["op_name"] in _QDQ and tensor.startswith("tfl."):
            layer = f"{op['op_name'].lower()} (node {op['index']})"
        else:
            layer = short_layer_name(tensor, output_name)
        ops.append({"node": int(op["index"]), "op": op["op_name"], "layer": layer, "tensor": tensor,
                    "inputs": [int(t) for t in op["inputs"]], "outputs": [int(t) for t in op["outputs"]]})
    return ops


def node_times(profile: dict) -> dict:
    """``{node index: {"ms", "kernel"}}`` from a profile's per-node rows (XNNPACK's operators
    carry their TFLite node where the profile could align them; its own reshapes have none).

    Example:
        >>> node_times({"nodes": [{"node": 0, "ms": 0.1, "kernel": "XNNPACK"}, {"node": None, "ms": 0.0}]})
        {0: {'ms': 0.1, 'kernel': 'XNNPACK'}}
    """
    out: dict = {}
    for n in profile.get("nodes") or []:
        if n.get("node") is None:
            continue
        t = out.setdefault(int(n["node"]), {"ms": 0.0, "kernel": n["kernel"]})
        t["ms"] += n["ms"]
    return out


def layer_times(ops: list, times: dict) -> dict:
    """Per layer of ``ops`` (:func:`graph_ops`): ``{"ops", "nodes", "ms", "xnnpack"}``,
    ``ms`` the sum over its nodes (``None`` when one of them was not timed), ``xnnpack``
    ``'yes'``, ``'no'`` or ``'partly'`` (``None`` when unknown).

    Example:
        >>> ops = [{"node": 0, "op": "CONV_2D", "layer": "c1"}, {"node": 1, "op": "TANH", "layer": "c1_tanh"}]
        >>> t = layer_times(ops, {0: {"ms": 0.2, "kernel": "XNNPACK"}, 1: {"ms": 0.1, "kernel": "default kernels"}})
        >>> t["c1"], t["c1_tanh"]["xnnpack"]
        ({'ops': ['CONV_2D'], 'nodes': [0], 'ms': 0.2, 'xnnpack': 'yes'}, 'no')
    """
    from edgecnn.device.profile import XNNPACK

    out: dict = {}
    for op in ops:
        entry = out.setdefault(op["layer"], {"ops": [], "nodes": [], "ms": 0.0, "kernels": []})
        entry["ops"].append(op["op"])
        entry["nodes"].append(op["node"])
        t = times.get(op["node"])
        entry["ms"] = None if t is None or entry["ms"] is None else entry["ms"] + t["ms"]
        entry["kernels"].append(None if t is None else t["kernel"] == XNNPACK)
    for entry in out.values():
        kernels = entry.pop("kernels")
        if None in kernels:
            entry["xnnpack"] = None
        else:
            entry["xnnpack"] = "yes" if all(kernels) else "no" if not any(kernels) else "partly"
    return out


def join_layers(debug_layers: list, float_ops: list, float_times: dict, int8_ops: list, int8_times: dict) -> list:
    """One row per layer, in the int8 file's order (a layer only the float32 file has comes
    after the one before it there): ``layer``, ``op``, the debugger's ``rmse_scale`` and
    ``mean_error``, ``float32_ms`` / ``int8_ms`` and ``float32_xnnpack`` / ``int8_xnnpack``
    (:func:`layer_times`), ``saved_ms`` (float32 minus int8: what int8 saves on that op).

    Example:
        >>> f = [{"node": 0, "op": "CONV_2D", "layer": "c1"}]
        >>> rows = join_layers([{"layer": "c1", "rmse_scale": 2.0, "mean_error": 0.1}],
        ...                    f, {0: {"ms": 0.3, "kernel": "XNNPACK"}}, f, {0: {"ms": 0.1, "kernel": "XNNPACK"}})
        >>> {k: rows[0][k] for k in ("layer", "op", "rmse_scale", "float32_ms", "int8_ms", "int8_xnnpack")}
        {'layer': 'c1', 'op': 'CONV_2D', 'rmse_scale': 2.0, 'float32_ms': 0.3, 'int8_ms': 0.1, 'int8_xnnpack': 'yes'}
    """
    f32, i8 = layer_times(float_ops, float_times), layer_times(int8_ops, int8_times)
    order = list(i8)
    previous = None
    for layer in f32:
        if layer not in order:
            order.insert(order.index(previous) + 1 if previous in order else 0, layer)
        previous = layer
    errors = {d["layer"]: d for d in debug_layers}
    rows = []
    for layer in order:
        a, b, d = f32.get(layer, {}), i8.get(layer, {}), errors.get(layer, {})
        row = {
            "layer": layer,
            "op": "+".join(b.get("ops") or a.get("ops")),
            "rmse_scale": d.get("rmse_scale"),
            "mean_error": d.get("mean_error"),
            "float32_ms": a.get("ms"),
            "int8_ms": b.get("ms"),
            "float32_xnnpack": a.get("xnnpack"),
            "int8_xnnpack": b.get("xnnpack"),
            "float32_nodes": a.get("nodes", []),
            "int8_nodes": b.get("nodes", []),
        }
        if row["float32_ms"] is not None and row["int8_ms"] is not None:
            row["saved_ms"] = row["float32_ms"] - row["int8_ms"]
        rows.append(row)
    return rows


def float_layer_ms(mixed_ops: list, mixed_times: dict, layer: str) -> float | None:
    """What ``layer`` costs in a file where it runs in float: its ops plus the ``DEQUANTIZE``
    ops that feed them and the ``QUANTIZE`` ops that read them (found by tensor, not name),
    in ms per run from ``mixed_times`` (:func:`node_times`); ``None`` when one was not timed.

    Example:
        >>> ops = [{"node": 0, "op": "DEQUANTIZE", "layer": "dequantize (node 0)", "inputs": [0], "outputs": [1]},
        ...        {"node": 1, "op": "CONV_2D", "layer": "c1", "inputs": [1, 5], "outputs": [2]},
        ...        {"node": 2, "op": "QUANTIZE", "layer": "quantize (node 2)", "inputs": [2], "outputs": [3]},
        ...        {"node": 3, "op": "QUANTIZE", "layer": "quantize (node 3)", "inputs": [3], "outputs": [4]}]
        >>> round(float_layer_ms(ops, {i: {"ms": 0.1 * (i + 1)} for i in range(4)}, "c1"), 3)
        0.6
    """
    own = [o for o in mixed_ops if o["layer"] == layer]
    if not own:
        return None
    reads = {t for o in own for t in o["inputs"]}
    writes = {t for o in own for t in o["outputs"]}
    around = [o for o in mixed_ops if (o["op"] == "DEQUANTIZE" and reads.intersection(o["outputs"]))
              or (o["op"] == "QUANTIZE" and writes.intersection(o["inputs"]))]
    total = 0.0
    for o in own + around:
        t = mixed_times.get(o["node"])
        if t is None:
            return None
        total += t["ms"]
    return total


def _profile_or_fail(path: Path, threads: int, warmup: int, runs: int, what: str) -> dict:
    from edgecnn.device.profile import profile

    p = profile(path, threads=threads, warmup=warmup, runs=runs)
    if p.get("status") != "ok":
        raise UserError(f"profiling {what} failed ({p.get('status')}): {p.get('error')}")
    if p.get("xnnpack_ops_named_by") != "TFLite op (by position)" and p.get("xnnpack_ms"):
        p["note"] = (f"{what}: XNNPACK's operators could not be matched with the model's ops one to one, so "
                     "the ops inside its partitions have no time of their own here (see bench --profile)")
    return p


def explain_run(path, top: int = EXPLAIN_TOP, threads: int = 1, runtime: str = "auto",
                echo: Callable = print) -> dict:
    """Join, per layer, the int8 error and the float32/int8 op times of the run at ``path``
    (a run folder or its ``model_int8.tflite``), then keep each of the ``top`` worst layers
    in float alone and measure what it buys back and what it costs (module docstring).

    Returns ``{"run", "rows", "ranking", "lines", "notes", "validation", "int8_layers",
    "profiles"}``: ``int8_layers`` the debugger's layers and ``profiles`` the two profiles
    (their per-node rows included) the table was joined from.
    Anything missing is a :class:`UserError` (one line).

    Example:
        >>> r = explain_run("runs/mobilenet-a0.50-32px", echo=lambda *a: None)  # doctest: +SKIP
        >>> r["lines"][0]                                                        # doctest: +SKIP
        'layer conv_pw_13_relu costs 0.80 points in int8; keeping it in float costs +0.012 ms'
    """
    from edgecnn.device.profile import why_no_profiler
    from edgecnn.report.run import load_run
    from edgecnn.tflite.debugger import run_debugger

    run = find_run(path)
    reason = why_no_profiler("litert")
    if reason:
        raise UserError(f"--explain times every op: {reason}")
    echo(f"[1/4] loading {run}: the model and its validation split")
    cfg, data, model = load_run(run)
    output_name = model.output_names[0] if len(model.outputs) == 1 else None
    echo("[2/4] int8 error per layer (quantization debugger on up to 100 validation images)")
    debug = run_debugger(cfg, data, model)
    runs, warmup = max(10, cfg.bench.runs), max(1, cfg.bench.warmup)
    profiles, graphs = {}, {}
    for name, file in (("float32", FLOAT_FILE), ("int8", INT8_FILE)):
        echo(f"[3/4] time per op of {file} (LiteRT's profiler, {runs} runs, {threads} thread(s))")
        profiles[name] = _profile_or_fail(run / file, threads, warmup, runs, file)
        graphs[name] = graph_ops(run / file, output_name)
    rows = join_layers(debug.layers, graphs["float32"], node_times(profiles["float32"]),
                       graphs["int8"], node_times(profiles["int8"]))
    echo(f"[4/4] keeping each of the {min(top, len(debug.layers))} worst layers in float alone "
         "(validation accuracy and profiled time of each mixed file)")
    how = {"threads": threads, "runtime": runtime, "warmup": warmup, "runs": runs, "output_name": output_name}
    ranking, validation = _rank(run, debug, rows, data, top, how, echo)
    notes = [p["note"] for p in profiles.values() if p.get("note")] + list(debug.notes)
    listed = {r["layer"] for r in rows}
    notes += [f"layer {d['layer']}: measured by the debugger, but no op of {INT8_FILE} or {FLOAT_FILE} writes it"
              for d in debug.layers if d["layer"] not in listed]
    return {
        "run": str(run),
        "rows": rows,
        "ranking": ranking,
        "lines": ranking_lines(ranking, validation) + slower_in_int8_lines(rows),
        "notes": notes,
        "validation": validation,
        "int8_layers": debug.layers,
        "profiles": {k: {key: p.get(key) for key in PROFILE_KEYS} for k, p in profiles.items()},
    }


def _rank(run: Path, debug, rows: list, data, top: int, how: dict, echo: Callable) -> tuple:
    """The ``top`` worst layers, each kept in float alone: points bought back, ms it costs.
    ``how``: ``threads``, ``runtime``, ``warmup``, ``runs``, ``output_name``."""
    from edgecnn.tflite.debugger import tflite_accuracy

    x_val, y_val = data.normalized("val"), data.y["val"]
    threads, runtime, warmup, runs, output_name = (how[k] for k in ("threads", "runtime", "warmup", "runs",
                                                                    "output_name"))

    def accuracy(model_bytes: bytes) -> float:
        return tflite_accuracy(model_bytes, x_val, y_val, threads, runtime)

    base = accuracy(debug.mixed_model([]))
    validation = {"images": int(len(y_val)), "int8_accuracy": base,
                  "float32_accuracy": accuracy((run / FLOAT_FILE).read_bytes()),
                  "int8_file_accuracy": accuracy((run / INT8_FILE).read_bytes())}
    by_layer = {r["layer"]: r for r in rows}
    ranking = []
    with tempfile.TemporaryDirectory(prefix="edgecnn-explain-") as tmp:
        for i, layer in enumerate(debug.layers[:top]):
            name = layer["layer"]
            echo(f"      {i + 1}/{min(top, len(debug.layers))} {name} in float")
            entry = {"layer": name, "op": layer["op"], "rmse_scale": layer["rmse_scale"]}
            try:
                mixed = debug.mixed_model([layer["tensor"]])
            except RuntimeError as exc:
                ranking.append({**entry, "error": str(exc)})
                continue
            path = Path(tmp) / f"float_{i}.tflite"
            path.write_bytes(mixed)
            entry["accuracy"] = accuracy(mixed)
            entry["points"] = 100.0 * (entry["accuracy"] - base)
            p = _profile_or_fail(path, threads, warmup, runs, f"the file with {name} in float")
            in_float = float_layer_ms(graph_ops(path, output_name), node_times(p), name)
            int8_ms = by_layer.get(name, {}).get("int8_ms")
            entry["float_layer_ms"] = in_float
            entry["keep_float_ms"] = None if in_float is None or int8_ms is None else in_float - int8_ms
            by_layer.get(name, {}).update(keep_float_points=entry["points"], keep_float_ms=entry["keep_float_ms"])
            ranking.append(entry)
    ranking.sort(key=lambda e: (-e.get("points", float("-inf")), e.get("keep_float_ms") or 0.0))
    return ranking, validation


def ranking_lines(ranking: list, validation: dict) -> list:
    r"""``'layer conv_pw_13_relu costs 0.80 points in int8; keeping it in float costs +0.012 ms'``,
    one per ranked layer, best trade first.

    Example:
        >>> line = ranking_lines([{"layer": "c5", "rmse_scale": 3.1, "points": 0.8, "keep_float_ms": 0.0123}],
        ...                      {"images": 250})[0]
        >>> print(line.replace("; k", ";\nk"))
        layer c5 costs 0.80 points in int8 (2 of 250 validation images; rmse/scale 3.10);
        keeping it in float costs +0.0123 ms
        >>> ranking_lines([{"layer": "c1", "rmse_scale": 1.0, "points": 0.0, "keep_float_ms": None}], {"images": 50})[0]
        'layer c1 costs nothing measurable in int8 (0 of 50 validation images; rmse/scale 1.00): leave it in int8'
    """
    n = max(1, int(validation.get("images") or 0))
    lines = []
    for e in ranking:
        if "error" in e:
            lines.append(f"layer {e['layer']}: cannot be kept in float alone ({e['error']})")
            continue
        images = round(e["points"] * n / 100.0)
        ms = e.get("keep_float_ms")
        cost = "costs an unmeasured time" if ms is None else f"costs {ms:+.4f} ms" if ms >= 0 else f"saves {-ms:.4f} ms"
        why = f"{abs(images)} of {n} validation images; rmse/scale {e['rmse_scale']:.2f}"
        if images > 0:
            lines.append(f"layer {e['layer']} costs {e['points']:.2f} points in int8 ({why}); "
                         f"keeping it in float {cost}")
        elif images < 0:
            lines.append(f"layer {e['layer']} in float loses {-e['points']:.2f} points ({why}): leave it in int8")
        else:
            lines.append(f"layer {e['layer']} costs nothing measurable in int8 ({why}): leave it in int8")
    return lines


def slower_in_int8_lines(rows: list, at_least_ms: float = 0.002, at_least: float = 0.1, show: int = 5) -> list:
    r"""Where int8 saves no time: one line for the layers whose int8 op is slower than its
    float32 op by ``at_least_ms`` and by ``at_least`` of the float32 time (the profiler
    counts whole microseconds per op, so smaller differences are its rounding), the
    ``show`` slowest named; then one line per layer XNNPACK runs in float32 but not in int8.

    Example:
        >>> rows = [{"layer": "pool", "op": "AVERAGE_POOL_2D", "float32_ms": 0.002, "saved_ms": -0.004,
        ...          "float32_xnnpack": "yes", "int8_xnnpack": "no"}]
        >>> print("\n".join(slower_in_int8_lines(rows)))
        int8 is slower than float32 on 1 layer (0.0040 ms per run in all): pool +0.0040 ms
        layer pool (AVERAGE_POOL_2D): XNNPACK runs it in float32, not in int8 (TFLite's default kernels)
    """
    slower = [r for r in rows if r.get("saved_ms") is not None
              and -r["saved_ms"] >= max(at_least_ms, at_least * (r.get("float32_ms") or 0.0))]
    slower.sort(key=lambda r: r["saved_ms"])
    lines = []
    if slower:
        total = -sum(r["saved_ms"] for r in slower)
        named = ", ".join(f"{r['layer']} {-r['saved_ms']:+.4f} ms" for r in slower[:show])
        more = f", and {len(slower) - show} more" if len(slower) > show else ""
        plural = "layer" if len(slower) == 1 else "layers"
        lines.append(f"int8 is slower than float32 on {len(slower)} {plural} ({total:.4f} ms per run in all): "
                     f"{named}{more}")
    for r in rows:
        if r.get("float32_xnnpack") == "yes" and r.get("int8_xnnpack") in ("no", "partly"):
            lines.append(f"layer {r['layer']} ({r['op']}): XNNPACK runs it in float32, not in int8 "
                         "(TFLite's default kernels)")
    return lines


def _ms(v: float) -> str:
    return f"{v:.4f}"


COLUMNS = [
    Column("layer", "layer", str, "<"),
    Column("op", "op", str, "<"),
    Column("rmse_scale", "int8 rmse/scale", lambda v: f"{v:.2f}"),
    Column("float32_ms", "float32 ms", _ms),
    Column("int8_ms", "int8 ms", _ms),
    Column("saved_ms", "int8 saves ms", lambda v: f"{v:+.4f}"),
    Column("float32_xnnpack", "XNNPACK f32", str, "<"),
    Column("int8_xnnpack", "XNNPACK int8", str, "<"),
    Column("keep_float_points", "float: points", lambda v: f"{v:+.2f}"),
    Column("keep_float_ms", "float: +ms", lambda v: f"{v:+.4f}"),
]


def header_lines(result: dict) -> list:
    """What the table's figures are, above it (the CPU, the profiles' invoke times, the validation split)."""
    from edgecnn.device.bench import cpu_line

    p32, p8 = result["profiles"]["float32"], result["profiles"]["int8"]
    v = result["validation"]
    return [
        cpu_line(p8),
        f"op times: LiteRT's profiler, XNNPACK on, {p8['threads']} thread(s), {p8['runs']} runs, ms per run "
        f"(invoke float32 {p32['invoke_ms']:.4f} ms, int8 {p8['invoke_ms']:.4f} ms; whole microseconds per op, "
        "so small ops read 0)",
        f"int8 error: the quantization debugger's rmse/scale (~0.29 is rounding alone); 'float:' columns: that one "
        f"layer kept in float, on {v['images']} validation images (one image = {100 / max(1, v['images']):.2f} "
        f"points): float32 {100 * v['float32_accuracy']:.2f}%, {INT8_FILE} {100 * v['int8_file_accuracy']:.2f}%, "
        f"the debugger's all-int8 model (float input and output) {100 * v['int8_accuracy']:.2f}%, the base of "
        "'points'",
    ]


def format_explain(result: dict) -> str:
    """The joined table, the ranking lines and the notes, for the terminal.

    Example:
        >>> print(format_explain(explain_run("runs/lenet5")))  # doctest: +SKIP
    """
    lines = [f"accuracy and speed per layer: {result['run']}", *header_lines(result), "",
             format_table(result["rows"], COLUMNS), ""]
    lines += result["lines"] or ["no layer to rank"]
    lines += [f"note: {n}" for n in result["notes"]]
    return "\n".join(lines)


def save_explain(result: dict, run) -> dict:
    """Write ``RUN/explain.{md,csv,json}`` (the table) and ``RUN/explain_full.json`` (everything)."""
    from edgecnn._io import write_json

    footer = [*result["lines"], *(f"Note: {n}" for n in result["notes"])]
    paths = save_table(result["rows"], COLUMNS, Path(run) / "explain", "Accuracy and speed per layer",
                       header_lines(result), footer)
    paths["full"] = write_json(Path(run) / "explain_full.json", result)
    return paths


__all__ = [
    "COLUMNS",
    "EXPLAIN_TOP",
    "explain_run",
    "find_run",
    "float_layer_ms",
    "format_explain",
    "graph_ops",
    "join_layers",
    "layer_times",
    "node_times",
    "ranking_lines",
    "save_explain",
    "slower_in_int8_lines",
]
