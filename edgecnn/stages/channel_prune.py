"""Stage ``channel_prune``: remove the least important filters and rebuild narrower (row ``channel_pruned``).

Li et al. 2017, "Pruning Filters for Efficient ConvNets" (arXiv:1608.08710; kernel L1
norm) and Liu et al. 2017, "Learning Efficient Convolutional Networks through Network
Slimming" (arXiv:1708.06519; BatchNorm scale). The step is
:func:`edgecnn.optimize.channel_prune.prune_channels`; the narrower model is then
fine-tuned. Unlike magnitude pruning it makes the ``.tflite`` really smaller and faster.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgecnn.optimize import CHANNEL_CRITERIA
from edgecnn.settings.fields import off_or_fraction, setting
from edgecnn.stages._base import Context, PruningFineTune, Stage, StageResult


@dataclass
class ChannelPruneConfig(PruningFineTune):
    """Channel pruning: ``fraction`` of the filters of each prunable group removed."""

    key = "channel_prune"

    criterion: str = setting(
        "l1",
        cli="--prune-criterion",
        choices=CHANNEL_CRITERIA,
        help="Filter importance for --prune-channels: kernel L1 norm or BatchNorm scale.",
    )
    fraction: float | None = off_or_fraction(
        cli="--prune-channels",
        metavar="FRACTION",
        help="Remove this fraction of filters and rebuild narrower, e.g. 0.5.",
    )


class ChannelPrune(Stage):
    name, row, Config, switch = "channel_prune", "channel_pruned", ChannelPruneConfig, "fraction"
    title = "channel pruning"

    def resolve(self, cfg) -> None:
        cfg.channel_prune.fill_defaults(cfg.train)

    def check(self, ctx: Context, model):
        from edgecnn.optimize.channel_prune import prune_channels

        c = ctx.cfg.channel_prune
        narrow, _ = prune_channels(model, c.fraction, c.criterion, skip=c.skip)
        return narrow

    def run(self, ctx: Context, prev: StageResult) -> StageResult:
        from edgecnn.optimize.channel_prune import prune_channels

        cfg, c = ctx.cfg, ctx.cfg.channel_prune
        narrow, report = prune_channels(prev.model, c.fraction, c.criterion, skip=c.skip)
        ctx.echo(
            f"      {c.criterion} criterion, {100 * c.fraction:.0f}% of the filters of {len(report['groups'])} "
            f"channel groups: {report['params_before']:,} -> {report['params_after']:,} parameters"
        )
        store = ctx.store_for(self, prev, c.fraction, c.criterion, c.skip, c.epochs, c.learning_rate)

        def train():
            ctx.echo(f"      fine-tuning: {c.epochs} epochs at lr {c.learning_rate:g}")
            return ctx.fine_tune(narrow, store, c.epochs, c.learning_rate)

        meta = ctx.train_or_reuse(narrow, store, "fine-tuned weights", train)
        return StageResult(
            self.row, narrow, cfg.convert.precisions, {**report, "seconds": meta.get("seconds")}, key=store.key
        )

    def notes(self, info: dict) -> str:
        return (
            f"- channel_pruned: {100 * info['fraction']:.0f}% of the filters of {len(info['groups'])} channel "
            f"groups removed ({info['criterion']} criterion), {info['params_before']:,} -> "
            f"{info['params_after']:,} trainable parameters"
        )


STAGE = ChannelPrune()
