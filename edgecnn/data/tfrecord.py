"""TFRecord shards of encoded images, as TF Model Garden and TFDS write them.

Each record holds ``image/encoded`` (the image file's bytes), ``image/class/label``
(int64) and optionally ``image/class/text`` (the class name) and ``image/format``.
:func:`pack_folder` writes such shards from an image folder (``edgecnn data pack``);
:func:`load_tfrecords` streams them (``--data 'shards/*.tfrecord'``).

Reading: one pass over the shards reads the labels only (no image is decoded) and checks
them: an empty pattern, records without the expected features, a corrupt shard and a
label out of range stop the run there, before training, with one line. The seeded,
stratified split is then made on record numbers (the same cut as for a folder) and
recorded in ``<run>/splits.json``. Shards are read in order (records are not randomly
accessible): each split keeps its records by number, then a shuffle buffer mixes them.
Images become the tensor :func:`edgecnn.device.preprocess.load_image` gives, as everywhere
(through :func:`edgecnn.data.tf_read.read_batched`: TensorFlow decode, the run's resize, Pillow fallback).
"""

from __future__ import annotations

import glob
import io
import os
from pathlib import Path

import numpy as np

from edgecnn.data.contract import SPLITS, LoadSpec, preprocess_spec
from edgecnn.data.splits import SplitKey, split_spec, write_splits
from edgecnn.data.stream import StreamDataset
from edgecnn.device.preprocess import ImageError, load_image
from edgecnn.errors import UserError

SHUFFLE_BUFFER = 2048


def is_pattern(source: str) -> bool:
    """``source`` names TFRecord shards (a file or a glob ending in ``.tfrecord``/``.tfrec``)."""
    s = str(source).lower()
    return s.endswith((".tfrecord", ".tfrec", ".tfrecords")) or ".tfrecord-" in s


def pack_folder(folder, out, shards: int = 16, progress=None, seed: int = 0) -> dict:
    """Write the images of ``folder`` (one subfolder per class) into ``shards`` TFRecord files.

    Records are spread over the shards in a seeded random order, so every shard holds
    every class. Returns ``{"records": n, "shards": [paths], "classes": [...]}``.
    """
    from edgecnn._io import atomic_path
    from edgecnn._tf import tf
    from edgecnn.data.stream import list_files

    files, labels, classes = list_files(folder)
    if shards < 1:
        raise UserError(f"--shards must be at least 1, got {shards}")
    shards = min(int(shards), len(files))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    order = np.random.default_rng(seed).permutation(len(files))
    paths = [out / f"data-{i:05d}-of-{shards:05d}.tfrecord" for i in range(shards)]

    def feature(value):
        if isinstance(value, bytes):
            return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))

    done = 0
    for s, path in enumerate(paths):
        with atomic_path(path) as tmp, tf.io.TFRecordWriter(str(tmp)) as writer:
            for i in order[s::shards]:
                data = Path(files[i]).read_bytes()
                example = tf.train.Example(
                    features=tf.train.Features(
                        feature={
                            "image/encoded": feature(data),
                            "image/format": feature(Path(files[i]).suffix.lstrip(".").lower().encode()),
                            "image/class/label": feature(int(labels[i])),
                            "image/class/text": feature(classes[labels[i]].encode()),
                        }
                    )
                )
                writer.write(example.SerializeToString())
                done += 1
                if progress is not None:
                    progress(1)
    return {"records": len(files), "shards": [str(p) for p in paths], "classes": classes}


def _spec(tf, with_image: bool = True):
    spec = {
        "image/class/label": tf.io.FixedLenFeature([], tf.int64),
        "image/class/text": tf.io.FixedLenFeature([], tf.string, default_value=""),
    }
    if with_image:
        spec["image/encoded"] = tf.io.FixedLenFeature([], tf.string)
    return spec


def _by_shard(tf, files, part=(1, 0)):
    """``(record, shard number, record number in its shard)`` of every record, shard by shard.

    ``part`` ``(workers, index)``: only the shards ``index::workers`` (what tf.data's
    ``AutoShardPolicy.FILE`` would give that worker; edgecnn assigns them itself, since the
    pipeline's per-pass numbering, a ``scan``, hides the files from tf.data's rewrite).
    """
    names = tf.data.Dataset.from_tensor_slices((list(files), tf.range(len(files), dtype=tf.int64)))
    workers, index = part
    if workers > 1:
        names = names.shard(workers, index)
    return names.flat_map(lambda path, j: tf.data.TFRecordDataset(path).enumerate().map(lambda n, r: (r, j, n)))


def _shuffled(ds, buffer: int, seeds, tf):
    """``ds.shuffle(buffer, reshuffle_each_iteration=False)`` with its two seeds given as tensors
    (drawn per epoch inside the pipeline). ``Dataset.shuffle`` takes a tensor seed, but its
    Python seed logic then fails when the global seed is 0 (``seeds == (0, 0)`` on a tensor);
    this is the op it builds, with the seeds passed through."""
    spec = ds.element_spec
    flat = tf.nest.flatten(spec)
    variant = tf.raw_ops.ShuffleDatasetV3(
        input_dataset=tf.data.experimental.to_variant(ds),
        buffer_size=tf.constant(buffer, tf.int64),
        seed=seeds[0],
        seed2=seeds[1],
        seed_generator=tf.raw_ops.DummySeedGenerator(),
        output_types=[s.dtype for s in flat],
        output_shapes=[s.shape for s in flat],
        reshuffle_each_iteration=False,
    )
    return tf.data.experimental.from_variant(variant, spec)


def scan(files) -> tuple[np.ndarray, list, np.ndarray]:
    """Labels of every record (in shard order), the class names and the number of records
    in each shard, checked; decodes no image."""
    from edgecnn._tf import tf

    spec = _spec(tf)
    ds = _by_shard(tf, files).map(
        lambda r, j, n: (lambda f: (f["image/class/label"], f["image/class/text"], j))(
            tf.io.parse_single_example(r, spec)
        ),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    labels, texts, shard_of = [], {}, []
    try:
        for y, t, j in ds.batch(4096).as_numpy_iterator():
            labels.append(y)
            shard_of.append(j)
            for label, text in zip(y, t):
                if text:
                    texts.setdefault(int(label), text.decode("utf-8", "replace"))
    except tf.errors.InvalidArgumentError as exc:
        msg = str(exc).splitlines()[0][:200]
        raise UserError(
            f"{files[0]}...: records lack the expected features image/encoded (bytes) and image/class/label "
            f"(int64) ({msg})"
        ) from None
    except tf.errors.DataLossError as exc:
        raise UserError(f"a shard of {len(files)} is corrupt or truncated: {str(exc).splitlines()[0][:200]}") from None
    counts = np.bincount(np.concatenate(shard_of), minlength=len(files)) if shard_of else np.zeros(len(files), int)
    y = np.concatenate(labels) if labels else np.zeros(0, np.int64)
    if not len(y):
        raise UserError(f"the shards ({files[0]}, ...) hold no records")
    if y.min() < 0:
        raise UserError(f"label {int(y.min())} out of range in the shards: labels must be 0..classes-1")
    n = int(y.max()) + 1
    if texts:
        if len(texts) != n or set(texts) != set(range(n)):
            bad = sorted(set(range(n)) - set(texts)) or sorted(texts)
            raise UserError(
                f"label out of range in the shards: labels go up to {n - 1} but image/class/text names "
                f"{len(texts)} classes (labels without a name: {bad[:5]})"
            )
        classes = [texts[i] for i in range(n)]
    else:
        empty = np.flatnonzero(np.bincount(y, minlength=n) == 0)
        if len(empty):  # without class names the labels define the classes: a gap is a label out of range
            raise UserError(
                f"label {n - 1} out of range in the shards: labels go up to {n - 1} but no record has label "
                f"{', '.join(str(int(c)) for c in empty[:5])}{' ...' if len(empty) > 5 else ''} (labels must be "
                "0..classes-1; add image/class/text to name the classes)"
            )
        classes = [str(i) for i in range(n)]
    return y.astype(np.int64), classes, counts


class TFRecordStream(StreamDataset):
    """TFRecord shards split by record number; read in shard order, shuffled in a buffer."""

    def __init__(self, name, shards, members: dict, y: dict, class_names, preprocess, counts=None):
        super().__init__(name, {s: [] for s in SPLITS}, y, class_names, preprocess, cache="none")
        self.shards = list(shards)
        self.members = members  # split -> sorted record numbers
        total = sum(len(v) for v in self.members.values())
        self.counts = np.asarray(counts if counts is not None else [total] + [0] * (len(self.shards) - 1))

    def read_units(self, split: str) -> int:
        """The shards: a multi-worker run gives each worker its own (shard ``j`` to worker ``j % workers``)."""
        return len(self.shards)

    def worker_counts(self, split: str, workers: int) -> list:
        """Records of ``split`` per worker: shard ``j`` goes to worker ``j % workers``."""
        edges = np.concatenate([[0], np.cumsum(self.counts)])
        per_shard = np.diff(np.searchsorted(np.asarray(self.members[split]), edges))
        return [int(per_shard[i::workers].sum()) for i in range(workers)]

    def worker_part(self, split: str, workers: int, index: int) -> np.ndarray:
        return np.arange(len(self.y[split]))  # shards are assigned in _records (part), not by index

    def traced(self, split: str, order, tf):
        return order  # traced in _noted, where the shard of each record is known

    def _records(self, split: str, tf, part=(1, 0), first=0):
        """``(k, (image bytes, label))`` of ``split``'s records, in shard order (``part``
        ``(workers, index)``: only that worker's shards); ``k``: ``first`` + the record's number."""
        total = int(self.counts.sum())
        mask = np.zeros(total, dtype=bool)
        mask[self.members[split]] = True
        offsets = np.concatenate([[0], np.cumsum(self.counts)[:-1]]).astype(np.int64)
        mask_t, offsets_t, spec = tf.constant(mask), tf.constant(offsets), _spec(tf)
        ds = _by_shard(tf, self.shards, part).filter(lambda r, j, n: tf.gather(mask_t, tf.gather(offsets_t, j) + n))
        ds = ds.map(lambda r, j, n: (r, first + tf.gather(offsets_t, j) + n))

        def parse(r, k):
            f = tf.io.parse_single_example(r, spec)
            return k, (f["image/encoded"], f["image/class/label"])

        return ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    def _noted(self, split: str, records, tf):
        """``records`` noting each record as it is read (its shard and ``k``, in the order read)
        when :func:`~edgecnn.data.stream.trace_writer` is on."""
        from edgecnn.data.stream import trace_writer

        write = trace_writer()
        if write is None:
            return records
        total, names = int(self.counts.sum()), [os.path.basename(f) for f in self.shards]
        starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]])

        def note(k):
            shard = int(np.searchsorted(starts, int(k) % total, side="right")) - 1
            write(f"{split}\t{names[shard]}\t{int(k)}")
            return k

        return records.map(lambda k, pair: (tf.ensure_shape(tf.numpy_function(note, [k], tf.int64), ()), pair))

    def _decode(self, tf, records):
        from edgecnn.data.stream import tf_normalize
        from edgecnn.data.tf_read import read_batched

        size, channels, spec = self.image_size, self.channels, self.preprocess
        resize = self.resize
        skipped = self.skipped

        def pillow(key, data, y, k):
            try:
                return load_image(io.BytesIO(data), size, channels, resize)
            except ImageError:
                skipped.add(f"record {int(k)}")
                return None

        keys = records.map(lambda k, pair: (pair[0], pair[1], k))
        ds = read_batched(
            keys,
            size,
            channels,
            pillow,
            tf,
            method=resize,
            then=lambda image: tf_normalize(image, spec, tf),
            name_of=lambda data, y, k: f"record {int(k)}",
            on_drop=skipped.add,
        )
        return ds.map(lambda x, data, y, k: (x, y, k))

    def tf_train(self, tf, seed: int, epoch_fn=None, part=(1, 0)):
        """The training records (``part``: the worker's shards), shuffled in a buffer, decoded.

        Each pass reads the epoch (``epoch_fn``, default 0) when it starts: the buffer's seed
        derives from ``(seed, epoch, worker)`` and the augmentation counter of a record is its
        number plus the epoch times the number of records, so each epoch reads a new order and
        draws new shifts, as the in-memory path does, and a resumed run reads what an
        uninterrupted one would have."""
        total = int(self.counts.sum())
        workers, index = part
        if epoch_fn is None:
            epoch_fn = lambda: tf.constant(0, tf.int64)  # noqa: E731

        def epoch_records(_):
            epoch = tf.cast(epoch_fn(), tf.int64)
            mixed = tf.stack([tf.constant(seed, tf.int64), epoch * workers + index])
            seeds = tf.random.stateless_uniform([2], mixed, minval=0, maxval=2**31 - 1, dtype=tf.int64)
            records = _shuffled(self._records("train", tf, part, first=epoch * total), SHUFFLE_BUFFER, seeds, tf)
            return self._noted("train", records, tf)

        return self._decode(tf, tf.data.Dataset.range(1).flat_map(epoch_records))

    def tf_split(self, split: str, indices, tf, part=(1, 0), own=None, batch=None, augment=None):
        """The split's records in shard order, decoded, then :func:`~edgecnn.data.stream.finish`
        (``indices`` and ``own`` unused: ``part`` picks the worker's shards)."""
        from edgecnn.data.stream import finish

        return finish(self._decode(tf, self._noted(split, self._records(split, tf, part), tf)), tf, batch, augment)

    def read_batches(self, split: str, batch: int = 64):
        from edgecnn._tf import tf

        ds = self.tf_split(split, None, tf).map(lambda x, y, k: (x, y)).batch(batch)
        yield from ds.as_numpy_iterator()

    def representative(self, samples: int = 200, seed: int = 0):
        def gen():
            from edgecnn._tf import tf

            ds = self.tf_train(tf, seed).take(samples)
            for x, _, _ in ds.as_numpy_iterator():
                yield [x[None]]

        return gen

    def _source_files(self) -> list:
        return self.shards

    def _split_ids(self, split: str) -> list:
        return [[os.path.basename(f) for f in self.shards], np.asarray(self.members[split]).tolist()]


def load_tfrecords(pattern, spec: LoadSpec, *, run_dir=None, record: bool = True) -> TFRecordStream:
    """TFRecord shards matching ``pattern`` as a :class:`TFRecordStream` (``record``: write
    ``run_dir/splits.json``, as the chief of a multi-worker run does).

    Example:
        >>> ds = load_tfrecords("shards/*.tfrecord", LoadSpec(224, 3))  # doctest: +SKIP
    """
    shards = sorted(glob.glob(os.path.expanduser(str(pattern))))
    if not shards:
        raise UserError(f"no TFRecord files match {str(pattern)!r}; write shards with 'edgecnn data pack FOLDER OUT'")
    y, classes, counts = scan(shards)
    if len(classes) < 2:
        raise UserError(f"the shards {pattern!r} hold {len(classes)} class; classification needs at least 2")
    idx = split_spec(y, spec)
    members = {s: np.sort(idx[s]) for s in SPLITS}
    labels = {s: y[members[s]] for s in SPLITS}
    if run_dir is not None and record:
        names = [os.path.basename(s) for s in shards]
        recorded = {"shards": names, "records": {s: members[s].tolist() for s in SPLITS}}
        write_splits(run_dir, SplitKey.of(pattern, spec), classes, recorded)
    preprocess = preprocess_spec(spec, classes, str(pattern))
    name = Path(shards[0]).parent.name or "tfrecords"
    return TFRecordStream(name, shards, members, labels, classes, preprocess, counts=counts)
