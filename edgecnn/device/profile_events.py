"""The profiler's events turned into time per node, per op type and per delegate partition.

:mod:`edgecnn.device.profile` drives LiteRT's profiler and reads its events back; this module
is the arithmetic on them (no runtime needed, so it is tested on event lists): runs split at
their ``Invoke`` event, preempted runs left out, XNNPACK's operators grouped into partitions
and named after the model's TFLite ops where they line up (:func:`align_ops`).

Example:
    >>> summarize([("Invoke", 1, 30, 0), ("AVERAGE_POOL_2D", 2, 6, 1)])["op_types"][0]["op"]
    'AVERAGE_POOL_2D'
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

# LiteRtProfilerEventType (litert/c/litert_profiler_event.h).
_DEFAULT, _OPERATOR, _DELEGATE_OPERATOR, _DELEGATE_PROFILED_OPERATOR = 1, 2, 4, 8
XNNPACK = "XNNPACK"
DEFAULT_KERNELS = "default kernels"
# A profiled run whose invoke took this many times the median was preempted: left out.
OUTLIER_FACTOR = 2.0


def split_runs(events: list) -> list:
    """The events of each profiled run: a run starts at its interpreter ``Invoke`` event.

    Example:
        >>> [len(r) for r in split_runs([("Invoke", 1, 9, 0), ("SOFTMAX", 2, 1, 0), ("Invoke", 1, 8, 0)])]
        [2, 1]
    """
    runs, current = [], None
    for event in events:
        if event[1] == _DEFAULT and event[0] == "Invoke":
            current = []
            runs.append(current)
        if current is not None:
            current.append(event)
    return runs


def summarize(events: list, model_ops: list | None = None, outlier_factor: float = OUTLIER_FACTOR) -> dict:
    """Per-node, per-op-type and per-partition times (ms per run) from the profiler's events.

    ``events`` are ``(tag, event type, elapsed µs, metadata1)`` in recording order;
    ``model_ops`` the TFLite operator names of the model in node order (to name XNNPACK
    partitions and operators after their TFLite ops; see the module docstring). Runs whose
    ``Invoke`` took more than ``outlier_factor`` times the median (the process was
    preempted: a shared machine) are left out of the averages and counted.

    Example:
        >>> ev = [("Invoke", 1, 30, 0), ("Convolution (NHWC, QC8) IGEMM", 8, 20, 0),
        ...       ("AVERAGE_POOL_2D", 2, 6, 1), ("Fully Connected (NC, QS8, QC8W) GEMM", 8, 2, 0)]
        >>> s = summarize(ev, model_ops=["CONV_2D", "AVERAGE_POOL_2D", "FULLY_CONNECTED"])
        >>> [(r["op"], r["kernel"], r["ms"]) for r in s["op_types"]]  # doctest: +NORMALIZE_WHITESPACE
        [('CONV_2D', 'XNNPACK', 0.02), ('AVERAGE_POOL_2D', 'default kernels', 0.006),
         ('FULLY_CONNECTED', 'XNNPACK', 0.002)]
        >>> [(r["partition"], r["tflite_ops"]) for r in s["partitions"]]  # doctest: +NORMALIZE_WHITESPACE
        [('XNNPACK partition 1', 'CONV_2D'), ('AVERAGE_POOL_2D (node 1)', 'AVERAGE_POOL_2D'),
         ('XNNPACK partition 2', 'FULLY_CONNECTED')]
        >>> [(n["node"], n["op"]) for n in s["nodes"]]
        [(0, 'CONV_2D'), (1, 'AVERAGE_POOL_2D'), (2, 'FULLY_CONNECTED')]
    """
    all_runs = split_runs(events)
    invokes = [r[0][2] for r in all_runs]
    limit = outlier_factor * float(np.median(invokes)) if invokes else 0.0
    kept = [r for r in all_runs if r[0][2] <= limit]
    runs = max(1, len(kept))
    ordered, invoke_us, overhead_us = _node_times(kept)
    tflite_ops = _name_delegated_ops(ordered, model_ops)
    for n in ordered:
        n["ms"] = n.pop("us") / runs / 1e3
    invoke_ms = invoke_us / runs / 1e3
    ops_ms = sum(n["ms"] for n in ordered)
    op_types, parts = _op_types(ordered), _partitions(ordered, tflite_ops)
    for r in [*ordered, *op_types, *parts]:
        r["pct"] = 100.0 * r["ms"] / invoke_ms if invoke_ms else None
    xnn_ms = sum(n["ms"] for n in ordered if n["kernel"] == XNNPACK)
    return {
        "profiled_runs": len(all_runs),
        "outlier_runs": len(all_runs) - len(kept),
        "invoke_ms": invoke_ms,
        "invoke_median_ms": float(np.median([r[0][2] for r in kept])) / 1e3 if kept else None,
        "ops_ms": ops_ms,
        "coverage": ops_ms / invoke_ms if invoke_ms else None,
        "xnnpack_ms": xnn_ms,
        "default_kernels_ms": ops_ms - xnn_ms,
        "litert_overhead_ms": {k: v / runs / 1e3 for k, v in overhead_us.items()},
        "xnnpack_ops_named_by": "TFLite op (by position)"
        if any(n["op"] != n["tag"] for n in ordered)
        else "XNNPACK operator",
        "op_types": op_types,
        "partitions": parts,
        "nodes": ordered,
    }


def _node_times(kept: list) -> tuple:
    """``(nodes in first-seen order with their total µs and calls, invoke µs, other default
    events' µs by tag)`` over the kept runs. A default-kernel op is keyed by its node index;
    an XNNPACK operator by its partition (a new one starts when the operator index does not
    grow) and its index in it."""
    nodes: dict = {}
    invoke_us, overhead_us = 0, defaultdict(int)
    for run in kept:
        partition, last_index, last_kind = 0, None, None
        for tag, kind, elapsed, meta in run:
            if kind == _DEFAULT:
                if tag == "Invoke":
                    invoke_us += elapsed
                else:
                    overhead_us[tag] += elapsed
                continue
            if kind == _OPERATOR:
                key = ("builtin", meta)
                last_kind = "builtin"
                info = {
                    "kernel": DEFAULT_KERNELS,
                    "node": meta,
                    "tag": tag,
                    "op": tag,
                    "partition": f"{tag} (node {meta})",
                }
            elif kind in (_DELEGATE_OPERATOR, _DELEGATE_PROFILED_OPERATOR):
                if last_kind != "delegate" or last_index is None or meta <= last_index:
                    partition += 1
                last_kind, last_index = "delegate", meta
                key = ("delegate", partition, meta)
                info = {
                    "kernel": XNNPACK,
                    "node": None,
                    "tag": tag,
                    "op": tag,
                    "xnnpack_index": meta,
                    "partition": f"XNNPACK partition {partition}",
                }
            else:  # telemetry and other event kinds carry no op time
                continue
            entry = nodes.setdefault(key, {**info, "us": 0, "calls": 0})
            entry["us"] += elapsed
            entry["calls"] += 1
    return list(nodes.values()), invoke_us, overhead_us


def _op_types(ordered: list) -> list:
    """Time per (op, kernel), the largest first."""
    by_type: dict = {}
    for n in ordered:
        t = by_type.setdefault((n["op"], n["kernel"]), {"op": n["op"], "kernel": n["kernel"], "count": 0, "ms": 0.0})
        t["count"] += 1
        t["ms"] += n["ms"]
    return sorted(by_type.values(), key=lambda r: -r["ms"])


def _partitions(ordered: list, tflite_ops: dict) -> list:
    """Time per partition, in order, with the kernels it ran and the TFLite ops they stand for."""
    by_part: dict = {}
    for n in ordered:
        p = by_part.setdefault(
            n["partition"], {"partition": n["partition"], "kernel": n["kernel"], "ops": 0, "ms": 0.0, "op_counts": {}}
        )
        p["ops"] += 1
        p["ms"] += n["ms"]
        p["op_counts"][n["tag"]] = p["op_counts"].get(n["tag"], 0) + 1
    for p in by_part.values():
        p["op_list"] = _count_list(p.pop("op_counts"))
        p["tflite_ops"] = tflite_ops.get(p["partition"]) or (
            p["partition"].split(" (node")[0] if p["kernel"] == DEFAULT_KERNELS else None
        )
    return list(by_part.values())


def _count_list(counts: dict) -> str:
    return ", ".join(f"{k} x{v}" if v > 1 else k for k, v in counts.items())


def _name_delegated_ops(nodes: list, model_ops: list | None) -> dict:
    """The TFLite ops of each XNNPACK partition (``{partition: 'CONV_2D x2, TANH'}``), and each
    XNNPACK operator renamed after its TFLite op where the counts line up (module docstring).

    The model's operators between two default-kernel nodes form one partition when there
    are as many such groups as partitions (a chain of layers, the CNN case); otherwise
    nothing is named.
    """
    if not model_ops:
        return {}
    fallback = {n["node"] for n in nodes if n["kernel"] == DEFAULT_KERNELS}
    groups, indices, current, current_idx = [], [], [], []
    for i, name in enumerate(model_ops):
        if i in fallback:
            if current:
                groups.append(current)
                indices.append(current_idx)
            current, current_idx = [], []
        else:
            current.append(name)
            current_idx.append(i)
    if current:
        groups.append(current)
        indices.append(current_idx)
    partitions: dict = {}
    for n in nodes:
        if n["kernel"] == XNNPACK:
            partitions.setdefault(n["partition"], []).append(n)
    if len(partitions) != len(groups):
        return {}
    named = {
        label: _count_list({op: group.count(op) for op in dict.fromkeys(group)})
        for label, group in zip(partitions, groups)
    }
    aligned = []
    for members, group, index in zip(partitions.values(), groups, indices):
        members = sorted(members, key=lambda n: n["xnnpack_index"])
        aligned.append((members, align_ops([n["tag"] for n in members], group), iter(index)))
    if all(names is not None for _, names, _ in aligned):  # one table speaks one language
        for members, names, index in aligned:
            for node, name in zip(members, names):
                node["op"] = name
                # The model's node index, as a default-kernel op has (None for XNNPACK's own reshape).
                node["node"] = None if name == "RESHAPE (XNNPACK)" else next(index)
    return named


_RESHAPES = ("RESHAPE", "SQUEEZE", "EXPAND_DIMS")


def align_ops(xnnpack_ops: list, tflite_ops: list) -> list | None:
    """The TFLite op of each XNNPACK operator of one partition, in order, or ``None`` when
    they do not line up one to one. XNNPACK inserts a ``Static Reshape`` of its own (before
    a ``FULLY_CONNECTED`` on a 4-D input, after a ``MEAN``): those are ``RESHAPE (XNNPACK)``.

    Example:
        >>> align_ops(["Mean (ND) Reduce", "Static Reshape (NC)", "Fully Connected (NC, F32) GEMM"],
        ...           ["MEAN", "FULLY_CONNECTED"])
        ['MEAN', 'RESHAPE (XNNPACK)', 'FULLY_CONNECTED']
        >>> align_ops(["Convolution (NHWC, F32) IGEMM"], ["CONV_2D", "TANH"]) is None
        True
    """
    names, j = [], 0
    for tag in xnnpack_ops:
        inserted = "Reshape" in tag and (j >= len(tflite_ops) or tflite_ops[j] not in _RESHAPES)
        if inserted:
            names.append("RESHAPE (XNNPACK)")
        elif j < len(tflite_ops):
            names.append(tflite_ops[j])
            j += 1
        else:
            return None
    return names if j == len(tflite_ops) else None
