"""Successive halving over the groups that survived pruning, each rung a normal edgecnn run.

Rung ``r`` trains its groups to ``epochs * eta**r`` epochs in all; the best ``1/eta``
(by validation accuracy of the exported ``.tflite``, best surviving precision) go on to
the next rung. A later rung is planned against the time left (:func:`plan_rung`): each
promoted group costs what its last run took per epoch, and the rung trains the best of
them that fit, the best one at least with the epochs that fit, so a tight ``--time-budget``
is spent on the leaders instead of being cut off before the last rung.

A promoted group *continues* from its previous rung's weights (the run folder is the next
run's ``--weights``, with no head phase), so it trains only the difference. Every run is
:func:`edgecnn.pipeline.optimize` with the RunConfig :func:`edgecnn.sweep.plan` builds for
it, in ``<out>/rung<r>/<group>/``: a normal run folder, resumed by the pipeline's own
stage cache when killed mid-way.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable

from edgecnn.errors import UserError


def rung_epochs(spec, rung: int) -> int:
    """The total epochs of rung ``rung``: the first rung's, times ``eta`` per rung after it."""
    return int(spec.epochs * spec.eta**rung)


def promoted(scores: dict, eta: int) -> list:
    """The best ``ceil(n / eta)`` group names of ``{group: score}`` (at least one), best first.

    Example:
        >>> promoted({"a": 0.5, "b": 0.9, "c": 0.7}, 3)
        ['b']
    """
    ranked = sorted(scores, key=lambda g: (-scores[g], g))
    return ranked[: max(1, math.ceil(len(ranked) / eta))]


def new_epochs(spec, rung: int) -> int:
    """The epochs a group promoted to ``rung`` trains on top of what it had (all of them at rung 0)."""
    return rung_epochs(spec, rung) - (rung_epochs(spec, rung - 1) if rung else 0)


def run_point(spec, group: dict, rung: int, epochs: int | None = None):
    """The sweep point (RunConfig dict and folder) of ``group`` at ``rung``, training
    ``epochs`` (``None``: :func:`new_epochs`; fewer when the time left is short). Rung
    ``spec.rungs`` (one past the last) is the final training (:func:`final_training`):
    from the group's first weights, with the pipeline's own schedule, in ``<out>/final/``."""
    from edgecnn.sweep import SweepSpec, merge_settings, plan

    final = rung >= spec.rungs
    epochs = new_epochs(spec, rung) if epochs is None and not final else epochs
    head = {"freeze_epochs": spec.head_epochs} if group["weights"] and spec.head_epochs is not None else {}
    if final:  # what `edgecnn optimize` gives this group: its defaults unless told
        weights, train = group["weights"], {**head, **({"epochs": epochs} if epochs is not None else {})}
    elif rung == 0:
        weights, train = group["weights"], {"epochs": epochs, **head}
    else:  # continue from the previous rung's run: only the epochs it has not had yet
        weights = str(Path(spec.out) / f"rung{rung - 1}" / group["name"])
        train = {"epochs": epochs, "freeze_epochs": 0}
    extra = {
        "data": {"source": str(spec.data)},
        "model": {"weights": weights},
        "train": train,
        "bench": {"enabled": False},  # latency was measured on the target before training
        "convert": {"int8_debug": False},
    }
    sweep = SweepSpec(models=[group["model"]], alphas=[group["alpha"]], sizes=[group["size"]],
                      precisions=list(group["precisions"]), base=merge_settings(spec.base, extra),
                      out=str(Path(spec.out) / ("final" if final else f"rung{rung}")))
    return plan(sweep)[0]


def val_accuracies(point, precisions) -> dict:
    """``{precision: {"val", "test", "file"}}``: each exported file's accuracy on the run's
    validation split (what the search ranks on) and test split (reported, never ranked on)."""
    import json

    from edgecnn.data.loader import load_run_data
    from edgecnn.device.evaluate import evaluate_tflite
    from edgecnn.models import model_info
    from edgecnn.settings.run_config import RunConfig, resolve

    metrics = json.loads((point.out / "metrics.json").read_text())
    cfg = resolve(RunConfig.from_dict(metrics["config"]), model_info(point.model))
    data = load_run_data(cfg, model_info(point.model), run_dir=point.out, chief=False)
    x_val, y_val = data.normalized("val"), data.y["val"]
    out = {}
    for row in metrics["rows"]:
        if row.get("stage") == "trained" and row.get("precision") in precisions:
            val = evaluate_tflite(point.out / row["file"], x_val, y_val, num_threads=cfg.bench.threads)["accuracy"]
            out[row["precision"]] = {"val": float(val), "test": row.get("tflite_accuracy"), "file": row["file"]}
    return out


def resolved_config(point) -> dict:
    """The point's RunConfig with every default filled in (its epochs: what the run trains)."""
    from edgecnn.models import model_info
    from edgecnn.settings.run_config import RunConfig, resolve

    return resolve(RunConfig.from_dict(point.config), model_info(point.model)).to_dict()


def train_group(spec, group: dict, rung: int, echo: Callable, epochs: int | None = None,
                before: int = 0) -> dict:
    """Train (or reuse) ``group`` at ``rung`` for ``epochs`` (see :func:`run_point`) on top of
    the ``before`` it had; the state record of the result."""
    from edgecnn.pipeline import optimize
    from edgecnn.settings.run_config import RunConfig
    from edgecnn.sweep import run_done

    point = run_point(spec, group, rung, epochs)
    t0 = time.time()
    resolved = resolved_config(point)
    ran = int(resolved["train"]["epochs"])
    record = {"kind": "trained", "group": group["name"], "rung": rung, "epochs": before + ran, "epochs_run": ran,
              "run": str(point.out), "config": point.config, "final": rung >= spec.rungs}
    try:
        if not run_done(point, resolved):
            optimize(RunConfig.from_dict(point.config), echo=lambda msg: echo(f"      {msg}") if msg else None)
        record["results"] = val_accuracies(point, group["precisions"])
        record["status"] = "ok"
    except UserError:
        raise
    except Exception as exc:  # one failing candidate must not lose the rest of the search
        lines = str(exc).strip().splitlines()
        echo(f"      FAILED: {exc.__class__.__name__}: {lines[-1] if lines else ''}")
        record.update(status="failed", error=f"{exc.__class__.__name__}: {exc}")
    record["seconds"] = time.time() - t0
    return record


def plan_rung(spec, state, ranked: list, rung: int, seconds_left: float) -> dict:
    """``{group: epochs}`` for ``rung``: the promoted groups (``ranked``, best first) whose
    extra epochs fit ``seconds_left`` at what their last run took per epoch, in rank order;
    when even the best does not fit, it alone trains the epochs that fit (none: ``{}``).

    Example (each group took 10 s an epoch; rung 1 wants 4 more epochs):
        >>> class S:
        ...     def seconds_per_epoch(self, group, rung): return 10.0
        >>> from types import SimpleNamespace as NS
        >>> spec = NS(epochs=2, eta=3)
        >>> plan_rung(spec, S(), ["a", "b", "c"], 1, 100.0)
        {'a': 4, 'b': 4}
        >>> plan_rung(spec, S(), ["a", "b"], 1, 25.0)
        {'a': 2}
    """
    want, plan, left = new_epochs(spec, rung), {}, seconds_left
    for name in ranked:
        per_epoch = state.seconds_per_epoch(name, rung - 1)
        if per_epoch is None or per_epoch * want <= left:
            plan[name] = want
            left -= (per_epoch or 0) * want
            continue
        if not plan and left >= per_epoch:
            plan[name] = int(left // per_epoch)
        break  # rank order: a cheaper group further down does not jump a better one
    return plan


def _rung_plan(spec, state, alive: list, rung: int, deadline: float, echo: Callable) -> dict:
    """The rung's ``{group: epochs}``: all of ``alive`` at rung 0; later, the plan kept in
    ``state`` when it was made for the same promoted groups, epochs and time budget (so a
    resumed search trains what it planned, and a rerun with other settings plans again),
    or a new one against the time left."""
    if rung == 0:
        return {name: new_epochs(spec, 0) for name in alive}
    key = {"promoted": list(alive), "want": new_epochs(spec, rung), "time_budget_s": spec.time_budget_s}
    kept = state.plan(rung, key)
    if kept is not None:
        return kept
    plan = plan_rung(spec, state, alive, rung, deadline - time.time())
    if len(plan) < len(alive) or any(e < key["want"] for e in plan.values()):
        left = max(0, deadline - time.time())
        echo(f"  {left / 60:.1f} min left: rung {rung} trains " + (", ".join(
            f"{n} ({e} epoch(s))" for n, e in plan.items()) or "nothing") + f" of {len(alive)} promoted, "
            "at what each took per epoch so far")
    if plan:  # nothing planned is not kept: a rerun with more time plans again
        state.add({"kind": "plan", "rung": rung, **key, "epochs": plan, "seconds": 0})
    return plan


def halving(spec, groups: list, state, deadline: float, echo: Callable) -> None:
    """Run the rungs until the last one, one group left, or the deadline; records go into ``state``."""
    by_name = {g["name"]: g for g in groups}
    alive = list(by_name)
    for rung in range(spec.rungs):
        plan = _rung_plan(spec, state, alive, rung, deadline, echo)
        full = all(e == new_epochs(spec, rung) for e in plan.values())
        echo(f"rung {rung}: {len(plan)} group(s), " + (f"{rung_epochs(spec, rung)} epoch(s) each" if full else
             ", ".join(f"{n} {e} more epoch(s)" for n, e in plan.items()) + " (shortened for the time left)"))
        for i, (name, epochs) in enumerate(plan.items(), start=1):
            done = state.trained(name, rung)
            if done is not None and done.get("config") == run_point(spec, by_name[name], rung, epochs).config:
                echo(f"  [{i}/{len(plan)}] {name}: already trained, skipped")
                continue
            if time.time() >= deadline:
                echo(f"  time budget spent: {name} and the rest of rung {rung} are not trained")
                return
            echo(f"  [{i}/{len(plan)}] {name} ({by_name[name]['weights_label']}, "
                 f"{', '.join(by_name[name]['precisions'])})")
            before = (state.trained(name, rung - 1) or {}).get("epochs", 0) if rung else 0
            state.add(train_group(spec, by_name[name], rung, echo, epochs=epochs, before=before))
        scores = {n: state.score(n, rung) for n in plan if state.score(n, rung) is not None}
        if len(scores) <= 1 or rung + 1 >= spec.rungs:
            return
        alive = promoted(scores, spec.eta)
        echo(f"  promoted to rung {rung + 1}: {', '.join(alive)}")


def final_training(spec, state, groups: list, deadline: float, echo: Callable) -> None:
    """Train the best group once more, from its first weights, with the pipeline's own
    schedule (what ``edgecnn optimize`` gives it: the head phase, then the whole network for
    its default epochs, one learning-rate schedule), as rung ``spec.rungs``.

    The rungs' short, restarted schedules are for ranking; the model shipped deserves the
    training a user would give it by hand. The final run is ranked with the group's rung
    runs on validation accuracy, so it replaces them only when it is better. Skipped when
    its estimated time (what the group's last run took per epoch) does not fit the time left.
    """
    best = max(((state.score(g["name"], r), r, g["name"]) for g in groups for r in range(spec.rungs)
                if state.score(g["name"], r) is not None), default=None)
    if best is None:
        return
    group = next(g for g in groups if g["name"] == best[2])
    point = run_point(spec, group, spec.rungs)
    done = state.trained(group["name"], spec.rungs)
    if done is not None and done.get("config") == point.config:
        echo(f"final: {group['name']}: already trained, skipped")
        return
    epochs = int(resolved_config(point)["train"]["epochs"])
    # the dearest epoch the group had (rung 0's includes the head phase, as the final run does)
    per_epoch = max((state.seconds_per_epoch(group["name"], r) or 0.0) for r in range(spec.rungs))
    left = deadline - time.time()
    if per_epoch * epochs > left:
        echo(f"final: not enough time left to train {group['name']} in full ({epochs} epochs, about "
             f"{per_epoch * epochs / 60:.1f} min; {max(0.0, left) / 60:.1f} min left); its rung runs stand")
        return
    echo(f"final: {group['name']} in full, from {group['weights_label']} with the pipeline's schedule "
         f"({epochs} epochs)")
    state.add(train_group(spec, group, spec.rungs, echo))
