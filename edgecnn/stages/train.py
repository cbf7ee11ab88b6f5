"""The first stage, always on: build the model and train it from scratch (row ``trained``).

Every compression stage starts from its result. It is cached like every stage: the same
model, data and training settings reuse the stored weights, and a training killed
mid-way resumes from its last epoch (see :func:`edgecnn.train.fit`).
"""

from __future__ import annotations

import dataclasses
import json
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


def head_tail(model, head: set) -> list | None:
    """The layers from the first head layer to the output, when they form a single chain
    (``GlobalAveragePooling -> Dropout -> Dense -> Softmax`` and the like): the part a
    frozen backbone's cached features can train alone. ``None`` when they do not."""
    layers = model.layers
    first = next((i for i, layer in enumerate(layers) if layer.name in head), None)
    if first is None or len(model.outputs) != 1:
        return None
    tail = layers[first:]
    for prev, layer in zip(tail, tail[1:]):
        if len(layer._inbound_nodes) != 1 or layer.input is not prev.output:
            return None
    if tail[-1].output is not model.outputs[0] or len(tail[0]._inbound_nodes) != 1:
        return None
    return tail


def _split_features(features, data, split: str, batch_size: int = 64):
    """``features``' outputs on a split (inference mode) and their labels, read as evaluation
    reads (:func:`edgecnn.train.split_batches`)."""
    import numpy as np

    from edgecnn.train import split_batches

    pairs = [(np.asarray(features(xb, training=False)), np.asarray(yb))
             for xb, yb in split_batches(data, split, batch_size)]
    if not pairs:
        return np.zeros((0,), np.float32), np.zeros((0,), np.int64)
    return np.concatenate([f for f, _ in pairs]), np.concatenate([y for _, y in pairs])


# The cached features of the head phase may take at most this much memory; a larger set (VGG's
# 25,088 flattened features per image on tens of thousands of images) trains the head through
# the whole network instead.
HEAD_FEATURES_BUDGET = 1 << 30


def _features_fit(tail: list, data) -> bool:
    import numpy as np

    size = int(np.prod([d for d in tail[0].input.shape[1:] if d is not None]))
    return 4 * size * (len(data.y["train"]) + len(data.y["val"])) <= HEAD_FEATURES_BUDGET


def _train_head_on_features(ctx: Context, model, tail: list, epochs: int) -> dict:
    """Train the head (``tail``) on the frozen backbone's features, computed once.

    The backbone runs in inference mode in this phase, so its features are the same in
    every epoch: one forward pass over the training and validation images replaces one per
    epoch, and the head can be trained until validation loss stops improving (patience
    :data:`HEAD_PATIENCE`, up to ``epochs``), the best epoch kept. The head is trained as
    a copy and its weights copied back. No augmentation in this phase (it would change the
    features); the fine-tuning phase has it."""
    from edgecnn._tf import keras
    from edgecnn.train import _sparse_ce

    cfg, data = ctx.cfg, ctx.data
    features = keras.Model(model.inputs, tail[0].input)
    x_train, y_train = _split_features(features, data, "train")
    val = _split_features(features, data, "val") if len(data.y["val"]) else None
    has_val = val is not None and len(val[1]) > 0
    val = val if has_val else None
    inputs = keras.Input(x_train.shape[1:])
    copies, x = [], inputs
    for layer in tail:
        copy = layer.__class__.from_config(layer.get_config())
        x = copy(x)
        copies.append(copy)
    head_model = keras.Model(inputs, x)
    for layer, copy in zip(tail, copies):
        copy.set_weights(layer.get_weights())
    keras.utils.set_random_seed(cfg.train.seed)
    head_model.compile(keras.optimizers.Adam(cfg.train.learning_rate),
                       _sparse_ce(data.num_classes, cfg.train.label_smoothing), ["accuracy"])
    stop = keras.callbacks.EarlyStopping("val_loss" if has_val else "loss", patience=HEAD_PATIENCE,
                                         restore_best_weights=True)
    history = head_model.fit(x_train, y_train, batch_size=cfg.train.batch_size, epochs=epochs, validation_data=val,
                             callbacks=[stop], shuffle=True, verbose=0).history
    for layer, copy in zip(tail, copies):
        layer.set_weights(copy.get_weights())
    best = stop.best_epoch if stop.best_epoch is not None else len(history["loss"]) - 1
    val_acc = history.get("val_accuracy") or []
    return {"history": {k: [float(v) for v in vals] for k, vals in history.items()}, "epochs": len(history["loss"]),
            "best_epoch": int(best), "best_val_accuracy": float(val_acc[best]) if val_acc else None,
            "cached_features": True}


HEAD_PATIENCE = 5


def _head_phase(ctx: Context, model, head: set, store: StageStore) -> dict:
    """The head alone, backbone frozen: on cached features where the head is a chain (see
    :func:`head_tail`), else through the whole network with early stopping. Resumes: a
    finished head phase (``head/head.h5``) is reloaded, not redone."""
    from edgecnn._io import atomic_path, write_json
    from edgecnn.distribute import is_multi_worker
    from edgecnn.train import fit

    cfg = ctx.cfg
    done = store.dir / "head" / "head.h5"
    for layer in model.layers:
        layer.trainable = layer.name in head
        if layer.name in head:
            _reinitialise(layer)  # a new head for the user's classes, even where the file had one
    if done.is_file():
        model.load_weights(str(done))
        ctx.echo(f"      head phase: reusing {done}")
        try:
            return json.loads((done.parent / "head.json").read_text())
        except (OSError, ValueError):
            return {"epochs": 0, "reused": True}
    tail = None if is_multi_worker(ctx.strategy) else head_tail(model, head)
    tail = tail if tail is not None and _features_fit(tail, ctx.data) else None
    names = ", ".join(sorted(head))
    if tail is not None:
        ctx.echo(f"      head phase: {names} on the frozen backbone's features (one pass), up to "
                 f"{cfg.train.freeze_epochs} epochs at lr {cfg.train.learning_rate:g} until validation loss stops "
                 "improving")
        hist = _train_head_on_features(ctx, model, tail, cfg.train.freeze_epochs)
    else:
        ctx.echo(f"      head phase: {names} only, up to {cfg.train.freeze_epochs} epochs at lr "
                 f"{cfg.train.learning_rate:g}, no augmentation (backbone frozen, BatchNorm in inference mode)")
        # As on cached features: a constant rate and no augmentation (the features do not change
        # between epochs there), so a multi-worker run's head learns as one process's does.
        same = dataclasses.replace(cfg.train, patience=HEAD_PATIENCE, schedule="constant", warmup_epochs=0.0,
                                   augment="none")
        hist = fit(model, ctx.data, same, out_dir=store.dir / "head", epochs=cfg.train.freeze_epochs,
                   learning_rate=cfg.train.learning_rate)
    acc = hist.get("best_val_accuracy")
    ctx.echo(f"      head phase: {hist['epochs']} epochs" + (f", best validation accuracy {acc:.4f}" if acc is not None
                                                              else ""))
    with atomic_path(done) as tmp:
        model.save_weights(str(tmp))
    write_json(done.parent / "head.json", hist)
    return hist


def fine_tune_schedule(ctx: Context, model, store: StageStore) -> dict:
    """Transfer learning on small data, in two phases, the better one kept.

    1. The new head alone, the backbone frozen (BatchNorm in inference mode), at
       ``train.learning_rate``, trained until validation loss stops improving (at most
       ``train.freeze_epochs`` epochs; :func:`_head_phase`).
    2. The whole network for ``train.epochs`` at ``train.fine_tune_lr`` (low: the family's
       ``fine_tune_lr``, 4e-4 with Adam; a high rate wrecks pretrained features on real
       photos, benchmarks/RESULTS.md "Transfer learning on real photos"), BatchNorm kept in
       inference mode (its statistics are not re-estimated from a few hundred images), the
       best validation epoch kept.

    The best epoch is chosen over both phases: if fine-tuning never reaches the head
    phase's validation accuracy, the head-phase model is kept, and a line says so. Each
    phase resumes after a kill."""
    from edgecnn._tf import keras
    from edgecnn.train import fit

    cfg = ctx.cfg
    head = set(head_layers(model))
    hist_head = _head_phase(ctx, model, head, store)
    head_weights = model.get_weights()
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
    head_acc, fine_acc = hist_head.get("best_val_accuracy"), hist.get("best_val_accuracy")
    chosen = "fine-tune"
    if head_acc is not None and (fine_acc is None or fine_acc < head_acc):
        model.set_weights(head_weights)
        chosen = "head"
        ctx.echo(f"      kept the head-phase model: fine-tuning reached validation accuracy "
                 f"{fine_acc if fine_acc is not None else float('nan'):.4f}, below the head phase's {head_acc:.4f} "
                 "(try a lower --fine-tune-lr or fewer --epochs)")
    hist["head"] = {k: v for k, v in hist_head.items() if k != "history"}
    hist["chosen"] = chosen
    hist["phases"] = {
        "head_val_accuracy": (hist_head.get("history") or {}).get("val_accuracy", []),
        "fine_tune_val_accuracy": (hist.get("history") or {}).get("val_accuracy", []),
    }
    return hist


MIN_IMAGES_PER_CLASS = 20


def few_images_warning(ctx: Context) -> str | None:
    """One line when a class has fewer than :data:`MIN_IMAGES_PER_CLASS` training images:
    fine-tuning a whole pretrained network on so few overfits easily (the head-phase model is
    kept when it validates better, see :func:`fine_tune_schedule`)."""
    import numpy as np

    y = np.asarray(ctx.data.y["train"])
    names = list(ctx.data.class_names)
    counts = np.bincount(y, minlength=len(names))
    fewest = int(np.argmin(counts))
    if counts[fewest] >= MIN_IMAGES_PER_CLASS:
        return None
    line = (f"warning: class {names[fewest]!s} has only {int(counts[fewest])} training image(s) (fewest of "
            f"{len(names)} classes; {MIN_IMAGES_PER_CLASS}+ per class are advised for fine-tuning from --weights): "
            "expect a noisy result; add photos of that class")
    ctx.echo(line)
    ctx.warnings.append(line)
    return line


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
            few_images_warning(ctx)
            hist = fine_tune_schedule(ctx, model, store)
        else:
            hist = fit(model, ctx.data, cfg.train, out_dir=store.dir)
        meta = store.save(model, {"fit": hist, "seconds": time.time() - t0})
    info = {"train": {k: v for k, v in meta.items() if k != "fit"}, "history": meta.get("fit", {}).get("history")}
    fitted = meta.get("fit") or {}
    if "chosen" in fitted:  # a fine-tuning schedule: which phase's model was kept, and both curves
        info["transfer"] = {k: fitted.get(k) for k in ("chosen", "head", "phases")}
    started = getattr(model, "_edgecnn_weights", None)
    if started:  # which weights the run started from, and the file's sha256 (metrics.json)
        info["weights"] = {k: started[k] for k in ("source", "file", "sha256")}
    return StageResult(ROW, model, cfg.convert.precisions, info, key=key)
