"""Successive halving over the groups that survived pruning, each rung a normal edgecnn run.

Rung ``r`` trains its groups to ``epochs * eta**r`` epochs in all; the best ``1/eta``
(by validation accuracy of the exported ``.tflite``, best surviving precision) go on to
the next rung. A promoted group *continues* from its previous rung's weights (the run
folder is the next run's ``--weights``, with no head phase), so it trains only the
difference. Every run is :func:`edgecnn.pipeline.optimize` with the RunConfig
:func:`edgecnn.sweep.plan` builds for it, in ``<out>/rung<r>/<group>/``: a normal run
folder, resumed by the pipeline's own stage cache when killed mid-way.
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


def run_point(spec, group: dict, rung: int):
    """The sweep point (RunConfig dict and folder) of ``group`` at ``rung``."""
    from edgecnn.sweep import SweepSpec, merge_settings, plan

    epochs = rung_epochs(spec, rung)
    if rung == 0:
        weights = group["weights"]
        head = {"freeze_epochs": spec.head_epochs} if weights and spec.head_epochs is not None else {}
        train = {"epochs": epochs, **head}
    else:  # continue from the previous rung's run: only the epochs it has not had yet
        weights = str(Path(spec.out) / f"rung{rung - 1}" / group["name"])
        train = {"epochs": epochs - rung_epochs(spec, rung - 1), "freeze_epochs": 0}
    extra = {
        "data": {"source": str(spec.data)},
        "model": {"weights": weights},
        "train": train,
        "bench": {"enabled": False},  # latency was measured on the target before training
        "convert": {"int8_debug": False},
    }
    sweep = SweepSpec(models=[group["model"]], alphas=[group["alpha"]], sizes=[group["size"]],
                      precisions=list(group["precisions"]), base=merge_settings(spec.base, extra),
                      out=str(Path(spec.out) / f"rung{rung}"))
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


def train_group(spec, group: dict, rung: int, echo: Callable) -> dict:
    """Train (or reuse) ``group`` at ``rung``; the state record of the result."""
    from edgecnn.models import model_info
    from edgecnn.pipeline import optimize
    from edgecnn.settings.run_config import RunConfig, resolve
    from edgecnn.sweep import run_done

    point = run_point(spec, group, rung)
    t0 = time.time()
    record = {"kind": "trained", "group": group["name"], "rung": rung, "epochs": rung_epochs(spec, rung),
              "run": str(point.out), "config": point.config}
    resolved = resolve(RunConfig.from_dict(point.config), model_info(point.model)).to_dict()
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


def halving(spec, groups: list, state, deadline: float, echo: Callable) -> None:
    """Run the rungs until the last one, one group left, or the deadline; records go into ``state``."""
    by_name = {g["name"]: g for g in groups}
    alive = list(by_name)
    for rung in range(spec.rungs):
        echo(f"rung {rung}: {len(alive)} group(s), {rung_epochs(spec, rung)} epoch(s) each")
        for i, name in enumerate(alive, start=1):
            done = state.trained(name, rung)
            if done is not None and done.get("config") == run_point(spec, by_name[name], rung).config:
                echo(f"  [{i}/{len(alive)}] {name}: already trained, skipped")
                continue
            if time.time() >= deadline:
                echo(f"  time budget spent: {name} and the rest of rung {rung} are not trained")
                return
            echo(f"  [{i}/{len(alive)}] {name} ({by_name[name]['weights_label']}, "
                 f"{', '.join(by_name[name]['precisions'])})")
            state.add(train_group(spec, by_name[name], rung, echo))
        scores = {n: state.score(n, rung) for n in alive if state.score(n, rung) is not None}
        if len(scores) <= 1 or rung + 1 >= spec.rungs:
            return
        alive = promoted(scores, spec.eta)
        echo(f"  promoted to rung {rung + 1}: {', '.join(alive)}")
