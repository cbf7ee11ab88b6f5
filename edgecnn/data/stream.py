"""Image folders streamed from disk: memory bounded by the batch, not by the dataset.

:func:`load_stream` lists the files once (with progress from 10,000 files on), splits the
*file list* (seeded and stratified, the same cut :func:`edgecnn.data.dataset.load_dataset` makes
of the decoded images) and records it as ``<run>/splits.json`` (file names per split), so
a rerun and every worker use the same split without reading a pixel. Images are decoded
only as ``tf.data`` reads them.

One preprocessing everywhere: every image, in training, validation, evaluation, int8
calibration and on the device, becomes the tensor :func:`edgecnn.device.preprocess.load_image`
gives (Pillow decode, then the run's resize). In ``tf.data`` it is computed by
:func:`edgecnn.data.tf_read.read_files` (``cache`` ``none``: every file's headers checked once,
then no Python per file) or :func:`~edgecnn.data.tf_read.read_batched` (``disk``): TensorFlow decodes
JPEG/PNG bit-identically to Pillow, then Pillow's resampler (``antialias``) or TensorFlow's
``ResizeBilinear`` (``bilinear``, which the device twins in numpy) resizes, in parallel
(``AUTOTUNE``); files TensorFlow cannot decode identically (CMYK, palette, alpha, 16-bit,
BMP, GIF, corrupt) go through ``load_image`` itself. TensorFlow's antialiased
``tf.image.resize`` would give other pixels (``tests/test_stream.py``), so the training side
adapts to the device side, not the reverse: a ``.tflite`` sees on the Pi exactly what it
was evaluated on.

The training order is the in-memory path's: each epoch a seeded permutation of the
training *indices* (a global shuffle, not a shuffle buffer: the list of indices is small),
then decode, augment (in the pipeline), batch, prefetch. With the same seed a streamed
folder therefore trains on the very batches the in-memory path would.

Caching (``data.cache``, ``--cache``):
    ``memory``  decode every split once into memory (in parallel) and train as the
                in-memory path does (:class:`edgecnn.data.dataset.Dataset`);
    ``disk``    decoded ``uint8`` images are written, as they are first read, into one
                file per split under ``<run>/cache/``; later epochs (and reruns) read
                them back instead of decoding;
    ``none``    decode at every read;
    ``auto``    ``memory`` when the estimated in-memory footprint fits the budget (a
                quarter of the RAM), else ``disk`` when the disk has room, else ``none``.

A corrupt or unreadable image found while streaming is skipped (it and its label leave the
batch) and counted: :attr:`StreamDataset.skipped` lists them and the run's ``metrics.json``
reports them; a training split with nothing readable stops the run with one line.

Several workers (``--strategy multiworker``) split a stream by file: each reads only every
n-th file of the recorded split (:meth:`StreamDataset.worker_part`; TFRecord shards are
assigned as ``AutoShardPolicy.FILE`` would, shard ``j`` to worker ``j % workers``), see
:func:`edgecnn.train.make_datasets`.
``EDGECNN_TRACE_READS=FILE`` makes the pipelines note every file they read (for tests).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import threading
from pathlib import Path

import numpy as np

from edgecnn.data.contract import SPLITS, LazySplit, LoadSpec, RunData, preprocess_spec
from edgecnn.data.splits import SplitKey, read_splits, split_files, split_spec, write_splits
from edgecnn.device.preprocess import ImageError, list_image_folder, load_image, normalize, resize_method
from edgecnn.errors import UserError

# The in-memory path holds each image as uint8, then as float32 twice (the normalized numpy
# array and the tf.constant made of it): 9 bytes per pixel channel; measured 10.6-10.7
# (benchmarks/cache_budget.py, 224 px), so the estimate takes 11.
MEMORY_BYTES_PER_VALUE = 11
PROGRESS_FROM = 10_000


TRACE_ENV = "EDGECNN_TRACE_READS"


def trace_writer():
    """With ``EDGECNN_TRACE_READS=FILE`` in the environment, a function that appends a line to
    FILE for every file (or shard record) the training and validation pipelines read
    (``split<TAB>file or shard<TAB>k``, ``k`` the item's augmentation counter); else
    ``None``. For checking what a worker of a multi-worker run reads (``tests/test_distribute.py``)."""
    path = os.environ.get(TRACE_ENV)
    if not path:
        return None
    lock = threading.Lock()

    def write(line: str):
        with lock, open(path, "a") as f:
            f.write(line + "\n")

    return write


def memory_budget() -> int:
    """Default cache budget in bytes: a quarter of the physical memory, or half of the memory
    available now (``MemAvailable``) when that is less, so a machine shared with other jobs is
    not pushed into swap. ``EDGECNN_MEMORY_BUDGET`` (bytes) overrides it. The choice only
    decides where decoded images live: every cache trains on the same batches."""
    if os.environ.get("EDGECNN_MEMORY_BUDGET", "").isdigit():
        return int(os.environ["EDGECNN_MEMORY_BUDGET"])
    try:
        budget = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4
    except (ValueError, OSError, AttributeError):
        budget = 2 << 30
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                budget = min(budget, int(line.split()[1]) * 1024 // 2)
    except (OSError, ValueError, IndexError):
        pass
    return budget


def _progress(stream=None, what: str = "listing files"):
    stream = stream or sys.stderr
    shown = [False]

    def report(count: int, done: bool = False):
        if count >= PROGRESS_FROM and (done or count % 2000 == 0):
            shown[0] = True
            stream.write(f"\r      {what}: {count:,}" + ("\n" if done else ""))
            stream.flush()
        elif done and shown[0]:
            stream.write("\n")

    return report


def list_files(root) -> tuple[list, np.ndarray, list]:
    """The files, labels and class names of an image folder, with progress from 10,000 files."""
    report = _progress()
    try:
        files, labels, classes = list_image_folder(root, progress=report)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    report(len(files), done=True)
    return [str(f) for f in files], np.asarray(labels, dtype=np.int64), classes


class _DiskCache:
    """Decoded ``uint8`` images of one split in one file, filled as they are first read."""

    def __init__(self, path: Path, n: int, shape: tuple):
        self.path, self.shape = Path(path), tuple(shape)
        self.size = int(np.prod(shape))
        self.done_marker = self.path.with_suffix(".complete")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        complete = self.done_marker.is_file() and self.path.is_file() and self.path.stat().st_size == n * self.size
        if not complete:
            self.done_marker.unlink(missing_ok=True)
            with open(self.path, "wb") as f:
                f.truncate(n * self.size)  # sparse until written
        self.filled = np.full(n, complete, dtype=bool)
        self.fd = os.open(self.path, os.O_RDWR)
        self.lock = threading.Lock()

    def lookup(self, index: int):
        """The stored bytes of image ``index``, or ``None`` when it is not stored yet."""
        index = int(index)
        return os.pread(self.fd, self.size, index * self.size) if self.filled[index] else None

    def put(self, index: int, image) -> None:
        index = int(index)
        os.pwrite(self.fd, np.ascontiguousarray(image, dtype=np.uint8).tobytes(), index * self.size)
        self.filled[index] = True
        if self.filled.all() and not self.done_marker.is_file():
            with self.lock:
                if not self.done_marker.is_file():
                    os.fsync(self.fd)
                    self.done_marker.write_text("complete\n")


class StreamDataset(RunData):
    """An image folder split by file: the streamed :class:`~edgecnn.data.contract.RunData`, and
    the base of the other streamed sources (:class:`~edgecnn.data.npz.ArrayStream`,
    :class:`~edgecnn.data.tfrecord.TFRecordStream`), which override how items are read."""

    streamed = True

    def __init__(self, name, files: dict, y: dict, class_names, preprocess, cache: str = "none", cache_dir=None):
        self.name = name
        self.files = {s: list(files[s]) for s in SPLITS}
        self.y = {s: np.asarray(y[s], dtype=np.int64) for s in SPLITS}
        self.class_names = list(class_names)
        self.preprocess = preprocess
        self.cache = cache
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.skipped = set()
        self._caches: dict = {}
        self._routes: dict = {}

    @property
    def image_size(self) -> tuple:
        return tuple(self.preprocess["image_size"])

    @property
    def channels(self) -> int:
        return int(self.preprocess["channels"])

    @property
    def input_shape(self) -> tuple:
        return (*self.image_size, self.channels)

    @property
    def resize(self) -> str:
        """How images are resized (the spec's ``"resize"``, see :mod:`edgecnn.device.preprocess`)."""
        return resize_method(self.preprocess)

    def read_units(self, split: str) -> int:
        """How many parts of ``split`` can be read on their own (here: its files). A multi-worker
        run splits the data by these when there are at least as many as workers."""
        return len(self.y[split])

    def worker_part(self, split: str, workers: int, index: int) -> np.ndarray:
        """The positions in ``split`` that worker ``index`` of ``workers`` reads: every
        ``workers``-th file of the recorded split (stratified and shuffled, so each part holds
        every class), the same for the whole run."""
        return np.arange(len(self.y[split]))[index::workers]

    def worker_counts(self, split: str, workers: int) -> list:
        """How many items of ``split`` each of ``workers`` reads when the data is split by file."""
        n = len(self.y[split])
        return [len(range(i, n, workers)) for i in range(workers)]

    def _unit_name(self, split: str, i: int) -> str:
        return self.files[split][i]

    def traced(self, split: str, order, tf):
        """``order`` (``(index, k)`` pairs) noting each file read when :func:`trace_writer` is on."""
        write = trace_writer()
        if write is None:
            return order

        def note(i, k):
            write(f"{split}\t{self._unit_name(split, int(i))}\t{int(k)}")
            return i

        return order.map(lambda i, k: (tf.ensure_shape(tf.numpy_function(note, [i, k], tf.int64), ()), k))

    def normalized(self, split: str) -> LazySplit:
        """The split as a :class:`LazySplit` (read in batches by the evaluators)."""
        return LazySplit(self, split)

    def read_batches(self, split: str, batch: int = 64):
        """``(x, y)`` of ``split``, ``batch`` files at a time, decoded on the device side (TensorFlow-free)."""
        files, labels = self.files[split], self.y[split]
        for start in range(0, len(files), batch):
            xs, ys = [], []
            for f, y in zip(files[start : start + batch], labels[start : start + batch]):
                try:
                    xs.append(load_image(f, self.image_size, self.channels, self.resize))
                    ys.append(y)
                except ImageError:
                    self.skipped.add(f)
            if xs:
                yield normalize(np.stack(xs), self.preprocess), np.asarray(ys, dtype=np.int64)

    def representative(self, samples: int = 200, seed: int = 0):
        """At most ``samples`` training images (decoded one by one) for int8 calibration."""
        rng = np.random.default_rng(seed)
        n = len(self.files["train"])
        idx = rng.choice(n, size=min(samples, n), replace=False)
        files = [self.files["train"][i] for i in idx]

        def gen():
            for f in files:
                try:
                    image = load_image(f, self.image_size, self.channels, self.resize)
                except ImageError:
                    self.skipped.add(f)
                    continue
                yield [normalize(image[None], self.preprocess)]

        return gen

    # What identifies the data: overridden by the memory-mapped and TFRecord sources.
    def _source_files(self) -> list:
        """The files read, whose names, sizes and modification times go into :meth:`fingerprint`."""
        return [f for s in SPLITS for f in self.files[s]]

    def _split_ids(self, split: str) -> list:
        """What ``split`` holds, independent of where the data lies (file names relative to the source)."""
        root = self.preprocess.get("source", "")
        return [os.path.relpath(f, root) if root else f for f in self.files[split]]

    def fingerprint(self) -> str:
        """A hash of the files read (names, sizes, modification times), every split's members
        and labels, and the preprocessing: the cache key of the stages trained on this data."""
        h = hashlib.sha256()
        for f in self._source_files():
            st = os.stat(f)
            h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        h.update(self.split_digest().encode())
        h.update(repr(sorted((k, v) for k, v in self.preprocess.items() if k != "cache")).encode())
        return h.hexdigest()[:16]

    def split_digest(self) -> str:
        """A hash of every split's members and labels, the same wherever the files lie (no
        paths, no times): the workers of a multi-worker run check that theirs agree."""
        h = hashlib.sha256()
        for split in SPLITS:
            h.update(f"{split}\0{json.dumps(self._split_ids(split))}\0".encode())
            h.update(np.asarray(self.y[split], dtype=np.int64).tobytes())
        return h.hexdigest()[:16]

    def summary(self) -> str:
        sizes = ", ".join(f"{s} {len(self.y[s])}" for s in SPLITS)
        h, w = self.image_size
        shape = f"{h}x{w}x{self.channels}"
        return f"{self.name}: {self.num_classes} classes, {shape}, {sizes} (streamed, cache {self.cache})"

    # -- tf.data ---------------------------------------------------------------------------

    def _disk_cache(self, split: str):
        """The split's :class:`_DiskCache` (``cache`` ``disk``), else ``None``."""
        if self.cache != "disk" or self.cache_dir is None:
            return None
        cache = self._caches.get(split)
        if cache is None:
            files, shape = self.files[split], self.input_shape
            # the resize is in the key: a rerun with another --resize must not read the old pixels
            key = hashlib.sha256("\n".join(files).encode() + repr((shape, self.resize)).encode()).hexdigest()[:12]
            cache = self._caches[split] = _DiskCache(self.cache_dir / f"{split}-{key}.u8", len(files), shape)
        return cache

    def routes(self, split: str, own=None) -> np.ndarray:
        """Per file of ``split``: 1 where TensorFlow decodes it exactly as the device side does
        (:func:`edgecnn.data.decode.probe_file`, the headers only), 0 where the device side's
        reader must, for the positions ``own`` (default: all; a worker checks only its own
        files); -1 for files not checked (not to be read). Checked once per run, in parallel,
        with progress from 10,000 files."""
        from concurrent.futures import ThreadPoolExecutor

        from edgecnn.data.decode import JPEG, PNG, probe_file

        files = self.files[split]
        known = self._routes.setdefault(split, np.full(len(files), -1, dtype=np.int8))  # -1: not checked yet
        todo = np.arange(len(files)) if own is None else np.asarray(own, dtype=np.int64)
        todo = todo[known[todo] < 0]
        if len(todo):
            report = _progress(what=f"checking {split} file headers")
            with ThreadPoolExecutor(max_workers=8) as pool:
                for start in range(0, len(todo), 2000):  # a chunk at a time: no future per file held
                    chunk = todo[start : start + 2000]
                    found = pool.map(lambda i: probe_file(files[i]) in (JPEG, PNG), chunk)
                    known[chunk] = np.fromiter(found, dtype=np.int8, count=len(chunk))
                    report(start + len(chunk))
            report(len(todo), done=True)
        return known.copy()

    def tf_split(self, split: str, indices, tf, part=(1, 0), own=None, batch=None, augment=None):
        """``(index, k)`` -> ``(float image, label, k)`` with unreadable files left out,
        ``augment(image, k)``-ed and in batches of ``batch`` where given (see :func:`finish`).
        ``own``: the positions ``indices`` may hold (default: the whole split), whose headers
        are checked before the pipeline is built (:meth:`routes`). ``part``: unused here
        (``indices`` are already the worker's part; see TFRecordStream)."""
        labels = tf.constant(self.y[split])
        spec = self.preprocess
        from edgecnn.data.decode import read_bytes
        from edgecnn.data.tf_read import read_batched, read_files

        files = np.asarray(self.files[split] + [""], dtype=object)[:-1]
        size, channels, resize = self.image_size, self.channels, self.resize

        def pillow(i, data, k):  # the file's bytes are read already
            try:
                return load_image(io.BytesIO(data), size, channels, resize)
            except ImageError:
                self.skipped.add(files[int(i)])
                return None

        def normalized(image, i=None, k=None):
            x = tf_normalize(image, spec, tf)
            return x if augment is None or k is None else augment(x, k)

        common = dict(name_of=lambda i, k: files[int(i)], on_drop=self.skipped.add)
        cache = self._disk_cache(split)
        if cache is None:  # no Python per file: the headers are checked once, here
            routes = self.routes(split, own)
            by_path = lambda i, k: pillow(i, read_bytes(files[int(i)]), k)  # noqa: E731
            extra = lambda i: tf.gather(labels, i)  # noqa: E731
            ds = read_files(
                indices, files, routes, size, channels, by_path, method=resize, then=normalized, extra=extra,
                batch=batch, **common
            )
            return ds.map(lambda x, i, k, y: (x, y, k))
        ds = read_batched(
            indices, size, channels, pillow, tf, lambda i: files[i], resize, then=normalized, cache=cache, **common
        )
        return finish(ds.map(lambda x, i, k: (x, tf.gather(labels, i), k)), tf, batch, augment)


def finish(ds, tf, batch=None, augment=None):
    """``(x, y, k)`` items -> ``augment(x, k)`` (in parallel; the counter ``k`` seeds its
    draws), then in batches of ``batch``: what every ``tf_split`` gives for its ``batch`` and
    ``augment`` where they are not part of the read itself."""
    if augment is not None:
        ds = ds.map(lambda x, y, k: (augment(x, k), y, k), num_parallel_calls=tf.data.AUTOTUNE)
    return ds if batch is None else ds.batch(batch)


def tf_normalize(image, spec: dict, tf):
    """The tf.data twin of :func:`edgecnn.device.preprocess.normalize`: uint8 ``image`` ->
    ``p * scale + offset`` (channels reversed first for ``"channel_order": "BGR"``), then
    ``(x - mean) / std`` where the spec has them (pretrained weights' conventions)."""
    x = tf.cast(image, tf.float32)
    if str(spec.get("channel_order", "RGB")).upper() == "BGR":
        x = x[..., ::-1]
    x = x * np.float32(spec.get("scale", 1.0)) + np.float32(spec.get("offset", 0.0))
    if spec.get("mean") is not None:
        x = x - np.asarray(spec["mean"], np.float32)
    if spec.get("std") is not None:
        x = x / np.asarray(spec["std"], np.float32)
    return x


def estimate_memory(n_images: int, image_size, channels: int) -> int:
    """Bytes the in-memory path would hold for ``n_images`` at this size."""
    return int(n_images) * int(image_size[0]) * int(image_size[1]) * int(channels) * MEMORY_BYTES_PER_VALUE


def choose_cache(wanted: str, n_images: int, image_size, channels: int, cache_dir, budget: int | None = None) -> str:
    """``auto`` -> ``memory`` within the budget, else ``disk`` when it has room, else ``none``."""
    if wanted != "auto":
        return wanted
    budget = memory_budget() if budget is None else budget
    if estimate_memory(n_images, image_size, channels) <= budget:
        return "memory"
    need = int(n_images) * int(image_size[0]) * int(image_size[1]) * int(channels)
    try:
        base = Path(cache_dir)
        while not base.exists():
            base = base.parent
        free = os.statvfs(base).f_bavail * os.statvfs(base).f_frsize
    except OSError:
        free = 0
    return "disk" if free > 2 * need else "none"


def load_stream(source, spec: LoadSpec, *, run_dir=None, record: bool = True, cache_dir=None) -> RunData:
    """An image folder as a :class:`StreamDataset` (or, with ``spec.cache`` ``memory``, decoded
    into an :class:`edgecnn.data.dataset.Dataset`). The split is recorded in ``run_dir/splits.json``
    (read back when it matches; written only with ``record``: the chief of a multi-worker run).
    ``cache_dir``: where a disk cache goes (default ``run_dir/cache``).

    Example:
        >>> ds = load_stream("photos/", LoadSpec(224, 3, cache="none"), run_dir="runs/x")  # doctest: +SKIP
    """
    root = Path(source).expanduser().resolve()
    subs = {p.name for p in root.iterdir() if p.is_dir()}
    key = SplitKey.of(root, spec)
    record_path = Path(run_dir) / "splits.json" if run_dir is not None else None
    if {"train", "test"} <= subs:  # splits given as subfolders: used as they are
        files, labels, classes = _given_splits(root, subs, spec)
    else:
        files, labels, classes = _cut_folder(root, source, spec, key, record_path)
    if len(classes) < 2:
        raise UserError(f"data {str(source)!r} has {len(classes)} class; classification needs at least 2")
    if record_path is not None and record:
        rel = {s: [[os.path.relpath(f, root), int(y)] for f, y in zip(files[s], labels[s])] for s in SPLITS}
        write_splits(run_dir, key, classes, {"splits": rel})
    preprocess = preprocess_spec(spec, classes, str(root))
    if cache_dir is None:
        cache_dir = Path(run_dir) / "cache" if run_dir is not None else None
    total = sum(len(files[s]) for s in SPLITS)
    chosen = choose_cache(spec.cache, total, spec.image_size, spec.channels, cache_dir or Path.cwd())
    if chosen == "disk" and cache_dir is None:
        chosen = "none"
    name = root.name or str(root)
    if chosen == "memory":
        from edgecnn.data.dataset import Dataset

        xs = {s: decode_all(files[s], spec.image_size, spec.channels, spec.resize) for s in SPLITS}
        return Dataset(name=name, x=xs, y=labels, class_names=list(classes), preprocess=preprocess)
    return StreamDataset(name, files, labels, classes, preprocess, cache=chosen, cache_dir=cache_dir)


def _given_splits(root: Path, subs: set, spec: LoadSpec):
    """``train/``, ``val/``, ``test/`` subfolders as ``(files, labels, classes)``; a missing
    ``val/`` is cut from ``train/``."""
    files, labels, classes = {}, {}, None
    for s in SPLITS:
        if s in subs:
            fs, ys, cls = list_files(root / s)
            if classes is not None and cls != classes:
                raise UserError(f"{root / s} has classes {cls}, but {root / 'train'} has {classes}")
            classes, files[s], labels[s] = cls, fs, ys
    if "val" not in files:
        idx = split_files(files["train"], labels["train"], spec.val_split, 0.0, spec.seed)
        all_f, all_y = files["train"], labels["train"]
        for s in ("train", "val"):
            files[s], labels[s] = [all_f[i] for i in idx[s]], all_y[idx[s]]
    return files, labels, classes


def _cut_folder(root: Path, source, spec: LoadSpec, key: SplitKey, record_path):
    """A folder of class subfolders as ``(files, labels, classes)`` per split: the split recorded
    at ``record_path`` when its key and files match, else the seeded cut of the file list."""
    all_f, all_y, classes = list_files(root)
    if len(all_f) < 10:
        raise UserError(f"data {str(source)!r} has only {len(all_f)} images; edgecnn needs at least 10")
    recorded = None
    if record_path is not None and record_path.is_file():
        recorded = read_splits(record_path, key, set(all_f))
    files, labels = {}, {}
    if recorded is not None and recorded[1] == classes:
        for s in SPLITS:
            files[s], labels[s] = recorded[0][s][0], np.asarray(recorded[0][s][1], dtype=np.int64)
        return files, labels, classes
    idx = split_spec(all_y, spec)
    for s in SPLITS:
        files[s], labels[s] = [all_f[i] for i in idx[s]], all_y[idx[s]]
    return files, labels, classes

def decode_all(files, image_size, channels: int, resize: str = "antialias") -> np.ndarray:
    """Decode ``files`` into one ``uint8`` array, several at a time (Pillow releases the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    out = np.empty((len(files), image_size[0], image_size[1], channels), dtype=np.uint8)

    def one(i):
        try:
            out[i] = load_image(files[i], image_size, channels, resize)
        except ImageError as exc:
            raise UserError(f"{exc}; fix or remove the file") from None

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        list(pool.map(one, range(len(files))))
    return out
