"""``run_search``: measure every candidate untrained, prune, train the rest by successive halving.

State lives in ``<out>/search.jsonl``, one record a line (``latency`` per candidate,
``trained`` per group and rung, ``plan`` per rung after the first), rewritten atomically
after each record: a killed search run again with the same command skips every candidate
already measured and every group already trained at a rung, and the pipeline resumes the
run that was cut off.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

from edgecnn.errors import UserError
from edgecnn.search.space import Candidate, SearchSpec, candidates, check_spec, over_limits, start_weights

STATE_FILE = "search.jsonl"


class State:
    """The search's records, kept in ``<out>/search.jsonl`` (see the module docstring)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.records = []
        if self.path.is_file():
            for line in self.path.read_text().splitlines():
                try:
                    self.records.append(json.loads(line))
                except ValueError:
                    break  # a line cut off by a kill mid-write (the file is replaced whole, so rare)

    def add(self, record: dict) -> None:
        from edgecnn._io import write_text

        self.records.append(record)
        write_text(self.path, "".join(json.dumps(r, default=str) + "\n" for r in self.records))

    def latency(self, name: str, source: str) -> dict | None:
        return next((r for r in self.records if r["kind"] == "latency" and r["name"] == name
                     and r["latency_source"].split(" ")[0] == source), None)

    def trained(self, group: str, rung: int) -> dict | None:
        """The latest record of ``group`` trained at ``rung`` (a rerun with other settings adds another)."""
        return next((r for r in reversed(self.records) if r["kind"] == "trained" and r["group"] == group
                     and r["rung"] == rung), None)

    def plan(self, rung: int, key: dict | None = None) -> dict | None:
        """The ``{group: epochs}`` last planned for ``rung`` (:func:`edgecnn.search.train.plan_rung`)
        when it was planned for ``key`` (the promoted groups, epochs and time budget; ``None``:
        whatever it was planned for), else ``None``."""
        last = next((r for r in reversed(self.records) if r["kind"] == "plan" and r["rung"] == rung), None)
        if last is None or any(last.get(k) != v for k, v in (key or {}).items()):
            return None
        return last["epochs"]

    def seconds_per_epoch(self, group: str, rung: int) -> float | None:
        """What ``group``'s run at ``rung`` took per epoch it trained (its export and checks
        included, so an over- rather than an underestimate); ``None`` if it has no such run."""
        r = self.trained(group, rung)
        if not r or r.get("status") != "ok" or not r.get("seconds"):
            return None
        return float(r["seconds"]) / max(1, int(r.get("epochs_run") or r["epochs"]))

    def score(self, group: str, rung: int) -> float | None:
        """The group's best validation accuracy over its precisions at ``rung``."""
        r = self.trained(group, rung)
        vals = [v["val"] for v in (r or {}).get("results", {}).values()]
        return max(vals) if vals else None

    def spent(self) -> float:
        """Seconds the records so far took (a resumed search counts them against its budget)."""
        return sum(float(r.get("seconds") or 0) for r in self.records)


def _data_for(spec: SearchSpec, cand: Candidate, cache: dict):
    """The candidate's data at its resolution (lazy for a folder), for its input shape,
    classes and int8 calibration images; one load per resolution."""
    from edgecnn.data.loader import load_run_data
    from edgecnn.models import model_info
    from edgecnn.search.train import run_point
    from edgecnn.settings.run_config import RunConfig, resolve

    entry = model_info(cand.model)
    key = (cand.size, entry.channels)
    if key not in cache:
        group = {"model": cand.model, "alpha": cand.alpha, "size": cand.size, "precisions": ["float32"],
                 "weights": None, "name": cand.group}
        cfg = resolve(RunConfig.from_dict(run_point(spec, group, 0).config), entry)
        cache[key] = load_run_data(cfg, entry, chief=False)
    return cache[key]


def slower_than_over_budget(spec: SearchSpec, cand: Candidate, done: dict) -> str | None:
    """The name of a measured candidate over the budget that ``cand`` cannot beat: the same
    family and precision at no larger width and resolution (latency grows with both), so
    ``cand`` need not be built or timed."""
    for name, (other, record) in done.items():
        same = other.model == cand.model and other.precision == cand.precision
        if not same or record.get("status") != "ok" or record["latency_ms"] <= spec.budget_ms:
            continue
        if (other.alpha or 0) <= (cand.alpha or 0) and (other.size or 0) <= (cand.size or 0):
            return name
    return None


def _measure_one(spec: SearchSpec, cand: Candidate, timer, data, models: dict) -> dict:
    """Build (once per group), convert and time one candidate; a failure is recorded, not raised."""
    import tempfile

    from edgecnn.search.latency import build_tflite, untrained_model

    t0 = time.time()
    with tempfile.TemporaryDirectory(dir=Path(spec.out)) as tmp:
        path = Path(tmp) / f"{cand.name}.tflite"
        try:
            if cand.group not in models:
                models.clear()  # one group's model at a time
                models[cand.group] = untrained_model(cand, data)
            build_tflite(cand, data, path, models[cand.group])
            record = {"kind": "latency", "name": cand.name, "size_bytes": path.stat().st_size, "status": "ok",
                      **timer.time(path)}
        except UserError:
            raise
        except Exception as exc:  # a family that cannot be built or converted at this point
            record = {"kind": "latency", "name": cand.name, "latency_source": timer.source, "status": "failed",
                      "error": f"{exc.__class__.__name__}: {exc}"}
    record["seconds"] = time.time() - t0
    return record


def measure_all(spec: SearchSpec, cands: list, state: State, timer, echo: Callable) -> list:
    """The latency record of every candidate, measured now or read back from ``state``;
    smallest first, so a candidate dominated by one already over the budget is skipped
    (:func:`slower_than_over_budget`) without being built."""
    Path(spec.out).mkdir(parents=True, exist_ok=True)
    order = sorted(cands, key=lambda c: (c.model, c.alpha or 0, c.size or 0, c.precision))
    done, data, models = {}, {}, {}
    for i, cand in enumerate(order, start=1):
        record = state.latency(cand.name, timer.source)
        beaten = slower_than_over_budget(spec, cand, done) if record is None else None
        if beaten is not None:
            record = {"kind": "latency", "name": cand.name, "status": "skipped", "slower_than": beaten}
        elif record is None:
            record = _measure_one(spec, cand, timer, _data_for(spec, cand, data), models)
            state.add(record)
        done[cand.name] = (cand, record)
        echo(f"  [{i}/{len(cands)}] {cand.label}: {_latency_text(record)}")
    return [done[c.name][1] for c in cands]


def _latency_text(record: dict) -> str:
    if record.get("status") == "skipped":
        return f"not timed: no faster than {record['slower_than']}, over the budget"
    if record.get("status") != "ok":
        return f"FAILED ({record.get('error', '')[:120]})"
    kind = " (estimate)" if record.get("estimate") else ""
    return f"{record['latency_ms']:.3f} ms{kind}, {record['size_bytes'] / 1024:.0f} KB"


def survivor_groups(spec: SearchSpec, cands: list, records: list) -> list:
    """The groups to train: each (family, width, resolution) with the precisions that fit."""
    groups = {}
    for cand, record in zip(cands, records):
        if over_limits(spec, record) is None:
            if cand.group not in groups:
                weights, label = start_weights(spec, cand)
                groups[cand.group] = {"name": cand.group, "model": cand.model, "alpha": cand.alpha,
                                      "size": cand.size, "precisions": [], "weights": weights,
                                      "weights_label": label}
            groups[cand.group]["precisions"].append(cand.precision)
    return list(groups.values())


def run_search(spec: SearchSpec, echo: Callable = print, plan_only: bool = False) -> dict:
    """Run (or resume) the search; returns :func:`edgecnn.search.results.summarize`'s result.

    ``plan_only``: measure and prune, train nothing (the latencies are kept for the real run).

    Example:
        >>> run_search(SearchSpec(families=["mobilenet"], budget_ms=5, data="photos/",
        ...                       widths=[0.25, 0.5], sizes=[96, 128]))  # doctest: +SKIP
    """
    from edgecnn._io import run_lock

    check_spec(spec)
    with run_lock(spec.out):
        return _run_search(spec, echo, plan_only)


def _run_search(spec: SearchSpec, echo: Callable, plan_only: bool) -> dict:
    from edgecnn.search.latency import Timer
    from edgecnn.search.results import summarize
    from edgecnn.search.train import final_training, halving

    started = time.time()
    state = State(Path(spec.out) / STATE_FILE)
    deadline = started + spec.time_budget_s - state.spent()
    timer = Timer(spec)
    cands = candidates(spec)
    echo(f"search: {len(cands)} candidate(s), budget {spec.budget_ms:g} ms"
         + (f", {spec.max_size_kb:g} KB" if spec.max_size_kb else "") + f" -> {spec.out}")
    echo(timer.describe())
    records = measure_all(spec, cands, state, timer, echo)
    groups = survivor_groups(spec, cands, records)
    pruned = sum(1 for r in records if over_limits(spec, r))
    echo(f"pruned before training: {pruned} of {len(cands)} candidate(s); {len(groups)} group(s) to train")
    if not groups:
        raise UserError(f"no candidate fits {spec.budget_ms:g} ms"
                        + (f" and {spec.max_size_kb:g} KB" if spec.max_size_kb else "")
                        + "; raise --budget-ms or add smaller widths or resolutions")
    if not plan_only:
        halving(spec, groups, state, deadline, echo)
        if spec.final:
            final_training(spec, state, groups, deadline, echo)
    return summarize(spec, cands, records, state, groups, time.time() - started, echo, plan_only)
