""".npz files too large for memory: read from the headers, memory-mapped, split by index.

:func:`npz_decision` reads the arrays' headers only and says whether the in-memory path
(:func:`edgecnn.data.dataset.load_dataset`) fits the memory budget; an uncompressed
``uint8`` ``x`` over it is memory-mapped (:func:`load_npz_stream`) into an
:class:`ArrayStream`, which reads (and resizes) images per index as ``tf.data`` needs them;
a compressed one over it is refused with the command that rewrites it uncompressed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgecnn.data.contract import SPLITS, LoadSpec, preprocess_spec
from edgecnn.data.splits import split_spec
from edgecnn.data.stream import MEMORY_BYTES_PER_VALUE, StreamDataset, finish, memory_budget, tf_normalize
from edgecnn.device.preprocess import normalize
from edgecnn.errors import UserError


def npz_members(path) -> dict:
    """``name -> (dtype, shape, compressed, data offset)`` of each array in an ``.npz``, read
    from the headers only (nothing is decompressed or loaded)."""
    import struct
    import zipfile

    out = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with zf.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    read = (
                        np.lib.format.read_array_header_1_0
                        if version == (1, 0)
                        else np.lib.format.read_array_header_2_0
                    )
                    shape, fortran, dtype = read(f)
                    header_len = f.tell()
                compressed = info.compress_type != zipfile.ZIP_STORED
                offset = None
                if not compressed and not fortran and dtype.hasobject is False:
                    with open(path, "rb") as raw:
                        raw.seek(info.header_offset)
                        local = raw.read(30)
                        name_len, extra_len = struct.unpack("<HH", local[26:30])
                    offset = info.header_offset + 30 + name_len + extra_len + header_len
                out[info.filename[:-4]] = (dtype, tuple(shape), compressed, offset)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError):
        return {}
    return out


def npz_decision(path, budget: int | None = None):
    """``("memory", None)`` when the in-memory path fits the budget, ``("mmap", members)`` for
    an uncompressed ``x``/``y`` file over it; a compressed one over it is refused (one line)."""
    members = npz_members(path)
    x = members.get("x")
    if not members or x is None or "y" not in members:
        return "memory", None
    dtype, shape, compressed, offset = x
    values = int(np.prod(shape)) if shape else 0
    need = values * MEMORY_BYTES_PER_VALUE
    budget = memory_budget() if budget is None else budget
    if need <= budget:
        return "memory", None
    if compressed:
        gb = values * dtype.itemsize / 1e9
        raise UserError(
            f"{path} is compressed and its images ({gb:.1f} GB as stored) do not fit the memory budget "
            f"({budget / 1e9:.1f} GB); save it uncompressed once, and edgecnn memory-maps it: "
            f"python -c \"import numpy as np; d = np.load('{path}'); np.savez('{Path(path).stem}_raw.npz', **d)\""
        )
    if dtype != np.uint8 or offset is None or len(shape) not in (3, 4):
        raise UserError(
            f"{path}: images over the memory budget must be stored as uint8 (N, H, W[, C]) to be memory-mapped, "
            f"got {dtype} {shape}"
        )
    return "mmap", members


class ArrayStream(StreamDataset):
    """Images of a memory-mapped uncompressed ``.npz``, read per index as ``tf.data`` needs them."""

    def __init__(self, name, path, x, index: dict, y: dict, class_names, preprocess):
        super().__init__(name, {s: [] for s in SPLITS}, y, class_names, preprocess, cache="none")
        self.path, self.x, self.index = str(path), x, index

    def _unit_name(self, split: str, i: int) -> str:
        return f"{Path(self.path).name}[{int(self.index[split][i])}]"

    def _image(self, i: int) -> np.ndarray:
        from edgecnn.device.preprocess import resize_batch

        return resize_batch(np.asarray(self.x[i : i + 1]), self.image_size, self.channels, self.resize)[0]

    def tf_split(self, split: str, indices, tf, part=(1, 0), own=None, batch=None, augment=None):
        """``(index, k)`` -> ``(float image, label, k)``: the array's images, resized by
        ``resize_batch`` in a ``numpy_function`` (they are decoded already and never unreadable),
        then :func:`finish`."""
        index, labels, shape, spec = self.index[split], tf.constant(self.y[split]), self.input_shape, self.preprocess

        def read(i, k):
            image = tf.numpy_function(lambda j: self._image(int(index[int(j)])), [i], tf.uint8, stateful=False)
            image.set_shape(shape)
            return tf_normalize(image, spec, tf), tf.gather(labels, i), k

        return finish(indices.map(read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True), tf, batch, augment)

    def read_batches(self, split: str, batch: int = 64):
        idx, y = self.index[split], self.y[split]
        for start in range(0, len(idx), batch):
            xs = np.stack([self._image(int(i)) for i in idx[start : start + batch]])
            yield normalize(xs, self.preprocess), y[start : start + batch]

    def representative(self, samples: int = 200, seed: int = 0):
        rng = np.random.default_rng(seed)
        n = len(self.index["train"])
        idx = rng.choice(n, size=min(samples, n), replace=False)

        def gen():
            for i in idx:
                yield [normalize(self._image(int(self.index["train"][i]))[None], self.preprocess)]

        return gen

    def _source_files(self) -> list:
        return [self.path]

    def _split_ids(self, split: str) -> list:
        return np.asarray(self.index[split]).tolist()


def load_npz_stream(path, members, spec: LoadSpec) -> ArrayStream:
    """An uncompressed ``.npz`` over the memory budget, memory-mapped and split by index
    (``members``: :func:`npz_members` of it, as :func:`npz_decision` gave them)."""
    from edgecnn.device.arrays import check_labels

    _, shape, _, data_offset = members["x"]
    x = np.memmap(path, dtype=np.uint8, mode="r", offset=data_offset, shape=shape)
    with np.load(path, allow_pickle=False) as f:
        y = check_labels(f["y"], f"{path}: y", shape[0])
        names = f["class_names"] if "class_names" in f.files else None
    if len(y) != shape[0]:
        raise UserError(f"{path}: x has {shape[0]} images but y has {len(y)} labels")
    n_classes = int(y.max()) + 1 if y.size else 0
    classes = [str(c) for c in names] if names is not None else [str(i) for i in range(n_classes)]
    if len(classes) < n_classes:
        raise UserError(f"{path}: class_names lists {len(classes)} classes but labels go up to {n_classes - 1}")
    index = split_spec(y, spec)
    labels = {s: y[index[s]] for s in SPLITS}
    preprocess = preprocess_spec(spec, classes, str(Path(path).resolve()))
    return ArrayStream(Path(path).name, path, x, index, labels, classes, preprocess)
