"""The first stage, always on: build the model and train it from scratch (row ``trained``).

Every compression stage starts from its result. It is cached like every stage: the same
model, data and training settings reuse the stored weights, and a training killed
mid-way resumes from its last epoch (see :func:`edgecnn.train.fit`).
"""

from __future__ import annotations

import time

from edgecnn import __version__
from edgecnn.stages._base import Context, StageResult, StageStore, config_key

ROW = "trained"


def train(ctx: Context) -> StageResult:
    """Build the model and train it (or reuse the stored weights)."""
    from edgecnn._tf import keras
    from edgecnn.models._profile import count_params
    from edgecnn.train import fit

    cfg = ctx.cfg
    key = config_key("train", cfg.model, cfg.data, cfg.train, ctx.data.fingerprint(), __version__)
    store = StageStore(ctx.out, "train", key)
    keras.utils.set_random_seed(cfg.train.seed)  # the initial weights too: same seed, same model
    model = ctx.build_model()
    meta = store.restore(model)
    if meta is not None:
        ctx.echo(f"      reusing trained weights from {store.dir}")
    else:
        ctx.echo(
            f"      {model.name}: {count_params(model)['trainable']:,} parameters, "
            f"{len(ctx.data.y['train'])} training images, {cfg.train.epochs} epochs"
        )
        t0 = time.time()
        hist = fit(model, ctx.data, cfg.train, out_dir=store.dir)
        meta = store.save(model, {"fit": hist, "seconds": time.time() - t0})
    info = {"train": {k: v for k, v in meta.items() if k != "fit"}, "history": meta.get("fit", {}).get("history")}
    return StageResult(ROW, model, cfg.convert.precisions, info, key=key)
