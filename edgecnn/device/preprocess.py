"""Image preprocessing that runs anywhere: numpy and Pillow only.

The same code prepares images for training on the workstation and for inference on the
device, so the ``.tflite`` sees on the Pi exactly what it saw when it was evaluated.
A model's preprocessing is recorded as a small dict (``preprocess.json`` in its run
folder)::

    {"image_size": [32, 32], "channels": 3, "scale": 0.00784313725490196, "offset": -1.0,
     "class_names": ["0", "1", ...]}

and a pixel value ``p`` in 0..255 becomes ``p * scale + offset`` (here, -1..1).

Pretrained weights bring their own convention (:data:`CONVENTION_KEYS`, all optional):
``"channel_order": "BGR"`` reverses the channels first (Keras' caffe-style ResNet and VGG),
and ``"mean"``/``"std"`` (one number per channel) then give ``(p * scale + offset - mean) / std``
(caffe: scale 1, mean 103.939, 116.779, 123.68 in BGR order; torch-style DenseNet: scale
1/255, ImageNet mean and std).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgecnn.errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")

DEFAULT_SCALE = 1.0 / 127.5
DEFAULT_OFFSET = -1.0
CONVENTION_KEYS = ("channel_order", "mean", "std")


class ImageError(UserError, ValueError):
    """An image file that cannot be read (missing, corrupt, not an image); a :class:`UserError`."""


def read_spec(model_path, explicit=None) -> dict:
    """The preprocessing of a model: ``explicit`` JSON file, else ``preprocess.json``
    beside the model, else the default (``pixel / 127.5 - 1``)."""
    import json

    candidates = [Path(explicit)] if explicit else [Path(model_path).with_name("preprocess.json")]
    for path in candidates:
        if path.is_file():
            try:
                spec = json.loads(path.read_text())
            except ValueError as exc:
                raise ValueError(f"{path} is not valid JSON: {exc}") from None
            if not isinstance(spec, dict):
                raise ValueError(f"{path} must hold a JSON object")
            return spec
        if explicit:
            raise ValueError(f"preprocessing file {path} does not exist")
    return {"scale": DEFAULT_SCALE, "offset": DEFAULT_OFFSET}


def load_image(path, image_size, channels: int) -> np.ndarray:
    """Read one image file as a ``uint8`` array of shape ``(h, w, channels)``.

    Example:
        >>> load_image("cat.jpg", (32, 32), 3).shape  # doctest: +SKIP
        (32, 32, 3)
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = img.convert("L" if channels == 1 else "RGB")
            img = img.resize((int(image_size[1]), int(image_size[0])), Image.BILINEAR)
            arr = np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"cannot read image {path}: {exc.__class__.__name__}: {exc}") from None
    if channels == 1:
        arr = arr[..., None]
    return arr


def resize_batch(images: np.ndarray, image_size, channels: int) -> np.ndarray:
    """Resize a ``uint8`` batch ``(n, h, w[, c])`` to ``image_size`` and ``channels``."""
    from PIL import Image

    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    h, w = int(image_size[0]), int(image_size[1])
    out = np.empty((len(images), h, w, images.shape[-1]), dtype=np.uint8)
    for i, img in enumerate(images):
        if img.shape[:2] == (h, w):
            out[i] = img
            continue
        mode_img = img[..., 0] if img.shape[-1] == 1 else img
        resized = np.asarray(Image.fromarray(mode_img).resize((w, h), Image.BILINEAR))
        out[i] = resized if resized.ndim == 3 else resized[..., None]
    return match_channels(out, channels)


def match_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """Replicate grey to 3 channels, or average RGB to 1, as the model wants."""
    have = images.shape[-1]
    if have == channels:
        return images
    if have == 1 and channels == 3:
        return np.repeat(images, 3, axis=-1)
    if have in (3, 4) and channels == 1:
        return images[..., :3].mean(axis=-1, keepdims=True).round().astype(images.dtype)
    if have == 4 and channels == 3:
        return images[..., :3]
    raise ValueError(f"cannot turn {have}-channel images into {channels}-channel input")


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


def list_image_folder(root) -> tuple[list[Path], list[int], list[str]]:
    """Files and labels of a folder with one subfolder per class (sorted by name).

    Raises ``ValueError`` naming what is wrong: a missing folder, no class subfolders,
    or a class subfolder without images.
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"data folder {root} does not exist")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ValueError(f"data folder {root} has no class subfolders; put each class's images in {root}/<class name>/")
    files, labels = [], []
    for label, name in enumerate(classes):
        found = sorted(p for p in (root / name).rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        if not found:
            raise ValueError(
                f"class folder {root / name} has no images ({', '.join(IMAGE_EXTENSIONS)}); "
                "add images or remove the folder"
            )
        files += found
        labels += [label] * len(found)
    return files, labels, classes
