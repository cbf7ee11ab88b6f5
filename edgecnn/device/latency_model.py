"""A latency model of one device: a candidate's latency from its ops, each looked up in a table
of ops timed on that device (``edgecnn-device bench --table``), and how far off it is.

Published predictors that count FLOPs, or time kernels on one machine and use them on another,
miss by 3-4x (a 72 ms prediction against 265 ms measured). This one reads every op of the
candidate's ``.tflite`` (op, kernel, stride, shapes, precision: :func:`op_size`), finds the op
models of the same kind in the table, and interpolates between them: time per unit of work
(multiply-adds for convolutions, elements for the rest) in log space, weighted by how close
their shapes are, also in log space. Each op model's time includes one interpreter call, which
a whole model pays once: the table's fixed overhead (:attr:`LatencyTable.overhead_ms`, fitted
from its cheapest entries) is taken off every op and added once. Inside a graph an op costs a
little more than alone (its tensors were not the last ones touched, the delegate steps from op
to op): the grid's calibration chains, whole graphs of 16 MobileNet ops timed beside the op
models, fit that cost per op (:attr:`LatencyTable.per_op_ms`), which every op that does work adds.
``benchmarks/latency_model.py`` reports the median and worst error against measured candidates (benchmarks/RESULTS.md).
numpy only: it runs on the device, and in ``edgecnn search`` on the host.

Example:
    >>> t = LatencyTable.load("pi4-1t.json")            # doctest: +SKIP
    >>> p = t.predict("mobilenet_a0.25_96px_int8.tflite")  # doctest: +SKIP
    >>> round(p.ms, 2), p.note                          # doctest: +SKIP
    (1.84, 'estimate from pi4-1t.json: 30 ops, 27 interpolated, ...')
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgecnn.device.flatbuffer import FlatbufferError, read_op_shapes
from edgecnn.errors import UserError

TABLE_KIND = "latency_table"
TABLE_VERSION = 1
# Ops that only relabel a tensor's shape: no work, only the per-op overhead.
LAYOUT_OPS = frozenset({"RESHAPE", "SQUEEZE", "EXPAND_DIMS"})
# The ops of the calibration chains that fit the in-graph cost (:func:`_per_op_cost`).
HEAVY_OPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"})
# Ops whose kernel size and stride pick a different kernel (and so a different group of the table).
WINDOWED_OPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D"})
HOWS = ("table", "interpolated", "extrapolated", "fixed")  # how an op's time was found (Prediction.per_op)
NEIGHBOURS = 4  # table entries an interpolation weighs
EXACT = 1e-9  # log-space distance below which a shape is the table's own
MIN_OP_MS = 1e-4  # an op model no slower than the overhead still costs something
# How many of the cheapest entries the fixed overhead is fitted from (their median).
OVERHEAD_ENTRIES = 3


@dataclass(frozen=True)
class OpSize:
    """What the table knows an op by: ``group`` (op, precision, and kernel/stride where they pick
    the kernel), ``features`` (the sizes that change its speed per unit of work), ``work``
    (multiply-adds or elements) and a readable ``shape``."""

    op: str
    group: str
    features: tuple
    work: float
    shape: str


def _dims(shape) -> str:
    """``48x48x16`` for an NHWC shape (the batch axis dropped)."""
    return "x".join(str(d) for d in shape[1:]) or "1"


def _spatial(shape) -> int:
    """Height times width of an NHWC shape (1 for a vector)."""
    return int(np.prod(shape[1:-1])) if len(shape) > 2 else 1


def op_size(op) -> OpSize | None:
    """The :class:`OpSize` of an operator read by :func:`edgecnn.device.flatbuffer.read_op_shapes`;
    ``None`` for a layout op (:data:`LAYOUT_OPS`) or an op without tensors.

    Example:
        >>> from edgecnn.device.flatbuffer import OpShapes
        >>> op = OpShapes("CONV_2D", [(1, 8, 8, 8), (16, 1, 1, 8), (16,)], ["int8"] * 3, [(1, 8, 8, 16)], ["int8"])
        >>> s = op_size(op); s.group, s.work
        ('CONV_2D/int8/k1s1', 8192.0)
    """
    if op.name in LAYOUT_OPS or not op.input_shapes or not op.output_shapes:
        return None
    inputs = [tuple(max(1, d) for d in s) for s in op.input_shapes]  # a dynamic axis (-1) runs as 1
    outputs = [tuple(max(1, d) for d in s) for s in op.output_shapes]
    x, y = inputs[0], outputs[0]
    group = f"{op.name}/{op.input_types[0]}"
    shape = f"{_dims(x)}->{_dims(y)}"
    if op.name in WINDOWED_OPS and len(x) == 4 and len(y) == 4:
        kernel = inputs[1][1] if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D") and len(inputs) > 1 else 0
        stride = max(1, round(x[1] / max(1, y[1])))
        group += f"/k{kernel}s{stride}" if kernel else f"/s{stride}"
        out_hw, cin, cout = _spatial(y), x[-1], y[-1]
        if op.name == "CONV_2D":
            return OpSize(op.name, group, (out_hw, cin, cout), float(out_hw * cin * cout * kernel * kernel), shape)
        if op.name == "DEPTHWISE_CONV_2D":
            return OpSize(op.name, group, (out_hw, cout), float(out_hw * cout * kernel * kernel), shape)
        return OpSize(op.name, group, (_spatial(x), cin), float(np.prod(x)), shape)
    if op.name == "FULLY_CONNECTED" and len(inputs) > 1:
        cout, cin = inputs[1][0], inputs[1][-1]
        rows = max(1, int(np.prod(x)) // max(1, cin))
        return OpSize(op.name, group, (cin, cout), float(rows * cin * cout), shape)
    if op.name == "MEAN":
        return OpSize(op.name, group, (_spatial(x), x[-1]), float(np.prod(x)), shape)
    elements = max(int(np.prod(s)) for s in (*inputs[:1], *outputs))
    return OpSize(op.name, group, (max(1, elements),), float(max(1, elements)), shape)


def model_ops(path) -> list:
    """``[(op name, OpSize or None)]`` of a ``.tflite`` file's main subgraph; a file that is not
    a model is one line (:class:`UserError`)."""
    try:
        ops = read_op_shapes(path)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (FlatbufferError, OSError) as exc:
        raise UserError(f"{path}: not a readable .tflite model ({exc})") from None
    return [(op.name, op_size(op)) for op in ops]


def main_op(path) -> OpSize | None:
    """The op an op model of the grid times: its first op that does work (a shuffle's
    transpose, not the reshapes around it)."""
    return next((size for _, size in model_ops(path) if size is not None), None)


def _per_op_cost(rows: np.ndarray) -> float:
    """ms per op from rows ``(heavy ops, light ops, ms left over)``: the median over the chains
    of heavy ops only (all chains when there are none), never below zero. A median: one chain
    timed during a burst of load must not set the cost. Chains with many cheap ops (MobileNetV3
    and ShuffleNet blocks, int8 above all) gave costs that swung 10x between two timings on a
    shared machine, and a worse error on the candidates (benchmarks/RESULTS.md), so they do not count."""
    heavy_ops, light_ops, rest = rows[:, 0], rows[:, 1], rows[:, 2]
    only_heavy = light_ops == 0
    if only_heavy.any():
        return max(0.0, float(np.median(rest[only_heavy] / np.maximum(heavy_ops[only_heavy], 1))))
    return max(0.0, float(np.median(rest / np.maximum(heavy_ops + light_ops, 1))))


def _precision(size: OpSize) -> str:
    """The precision an op runs in: its input's type (the second field of its group)."""
    return size.group.split("/")[1]


@dataclass
class Prediction:
    """A predicted latency: ``ms``, ``per_op`` rows ``(op, shape, ms, how)`` with ``how`` one of
    table (a shape the table holds), interpolated, extrapolated (outside the table's shapes)
    or fixed (no work, or an op the table lacks: the per-op overhead), and a one-line ``note``."""

    ms: float
    per_op: list = field(default_factory=list)
    note: str = ""


@dataclass
class _Group:
    features: np.ndarray  # log of each entry's features, one row per entry
    efficiency: np.ndarray  # log of ms per unit of work
    low: np.ndarray
    high: np.ndarray


class LatencyTable:
    """Op models timed on one device, with one runtime and thread count (``bench --table``).

    Example:
        >>> t = LatencyTable.load("pi4-1t.json")  # doctest: +SKIP
        >>> t.describe()                          # doctest: +SKIP
        'pi4: CPU: Cortex-A72, 4 cores, aarch64 (asimd; no int8 dot product); litert 1.2.0, 1 thread(s), 254 op models'
    """

    def __init__(self, data: dict, source: str = "table"):
        self.data = data
        self.source = source
        entries = [e for e in data["entries"] if e.get("ms") is not None]
        if not entries:
            raise UserError(f"{source}: the latency table has no timed op model")
        times = sorted(float(e["ms"]) for e in entries)
        self.overhead_ms = float(np.median(times[:OVERHEAD_ENTRIES]))
        self.groups = self._groups(entries)
        self.per_op_ms = self._fit_per_op(data.get("chains") or [])

    @classmethod
    def load(cls, path) -> LatencyTable:
        """Read a table written by ``edgecnn-device bench --table``; a missing or corrupt file
        is one line (:class:`UserError`).

        Example:
            >>> LatencyTable.load("missing.json")  # doctest: +SKIP
            UserError: missing.json: no such latency table (make one with edgecnn-device bench --table)
        """
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise UserError(f"{path}: no such latency table (make one with edgecnn-device bench --table)") from None
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise UserError(f"{path}: not a readable latency table ({type(exc).__name__})") from None
        if not isinstance(data, dict) or data.get("kind") != TABLE_KIND or not isinstance(data.get("entries"), list):
            raise UserError(f"{path}: not a latency table (no kind {TABLE_KIND!r} with entries)")
        try:
            return cls(data, source=Path(path).name)
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"{path}: a latency table entry is malformed ({type(exc).__name__}: {exc})") from None

    def _groups(self, entries: list) -> dict:
        rows: dict = {}
        for e in entries:
            cost = max(float(e["ms"]) - self.overhead_ms, MIN_OP_MS)
            features = np.log(np.asarray(e["features"], dtype=np.float64))
            rows.setdefault(str(e["group"]), []).append((features, np.log(cost / float(e["work"]))))
        groups = {}
        for name, items in rows.items():
            feats = np.stack([f for f, _ in items])
            groups[name] = _Group(feats, np.array([v for _, v in items]), feats.min(axis=0), feats.max(axis=0))
        return groups

    def _fit_per_op(self, chains: list) -> dict:
        """``{precision: ms}`` an op costs inside a graph beyond its time alone (tensors that are
        not in cache, the delegate stepping from op to op), from the calibration chains: each
        chain's time less the overhead and its ops' table times, per op (:func:`_per_op_cost`);
        ``"*"`` fits all chains, for a precision without its own."""
        found: dict = {}
        for chain in chains:
            sizes = [OpSize(o["op"], o["group"], tuple(o["features"]), float(o["work"]), o["shape"])
                     for o in chain["ops"] if o.get("group")]
            if not sizes:
                continue
            rest = float(chain["ms"]) - self.overhead_ms - sum(self.op_ms(size)[0] for size in sizes)
            heavy = sum(1 for size in sizes if size.op in HEAVY_OPS)
            for key in (_precision(sizes[0]), "*"):
                found.setdefault(key, []).append((heavy, len(sizes) - heavy, rest))
        return {key: _per_op_cost(np.array(rows, dtype=np.float64)) for key, rows in found.items()}

    def in_graph_ms(self, size: OpSize | None) -> float:
        """What an op costs inside a graph beyond its time alone (0 for a layout op)."""
        if size is None:
            return 0.0
        return self.per_op_ms.get(_precision(size), self.per_op_ms.get("*", 0.0))

    def describe(self) -> str:
        """One line: the device, its CPU, the runtime and thread count the table was timed with."""
        d = self.data
        machine = d.get("machine") or {}
        return (
            f"{machine.get('device', 'unknown device')}: {d.get('cpu_line', 'CPU unknown')}; "
            f"{d.get('runtime', '?')} {d.get('runtime_version', '')}, {d.get('threads', '?')} thread(s), "
            f"{len(d['entries'])} op models"
        )

    def op_ms(self, size: OpSize | None) -> tuple:
        """``(ms, how)`` of one op inside a model (the fixed overhead not included)."""
        group = self.groups.get(size.group) if size is not None else None
        if group is None:
            return 0.0, "fixed"
        query = np.log(np.asarray(size.features, dtype=np.float64))
        if query.shape != group.low.shape:
            return 0.0, "fixed"
        dist = np.sqrt(((group.features - query) ** 2).sum(axis=1))
        nearest = np.argsort(dist)[:NEIGHBOURS]
        if dist[nearest[0]] < EXACT:
            return float(np.exp(group.efficiency[nearest[0]]) * size.work), "table"
        weights = 1.0 / dist[nearest] ** 2
        log_eff = float((weights * group.efficiency[nearest]).sum() / weights.sum())
        inside = bool(np.all(query >= group.low - EXACT) and np.all(query <= group.high + EXACT))
        return float(np.exp(log_eff) * size.work), "interpolated" if inside else "extrapolated"

    def predict(self, tflite_path) -> Prediction:
        """Predicted latency of ``tflite_path`` on the table's device, runtime and thread count.

        Example:
            >>> p = LatencyTable.load("pi4-1t.json").predict("model_int8.tflite")  # doctest: +SKIP
            >>> p.ms, p.per_op[0]                                                  # doctest: +SKIP
            (3.1, ('CONV_2D', '96x96x3->48x48x8', 0.21, 'interpolated'))
        """
        rows = []
        for name, size in model_ops(tflite_path):
            ms, how = self.op_ms(size)
            rows.append((name, size.shape if size is not None else "-", ms + self.in_graph_ms(size), how))
        total = self.overhead_ms + sum(ms for _, _, ms, _ in rows)
        counts = {how: sum(1 for r in rows if r[3] == how) for how in HOWS}
        missing = sorted({r[0] for r in rows if r[3] == "fixed" and r[0] not in LAYOUT_OPS})
        note = f"estimate from {self.source}: {len(rows)} ops, " + ", ".join(f"{n} {h}" for h, n in counts.items() if n)
        if missing:
            note += f" (not in the table, counted as free: {', '.join(missing)})"
        return Prediction(total, rows, note)


__all__ = ["LAYOUT_OPS", "TABLE_KIND", "LatencyTable", "OpSize", "Prediction", "main_op", "model_ops", "op_size"]
