"""Splits: the one seeded, stratified cut every source makes, and the record of it.

:func:`split_arrays` cuts decoded images (the in-memory sources); :func:`split_files` makes
the same cut of a list of files or record numbers (the streamed sources), so a streamed
folder and its decoded copy split alike. A streamed source records its split as
``<run>/splits.json`` (:func:`write_splits`) under a :class:`SplitKey`; a rerun, and every
worker of a multi-worker run, reads it back (:func:`read_splits`) when the key is equal.

``splits.json``: ``{"key": SplitKey, "class_names": [...], ...}`` and, for an image folder,
``"splits": {split: [[file relative to the source, label], ...]}``; for TFRecord shards,
``"shards": [names]`` and ``"records": {split: [record numbers]}``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgecnn.data.contract import SPLITS, LoadSpec


@dataclass(frozen=True)
class SplitKey:
    """What a recorded split was made from: it is reused only when the new run's key is equal."""

    source: str
    seed: int
    val_split: float
    test_split: float
    train_fraction: float | None

    @classmethod
    def of(cls, source, spec: LoadSpec) -> SplitKey:
        return cls(str(source), int(spec.seed), float(spec.val_split), float(spec.test_split), spec.train_fraction)

    def as_dict(self) -> dict:
        return asdict(self)


def split_arrays(x, y, val_split: float, test_split: float, seed: int):
    """``({split: x}, {split: y})``: a seeded cut, stratified where every class can give to each part."""
    from sklearn.model_selection import train_test_split

    def cut(x, y, size):
        if size <= 0:
            return x, x[:0], y, y[:0]
        counts = np.bincount(y)
        stratify = y if counts[counts > 0].min() >= 2 and size * len(y) >= len(counts) else None
        return train_test_split(x, y, test_size=size, random_state=seed, stratify=stratify)

    x_rest, x_test, y_rest, y_test = cut(x, y, test_split)
    val_of_rest = val_split / max(1e-9, 1.0 - test_split)
    x_train, x_val, y_train, y_val = cut(x_rest, y_rest, val_of_rest)
    return {"train": x_train, "val": x_val, "test": x_test}, {"train": y_train, "val": y_val, "test": y_test}


def split_files(files, labels, val_split, test_split, seed, train_fraction=None):
    """Index arrays per split: the same seeded, stratified cut :func:`split_arrays` makes."""
    idx, y = np.arange(len(files)), np.asarray(labels)
    xs, _ = split_arrays(idx, y, val_split, test_split, seed)
    if train_fraction is not None and train_fraction < 1.0:
        from sklearn.model_selection import train_test_split

        xs["train"], _ = train_test_split(
            xs["train"], train_size=train_fraction, random_state=seed, stratify=y[xs["train"]]
        )
    return xs


def split_spec(labels, spec: LoadSpec) -> dict:
    """:func:`split_files` of ``labels`` (one per item) with the spec's fractions and seed."""
    return split_files(np.arange(len(labels)), labels, spec.val_split, spec.test_split, spec.seed, spec.train_fraction)


def write_splits(run_dir, key: SplitKey, class_names, members: dict) -> None:
    """Record a split as ``run_dir/splits.json``: the key, the classes and ``members`` (see the module)."""
    from edgecnn._io import write_json

    write_json(Path(run_dir) / "splits.json", {"key": key.as_dict(), "class_names": list(class_names), **members})


def read_splits(path: Path, key: SplitKey, listed: set):
    """The recorded folder split at ``path`` when it was made with ``key`` from the same files:
    ``({split: (files, labels)}, class_names)``, else ``None``."""
    try:
        rec = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    if rec.get("key") != key.as_dict() or not isinstance(rec.get("splits"), dict):
        return None
    root = Path(key.source)
    splits = {}
    for s in SPLITS:
        entries = rec["splits"].get(s, [])
        splits[s] = ([str(root / f) for f, _ in entries], [int(label) for _, label in entries])
    recorded = {f for s in SPLITS for f in splits[s][0]}
    full = key.train_fraction in (None, 1.0)
    if (full and recorded != listed) or not recorded <= listed:
        return None
    return splits, rec.get("class_names")
