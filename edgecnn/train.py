"""The one fit loop that every stage reuses: training, pruning fine-tuning, distillation, QAT.

Defaults are chosen for training from scratch on small data (a few thousand images):
Adam with a linear warm-up and cosine decay, light augmentation where it is safe for
the data (small shifts for digits; shifts and horizontal flips for photos), BatchNorm
momentum 0.9 (set when the model is built, see :mod:`edgecnn.models._layers`), the best
epoch by validation accuracy kept, and an epoch checkpoint (``BackupAndRestore``) so a
run killed mid-training resumes where it stopped.

Example:
    >>> history = fit(model, dataset, TrainConfig(epochs=20), out_dir="runs/m/train")  # doctest: +SKIP
"""

from __future__ import annotations

import math
import shutil
import sys
from pathlib import Path

import numpy as np

from edgecnn import distribute
from edgecnn._tf import keras, tf
from edgecnn.data.contract import LazySplit, RunData
from edgecnn.data.stream import finish
from edgecnn.data.tfrecord import TFRecordStream
from edgecnn.errors import UserError
from edgecnn.settings.sections import TrainConfig


class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 10% of ``peak``, then cosine, step or constant."""

    def __init__(self, peak: float, total_steps: int, warmup_steps: int = 0, kind: str = "cosine"):
        self.peak = float(peak)
        self.total_steps = max(1, int(total_steps))
        self.warmup_steps = max(0, min(int(warmup_steps), self.total_steps - 1))
        self.kind = kind

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        peak = tf.constant(self.peak, tf.float32)
        warm = tf.constant(float(max(1, self.warmup_steps)), tf.float32)
        warm_lr = peak * (0.1 + 0.9 * step / warm)
        rest = tf.constant(float(max(1, self.total_steps - self.warmup_steps)), tf.float32)
        progress = tf.clip_by_value((step - self.warmup_steps) / rest, 0.0, 1.0)
        if self.kind == "cosine":
            lr = peak * (0.01 + 0.99 * 0.5 * (1.0 + tf.cos(math.pi * progress)))
        elif self.kind == "step":
            lr = peak * tf.where(progress < 0.5, 1.0, tf.where(progress < 0.75, 0.1, 0.01))
        else:
            lr = peak
        return tf.where(step < self.warmup_steps, warm_lr, lr)

    def get_config(self):
        return {
            "peak": self.peak,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "kind": self.kind,
        }


def make_optimizer(config: TrainConfig, steps_per_epoch: int, epochs: int, learning_rate: float):
    """The optimizer with its warm-up + decay schedule."""
    schedule = WarmupSchedule(
        learning_rate, steps_per_epoch * max(1, epochs), int(config.warmup_epochs * steps_per_epoch), config.schedule
    )
    wd = config.weight_decay or None
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True, weight_decay=wd)
    if config.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(schedule, weight_decay=wd)
    return keras.optimizers.Adam(schedule, weight_decay=wd)


def _augment_fn(kind: str, image_shape, seed: int):
    h, w = image_shape[0], image_shape[1]
    pad_h, pad_w = max(1, h // 16), max(1, w // 16)
    flip = kind == "shift_flip"
    limit = tf.constant([2 * pad_h + 1, 2 * pad_w + 1, 1], tf.int32)

    def augment(x, y, k):
        # Shift by up to 1/16 of the size, edges mirrored: what padding with tf.pad(SYMMETRIC) and
        # a tf.image.stateless_random_crop give, drawn the same way, built from slices (one copy
        # per axis; MirrorPad and the crop cost several times that). Stateless ops seeded by
        # (seed, sample counter): a resumed run draws the same shifts.
        s = tf.stack([tf.cast(seed, tf.int64), tf.cast(k, tf.int64)])
        offset = tf.random.stateless_uniform([3], seed=s, maxval=tf.int32.max, dtype=tf.int32) % limit
        shape = x.shape
        x = _mirror_shift(x, offset[0] - pad_h, 0, h)
        x = tf.ensure_shape(_mirror_shift(x, offset[1] - pad_w, 1, w), shape)  # sliced sizes are dynamic
        if flip:  # tf.image.stateless_random_flip_left_right's draw
            mirrored = tf.random.stateless_uniform([], seed=s + 1, minval=0, maxval=1.0) < 0.5
            x = tf.cond(mirrored, lambda: tf.reverse(x, [1]), lambda: x)
        return x, y

    return augment


def _mirror_shift(x, d, axis: int, n: int):
    """Rows (``axis`` 0) or columns (1) ``d .. d + n - 1`` of ``x`` padded symmetrically
    (``d`` in ``-n .. n``): the part of ``x`` still in view, and the mirrored strip that fills
    the rest."""
    a, b = tf.maximum(0, -d), tf.maximum(0, d)

    def part(start, stop):
        begin = tf.stack([start if i == axis else 0 for i in range(3)])
        size = tf.stack([stop - start if i == axis else -1 for i in range(3)])
        return tf.slice(x, begin, size)

    return tf.concat([tf.reverse(part(0, a), [axis]), part(b, n - a), tf.reverse(part(n - b, n), [axis])], axis)


def resolve_augment(kind: str, dataset_name: str) -> str:
    """``auto`` -> ``shift`` for digits and ``.npz`` data (orientation matters), ``shift_flip`` for photos."""
    if kind != "auto":
        return kind
    return "shift" if dataset_name == "digits" or dataset_name.endswith(".npz") else "shift_flip"


def make_datasets(data: RunData, config: TrainConfig, augment: str = "none", epoch_fn=None, shard=(1, 0)):
    """``(train, val)`` ``tf.data`` pipelines from a :class:`~edgecnn.data.dataset.Dataset`.

    ``epoch_fn`` returns the current epoch as an int64 tensor when a pass over the training
    data starts (:class:`EpochCounter`'s ``read``; ``None``: always epoch 0): the order and
    augmentation of each epoch are then a pure function of ``(seed, epoch, worker)``, so each
    epoch draws anew, and a run resumed after a kill sees exactly the batches an uninterrupted
    run would have seen. ``shard``: ``(workers, index)``
    of this process in a multi-worker run (:func:`edgecnn.distribute.input_shard`), by which
    a streamed source is split by file (see :func:`_stream_datasets`).
    """
    if data.streamed:
        return _stream_datasets(data, config, augment, epoch_fn, shard)
    x_train, y_train = data.normalized("train"), data.y["train"]
    n = len(x_train)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    if epoch_fn is None:
        epoch_fn = lambda: tf.constant(0, tf.int64)  # noqa: E731
    x_const, y_const = tf.constant(x_train), tf.constant(y_train)
    seed = int(config.seed)

    def epoch_order(_):
        epoch = tf.cast(epoch_fn(), tf.int64)
        perm = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed=tf.stack([seed, epoch]))
        return tf.data.Dataset.from_tensor_slices((perm, epoch * n + tf.range(n, dtype=tf.int64)))

    train = tf.data.Dataset.range(1).flat_map(epoch_order).with_options(options)
    train = train.map(lambda i, k: (tf.gather(x_const, i), tf.gather(y_const, i), k))
    if augment != "none":
        train = train.map(_augment_fn(augment, x_train.shape[1:], seed), num_parallel_calls=tf.data.AUTOTUNE)
    else:
        train = train.map(lambda x, y, k: (x, y))
    train = train.batch(config.batch_size).prefetch(tf.data.AUTOTUNE)
    val = None
    if len(data.y["val"]):
        val = tf.data.Dataset.from_tensor_slices((data.normalized("val"), data.y["val"])).with_options(options)
        val = val.batch(max(config.batch_size, 64)).prefetch(tf.data.AUTOTUNE)
    return train, val


def _stream_datasets(data, config: TrainConfig, augment: str, epoch_fn, shard=(1, 0)):
    """``make_datasets`` for a :class:`~edgecnn.data.stream.StreamDataset`: the in-memory path's
    order (a seeded permutation of indices per epoch) and augmentation, decoding as it reads.

    Several workers (``shard`` = ``(workers, index)``, :func:`edgecnn.distribute.input_shard`)
    split the data *by file* when there are at least as many files as workers: each worker
    reads only its own files (``data.worker_part``), shuffles them each epoch and hands its
    batches to its replicas: TFRecord shards are assigned as ``AutoShardPolicy.FILE`` would
    (shard ``j`` to worker ``j % workers``, by the stream itself: the pipeline's per-pass
    numbering hides the files from tf.data's rewrite); for an image folder or a
    memory-mapped array, whose images are read by index, the indices are split here (every
    ``workers``-th file of the split, fixed for the run). TensorFlow's auto-sharding is off.
    With fewer files than workers, every worker reads everything and keeps its part of each
    batch (``AutoShardPolicy.DATA``).
    """
    workers, worker = shard
    policy = tf.data.experimental.AutoShardPolicy
    by_file = workers > 1 and data.read_units("train") >= workers
    if epoch_fn is None:
        epoch_fn = lambda: tf.constant(0, tf.int64)  # noqa: E731
    seed = int(config.seed)

    def options_for(split_by_file: bool, tf_assigns_files: bool = False):
        options = tf.data.Options()
        if not split_by_file:
            options.experimental_distribute.auto_shard_policy = policy.DATA
        else:
            options.experimental_distribute.auto_shard_policy = policy.FILE if tf_assigns_files else policy.OFF
        return options

    augment_fn = None
    if augment != "none":
        draw = _augment_fn(augment, data.input_shape, seed)
        augment_fn = lambda x, k: draw(x, None, k)[0]  # noqa: E731
    batch = config.batch_size
    if isinstance(data, TFRecordStream):  # shards read in order, mixed in a shuffle buffer; each worker its own shards
        part = shard if by_file else (1, 0)
        train = data.tf_train(tf, seed, epoch_fn, part=part).with_options(options_for(by_file, False))
        if by_file:
            train = _even(train, data.worker_counts("train", workers))
        train = finish(train, tf, batch, augment_fn)
    else:
        total = len(data.y["train"])
        own = data.worker_part("train", workers, worker) if by_file else np.arange(total)
        n, own_t = len(own), tf.constant(own, tf.int64)
        # The augmentation counter: epoch * total + position in the epoch, the positions of a
        # worker interleaved with the others' (worker + workers * i), so no two draws repeat.
        first, step = (worker, workers) if by_file else (0, 1)

        def epoch_order(_):
            epoch = tf.cast(epoch_fn(), tf.int64)
            # Each worker shuffles its own part by (seed, epoch, worker): (seed, epoch) for one worker.
            draw = epoch * step + first
            perm = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed=tf.stack([seed, draw]))
            counter = epoch * total + first + step * tf.range(n, dtype=tf.int64)
            return tf.data.Dataset.from_tensor_slices((tf.gather(own_t, perm), counter))

        order = tf.data.Dataset.range(1).flat_map(epoch_order).with_options(options_for(by_file, False))
        # Batched by the read itself (read and batching fuse; a batch that raises is read again
        # item by item), except where a worker's part is first evened out item by item.
        traced = data.traced("train", order, tf)
        train = data.tf_split("train", traced, tf, own=own, batch=None if by_file else batch, augment=augment_fn)
        if by_file:
            train = _even(train, data.worker_counts("train", workers)).batch(batch)
    train = train.map(lambda x, y, k: (x, y)).prefetch(tf.data.AUTOTUNE)
    val = None
    if len(data.y["val"]):
        val_by_file = workers > 1 and data.read_units("val") >= workers
        val_options = options_for(val_by_file, False)
        own = data.worker_part("val", workers, worker) if val_by_file else np.arange(len(data.y["val"]))
        order = tf.data.Dataset.from_tensor_slices((tf.constant(own, tf.int64), tf.range(len(own), dtype=tf.int64)))
        part = shard if val_by_file else (1, 0)
        traced, val_batch = data.traced("val", order.with_options(val_options), tf), max(batch, 64)
        val = data.tf_split("val", traced, tf, part=part, own=own, batch=None if val_by_file else val_batch)
        if val_by_file:
            val = _even(val, data.worker_counts("val", workers)).batch(val_batch)
        val = val.with_options(val_options).map(lambda x, y, k: (x, y)).prefetch(tf.data.AUTOTUNE)
    return train, val


def _even(ds, counts):
    """Every worker's part made as long as the longest (``counts``: items per worker), by reading
    its own files again from the start. Workers then take the same number of steps: a worker
    that ran out would otherwise be handed an empty batch, which TensorFlow's CPU convolution
    rejects. Also covers files skipped as unreadable. At most ``max - min`` items repeat.

    The length is then hidden again (an always-true filter): a worker's part is batched at the
    global batch size and split among all replicas of the cluster, so its own cardinality
    would tell Keras ``workers`` times too few steps per epoch."""
    return ds.repeat().take(max(counts)).filter(lambda *item: True)


class EpochCounter(keras.callbacks.Callback):
    """The epoch Keras is starting, for the input pipeline: ``read()`` gives it as an int64 tensor
    that the training data reads at the start of each pass (see :func:`make_datasets`).

    A plain variable on this process's CPU, outside any strategy (a distributed variable, such
    as the optimizer's step counter under a strategy, cannot be read by ``tf.data``), set in
    ``on_epoch_begin``. Keras creates a new iterator over a finite dataset for every epoch and
    reads its first batch after ``on_epoch_begin``, so each pass sees its own epoch; a run
    resumed by ``BackupAndRestore`` starts at the epoch Keras restored.

    Example:
        >>> epoch = EpochCounter()
        >>> train, val = make_datasets(data, config, "shift", epoch_fn=epoch.read)  # doctest: +SKIP
        >>> model.fit(train, epochs=3, callbacks=[epoch])                           # doctest: +SKIP
    """

    def __init__(self):
        super().__init__()
        from tensorflow.python.ops.resource_variable_ops import ResourceVariable

        # Constructed directly, not through tf.Variable: a strategy's scope would distribute it.
        with tf.init_scope(), tf.device("/cpu:0"):
            self.variable = ResourceVariable(tf.constant(0, tf.int64), trainable=False, name="edgecnn_epoch")

    def read(self):
        """The current epoch (an int64 scalar tensor)."""
        return self.variable.read_value()

    def on_epoch_begin(self, epoch, logs=None):
        self.variable.assign(int(epoch))


class _RestoreBest(keras.callbacks.Callback):
    """Keep the weights of the epoch with the best validation accuracy.

    With ``folder``, the best weights so far are also stored there (atomically) at each
    improvement, so a run killed and resumed picks the same best epoch as an uninterrupted one.
    """

    def __init__(self, monitor: str = "val_accuracy", folder=None, resume: bool = False):
        super().__init__()
        self.monitor = monitor
        self.best = -np.inf
        self.best_epoch = None
        self.weights = None
        self.folder = Path(folder) if folder is not None else None
        self.resume = resume

    def on_train_begin(self, logs=None):
        if self.folder is None:
            return
        state = self.folder / "best.json"
        if self.resume and state.is_file():
            import json

            try:
                meta = json.loads(state.read_text())
                with np.load(self.folder / "best.npz", allow_pickle=False) as f:
                    weights = [f[f"w{i}"] for i in range(len(f.files))]
            except (OSError, ValueError, KeyError):
                return
            self.best, self.best_epoch, self.weights = float(meta["best"]), int(meta["epoch"]), weights
        elif self.folder.is_dir():
            import shutil

            shutil.rmtree(self.folder, ignore_errors=True)

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and value > self.best:
            self.best, self.best_epoch = float(value), int(epoch)
            self.weights = self.model.get_weights()
            if self.folder is not None:
                from edgecnn._io import atomic_path, write_json

                with atomic_path(self.folder / "best.npz") as tmp:
                    np.savez(tmp, **{f"w{i}": w for i, w in enumerate(self.weights)})
                write_json(self.folder / "best.json", {"best": self.best, "epoch": self.best_epoch})


def fit(
    model,
    data: RunData,
    config: TrainConfig,
    out_dir=None,
    *,
    epochs: int | None = None,
    learning_rate: float | None = None,
    loss=None,
    extra_callbacks=(),
    compile_model: bool = True,
    keep_best: bool = True,
) -> dict:
    """Train ``model`` on ``data`` (a :class:`~edgecnn.data.dataset.Dataset`) and return its history.

    Args:
        config: the :class:`TrainConfig`; ``epochs``/``learning_rate`` override it.
        out_dir: the stage folder for the epoch checkpoint (resume after a kill) and
            TensorBoard logs; ``None`` keeps nothing on disk.
        loss: a Keras loss (default sparse categorical cross-entropy on probabilities).
        extra_callbacks: e.g. ``pruning_callbacks()``.
        compile_model: ``False`` when the caller compiled the model itself.
        keep_best: restore the weights of the best validation epoch at the end.

    Distributed training: build ``model`` (and any tfmot wrapping) inside the strategy's
    scope; ``fit`` compiles and trains under the strategy the model was built with, and
    ``config.strategy`` (unless ``auto``) must name that strategy. Under ``multiworker``,
    only the chief writes ``out_dir`` (Keras' ``BackupAndRestore`` gives the other workers
    temporary folders of their own), and ``out_dir`` should be on storage every worker
    sees, so that a restarted job resumes from the chief's last epoch checkpoint.

    Returns:
        ``{"history": {...}, "epochs": n, "best_epoch": i, "best_val_accuracy": a}``.

    Example:
        >>> with get_strategy("mirrored").scope():                                   # doctest: +SKIP
        ...     model = create_model("lenet5", input_shape=(32, 32, 1), classes=10)
        >>> fit(model, data, TrainConfig(epochs=5, strategy="mirrored"), out_dir="runs/l/train")  # doctest: +SKIP
    """
    config.validate()
    strategy = _model_strategy(model, config)
    chief = distribute.is_chief(strategy)
    epochs = int(epochs if epochs is not None else (config.epochs if config.epochs is not None else 20))
    learning_rate = float(learning_rate if learning_rate is not None else (config.learning_rate or 1e-3))
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()  # same seed, same metrics
    augment = resolve_augment(config.augment, data.name)
    if compile_model:
        _compile(model, data, config, strategy, epochs, learning_rate, loss)
    # Every pass of the training data reads the epoch that Keras is starting (on every worker,
    # under every strategy, resumed runs included): its order and augmentation are a pure
    # function of (seed, epoch, worker).
    epoch = EpochCounter()
    train, val = make_datasets(data, config, augment, epoch_fn=epoch.read, shard=distribute.input_shard(strategy))
    plan = _Callbacks(config, out_dir, chief, keep_best and val is not None, val is not None)
    callbacks = [epoch, *extra_callbacks, *plan.callbacks]
    verbose = config.verbose if config.verbose is not None else (1 if sys.stdout.isatty() else 2)
    if epochs == 0:
        return {"history": {}, "epochs": 0, "best_epoch": None, "best_val_accuracy": None}
    history = _keras_fit(model, data, strategy, plan.backup, train, val, epochs, callbacks, verbose)
    best = plan.best
    if best and best.weights is not None:
        model.set_weights(best.weights)
    distribute.barrier(strategy)  # every worker's BackupAndRestore has cleaned up its own folder
    if chief:
        plan.clean_up()
    hist = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    return {
        "history": hist,
        "epochs": len(next(iter(hist.values()), [])),
        "best_epoch": best.best_epoch if best else None,
        "best_val_accuracy": best.best if best and best.weights is not None else None,
        "augment": augment,
        "learning_rate": learning_rate,
    }


def _compile(model, data: RunData, config: TrainConfig, strategy, epochs: int, learning_rate: float, loss=None):
    """Compile ``model`` with :func:`make_optimizer` and ``loss`` (default: sparse cross-entropy)."""
    steps = math.ceil(len(data.y["train"]) / config.batch_size)
    if loss is None:
        loss = _sparse_ce(data.num_classes, config.label_smoothing)
    with strategy.scope():  # the optimizer's slots and the metrics' variables are distributed too
        model.compile(
            optimizer=make_optimizer(config, steps, epochs, learning_rate),
            loss=loss,
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        )


class _Callbacks:
    """The callbacks :func:`fit` adds for ``config`` and ``out_dir``: the best epoch kept
    (``keep_best``), early stopping (``config.patience``, with a validation split), the epoch
    checkpoint (``BackupAndRestore`` in ``out_dir/_backup``) and TensorBoard."""

    def __init__(self, config: TrainConfig, out_dir, chief: bool, keep_best: bool, has_val: bool):
        self.chief = chief
        self.out_dir = Path(out_dir) if out_dir is not None else None
        resuming = self.out_dir is not None and (self.out_dir / "_backup").is_dir()
        self.best_dir = self.out_dir / "_best" if self.out_dir is not None else None
        self.best = _RestoreBest(folder=self.best_dir, resume=resuming) if keep_best else None
        self.callbacks = [self.best] if self.best else []
        if config.patience and has_val:
            self.callbacks.append(keras.callbacks.EarlyStopping("val_accuracy", patience=config.patience, mode="max"))
        self.backup = None
        if self.out_dir is not None:
            if chief:
                self.out_dir.mkdir(parents=True, exist_ok=True)
            self.backup = self.out_dir / "_backup"
            # Same path on every worker: Keras writes the chief's checkpoint there and gives the
            # others a temporary "workertemp_<id>" folder; all restore from the chief's.
            self.callbacks.append(keras.callbacks.BackupAndRestore(str(self.backup), delete_checkpoint=True))
            if config.tensorboard:
                self.callbacks.append(keras.callbacks.TensorBoard(str(self.out_dir / "tensorboard")))

    def clean_up(self) -> None:
        """After a successful fit, on the chief: the emptied checkpoint folder and the best weights' copy go."""
        backup = self.backup
        if backup is not None and backup.is_dir() and not any(p.is_file() for p in backup.rglob("*")):
            shutil.rmtree(backup, ignore_errors=True)  # only empty folders are left: the run succeeded
        if self.best_dir is not None and self.best_dir.is_dir():
            shutil.rmtree(self.best_dir, ignore_errors=True)  # the best weights are in the model now


def _keras_fit(model, data: RunData, strategy, backup, train, val, epochs: int, callbacks: list, verbose):
    """``model.fit``, with a lost worker and a split with no readable image said in one line."""
    try:
        return model.fit(train, validation_data=val, epochs=epochs, callbacks=callbacks, verbose=verbose)
    except distribute.collective_errors() as exc:
        if distribute.is_multi_worker(strategy):
            raise distribute.lost_worker_error(exc, backup) from None
        raise
    except ValueError as exc:  # Keras' "Empty logs": a streamed split whose every image was unreadable
        skipped = sorted(data.skipped)
        if "Empty logs" in str(exc) and skipped:
            raise UserError(
                f"no training image of {data.name} could be read ({len(skipped)} unreadable, e.g. {skipped[0]}); "
                "fix or remove them"
            ) from None
        raise


def _model_strategy(model, config: TrainConfig):
    """The strategy ``model`` was built under, checked against ``config.strategy``."""
    strategy = getattr(model, "_distribution_strategy", None) or distribute.current_strategy()
    if config.strategy != "auto":
        wanted, got = distribute.resolve_name(config.strategy), distribute.kind(strategy)
        if wanted != got:
            raise UserError(
                f"train.strategy is {config.strategy!r} but the model was built under the {got} strategy: "
                f"build it inside edgecnn.distribute.get_strategy({config.strategy!r}).scope()"
            )
    return strategy


def _sparse_ce(num_classes: int, label_smoothing: float):
    if not label_smoothing:
        return keras.losses.SparseCategoricalCrossentropy()

    def loss(y_true, y_pred):
        y = tf.one_hot(tf.cast(tf.reshape(y_true, [-1]), tf.int32), num_classes)
        return keras.losses.categorical_crossentropy(y, y_pred, label_smoothing=label_smoothing)

    return loss


def split_batches(data: RunData, split: str, batch_size: int, images=None):
    """``(images, labels)`` of ``split`` a batch at a time, in order: a streamed split as it
    reads (an unreadable file is left out of both), an in-memory one sliced. ``images``:
    ``data.normalized(split)`` when the caller has it already.

    Example:
        >>> [len(y) for _, y in split_batches(data, "test", 128)]  # doctest: +SKIP
        [128, 128, 104]
    """
    x = data.normalized(split) if images is None else images
    if isinstance(x, LazySplit):
        yield from x.batches(batch_size)
        return
    y = np.asarray(data.y[split])
    for i in range(0, len(x), batch_size):
        yield x[i : i + batch_size], y[i : i + batch_size]


def evaluate_keras(model, data: RunData, split: str = "test", batch_size: int = 128) -> float:
    """Top-1 accuracy of a Keras model (first output) on a split, in inference mode.

    A model built under ``multiworker`` is called directly, batch by batch, so that each
    worker scores the whole split (``predict`` would split it between the workers). Call
    it on every worker together (reading BatchNorm statistics is then a collective), or on
    the chief alone with :func:`edgecnn.distribute.local_copy` of the model.

    Example:
        >>> evaluate_keras(model, data, "test")  # doctest: +SKIP
        0.9611
    """
    x, y = data.normalized(split), data.y[split]
    if not len(y):
        return float("nan")
    multi = distribute.is_multi_worker(getattr(model, "_distribution_strategy", None) or distribute.current_strategy())
    if isinstance(x, LazySplit) or multi:  # a streamed split, or one worker scoring it all: a batch at a time
        right = total = 0
        for xb, yb in split_batches(data, split, batch_size, x):
            out = model(xb, training=False)
            out = np.asarray(out[0] if isinstance(out, (list, tuple)) else out)
            right += int((np.argmax(out, axis=-1) == yb).sum())
            total += len(yb)
        return right / max(1, total)
    preds = model.predict(x, batch_size=batch_size, verbose=0)
    if isinstance(preds, (list, tuple)):
        preds = preds[0]
    return float((np.argmax(preds, axis=-1) == y).mean())
