"""Stage ``prune``: magnitude pruning while fine-tuning, then stripped (row ``pruned``).

Zhu & Gupta 2017, "To prune, or not to prune" (arXiv:1710.01878): polynomial decay to the
target sparsity over the first 70% of the fine-tune; or 2:4 structured sparsity (Mishra et
al. 2021, arXiv:2104.08378). The step is :func:`edgecnn.optimize.prune.prune_model`.
TFLite stores the zeros, so the file shrinks once compressed, or with
``convert.sparse_storage``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from edgecnn.errors import UserError
from edgecnn.optimize import PRUNE_STRUCTURES
from edgecnn.settings.fields import off_or_fraction, setting
from edgecnn.stages._base import Context, PruningFineTune, Stage, StageResult, copy_model


@dataclass
class PruneConfig(PruningFineTune):
    """Magnitude pruning (see :mod:`edgecnn.optimize.prune`)."""

    key = "prune"

    sparsity: float | None = off_or_fraction(
        cli="--prune",
        metavar="SPARSITY",
        help="Magnitude pruning to this sparsity, e.g. 0.5 (fine-tuned, stripped).",
    )
    structure: str = setting(
        "unstructured",
        cli="--prune-structure",
        choices=PRUNE_STRUCTURES,
        help="2:4 = two zeros in every four weights (implies 50% sparsity).",
    )


class Prune(Stage):
    name, row, Config, switch, title = "prune", "pruned", PruneConfig, "sparsity", "magnitude pruning"
    axis = "sparsity"

    def resolve(self, cfg) -> None:
        p = cfg.prune
        if p.structure == "2:4":
            if p.sparsity not in (None, 0.5):
                raise UserError(f"2:4 structured sparsity is always 50%; got prune.sparsity {p.sparsity}")
            p.sparsity = 0.5
        p.fill_defaults(cfg.train)
        if p.sparsity is not None and p.epochs < 1:
            raise UserError("magnitude pruning happens while fine-tuning: prune.epochs must be >= 1")

    def run(self, ctx: Context, prev: StageResult) -> StageResult:
        from edgecnn.optimize.prune import (
            DEFAULT_SKIP,
            is_pruning_wrapper,
            layer_sparsity,
            prune_model,
            pruning_callbacks,
            strip_pruning,
        )

        cfg, p = ctx.cfg, ctx.cfg.prune
        store = ctx.store_for(self, prev, p.sparsity, p.structure, p.skip, p.epochs, p.learning_rate)
        model = copy_model(prev.model)
        skip = tuple(DEFAULT_SKIP) + tuple(p.skip)
        meta = store.load()
        if meta is not None:
            ctx.echo(f"      reusing pruned weights from {store.dir}")
            model.load_weights(store.weights)
        else:
            steps = math.ceil(len(ctx.data.y["train"]) / cfg.train.batch_size)
            total = max(1, steps * p.epochs)
            # Reach the target sparsity after ~70% of the fine-tune; the rest recovers accuracy.
            end = max(1, int(0.7 * total))
            pruned = prune_model(
                model,
                sparsity=p.sparsity,
                end_step=end,
                frequency=max(1, min(steps, end // 10 or 1)),
                skip=skip,
                m_by_n=(2, 4) if p.structure == "2:4" else None,
            )
            what = "2:4 structured" if p.structure == "2:4" else f"{100 * p.sparsity:.0f}% magnitude"
            n_wrapped = sum(is_pruning_wrapper(layer) for layer in pruned.layers)
            ctx.echo(f"      {what} sparsity on {n_wrapped} layers; {p.epochs} epochs at lr {p.learning_rate:g}")
            t0 = time.time()
            # keep_best=False: an early epoch's weights would bring back an early, lower sparsity.
            hist = ctx.fine_tune(pruned, store, p.epochs, p.learning_rate, pruning_callbacks(), keep_best=False)
            model = strip_pruning(pruned)
            meta = store.save(model, {"fit": hist, "seconds": time.time() - t0})
        per_layer = layer_sparsity(model)
        pruned_layers = {k: v for k, v in per_layer.items() if v > 0}
        info = {
            "target_sparsity": p.sparsity,
            "structure": p.structure,
            "layer_sparsity": per_layer,
            "pruned_layers": len(pruned_layers),
            "skip": list(skip),
            "seconds": meta.get("seconds"),
        }
        if pruned_layers:
            ctx.echo(
                f"      achieved sparsity: {100 * min(pruned_layers.values()):.1f}% to "
                f"{100 * max(pruned_layers.values()):.1f}% in {len(pruned_layers)} layers"
            )
        return StageResult(self.row, model, cfg.convert.precisions, info, key=store.key)

    def notes(self, info: dict) -> str:
        """Example:
        >>> STAGE.notes({"structure": "unstructured", "target_sparsity": 0.5,
        ...              "layer_sparsity": {"c3": 0.5, "c1": 0.0}})
        '- pruned: unstructured magnitude pruning to 50%; achieved 50.0% to 50.0% in 1 layers (dense: c1)'
        """
        per = info.get("layer_sparsity", {})
        done = [v for v in per.values() if v > 0]
        dense = ", ".join(k for k, v in per.items() if v == 0) or "none"
        achieved = f"{100 * min(done):.1f}% to {100 * max(done):.1f}%" if done else "nothing"
        return (
            f"- pruned: {info['structure']} magnitude pruning to {100 * info['target_sparsity']:.0f}%; "
            f"achieved {achieved} in {len(done)} layers (dense: {dense})"
        )


STAGE = Prune()
