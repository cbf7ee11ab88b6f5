"""Image preprocessing that runs anywhere: numpy and Pillow only.

The same code prepares images for training on the workstation and for inference on the
device, so the ``.tflite`` sees on the Pi exactly what it saw when it was evaluated.
A model's preprocessing is recorded as a small dict (``preprocess.json`` in its run
folder)::

    {"image_size": [32, 32], "channels": 3, "scale": 0.00784313725490196, "offset": -1.0,
     "class_names": ["0", "1", ...]}

and a pixel value ``p`` in 0..255 becomes ``p * scale + offset`` (here, -1..1).

What an image file becomes (the same on the workstation and on the device):

* Its size is read from the header first; an image declaring more than
  :data:`MAX_IMAGE_PIXELS` (40 million) pixels is refused before it is decoded.
* 16-bit images (PNG modes ``I;16`` and ``I``) are scaled to 8 bits: ``v >> 8``, so
  32768 becomes 128 and 65535 becomes 255.
* Transparency (RGBA, LA, a palette with a transparent colour) is composited on a white
  background (:data:`ALPHA_BACKGROUND`), as a browser shows the image; four-channel
  arrays are composited the same way.
* An image folder has one subfolder per class. Names starting with ``.`` (such as
  ``.ipynb_checkpoints``) are skipped, and a class folder or image that is a link
  resolving outside the data folder is refused (edgecnn never reads outside it).

Pretrained weights bring their own convention (:data:`CONVENTION_KEYS`, all optional):
``"channel_order": "BGR"`` reverses the channels first (Keras' caffe-style ResNet and VGG),
and ``"mean"``/``"std"`` (one number per channel) then give ``(p * scale + offset - mean) / std``
(caffe: scale 1, mean 103.939, 116.779, 123.68 in BGR order; torch-style DenseNet: scale
1/255, ImageNet mean and std).

How an image is resized (``"resize"``, :data:`RESIZE_METHODS`; recorded in the spec when
not the default):

* ``"antialias"`` (the default): Pillow's ``Image.resize(size, BILINEAR)``, a triangle filter
  stretched by the shrink factor, so a 4000-pixel photo shrunk to 224 does not alias. It
  costs about 0.8 ms of CPU per 256->224 RGB image.
* ``"bilinear"``: two taps per output pixel without antialiasing, what
  ``keras.utils.image_dataset_from_directory`` and ``tf.image.resize`` do by default,
  rounded to ``uint8``. :func:`bilinear_resize` is TensorFlow's ``ResizeBilinear`` kernel
  (half-pixel centres) in numpy, the same float32 operations in the same order, so the
  device side gives the bits the training pipeline does (``tests/test_preprocess_resize.py``).
  About 4x cheaper; fine when images are at most about twice the model's input size,
  coarse (aliased) on large downscales.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgecnn.errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")

DEFAULT_SCALE = 1.0 / 127.5
DEFAULT_OFFSET = -1.0
CONVENTION_KEYS = ("channel_order", "mean", "std", "resize")
#: How images are resized: see the module docstring.
RESIZE_METHODS = ("antialias", "bilinear")
DEFAULT_RESIZE = "antialias"

#: Images declaring more pixels than this (width x height, from the header) are refused
#: before decoding: 40 Mpx is a 7,300 x 5,500 photo, ~120 MB as RGB.
MAX_IMAGE_PIXELS = 40_000_000
#: The grey level transparent pixels are composited on (255: white).
ALPHA_BACKGROUND = 255
#: The most classes a dataset or a model's ``class_names`` may have; labels lie in 0..9,999.
MAX_CLASSES = 10_000


class DataError(UserError, ValueError):
    """Data that edgecnn refuses (a :class:`UserError`): it names the file and what is wrong."""


class ImageError(DataError):
    """An image file that cannot be read (missing, corrupt, too large, not an image)."""


def read_spec(model_path, explicit=None, required: bool = False) -> dict:
    """The preprocessing of a model: ``explicit`` JSON file, else ``preprocess.json``
    beside the model, else the model's TFLite Metadata (normalisation and labels, see
    :mod:`edgecnn.device.metadata`), else the default (``pixel / 127.5 - 1``), or a
    :class:`UserError` when ``required``. Raises :class:`DataError` for a missing explicit
    file, invalid JSON, or a malformed field.

    Example:
        >>> read_spec("model_int8.tflite")["class_names"][:3]  # doctest: +SKIP
        ['0', '1', '2']
    """
    import json
    import math

    candidates = [Path(explicit)] if explicit else [Path(model_path).with_name("preprocess.json")]
    for path in candidates:
        if path.is_file():
            try:
                spec = json.loads(path.read_text())
            except (ValueError, OSError) as exc:
                raise DataError(f"{path} is not valid JSON: {exc}") from None
            if not isinstance(spec, dict):
                raise DataError(f"{path} must hold a JSON object")
            for key in ("scale", "offset"):
                value = spec.get(key, 0.0)
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    raise DataError(f"{path}: {key!r} must be a finite number, got {value!r}")
            names = spec.get("class_names")
            listed = isinstance(names, list) and all(isinstance(n, (str, int)) for n in names)
            if names is not None and (not listed or len(names) > MAX_CLASSES):
                raise DataError(f"{path}: 'class_names' must be a list of at most {MAX_CLASSES:,} names")
            if spec.get("resize", DEFAULT_RESIZE) not in RESIZE_METHODS:
                raise DataError(
                    f"{path}: 'resize' must be one of {', '.join(RESIZE_METHODS)}, got {spec.get('resize')!r}"
                )
            channels = spec.get("channels")
            if channels is not None and channels not in (1, 3):
                raise DataError(f"{path}: 'channels' must be 1 or 3, got {channels!r}")
            if not isinstance(spec.get("background_class", False), bool):
                raise DataError(f"{path}: 'background_class' must be true or false, got {spec['background_class']!r}")
            return spec
        if explicit:
            raise DataError(f"preprocessing file {path} does not exist")
    from edgecnn.device.flatbuffer import FlatbufferError
    from edgecnn.device.metadata import read_metadata, spec_from_metadata

    try:
        meta = read_metadata(model_path) if Path(model_path).is_file() else None
    except (FlatbufferError, OSError):
        meta = None  # loading the model reports what is wrong with it
    if meta is not None:
        spec = spec_from_metadata(meta)
        spec["from"] = "metadata"
        return spec
    if required:
        raise UserError(
            f"{model_path} has no TFLite Metadata and no preprocess.json beside it; "
            "pass --preprocess with the run's preprocess.json (or export with metadata), "
            "or give the normalisation as --mean and --std (with --labels, --background-class as needed)"
        )
    return {"scale": DEFAULT_SCALE, "offset": DEFAULT_OFFSET}


#: A labels file larger than this is refused before it is read (10,000 labels of 400 bytes).
MAX_LABELS_BYTES = 4_000_000
#: The spec keys that say how pixels are normalised (see :func:`normalize`).
NORMALIZATION_KEYS = ("scale", "offset", "mean", "std")


def read_labels(path) -> list:
    """Class names from a labels text file, one a line (the usual ``labels.txt``), in output order.

    Surrounding spaces and blank lines at the end are ignored; a blank line before the last
    label (which would leave an output without a name) is refused, as are an empty file,
    a file that is not UTF-8 and more than :data:`MAX_CLASSES` labels, each with one
    :class:`DataError` line.

    Example:
        >>> read_labels("mobilenet_v1_1.0_224/labels.txt")[:3]  # doctest: +SKIP
        ['background', 'tench', 'goldfish']
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"labels file {path} " + ("is not a file" if p.exists() else "does not exist"))
    try:
        if p.stat().st_size > MAX_LABELS_BYTES:
            raise DataError(f"labels file {path} is over {MAX_LABELS_BYTES:,} bytes; it should hold one label per line")
        text = p.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"labels file {path} is not UTF-8 text (one label per line)") from None
    except OSError as exc:
        raise DataError(f"cannot read labels file {path}: {exc.strerror or exc}") from None
    labels = [line.strip() for line in text.splitlines()]
    while labels and not labels[-1]:
        labels.pop()
    if not labels:
        raise DataError(f"labels file {path} is empty; it should hold one label per line")
    if "" in labels:
        raise DataError(f"labels file {path}: line {labels.index('') + 1} is blank; give one label per line")
    if len(labels) > MAX_CLASSES:
        raise DataError(f"labels file {path} has {len(labels):,} labels, over the limit of {MAX_CLASSES:,}")
    return labels


def normalization_spec(mean, std) -> dict:
    """``(p - mean) / std`` on 0..255 pixels as spec keys (see :func:`normalize`).

    One value each (or the same value for every channel) becomes ``scale`` and ``offset``;
    per-channel values stay ``mean``/``std`` lists after ``scale`` 1 and ``offset`` 0. A
    single value is repeated to the other's length. Raises ``ValueError`` quoting the values
    for a zero or non-finite std, a non-finite mean, or lengths that do not match.

    Example:
        >>> normalization_spec([127.5], [127.5])
        {'scale': 0.00784313725490196, 'offset': -1.0}
        >>> normalization_spec([123.675, 116.28, 103.53], [58.395])["std"]
        [58.395, 58.395, 58.395]
    """
    import math

    mean, std = [float(v) for v in mean], [float(v) for v in std]
    if not mean or not std or not all(math.isfinite(v) for v in mean + std) or 0.0 in std:
        raise ValueError(f"mean {mean} and std {std} are not a normalisation (finite numbers, std not 0)")
    if len(mean) != len(std):
        if min(len(mean), len(std)) != 1:
            raise ValueError(f"mean {mean} and std {std} have different numbers of channels")
        n = max(len(mean), len(std))
        mean, std = (mean * n if len(mean) == 1 else mean), (std * n if len(std) == 1 else std)
    if len(set(mean)) == 1 and len(set(std)) == 1:
        return {"scale": 1.0 / std[0], "offset": -mean[0] / std[0]}
    return {"scale": 1.0, "offset": 0.0, "mean": mean, "std": std}


def override_spec(
    spec: dict,
    *,
    class_names=None,
    labels_from=None,
    mean=None,
    std=None,
    background_class: bool = False,
) -> dict:
    """A copy of ``spec`` with what the user said instead (the device CLI's ``--labels``,
    ``--mean``, ``--std``, ``--background-class``).

    ``mean`` or ``std`` (one value or one per channel; the other defaults to 0 or 1)
    replaces the whole normalisation (:data:`NORMALIZATION_KEYS`) with ``(p - mean) / std``;
    the channel order and resize method stay the spec's. ``class_names`` replaces the
    spec's (``labels_from`` names their file in errors); ``background_class`` says output 0
    is a class without a label (see :func:`fit_to_model`).

    Example:
        >>> override_spec({"scale": 1 / 255, "offset": 0.0}, mean=[127.5], std=[127.5])
        {'scale': 0.00784313725490196, 'offset': -1.0, 'from': 'flags'}
    """
    out = dict(spec)
    if mean is not None or std is not None:
        for key in NORMALIZATION_KEYS:
            out.pop(key, None)
        out.update(normalization_spec([0.0] if mean is None else mean, [1.0] if std is None else std))
        out["from"] = "flags"
    if class_names is not None:
        out["class_names"] = [str(n) for n in class_names]
        if labels_from is not None:
            out["labels_from"] = str(labels_from)
    if background_class:
        out["background_class"] = True
    return out


def fit_to_model(spec: dict, channels: int, outputs: int, model_path) -> tuple:
    """``(class names or None, outputs to skip)`` for a model with ``channels`` input channels
    and ``outputs`` scores: the spec's normalisation and labels checked against the model.

    With ``"background_class"``, output 0 is a class without a label (the TF-slim ImageNet
    models: 1001 outputs, 1000 labels): it is skipped (1), and the labels may count one
    less than the outputs or name the background first (it is then dropped). Without it,
    the labels must count the outputs. A per-channel normalisation that does not fit the
    channels, or labels that fit neither way, is one :class:`DataError` line.

    Example:
        >>> fit_to_model({"class_names": ["cat", "dog"], "background_class": True}, 3, 3, "m.tflite")
        (['cat', 'dog'], 1)
    """
    per_channel = {key: spec[key] for key in ("mean", "std") if isinstance(spec.get(key), (list, tuple))}
    n = max([len(v) for v in per_channel.values()], default=1)
    if n not in (1, channels):
        shown = ", ".join(f"{key} {list(v)}" for key, v in per_channel.items())
        raise DataError(
            f"{model_path} takes {channels}-channel input, but its normalisation has {n} values per channel "
            f"({shown}); give one value" + ("" if channels == 1 else f" or {channels}")
        )
    skip = 1 if spec.get("background_class") else 0
    if outputs - skip < 1:
        raise DataError(f"{model_path} has {outputs} output(s); with a background class it has no class left")
    names = spec.get("class_names")
    if names is None:
        return None, skip
    names = [str(n) for n in names]
    source = spec.get("labels_from") or "its preprocessing"
    if skip and len(names) == outputs:
        return names[1:], skip  # the labels name the background too (labels.txt of the TF Hub MobileNets)
    if len(names) == outputs - skip:
        return names, skip
    hint = (
        "; if output 0 is a background class (as in the TF-slim ImageNet models), add --background-class"
        if not skip and len(names) == outputs - 1
        else f" (it needs {outputs} labels, or {outputs - 1} with --background-class)"
    )
    raise DataError(f"{model_path} scores {outputs} classes but {source} names {len(names)}{hint}")


def _eight_bit(img):
    """A Pillow image as 8-bit ``L``/``RGB``: 16-bit scaled (``v >> 8``), alpha on white."""
    from PIL import Image

    if img.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N"):
        wide = np.asarray(img).astype(np.int64)
        return Image.fromarray((np.clip(wide, 0, 65535) >> 8).astype(np.uint8), "L")
    if img.mode == "F":
        return Image.fromarray(np.clip(np.round(np.asarray(img) * 255.0), 0, 255).astype(np.uint8), "L")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (ALPHA_BACKGROUND,) * 3 + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img


def resize_method(spec: dict | None) -> str:
    """The spec's ``"resize"`` (:data:`RESIZE_METHODS`), :data:`DEFAULT_RESIZE` when absent.

    Example:
        >>> resize_method({}), resize_method({"resize": "bilinear"})
        ('antialias', 'bilinear')
    """
    method = (spec or {}).get("resize") or DEFAULT_RESIZE
    if method not in RESIZE_METHODS:
        raise DataError(f"unknown resize method {method!r}; use one of {', '.join(RESIZE_METHODS)}")
    return method


def _bilinear_axis(in_size: int, out_size: int):
    """TensorFlow's ``compute_interpolation_weights`` with ``HalfPixelScaler``, in float32."""
    scale = np.float32(in_size) / np.float32(out_size)
    src = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    floor = np.floor(src)
    lower = np.maximum(floor.astype(np.int64), 0)
    upper = np.minimum(np.ceil(src).astype(np.int64), in_size - 1)
    return lower, upper, (src - floor).astype(np.float32)


def bilinear_resize(image: np.ndarray, image_size) -> np.ndarray:
    """``uint8`` ``(h, w, c)`` -> ``(out_h, out_w, c)`` ``uint8``: TensorFlow's bilinear resize
    (``tf.image.resize(..., "bilinear")``, half-pixel centres, no antialiasing) rounded half
    to even, bit for bit (``top = tl + (tr - tl) * dx``, ``bottom`` alike, then
    ``top + (bottom - top) * dy``, all float32).

    Example:
        >>> bilinear_resize(np.array([[[0], [255]]], np.uint8), (1, 4))[..., 0]
        array([[  0,  64, 191, 255]], dtype=uint8)
    """
    out_h, out_w = int(image_size[0]), int(image_size[1])
    x = np.asarray(image, dtype=np.float32)
    y0, y1, dy = _bilinear_axis(x.shape[0], out_h)
    x0, x1, dx = _bilinear_axis(x.shape[1], out_w)
    top, bottom = x[y0], x[y1]
    dx = dx[None, :, None]
    upper = top[:, x0] + (top[:, x1] - top[:, x0]) * dx
    lower = bottom[:, x0] + (bottom[:, x1] - bottom[:, x0]) * dx
    out = upper + (lower - upper) * dy[:, None, None]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def resize_image(image: np.ndarray, image_size, method: str = DEFAULT_RESIZE) -> np.ndarray:
    """``uint8`` ``(h, w, c)`` (``c`` 1, 3 or 4) resized by ``method`` (:data:`RESIZE_METHODS`)."""
    from PIL import Image

    h, w = int(image_size[0]), int(image_size[1])
    if method == "bilinear":
        return bilinear_resize(image, (h, w))
    channels = image.shape[-1]
    resized = np.asarray(Image.fromarray(image[..., 0] if channels == 1 else image).resize((w, h), Image.BILINEAR))
    return resized.reshape(h, w, channels)


def load_image(path, image_size, channels: int, resize: str = DEFAULT_RESIZE) -> np.ndarray:
    """Read one image file as a ``uint8`` array of shape ``(h, w, channels)``.

    The header is read first: an image over :data:`MAX_IMAGE_PIXELS` is refused
    before it is decoded. 16-bit images are scaled to 8 bits, transparency is
    composited on white. ``resize``: :data:`RESIZE_METHODS` (the spec's, :func:`resize_method`).

    Example:
        >>> load_image("cat.jpg", (32, 32), 3).shape  # doctest: +SKIP
        (32, 32, 3)
    """
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                if width * height > MAX_IMAGE_PIXELS:
                    raise ImageError(
                        f"image {path} declares {width}x{height} = {width * height:,} pixels, over the limit of "
                        f"{MAX_IMAGE_PIXELS:,}; shrink it first"
                    )
                img = _eight_bit(img).convert("L" if channels == 1 else "RGB")
                if resize == "bilinear":
                    arr = np.asarray(img, dtype=np.uint8)
                    arr = bilinear_resize(arr.reshape(*arr.shape[:2], -1), image_size)
                    arr = arr[..., 0] if channels == 1 else arr
                else:
                    img = img.resize((int(image_size[1]), int(image_size[0])), Image.BILINEAR)
                    arr = np.asarray(img, dtype=np.uint8)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"image {path} is refused as a decompression bomb: {exc}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, MemoryError) as exc:
        if isinstance(exc, ImageError):
            raise
        raise ImageError(f"cannot read image {path}: {exc.__class__.__name__}: {exc}") from None
    if channels == 1:
        arr = arr[..., None]
    return arr


def resize_batch(images: np.ndarray, image_size, channels: int, resize: str = DEFAULT_RESIZE) -> np.ndarray:
    """Resize a ``uint8`` batch ``(n, h, w[, c])`` to ``image_size`` and ``channels`` (``resize``:
    :data:`RESIZE_METHODS`)."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    h, w = int(image_size[0]), int(image_size[1])
    out = np.empty((len(images), h, w, images.shape[-1]), dtype=np.uint8)
    for i, img in enumerate(images):
        if img.shape[:2] == (h, w):
            out[i] = img
            continue
        out[i] = resize_image(img, (h, w), resize)
    return match_channels(out, channels)


def match_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """Replicate grey to 3 channels, or average RGB to 1, as the model wants."""
    have = images.shape[-1]
    if have == channels:
        return images
    if have == 1 and channels == 3:
        return np.repeat(images, 3, axis=-1)
    if have == 4:
        images = composite_alpha(images)
        have = 3
    if have == 3 and channels == 1:
        return images.mean(axis=-1, keepdims=True).round().astype(images.dtype)
    if have == channels:
        return images
    raise ValueError(f"cannot turn {have}-channel images into {channels}-channel input")


def composite_alpha(images: np.ndarray) -> np.ndarray:
    """``uint8`` RGBA ``(..., 4)`` -> RGB composited on :data:`ALPHA_BACKGROUND` (white).

    Example:
        >>> composite_alpha(np.array([[0, 0, 0, 0], [0, 0, 0, 255]], np.uint8))
        array([[255, 255, 255],
               [  0,   0,   0]], dtype=uint8)
    """
    rgb = images[..., :3].astype(np.float32)
    alpha = images[..., 3:4].astype(np.float32) / 255.0
    return np.round(rgb * alpha + ALPHA_BACKGROUND * (1.0 - alpha)).astype(np.uint8)


def normalize(images: np.ndarray, spec: dict | None = None) -> np.ndarray:
    """``uint8`` pixels -> the float input the model was trained on: ``p * scale + offset``,
    channels reversed first for ``"channel_order": "BGR"``, then ``(x - mean) / std`` per
    channel where the spec has them (see the module docstring).

    Example:
        >>> normalize(np.full((1, 1, 1, 3), 255, np.uint8), {"scale": 1 / 255, "offset": 0.0}).ravel()
        array([1., 1., 1.], dtype=float32)
    """
    spec = spec or {}
    scale = float(spec.get("scale", DEFAULT_SCALE))
    offset = float(spec.get("offset", DEFAULT_OFFSET))
    if str(spec.get("channel_order", "RGB")).upper() == "BGR":
        images = images[..., ::-1]
    x = images.astype(np.float32) * np.float32(scale) + np.float32(offset)
    if spec.get("mean") is not None:
        x = x - np.asarray(spec["mean"], dtype=np.float32)
    if spec.get("std") is not None:
        x = x / np.asarray(spec["std"], dtype=np.float32)
    return x


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root)
    except ValueError:
        return False
    return True


def list_image_folder(root, data_root=None, progress=None) -> tuple[list[Path], list[int], list[str]]:
    """Files and labels of a folder with one subfolder per class (sorted by name).

    ``progress(count)``, when given, is called as files are found (after each class folder).

    Names starting with ``.`` (``.ipynb_checkpoints``, ``.DS_Store``) are skipped. A class
    folder, subfolder or image that is a link resolving outside ``root`` (or outside
    ``data_root``, when ``root`` is its ``train/`` or ``test/`` part) is refused.
    Raises :class:`DataError` (a ``ValueError``) naming what is wrong: a missing folder,
    no class subfolders, a class subfolder without images, a link out of the folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist")
    top = Path(data_root) if data_root is not None else root
    real_root = top.resolve()

    def refuse_outside(path: Path):
        if not _inside(path, real_root):
            raise DataError(
                f"{path} links to {path.resolve()}, outside the data folder {top}; "
                "edgecnn does not follow links out of the data folder: copy the files in"
            )

    refuse_outside(root)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"data folder {root} has no class subfolders; put each class's images in {root}/<class name>/")

    def images_under(folder: Path, seen: set) -> list:
        refuse_outside(folder)
        real = folder.resolve()
        if real in seen:  # a link back to a folder already read
            return []
        seen.add(real)
        out = []
        for entry in sorted(folder.iterdir()):
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                out += images_under(entry, seen)
            elif entry.suffix.lower() in IMAGE_EXTENSIONS:
                refuse_outside(entry)
                if entry.is_file():
                    out.append(entry)
        return out

    files, labels = [], []
    for label, name in enumerate(classes):
        found = images_under(root / name, set())
        if progress is not None:
            progress(len(files) + len(found))
        found.sort()
        if not found:
            raise DataError(
                f"class folder {root / name} has no images ({', '.join(IMAGE_EXTENSIONS)}); "
                "add images or remove the folder"
            )
        files += found
        labels += [label] * len(found)
    return files, labels, classes
