"""Stage ``channel_prune``: remove the least important filters and rebuild narrower (row ``channel_pruned``).

Li et al. 2017, "Pruning Filters for Efficient ConvNets" (arXiv:1608.08710; kernel L1
norm) and Liu et al. 2017, "Learning Efficient Convolutional Networks through Network
Slimming" (arXiv:1708.06519; BatchNorm scale). The step is
:func:`edgecnn.optimize.channel_prune.prune_channels`; the narrower model is then
fine-tuned. Unlike magnitude pruning it makes the ``.tflite`` really smaller and faster.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgecnn import __version__
from edgecnn.optimize import CHANNEL_CRITERIA
from edgecnn.settings import Section, setting
from edgecnn.stages._base import Context, Stage, StageResult, StageStore, config_key


@dataclass
class ChannelPruneConfig(Section):
    """Channel pruning: ``fraction`` of the filters of each prunable group removed."""

    key = "channel_prune"

    fraction: float | None = setting(
        None,
        cli="--prune-channels",
        low=0,
        high=1,
        low_open=True,
        high_open=True,
        metavar="FRACTION",
        help="Channel pruning: remove this fraction of filters and rebuild narrower, e.g. 0.5.",
        default_text="off",
    )
    criterion: str = setting(
        "l1",
        cli="--prune-criterion",
        choices=CHANNEL_CRITERIA,
        help="Filter importance for --prune-channels: kernel L1 norm or BatchNorm scale.",
    )
    epochs: int | None = setting(
        None,
        cli="--prune-epochs",
        low=0,
        help="Fine-tuning epochs of each pruning stage.",
        default_text="half of --epochs",
    )
    learning_rate: float | None = setting(
        None,
        low=0,
        high=10,
        low_open=True,
        high_open=True,
        help="Fine-tuning peak learning rate.",
        default_text="half of training's",
    )
    skip: list = setting(
        factory=list, cli="--prune-skip", metavar="PATTERN", help="Layer-name glob to leave unpruned (repeatable)."
    )


def fill_fine_tune_defaults(section, train) -> None:
    """Pruning fine-tunes default to half of training's epochs (at least one) at half its peak rate.

    Models trained from scratch on small data are far from converged: pruning fine-tunes
    recover best with a fair share of the training budget and half its peak rate.
    """
    if section.epochs is None:
        section.epochs = max(1, train.epochs // 2)
    if section.learning_rate is None:
        section.learning_rate = 0.5 * train.learning_rate


class ChannelPrune(Stage):
    name, row, Config, title = "channel_prune", "channel_pruned", ChannelPruneConfig, "channel pruning"

    def enabled(self, cfg) -> bool:
        return cfg.channel_prune.fraction is not None

    def switch_off(self, section: dict) -> None:
        section["fraction"] = None

    def recipe_options(self, options: dict) -> dict:
        return dict(options)

    def resolve(self, cfg) -> None:
        fill_fine_tune_defaults(cfg.channel_prune, cfg.train)

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
        key = config_key(
            "channel_prune",
            prev.key,
            ctx.teacher_key,
            c.fraction,
            c.criterion,
            c.skip,
            c.epochs,
            c.learning_rate,
            cfg.train,
            __version__,
        )
        store = StageStore(ctx.out, self.row, key)

        def train():
            ctx.echo(f"      fine-tuning: {c.epochs} epochs at lr {c.learning_rate:g}")
            return ctx.fine_tune(narrow, store, c.epochs, c.learning_rate)

        meta = ctx.train_or_reuse(narrow, store, "fine-tuned weights", train)
        return StageResult(
            self.row, narrow, cfg.convert.precisions, {**report, "seconds": meta.get("seconds")}, key=key
        )

    def notes(self, info: dict) -> str:
        return (
            f"- channel_pruned: {100 * info['fraction']:.0f}% of the filters of {len(info['groups'])} channel "
            f"groups removed ({info['criterion']} criterion), {info['params_before']:,} -> "
            f"{info['params_after']:,} trainable parameters"
        )


STAGE = ChannelPrune()
