"""The data contract: what every source gives the trainer, the pipeline and the debugger.

One type, one writer per file format:

- :class:`LoadSpec`: every option of a load (size, channels, split fractions, seed,
  ``train_fraction``, cache, input convention) in one frozen value, so each loader takes the
  source, the spec and where the run lives (``run_dir``), and nothing else.
- :class:`RunData`: the interface the in-memory :class:`~edgecnn.data.dataset.Dataset` and the
  streamed sources (:class:`~edgecnn.data.stream.StreamDataset` for folders,
  :class:`~edgecnn.data.npz.ArrayStream` for memory-mapped ``.npz``,
  :class:`~edgecnn.data.tfrecord.TFRecordStream` for shards) all implement. Users call it;
  they never ask an object whether it has a method.
- :func:`preprocess_spec`: the one builder of ``preprocess.json`` (how the device prepares an
  image), where the input convention (``scale``, ``offset``, ``channel_order``, ``mean``,
  ``std``, ``resize``) is merged.

The split itself, and its record ``splits.json``, are :mod:`edgecnn.data.splits`'s.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from edgecnn.device.preprocess import DEFAULT_OFFSET, DEFAULT_RESIZE, DEFAULT_SCALE
from edgecnn.errors import UserError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class LoadSpec:
    """How a source is read and split: the options every loader shares.

    ``convention``: the pretrained weights' input convention (``scale``, ``offset``,
    ``channel_order``, ``mean``, ``std``; see :mod:`edgecnn.device.preprocess`) plus
    ``resize`` when it is not the default; what is missing takes edgecnn's default.

    Example:
        >>> LoadSpec(24, 1, seed=2).image_size
        (24, 24)
    """

    image_size: tuple = (32, 32)
    channels: int = 3
    val_split: float = 0.1
    test_split: float = 0.2
    seed: int = 0
    train_fraction: float | None = None
    cache: str = "auto"
    convention: Mapping = field(default_factory=dict)

    def __post_init__(self):
        size = self.image_size
        size = (size, size) if isinstance(size, (int, np.integer)) else size
        object.__setattr__(self, "image_size", tuple(int(s) for s in size))
        object.__setattr__(self, "channels", int(self.channels))
        object.__setattr__(self, "convention", dict(self.convention or {}))

    @classmethod
    def for_run(cls, cfg, entry, full_train: bool = False) -> LoadSpec:
        """The spec of a run: ``cfg`` a resolved :class:`~edgecnn.settings.run_config.RunConfig`,
        ``entry`` the model's registry entry (its channels and, with ``cfg.model.weights``, its
        input convention); ``full_train`` ignores ``train_fraction`` (a teacher trained on all)."""
        d = cfg.data
        return cls(
            image_size=d.image_size,
            channels=entry.channels,
            val_split=d.val_split,
            test_split=d.test_split,
            seed=d.seed,
            train_fraction=None if full_train else d.train_fraction,
            cache=d.cache,
            convention=run_convention(cfg, entry),
        )

    @property
    def resize(self) -> str:
        """How images are resized (``"antialias"`` or ``"bilinear"``)."""
        return str(self.convention.get("resize") or DEFAULT_RESIZE)

    def check_fractions(self) -> None:
        """Refuse split fractions that leave nothing to train on (one line, naming the setting)."""
        for label, value in (("val_split", self.val_split), ("test_split", self.test_split)):
            if not 0.0 <= value < 1.0:
                raise UserError(f"{label} must be in [0, 1), got {value}")
        if self.val_split + self.test_split >= 1.0:
            raise UserError(
                f"val_split + test_split must leave data for training, got {self.val_split} + {self.test_split}"
            )


def run_convention(cfg, entry) -> dict:
    """The input convention of a run: the one of the weights it starts from
    (:func:`edgecnn.models._weights.input_convention`: ``scale``, ``offset``, ``channel_order``,
    ``mean``, ``std``) plus ``data.resize`` when it is not the default; recorded in
    ``preprocess.json`` and followed by every reader, training to device."""
    from edgecnn.models._weights import input_convention

    convention = dict(input_convention(entry, cfg.model.weights))
    if cfg.data.resize != DEFAULT_RESIZE:
        convention["resize"] = cfg.data.resize
    return convention


def preprocess_spec(spec: LoadSpec, class_names, source: str) -> dict:
    """The content of ``preprocess.json``: how to prepare an image for the model (size,
    channels, ``pixel * scale + offset``, the rest of the input convention), the classes, and
    where the split came from (source, seed, fractions). The only place the convention is merged.

    Example:
        >>> sorted(preprocess_spec(LoadSpec(8, 1), ["a", "b"], "digits"))[:4]
        ['channels', 'class_names', 'image_size', 'offset']
    """
    convention = dict(spec.convention)
    scale, offset = convention.pop("scale", None), convention.pop("offset", None)
    return {
        "image_size": list(spec.image_size),
        "channels": int(spec.channels),
        "scale": float(DEFAULT_SCALE if scale is None else scale),
        "offset": float(DEFAULT_OFFSET if offset is None else offset),
        **{k: v for k, v in convention.items() if v is not None},
        "class_names": list(class_names),
        "source": str(source),
        "seed": int(spec.seed),
        "val_split": float(spec.val_split),
        "test_split": float(spec.test_split),
    }


class LazySplit:
    """A split's float inputs, read ``batch`` images at a time (never all at once): the one
    split class of every streamed source (folder, memory-mapped ``.npz``, TFRecord shards).

    ``len()`` is the number of listed items; :meth:`batches` yields ``(x, y)`` from the
    dataset's ``read_batches`` (unreadable files left out and recorded in ``skipped``).
    """

    def __init__(self, data: RunData, split: str):
        self.data, self.split = data, split

    def __len__(self) -> int:
        return len(self.data.y[self.split])

    def batches(self, batch: int = 64):
        yield from self.data.read_batches(self.split, batch)

    def __getitem__(self, index: slice) -> np.ndarray:
        """``split[:n]``: the first ``n`` readable images as one array (what the int8 debugger
        takes), reading only those."""
        if not isinstance(index, slice) or index.start not in (None, 0) or index.step not in (None, 1):
            raise TypeError("a streamed split is read from its start: use split[:n]")
        stop = len(self) if index.stop is None else min(int(index.stop), len(self))
        parts, got = [], 0
        for x, _ in self.batches(max(1, min(stop, 256))):
            if got >= stop:
                break
            parts.append(x[: stop - got])
            got += len(parts[-1])
        return np.concatenate(parts) if parts else np.zeros((0, *self.data.input_shape), np.float32)


class RunData(abc.ABC):
    """A run's data: labels and classes per split, how to normalise, how to read.

    Attributes every source sets: ``name`` (for titles), ``y`` (split -> ``int64`` labels),
    ``class_names``, ``preprocess`` (:func:`preprocess_spec`). ``streamed``: the images are
    read from disk as needed (the trainer builds a reading pipeline, :func:`edgecnn.train.make_datasets`);
    otherwise they are in memory (``x``). ``skipped``: the unreadable files left out so far.
    """

    streamed: bool = False
    #: Files (or records) found unreadable and left out; the in-memory sources refuse them instead.
    skipped: frozenset | set = frozenset()
    name: str
    y: dict
    class_names: list
    preprocess: dict

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    @abc.abstractmethod
    def input_shape(self) -> tuple:
        """``(height, width, channels)`` of one image."""

    @abc.abstractmethod
    def normalized(self, split: str):
        """The float inputs of ``split``: an array in memory, or a :class:`LazySplit`."""

    @abc.abstractmethod
    def representative(self, samples: int = 200, seed: int = 0):
        """A generator of single training images for int8 calibration (TFLite's ``representative_dataset``)."""

    @abc.abstractmethod
    def fingerprint(self) -> str:
        """A short hash of the data and its preprocessing (the cache key of stages trained on it)."""

    @abc.abstractmethod
    def summary(self) -> str:
        """One line: name, classes, input shape, split sizes."""

    def split_digest(self) -> str | None:
        """A hash of every split's members, the same wherever the data lies, which the workers
        of a multi-worker run compare; ``None`` where each worker builds the split itself in memory."""
        return None
