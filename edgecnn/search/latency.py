"""Latency of a candidate on the target, before any training.

Latency does not depend on the weights, so each candidate is built untrained
(:func:`edgecnn.models.create_model`), converted at its precision
(:func:`edgecnn.tflite.convert.convert`; int8 is calibrated on a few real images of the
search's data) and timed by one of three sources:

- ``local``: this machine, :func:`edgecnn.device.bench.benchmark` (a child process);
- ``command``: a command the user gives that runs ``edgecnn-device bench --json -`` on the
  device, the model on its stdin (``ssh pi edgecnn-device bench --json -``);
- ``table``: a latency table built earlier on the device (``edgecnn-device bench
  --table``; :class:`edgecnn.device.latency_model.LatencyTable`): an estimate, and labelled so.

With a table and a measurement both, each candidate records the table's prediction next
to the measurement, so the search reports how far the table is off.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

from edgecnn.errors import UserError

CALIBRATION_IMAGES = 8  # real images for int8 ranges; latency does not depend on them being many
COMMAND_TIMEOUT_S = 600


def untrained_model(cand, data):
    """The candidate's architecture with random weights, for the data's shape and classes."""
    from edgecnn._tf import keras
    from edgecnn.models import create_model

    keras.backend.clear_session()
    return create_model(cand.model, alpha=cand.alpha, input_shape=tuple(data.input_shape), classes=data.num_classes)


def build_tflite(cand, data, path: Path, model=None) -> Path:
    """The untrained candidate converted to ``path`` at its precision (``model``: the
    group's untrained model, built once for all its precisions)."""
    from edgecnn.tflite.convert import convert

    model = model if model is not None else untrained_model(cand, data)
    representative = data.representative(CALIBRATION_IMAGES) if cand.precision == "int8" else None
    return convert(model, path, cand.precision, representative=representative)


class Timer:
    """Where latency comes from for one search: :meth:`time` returns
    ``{"latency_ms", "latency_source", "estimate", ...}`` for a ``.tflite``."""

    def __init__(self, spec):
        self.spec = spec
        self.table = None
        if spec.latency_table:
            from edgecnn.device.latency_model import LatencyTable  # built on the device beforehand

            self.table = LatencyTable.load(spec.latency_table)

    @property
    def source(self) -> str:
        if not self.spec.measured:
            return "table"
        return "command" if self.spec.device_command else "local"

    def describe(self) -> str:
        """One line for the log: what the latency figures are."""
        where = {"local": "measured on this machine", "command": f"measured through: {self.spec.device_command}",
                 "table": "ESTIMATED from the latency table"}[self.source]
        line = f"latency: {where}, {self.spec.threads} thread(s)"
        if self.table is not None:
            line += f"; table: {self.table.describe()}"
        return line

    def time(self, path: Path) -> dict:
        """Latency of the file at ``path``; a failing device command is a :class:`UserError`."""
        out = {}
        if self.table is not None:
            p = self.table.predict(str(path))
            out.update(predicted_ms=float(p.ms), prediction_note=str(p.note or ""))
        if self.source == "table":
            return {**out, "latency_ms": out["predicted_ms"], "latency_source": "table (estimate)", "estimate": True}
        result = self._remote(path) if self.source == "command" else self._local(path)
        return {**out, "latency_ms": float(result["median_ms"]), "latency_p90_ms": result.get("p90_ms"),
                "latency_source": self.source, "estimate": False, "device": result.get("device")}

    def _local(self, path: Path) -> dict:
        from edgecnn.device.bench import benchmark

        result = benchmark(path, threads=self.spec.threads, runs=30, warmup=3)
        if result.get("status") != "ok":
            raise RuntimeError(f"{path.name}: benchmark {result.get('status')}: {result.get('error')}")
        return result

    def _remote(self, path: Path) -> dict:
        """Run the device command with the model on stdin and read the JSON it prints."""
        cmd = self.spec.device_command
        try:
            proc = subprocess.run(shlex.split(cmd), input=path.read_bytes(), capture_output=True,
                                  timeout=COMMAND_TIMEOUT_S, check=False)
        except (OSError, ValueError) as exc:
            raise UserError(f"--device-command {cmd!r} cannot start: {exc}") from None
        except subprocess.TimeoutExpired:
            raise UserError(f"--device-command {cmd!r} gave no result within {COMMAND_TIMEOUT_S} s") from None
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        if proc.returncode != 0:
            last = err[-1] if err else "no output"
            raise UserError(f"--device-command {cmd!r} failed (exit {proc.returncode}): {last}")
        try:
            payload = json.loads(proc.stdout.decode(errors="replace"))
        except ValueError:
            raise UserError(
                f"--device-command {cmd!r} printed no JSON; it must run 'edgecnn-device bench --json -'"
            ) from None
        results = payload if isinstance(payload, list) else [payload]
        ok = [r for r in results if isinstance(r, dict) and r.get("status") == "ok" and "median_ms" in r]
        if not ok:
            raise UserError(f"--device-command {cmd!r}: no successful measurement in its JSON")
        return ok[0]


def prediction_errors(records: list) -> dict | None:
    """Per-candidate error of the table's prediction against the measurement (percent of the
    measurement), with the median and the worst; ``None`` when nothing has both."""
    import statistics

    both = [r for r in records if r.get("predicted_ms") is not None and not r.get("estimate")
            and r.get("latency_ms")]
    if not both:
        return None
    errors = {r["name"]: 100.0 * (r["predicted_ms"] - r["latency_ms"]) / r["latency_ms"] for r in both}
    worst = max(errors, key=lambda k: abs(errors[k]))
    return {"per_candidate": errors, "median_abs_pct": statistics.median(abs(e) for e in errors.values()),
            "worst_pct": errors[worst], "worst": worst, "count": len(errors)}
