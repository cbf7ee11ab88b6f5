"""What a search returns: one row per candidate, the Pareto table and plot, the winner and why.

The winner is the candidate with the best validation accuracy (of its exported
``.tflite``, at its precision) among those within the latency budget (and the size limit);
ties go to the faster. A candidate trained at several rungs counts at its best rung by
validation accuracy (its run folder is that rung's). Test accuracy is reported next to it
and never used to choose.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from edgecnn.report.tables import Column, human_bytes


def _pct(v):
    return f"{100 * v:.1f}%"


COLUMNS = [
    Column("label", "candidate", str, "<"),
    Column("weights", "started from", str, "<"),
    Column("latency_ms", "latency ms", lambda v: f"{v:.3f}"),
    Column("latency_source", "latency from", str, "<"),
    Column("size_bytes", "size", human_bytes),
    Column("val_accuracy", "val acc", _pct),
    Column("test_accuracy", "test acc", _pct),
    Column("epochs", "epochs", str),
    Column("pareto_mark", "Pareto", str, "<"),
    Column("status", "status", str, "<"),
]


def best_rung(state, group: str, precision: str) -> tuple:
    """``(record, result)`` of the rung where ``group`` at ``precision`` had its best validation
    accuracy (ties: the later rung; the final run must be better), or ``(None, None)``: each candidate is ranked, and
    shipped, at its best checkpoint by validation, as early stopping would."""
    done = [(r, r["results"][precision]) for r in state.records
            if r["kind"] == "trained" and r["group"] == group and r.get("status") == "ok"
            and precision in r.get("results", {})]
    # ties: the later rung, but the final run only when strictly better (it is the extra one)
    return max(done, key=lambda d: (d[1]["val"], not d[0].get("final"), d[0]["rung"])) if done else (None, None)


def candidate_rows(spec, cands: list, records: list, state, groups: list) -> list:
    """One row per candidate: its latency, size, start, accuracy (when trained) and status."""
    from edgecnn.search.space import over_limits

    labels = {g["name"]: g["weights_label"] for g in groups}
    rows = []
    for cand, rec in zip(cands, records):
        row = {"name": cand.name, "label": cand.label, "model": cand.model, "alpha": cand.alpha,
               "size": cand.size, "precision": cand.precision, "weights": labels.get(cand.group),
               "latency_ms": rec.get("latency_ms"), "latency_source": rec.get("latency_source"),
               "estimate": rec.get("estimate"), "predicted_ms": rec.get("predicted_ms"),
               "size_bytes": rec.get("size_bytes"), "device": rec.get("device") or spec.device or "target"}
        reason = over_limits(spec, rec)
        done, result = best_rung(state, cand.group, cand.precision) if reason is None else (None, None)
        if reason is not None:
            row["status"] = f"pruned untrained: {reason}"
        elif result is None:
            failed = any(r.get("status") == "failed" for r in state.records if r.get("group") == cand.group)
            row["status"] = "training failed" if failed else "not trained (time budget)"
        else:
            row.update(val_accuracy=result["val"], test_accuracy=result["test"], epochs=done["epochs"],
                       run=done["run"], file=str(Path(done["run"]) / result["file"]),
                       status="trained in full (final)" if done.get("final") else f"trained, rung {done['rung']}")
        rows.append(row)
    return rows


def pareto(rows: list) -> list:
    """The trained rows no other beats on both validation accuracy and latency, and size."""
    from edgecnn.report.tables import pareto_front

    trained = [r for r in rows if r.get("val_accuracy") is not None]
    front = {id(r) for r in pareto_front(trained, "latency_ms", "val_accuracy")}
    for r in rows:
        r["pareto"] = id(r) in front
        r["pareto_mark"] = "*" if r["pareto"] else ""
    return [r for r in rows if r["pareto"]]


def choose(rows: list) -> dict | None:
    """The best validation accuracy among the trained rows within the limits; ties: faster."""
    ok = [r for r in rows if r.get("val_accuracy") is not None]
    return min(ok, key=lambda r: (-r["val_accuracy"], r["latency_ms"])) if ok else None


def choice_line(spec, winner: dict | None, rows: list, plan_only: bool = False) -> str:
    """One line naming the choice and why."""
    if winner is None and plan_only:
        fits = sum(1 for r in rows if not r["status"].startswith("pruned"))
        return f"plan only: {fits} candidate(s) within {spec.budget_ms:g} ms, nothing trained; run without --plan-only"
    if winner is None:
        return f"no candidate within {spec.budget_ms:g} ms was trained; raise --time-budget"
    trained = sum(1 for r in rows if r.get("val_accuracy") is not None)
    kind = " (estimated)" if winner.get("estimate") else ""
    size = f", {winner['size_bytes'] / 1024:.0f} KB" if winner.get("size_bytes") else ""
    return (f"chose {winner['label']}: {100 * winner['val_accuracy']:.1f}% val "
            f"({100 * (winner.get('test_accuracy') or 0):.1f}% test), {winner['latency_ms']:.2f} ms{kind} "
            f"<= {spec.budget_ms:g} ms budget{size}; best of {trained} trained within budget "
            f"({len(rows) - sum(1 for r in rows if str(r.get('status', '')).startswith('pruned'))} of {len(rows)} "
            f"fit before training)")


def error_lines(errors: dict | None) -> list:
    """The table's prediction against the measurement, per candidate and overall."""
    if not errors:
        return []
    lines = [f"latency table vs measurement ({errors['count']} candidates): median |error| "
             f"{errors['median_abs_pct']:.1f}%, worst {errors['worst_pct']:+.1f}% ({errors['worst']})"]
    lines += [f"  {name}: {err:+.1f}%" for name, err in sorted(errors["per_candidate"].items())]
    return lines


def summarize(spec, cands, records, state, groups, seconds: float, echo: Callable, plan_only: bool = False) -> dict:
    """Write ``search.{md,csv,json}``, ``search.png`` and ``result.json``; print the table and the choice."""
    from edgecnn._io import write_json
    from edgecnn.report.pareto import plot_accuracy_latency
    from edgecnn.report.tables import format_table, save_table
    from edgecnn.search.latency import prediction_errors

    rows = candidate_rows(spec, cands, records, state, groups)
    front = pareto(rows)
    winner = choose(rows)
    line = choice_line(spec, winner, rows, plan_only)
    errors = prediction_errors([{**rec, "name": c.name} for c, rec in zip(cands, records)])
    out = Path(spec.out)
    title = f"edgecnn search: {len(spec.families)} families within {spec.budget_ms:g} ms"
    paths = save_table(rows, COLUMNS, out / "search", title=title, header=[line], footer=error_lines(errors))
    plot_rows = [{**r, "latency_median_ms": r["latency_ms"], "tflite_accuracy": r["val_accuracy"]}
                 for r in rows if r.get("val_accuracy") is not None]
    plot = plot_accuracy_latency(plot_rows, out / "search.png", title=title + " (validation accuracy)",
                                 budget_ms=spec.budget_ms)
    if plot:
        paths["plot"] = plot
    result = {"choice": line, "winner": winner, "pareto": [r["name"] for r in front], "rows": rows,
              "seconds_this_call": seconds, "seconds_total": state.spent(), "prediction_errors": errors,
              "paths": {k: str(v) for k, v in paths.items()}}
    write_json(out / "result.json", result)
    echo("")
    echo(format_table(rows, COLUMNS))
    for text in error_lines(errors):
        echo(text)
    echo(f"\ntable: {paths['markdown']}" + (f"  plot: {plot}" if plot else ""))
    if winner:
        echo(f"run folder: {winner['run']}  model: {winner['file']}")
    echo(line)
    return result
