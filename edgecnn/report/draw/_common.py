"""What every picture of ``edgecnn show`` shares: matplotlib's Agg backend, atomic PNG
writes at one resolution, and an input image drawn as the pixels it came from.

Example:
    >>> denormalize(np.array([[-1.0, 1.0]]), {"scale": 2 / 255, "offset": -1.0}).tolist()
    [[0, 255]]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: The resolution of every picture.
DPI = 110


def pyplot():
    """matplotlib's ``pyplot`` on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: Path) -> Path:
    """Write ``fig`` to ``path`` atomically (:func:`edgecnn._io.atomic_path`) and close it."""
    from edgecnn._io import atomic_path

    plt = pyplot()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    plt.close(fig)
    return path


def blank(ax):
    """``ax`` without ticks (a picture, not a plot)."""
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


def draw_image(ax, image: np.ndarray, spec: dict):
    """The model's input ``image`` drawn on ``ax`` as pixels (``spec``: the run's ``preprocess.json``)."""
    ax.set_visible(True)
    blank(ax)
    pixels = denormalize(image, spec)
    if pixels.shape[-1] == 1:
        ax.imshow(pixels[..., 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    else:
        ax.imshow(pixels)
    return ax


def class_name(names: list, index: int) -> str:
    """Class ``index``'s name, or the number where the run names no such class."""
    return str(names[index]) if 0 <= index < len(names) else str(index)


def output_shape(layer):
    """A Keras layer's output shape, ``None`` where it has no single one."""
    try:
        shape = layer.output_shape
    except (AttributeError, RuntimeError):
        return None
    return shape if isinstance(shape, tuple) else None


def denormalize(x: np.ndarray, spec: dict) -> np.ndarray:
    """The model's float input back to ``uint8`` pixels for display: the inverse of
    :func:`edgecnn.device.preprocess.normalize` for ``spec`` (a ``preprocess.json``).

    Example:
        >>> denormalize(np.array([[-1.0, 0.2, 1.0]]), {"scale": 2 / 255, "offset": -1.0}).tolist()
        [[0, 153, 255]]
    """
    x = np.asarray(x, np.float32)
    if spec.get("std") is not None:
        x = x * np.asarray(spec["std"], np.float32)
    if spec.get("mean") is not None:
        x = x + np.asarray(spec["mean"], np.float32)
    x = (x - float(spec.get("offset", 0.0))) / float(spec.get("scale", 1.0))
    if str(spec.get("channel_order", "RGB")).upper() == "BGR":
        x = x[..., ::-1]
    return np.clip(np.round(x), 0, 255).astype(np.uint8)
