"""``.npz`` datasets (and ``.npy`` inputs) read safely: sizes checked from the headers, values
against a convention.

numpy only (it runs on the device). The conventions, the same for training
(:mod:`edgecnn.data.dataset`) and evaluation (``edgecnn eval``, ``edgecnn-device eval``):

* **Budget before loading.** Each array's shape and dtype are read from its ``.npy``
  header inside the zip, without loading it. A file whose arrays declare more than
  :data:`MAX_NPZ_BYTES` (2 GiB) in all is refused, and so is an array over 64 MiB that
  declares more than :data:`MAX_COMPRESSION_RATIO` (100) times its compressed size (a
  zip bomb; an ``np.savez`` file, uncompressed, is never refused for this). Object
  arrays (pickles) are refused. A ``.npy`` input (``bench --input``) is held to the same
  budget (:func:`check_npy`): a header of at most :data:`MAX_HEADER_BYTES`, no objects, at
  most :data:`MAX_NPZ_BYTES` declared.
* **Images** ``x`` of shape ``(N, H, W)`` or ``(N, H, W, C)``: ``uint8`` is 0..255 as is;
  another integer type must hold values in 0..255; a float type must hold values in
  [0, 1] (up to half a grey level, 1/510, outside, for rounding), which are scaled by 255.
  Anything else (float images in [-1, 1] or 0..255, 16-bit values) is refused with the
  range found, never clipped. NaN and infinity are refused.
* **Labels** ``y``: one integer (or whole-number float) per image, ``(N,)`` or ``(N, 1)``,
  in ``0 .. MAX_CLASSES - 1`` (10,000 classes at most); ``class_names`` at most that long.
"""

from __future__ import annotations

import zipfile

import numpy as np

from edgecnn.device.preprocess import MAX_CLASSES, DataError

MAX_NPZ_BYTES = 2 * 1024**3
MAX_COMPRESSION_RATIO = 100
MAX_HEADER_BYTES = 10_000
_RATIO_FLOOR = 64 * 1024**2
_FLOAT_SLACK = 0.5 / 255.0


def _header(fp) -> tuple:
    """``(shape, dtype)`` from a ``.npy`` header at ``fp``, the header at most
    :data:`MAX_HEADER_BYTES` long (numpy's own limit for untrusted files)."""
    fmt = np.lib.format
    version = fmt.read_magic(fp)
    if version == (1, 0):
        shape, _order, dtype = fmt.read_array_header_1_0(fp, max_header_size=MAX_HEADER_BYTES)
    elif version == (2, 0):
        shape, _order, dtype = fmt.read_array_header_2_0(fp, max_header_size=MAX_HEADER_BYTES)
    else:
        shape, _order, dtype = fmt._read_array_header(fp, version, max_header_size=MAX_HEADER_BYTES)
    return tuple(int(d) for d in shape), dtype


def _first_line(exc) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _declared(npz: zipfile.ZipFile, info: zipfile.ZipInfo, path) -> tuple:
    """``(name, shape, dtype)`` of one ``.npy`` member, read from its header only."""
    name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
    try:
        with npz.open(info) as fp:
            shape, dtype = _header(fp)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, SyntaxError) as exc:
        raise DataError(f"cannot read {path}: array {name!r} has no valid .npy header ({_first_line(exc)})") from None
    if dtype.hasobject:
        raise DataError(
            f"{path} holds pickled Python objects ({name!r}), which edgecnn refuses to load; "
            "save plain arrays with np.savez"
        )
    return name, shape, dtype


def check_npy(path) -> tuple:
    """``(shape, dtype)`` of the ``.npy`` file at ``path``, read from its header only and held
    to an ``.npz``'s budget: a header of at most :data:`MAX_HEADER_BYTES`, no pickled
    objects, at most :data:`MAX_NPZ_BYTES` declared. Raises :class:`DataError` naming the file.

    Example:
        >>> check_npy("image.npy")  # doctest: +SKIP
        ((224, 224, 3), dtype('float32'))
    """
    try:
        with open(path, "rb") as fp:
            shape, dtype = _header(fp)
    except OSError as exc:
        raise DataError(f"cannot read input {path}: {exc.strerror or _first_line(exc)}") from None
    except (ValueError, EOFError, SyntaxError) as exc:
        raise DataError(f"cannot read input {path}: no valid .npy header ({_first_line(exc)})") from None
    if dtype.hasobject:
        raise DataError(f"{path} holds pickled Python objects, which edgecnn refuses to load; save it with np.save")
    size = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if size > MAX_NPZ_BYTES:
        raise DataError(
            f"{path} declares shape {shape} {dtype} ({size:,} bytes); a .npy input may hold {MAX_NPZ_BYTES:,} bytes"
        )
    return shape, dtype


def read_npz(path) -> dict:
    """The arrays of the ``.npz`` at ``path``, after checking their declared sizes.

    Raises :class:`~edgecnn.device.preprocess.DataError` (a ``UserError`` and a
    ``ValueError``) naming the file for a missing or damaged file, pickled objects, or
    arrays over the budget (:data:`MAX_NPZ_BYTES`, :data:`MAX_COMPRESSION_RATIO`).

    Example:
        >>> sorted(read_npz("cifar_test.npz"))  # doctest: +SKIP
        ['x', 'y']
    """
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {path} does not exist")
    with open(path, "rb") as f:
        if f.read(4) != b"PK\x03\x04":
            raise DataError(f"cannot read {path}: not a valid .npz file (save it with np.savez)")
    total = 0
    try:
        with zipfile.ZipFile(path) as npz:
            for info in npz.infolist():
                name, shape, dtype = _declared(npz, info, path)
                size = int(np.prod(shape, dtype=object)) * dtype.itemsize
                total += size
                if total > MAX_NPZ_BYTES:
                    raise DataError(
                        f"{path}: array {name!r} declares shape {shape} {dtype} ({size:,} bytes); the arrays of an "
                        f".npz may hold {MAX_NPZ_BYTES:,} bytes in all"
                    )
                if size > _RATIO_FLOOR and size > MAX_COMPRESSION_RATIO * max(1, info.compress_size):
                    raise DataError(
                        f"{path}: array {name!r} declares {size:,} bytes from {info.compress_size:,} compressed "
                        f"(over {MAX_COMPRESSION_RATIO}x, refused as a zip bomb); save it with np.savez"
                    )
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except DataError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise DataError(
                f"{path} holds pickled Python objects, which edgecnn refuses to load; save plain arrays with np.savez"
            ) from None
        raise DataError(f"cannot read {path}: {exc}") from None
    except (OSError, zipfile.BadZipFile, EOFError, MemoryError) as exc:
        raise DataError(f"cannot read {path}: not a valid .npz file ({exc.__class__.__name__})") from None


def _range(x) -> str:
    return f"[{x.min():.6g}, {x.max():.6g}]"


def images_to_uint8(x, where: str) -> np.ndarray:
    """Images as ``uint8`` 0..255 under the convention above; :class:`DataError` otherwise.

    Example:
        >>> images_to_uint8(np.array([[[0.0, 0.5, 1.0]]]), "x")
        array([[[  0, 128, 255]]], dtype=uint8)
        >>> images_to_uint8(np.array([[[-1.0, 1.0]]]), "x")
        Traceback (most recent call last):
        ...
        edgecnn.device.preprocess.DataError: x: float images must hold values in [0, 1] (scaled by 255); \
found [-1, 1]: rescale them (for [-1, 1]: (x + 1) / 2) or save uint8 0..255
    """
    x = np.asarray(x)
    if x.ndim not in (3, 4):
        raise DataError(f"{where}: images must have shape (N, H, W) or (N, H, W, C), got {x.shape}")
    if x.ndim == 4 and x.shape[-1] not in (1, 3, 4):
        raise DataError(f"{where}: images must have 1, 3 or 4 channels last, got shape {x.shape}")
    if x.dtype == np.uint8:
        return x
    if x.dtype == np.bool_ or not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise DataError(f"{where}: images must be uint8 0..255 or float 0..1, got dtype {x.dtype}")
    if x.size == 0:
        return x.astype(np.uint8)
    if np.issubdtype(x.dtype, np.integer):
        if x.min() < 0 or x.max() > 255:
            raise DataError(
                f"{where}: {x.dtype} images must hold values in 0..255; found {_range(x)}: "
                "scale them (16-bit: x >> 8) or save uint8"
            )
        return x.astype(np.uint8)
    if not np.isfinite(x).all():
        raise DataError(f"{where}: images contain NaN or infinite values")
    if x.min() < -_FLOAT_SLACK or x.max() > 1.0 + _FLOAT_SLACK:
        raise DataError(
            f"{where}: float images must hold values in [0, 1] (scaled by 255); found {_range(x)}: "
            "rescale them (for [-1, 1]: (x + 1) / 2) or save uint8 0..255"
        )
    return np.clip(np.round(x.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)


def check_labels(y, where: str, n: int | None = None) -> np.ndarray:
    """Labels as ``int64`` ``(N,)``: integers in ``0 .. MAX_CLASSES - 1`` (and ``n`` of them).

    Example:
        >>> check_labels(np.array([[0], [2]]), "y")
        array([0, 2])
    """
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{where}: labels must be a 1-D array (one per image), got shape {y.shape}")
    if np.issubdtype(y.dtype, np.floating) and np.isfinite(y).all() and (y == np.round(y)).all():
        y = y.astype(np.int64)
    if not np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_:
        raise DataError(f"{where}: labels must be whole numbers, got dtype {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= MAX_CLASSES):
        raise DataError(
            f"{where}: labels must be class indices in 0..{MAX_CLASSES - 1}; found {int(y.min())}..{int(y.max())}"
        )
    if n is not None and len(y) != n:
        raise DataError(f"{where}: {n} images but {len(y)} labels; give one label per image")
    return y.astype(np.int64)


def check_class_names(names, where: str) -> list | None:
    """``class_names`` as a list of strings (at most :data:`MAX_CLASSES`), or ``None``.

    Example:
        >>> check_class_names(np.array(["cat", "dog"]), "f.npz")
        ['cat', 'dog']
    """
    if names is None:
        return None
    names = np.asarray(names)
    if names.ndim != 1 or len(names) > MAX_CLASSES:
        raise DataError(f"{where}: class_names must list at most {MAX_CLASSES:,} names, got shape {names.shape}")
    names = [str(c) for c in names]
    if len(set(names)) != len(names):
        raise DataError(f"{where}: class_names repeats a name")
    return names
