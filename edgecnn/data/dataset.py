"""Datasets: the built-in digits, image folders and ``.npz`` files.

Every source becomes a :class:`Dataset` of ``uint8`` images at the model's input size and
channel count, split into seeded, stratified train/validation/test parts. The float input
the model sees is ``pixel * scale + offset`` (recorded in ``preprocess``), applied by
:meth:`Dataset.normalized`, so the exported ``.tflite`` takes the same input a user feeds
on the device (see :mod:`edgecnn.device.preprocess`).

Sources:
    ``digits``      scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10
                    classes), upscaled and replicated to the channels the model wants.
    ``path/``       an image folder, one subfolder per class (the layout
                    ``image_dataset_from_directory`` reads); or ``train/``, ``val/``,
                    ``test/`` subfolders each laid out that way, used as given.
    ``file.npz``    arrays ``x`` (N,H,W[,C], uint8 0..255 or float 0..1) and ``y`` (N,)
                    integer labels, optional ``class_names``; or ``x_train``/``y_train``,
                    ``x_test``/``y_test`` (and ``x_val``/``y_val``). Loaded without pickle,
                    sizes and value ranges checked first (:mod:`edgecnn.device.arrays`).

Image folders follow :func:`edgecnn.device.preprocess.list_image_folder` (hidden names
skipped, no links out of the folder) and :func:`~edgecnn.device.preprocess.load_image`
(at most 40 Mpx, 16-bit scaled, transparency on white).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgecnn.data.contract import SPLITS, LoadSpec, RunData, preprocess_spec
from edgecnn.data.splits import split_arrays
from edgecnn.device.arrays import check_class_names, check_labels, images_to_uint8, read_npz
from edgecnn.device.preprocess import (
    DEFAULT_RESIZE,
    ImageError,
    list_image_folder,
    load_image,
    normalize,
    resize_batch,
)
from edgecnn.errors import UserError


@dataclass
class Dataset(RunData):
    """Images (``uint8``, NHWC) and integer labels for each split, plus how to normalize them:
    the in-memory :class:`~edgecnn.data.contract.RunData`."""

    name: str
    x: dict
    y: dict
    class_names: list
    preprocess: dict = field(default_factory=dict)
    #: False when the labels are bare indices (an ``.npz`` without ``class_names``).
    named: bool = True

    @property
    def input_shape(self) -> tuple:
        return tuple(self.x["train"].shape[1:])

    def normalized(self, split: str) -> np.ndarray:
        """The float input the model sees for ``split`` (``train``, ``val``, ``test``)."""
        return normalize(self.x[split], self.preprocess)

    def representative(self, samples: int = 200, seed: int = 0):
        """A generator of single training images for int8 calibration (TFLite's
        ``representative_dataset``), drawn from the training split only."""
        rng = np.random.default_rng(seed)
        n = len(self.x["train"])
        idx = rng.choice(n, size=min(samples, n), replace=False)
        data = normalize(self.x["train"][idx], self.preprocess)

        def gen():
            for row in data:
                yield [row[None]]

        return gen

    def fingerprint(self) -> str:
        """A short hash of every split's images and labels (for caching stage outputs)."""
        h = hashlib.sha256()
        for split in SPLITS:
            h.update(np.ascontiguousarray(self.x[split]).tobytes())
            h.update(np.ascontiguousarray(self.y[split]).tobytes())
        h.update(repr(self.preprocess).encode())
        return h.hexdigest()[:16]

    def summary(self) -> str:
        sizes = ", ".join(f"{s} {len(self.y[s])}" for s in SPLITS)
        h, w, c = self.input_shape
        return f"{self.name}: {self.num_classes} classes, {h}x{w}x{c}, {sizes}"


def _digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    return images, d.target.astype(np.int64), [str(i) for i in range(10)]


def _images_from_files(files, image_size, channels, resize=DEFAULT_RESIZE):
    out = np.empty((len(files), image_size[0], image_size[1], channels), dtype=np.uint8)
    for i, path in enumerate(files):
        try:
            out[i] = load_image(path, image_size, channels, resize)
        except ImageError as exc:
            raise UserError(f"{exc}; fix or remove the file") from None
    return out


def _folder(root, image_size, channels, data_root=None, resize=DEFAULT_RESIZE):
    try:
        files, labels, classes = list_image_folder(root, data_root)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    return _images_from_files(files, image_size, channels, resize), np.asarray(labels, dtype=np.int64), classes


def _npz(path):
    arrays = read_npz(path)
    names = check_class_names(arrays.get("class_names"), str(path))
    if "x" in arrays and "y" in arrays:
        x = images_to_uint8(arrays["x"], f"{path}:x")
        return x, check_labels(arrays["y"], f"{path}:y", n=len(x)), names, None
    if {"x_train", "y_train", "x_test", "y_test"} <= set(arrays):
        split = {}
        for s in SPLITS:
            if f"x_{s}" in arrays:
                if f"y_{s}" not in arrays:
                    raise UserError(f"{path} has x_{s} but no y_{s}")
                x = images_to_uint8(arrays[f"x_{s}"], f"{path}:x_{s}")
                split[s] = (x, check_labels(arrays[f"y_{s}"], f"{path}:y_{s}", n=len(x)))
        return None, None, names, split
    raise UserError(
        f"{path} must hold arrays 'x' and 'y' (or x_train, y_train, x_test, y_test); found {sorted(arrays)}"
    )


@dataclass
class _Read:
    """A source as read: all images and labels (``x``, ``y``), or the splits it gives itself (``given``)."""

    name: str
    classes: list
    x: np.ndarray | None = None
    y: np.ndarray | None = None
    given: dict | None = None  # split -> (x, y), from train/ val/ test/ subfolders or x_train/y_train arrays
    named: bool = True


def load_dataset(source: str = "digits", spec: LoadSpec | None = None, **options) -> Dataset:
    """Load ``source`` and split it; images come out at ``image_size`` x ``channels``.

    ``spec`` (or its fields as keyword arguments, ``options``): the
    :class:`~edgecnn.data.contract.LoadSpec` (size, channels, split fractions, seed,
    ``train_fraction``; ``convention``: the pretrained weights' input convention, recorded in
    ``preprocess``).

    Example:
        >>> ds = load_dataset("digits", image_size=(32, 32), channels=3)
        >>> ds.summary()
        'digits: 10 classes, 32x32x3, train 1257, val 180, test 360'
    """
    spec = LoadSpec(**options) if spec is None else spec
    spec.check_fractions()
    source = str(source)
    read = _digits_read() if source == "digits" else _read_path(source, spec)
    xs, ys = _split_read(source, read, spec)
    if len(read.classes) < 2:
        raise UserError(f"data {source!r} has {len(read.classes)} class; classification needs at least 2")
    for s in SPLITS:
        xs[s] = resize_batch(xs[s], spec.image_size, spec.channels, spec.resize)
    _keep_fraction(xs, ys, spec)
    where = source if source == "digits" else str(Path(source).resolve())
    preprocess = preprocess_spec(spec, read.classes, where)
    return Dataset(name=read.name, x=xs, y=ys, class_names=list(read.classes), preprocess=preprocess, named=read.named)


def _digits_read() -> _Read:
    x, y, classes = _digits()
    return _Read("digits", classes, x, y)


def _read_path(source: str, spec: LoadSpec) -> _Read:
    """An image folder (one subfolder per class, or ``train/``, ``val/``, ``test/``) or an ``.npz``."""
    path = Path(source).expanduser()
    name = path.name or str(path)
    if not path.exists():
        raise UserError(f"data {source!r} not found: give 'digits', an image folder or an .npz file")
    if path.is_dir():
        subs = {p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")}
        if {"train", "test"} <= subs:
            given, classes = _given_folders(path, subs, spec)
            return _Read(name, classes, given=given)
        x, y, classes = _folder(path, spec.image_size, spec.channels, resize=spec.resize)
        return _Read(name, classes, x, y)
    if path.suffix.lower() == ".npz":
        x, y, names, given = _npz(path)
        labels = np.concatenate([v[1] for v in given.values()]) if given else y
        n_classes = int(labels.max()) + 1 if labels.size else 0
        classes = names if names is not None else [str(i) for i in range(n_classes)]
        if len(classes) < n_classes:
            raise UserError(f"{path}: class_names lists {len(classes)} classes but labels go up to {n_classes - 1}")
        return _Read(name, classes, x, y, given, named=names is not None)
    raise UserError(f"data {source!r} is neither a folder nor an .npz file")


def _given_folders(path: Path, subs: set, spec: LoadSpec):
    """``train/``, ``val/``, ``test/`` subfolders used as given: ``({split: (x, y)}, classes)``;
    ``train/`` defines the classes, and ``val/``/``test/`` may lack one (labels matched by name)."""
    given, classes = {}, None
    for s in SPLITS:
        if s not in subs:
            continue
        xs, ys, cls = _folder(path / s, spec.image_size, spec.channels, data_root=path, resize=spec.resize)
        if classes is None:
            classes = cls
        elif cls != classes:
            unknown = [c for c in cls if c not in classes]
            if unknown:
                raise UserError(f"{path / s} has classes {unknown} that {path / 'train'} lacks")
            ys = np.asarray([classes.index(c) for c in cls], dtype=np.int64)[ys]
        given[s] = (xs, ys)
    return given, classes


def _split_read(source: str, read: _Read, spec: LoadSpec):
    """``({split: x}, {split: y})``: the source's own splits (a missing ``val`` cut from
    ``train``), or the seeded cut of all its images."""
    if read.given is None:
        if len(read.y) < 10:
            raise UserError(f"data {source!r} has only {len(read.y)} images; edgecnn needs at least 10")
        return split_arrays(read.x, read.y, spec.val_split, spec.test_split, spec.seed)
    xs = {s: read.given[s][0] for s in read.given}
    ys = {s: read.given[s][1] for s in read.given}
    if "val" not in read.given:
        split_x, split_y = split_arrays(xs["train"], ys["train"], spec.val_split, 0.0, spec.seed)
        xs["train"], xs["val"] = split_x["train"], split_x["val"]
        ys["train"], ys["val"] = split_y["train"], split_y["val"]
    return xs, ys


def _keep_fraction(xs: dict, ys: dict, spec: LoadSpec) -> None:
    """Keep a stratified ``train_fraction`` of the training split (in place)."""
    fraction = spec.train_fraction
    if fraction is None:
        return
    if not 0.0 < fraction <= 1.0:
        raise UserError(f"train_fraction must be in (0, 1], got {fraction}")
    if fraction < 1.0:
        from sklearn.model_selection import train_test_split

        xs["train"], _, ys["train"], _ = train_test_split(
            xs["train"], ys["train"], train_size=fraction, random_state=spec.seed, stratify=ys["train"]
        )


def write_split_images(run_dir, root, split: str = "test", *, image_size=None, channels=None) -> int:
    """Write the digits ``split`` of a digits run as ``root/<class>/<i>.png`` and return how many.

    The split is rebuilt from the run's ``preprocess.json`` (size, channels, seed, split
    fractions), so these are the images the run's own evaluation scored: feed them to
    ``edgecnn-device eval --data root`` or ``predict`` to check a device against the run.

    ``split="all"`` writes every digit, unsplit, in scikit-learn's order (``<i>`` is its
    index): an image folder for a run to split itself. ``image_size`` (an int or ``(h, w)``)
    and ``channels`` replace the run's; without a run (``run_dir`` None, ``split="all"``
    only) both are needed. The pixels are the in-memory ``digits`` source's at that size.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     n = write_split_images(None, Path(tmp), "all", image_size=8, channels=1)
        ...     per_class = {p.name: len(list(p.iterdir())) for p in Path(tmp).iterdir()}
        >>> n, per_class["0"], sorted(per_class)[:3]
        (1797, 178, ['0', '1', '2'])
    """
    import json

    from PIL import Image

    spec = json.loads((Path(run_dir) / "preprocess.json").read_text()) if run_dir is not None else {}
    image_size = spec.get("image_size") if image_size is None else image_size
    channels = spec.get("channels") if channels is None else channels
    if image_size is None or channels is None:
        raise ValueError("write_split_images: without a run, give image_size and channels")
    if split == "all":
        data = load_dataset("digits", image_size=image_size, channels=channels, val_split=0.0, test_split=0.0)
        x, y = data.x["train"], data.y["train"]  # no split: every image, in the source's order
    elif run_dir is None:
        raise ValueError(f"write_split_images: split {split!r} needs the run whose split it is")
    else:
        data = load_dataset(
            "digits",
            image_size=image_size,
            channels=channels,
            seed=spec["seed"],
            val_split=spec["val_split"],
            test_split=spec["test_split"],
        )
        x, y = data.x[split], data.y[split]
    root = Path(root)
    for i, (img, label) in enumerate(zip(x, y)):
        folder = root / data.class_names[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(folder / f"{i:04d}.png")
    return len(y)
