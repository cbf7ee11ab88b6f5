"""Stage ``qat``: quantization-aware training, exported as int8 (row ``qat``).

Jacob et al. 2018, "Quantization and Training of Neural Networks for Efficient
Integer-Arithmetic-Only Inference" (arXiv:1712.05877). The step is
:func:`edgecnn.optimize.qat.quantize_model` (tfmot's 8-bit scheme; prune-preserving when
the previous stage left zeros, so QAT keeps pruning's sparsity).
"""

from __future__ import annotations

from dataclasses import dataclass

from edgecnn.errors import UserError
from edgecnn.settings.fields import Section, setting
from edgecnn.stages._base import Context, Stage, StageResult, copy_model


@dataclass
class QATConfig(Section):
    """Quantization-aware training (see :mod:`edgecnn.optimize.qat`); implies an int8 export."""

    key = "qat"

    enabled: bool = setting(False, cli="--qat", help="Quantization-aware training, exported as int8 (implies --int8).")
    epochs: int | None = setting(
        None, cli="--qat-epochs", low=0, help="QAT fine-tuning epochs.", default_text="a fifth of --epochs"
    )
    learning_rate: float | None = setting(
        None,
        low=0,
        high=10,
        low_open=True,
        high_open=True,
        help="QAT peak learning rate.",
        default_text="a tenth of training's",
    )


def _is_sparse(model) -> bool:
    from edgecnn.optimize.prune import layer_sparsity

    return any(v >= 0.2 for v in layer_sparsity(model).values())


class QAT(Stage):
    name, row, Config, title = "qat", "qat", QATConfig, "quantization-aware training"
    precision = "qat"

    def resolve(self, cfg) -> None:
        q, t = cfg.qat, cfg.train
        if q.epochs is None:
            q.epochs = max(1, t.epochs // 5)
        if q.learning_rate is None:
            q.learning_rate = 0.1 * t.learning_rate
        if q.enabled and q.epochs < 1:
            raise UserError("quantization-aware training needs qat.epochs >= 1 (its ranges are learned)")
        if q.enabled:
            cfg.convert.int8 = True  # post-training int8 of the same model, to compare against

    def check(self, ctx: Context, model):
        from edgecnn.optimize.qat import quantize_model

        quantize_model(model)
        return model

    def run(self, ctx: Context, prev: StageResult) -> StageResult:
        from edgecnn.optimize.qat import KeepSparsity, quantize_model, sparsity_masks

        q = ctx.cfg.qat
        preserve = _is_sparse(prev.model)
        callbacks = [KeepSparsity(sparsity_masks(prev.model))] if preserve else []
        scheme = None
        if preserve:
            from edgecnn._tf import tfmot

            scheme = tfmot().experimental.combine.Default8BitPrunePreserveQuantizeScheme()
        store = ctx.store_for(self, prev, q, preserve)
        model = quantize_model(copy_model(prev.model), scheme)

        def train():
            ctx.echo(
                f"      {'prune-preserving ' if preserve else ''}8-bit QAT: {q.epochs} epochs at lr {q.learning_rate:g}"
            )
            return ctx.fine_tune(model, store, q.epochs, q.learning_rate, callbacks)

        meta = ctx.train_or_reuse(model, store, "quantization-aware weights", train, full_model=False)
        scheme_name = "prune-preserving 8-bit" if preserve else "8-bit"
        info = {"scheme": scheme_name, "from": prev.name, "seconds": meta.get("seconds")}
        return StageResult(self.row, model, ["int8"], info, key=store.key)

    def notes(self, info: dict) -> str:
        return f"- qat: {info['scheme']} quantization-aware training from `{info['from']}`, exported int8"


STAGE = QAT()
