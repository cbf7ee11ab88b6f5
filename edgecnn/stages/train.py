"""The first stage, always on: build the model and train it from scratch (row ``trained``).

Every compression stage starts from its result. It is cached like every stage: the same
model, data and training settings reuse the stored weights, and a training killed
mid-way resumes from its last epoch (see :func:`edgecnn.train.fit`).
"""

from __future__ import annotations

import shutil
import time

from edgecnn import __version__
from edgecnn.stages._base import Context, StageResult, StageStore, config_key

ROW = "trained"


def head_layers(model) -> list[str]:
    """The new head a fine-tuning schedule trains first: the layers the weight file did not
    give (re-initialised, see :mod:`edgecnn.models._weights`), else the ``classifier``."""
    fresh = list((getattr(model, "_edgecnn_weights", None) or {}).get("fresh") or [])
    return fresh or [layer.name for layer in model.layers if layer.name == "classifier"]


def _reinitialise(layer) -> None:
    """Draw ``layer``'s kernel and bias afresh from its own initialisers (seeded)."""
    for attr in ("kernel", "bias"):
        var = getattr(layer, attr, None)
        init = getattr(layer, f"{attr}_initializer", None)
        if var is not None and init is not None:
            var.assign(init(var.shape, var.dtype))


def fine_tune_schedule(ctx: Context, model, store: StageStore) -> dict:
    """Transfer learning on small data, in the one fit loop: ``train.freeze_epochs`` epochs of
    the new head alone (backbone frozen; a frozen BatchNorm runs in inference mode) at
    ``train.learning_rate``, then ``train.epochs`` of the whole network at
    ``train.fine_tune_lr``, its BatchNorm layers kept in inference mode (their pretrained
    statistics are not re-estimated from a few hundred images). Each phase resumes after a
    kill (its own checkpoint folder); a finished head phase is kept and not redone."""
    from edgecnn._tf import keras
    from edgecnn.train import fit

    cfg = ctx.cfg
    head = set(head_layers(model))
    done = store.dir / "head" / "head.h5"
    hist_head = {"epochs": 0, "skipped": True}
    for layer in model.layers:
        layer.trainable = layer.name in head
        if layer.name in head:
            _reinitialise(layer)  # a new head for the user's classes, even where the file had one
    if done.is_file():
        model.load_weights(str(done))
        ctx.echo(f"      head phase: reusing {done}")
    else:
        ctx.echo(
            f"      head phase: {', '.join(sorted(head))} only, {cfg.train.freeze_epochs} epochs at lr "
            f"{cfg.train.learning_rate:g} (backbone frozen, BatchNorm in inference mode)"
        )
        hist_head = fit(
            model,
            ctx.data,
            cfg.train,
            out_dir=store.dir / "head",
            epochs=cfg.train.freeze_epochs,
            learning_rate=cfg.train.learning_rate,
            keep_best=False,  # a warm-up for the head: the next phase starts from where it ends
        )
        from edgecnn._io import atomic_path

        with atomic_path(done) as tmp:
            model.save_weights(str(tmp))
    for layer in model.layers:
        layer.trainable = not isinstance(layer, keras.layers.BatchNormalization)
    ctx.echo(
        f"      fine-tune phase: the whole network (BatchNorm frozen), {cfg.train.epochs} epochs at lr "
        f"{cfg.train.fine_tune_lr:g}"
    )
    hist = fit(model, ctx.data, cfg.train, out_dir=store.dir, learning_rate=cfg.train.fine_tune_lr)
    for layer in model.layers:
        layer.trainable = True
    shutil.rmtree(store.dir / "head", ignore_errors=True)  # both phases are done
    hist["head"] = {k: v for k, v in hist_head.items() if k != "history"}
    return hist


def train(ctx: Context) -> StageResult:
    """Build the model and train it (or reuse the stored weights)."""
    from edgecnn._tf import keras
    from edgecnn.models._profile import count_params
    from edgecnn.train import fit

    cfg = ctx.cfg
    keras.utils.set_random_seed(cfg.train.seed)  # the initial weights too: same seed, same model
    model = ctx.build_model()
    # The weight file's content is part of the key: another file at the same path retrains.
    started = (getattr(model, "_edgecnn_weights", None) or {}).get("sha256")
    key = config_key("train", cfg.model, cfg.data, cfg.train, ctx.data.fingerprint(), __version__,
                     *([started] if started else []))
    store = StageStore(ctx.out, "train", key)
    meta = store.restore(model)
    if meta is not None:
        ctx.echo(f"      reusing trained weights from {store.dir}")
    else:
        ctx.echo(
            f"      {model.name}: {count_params(model)['trainable']:,} parameters, "
            f"{len(ctx.data.y['train'])} training images, {cfg.train.epochs} epochs"
        )
        t0 = time.time()
        if cfg.train.freeze_epochs and getattr(model, "_edgecnn_weights", None):
            hist = fine_tune_schedule(ctx, model, store)
        else:
            hist = fit(model, ctx.data, cfg.train, out_dir=store.dir)
        meta = store.save(model, {"fit": hist, "seconds": time.time() - t0})
    info = {"train": {k: v for k, v in meta.items() if k != "fit"}, "history": meta.get("fit", {}).get("history")}
    started = getattr(model, "_edgecnn_weights", None)
    if started:  # which weights the run started from, and the file's sha256 (metrics.json)
        info["weights"] = {k: started[k] for k in ("source", "file", "sha256")}
    return StageResult(ROW, model, cfg.convert.precisions, info, key=key)
