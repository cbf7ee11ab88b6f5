"""``filters.png``: the first convolution's kernels beside classic hand-made filters.

The hand-made ones are built here with numpy: Sobel x/y (Sobel & Feldman 1968, at the
learned kernel's size as OpenCV extends it) and even Gabor filters at 0, 45, 90 and 135
degrees (Daugman 1985, JOSA A 2(7)). Each learned kernel is captioned with the hand-made one
it correlates with most: the first layers of CNNs learn edge and Gabor-like detectors
(Krizhevsky et al. 2012; Zeiler & Fergus 2014, arXiv:1311.2901).

Example:
    >>> list(classic_filters(3))[:2]
    ['Sobel x', 'Sobel y']
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from edgecnn.report.draw._common import pyplot, save_png

#: Learned kernels shown at most in the filter picture.
MAX_FILTERS = 32


def _binomial(n: int) -> np.ndarray:
    row = np.ones(1)
    for _ in range(n - 1):
        row = np.convolve(row, [1.0, 1.0])
    return row


def sobel_kernels(size: int = 3) -> tuple:
    """Sobel x and y at ``size`` x ``size``: binomial smoothing times a binomial derivative
    (the 3x3 classic, and OpenCV's extension to 5x5, 7x7...).

    Example:
        >>> sx, sy = sobel_kernels(3)
        >>> sx.astype(int).tolist()
        [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
        >>> bool((sy == sx.T).all())
        True
    """
    size = max(2, int(size))
    smooth = _binomial(size)
    derivative = np.convolve(_binomial(size - 1), [-1.0, 1.0])
    sx = np.outer(smooth, derivative)
    return sx, sx.T.copy()


def gabor_kernel(size: int, theta_degrees: float, wavelength: float | None = None, sigma: float | None = None,
                 aspect: float = 0.5) -> np.ndarray:
    """An even (cosine) Gabor filter of ``size`` x ``size`` whose stripes run across the
    direction ``theta_degrees`` (0: vertical stripes, x varies), mean removed so that a flat
    patch gives zero, as an edge filter does. ``wavelength`` defaults to ``size / 2``
    (at least 2 pixels) and ``sigma`` to ``0.56 * wavelength`` (a one-octave bandwidth).

    Example:
        >>> g = gabor_kernel(7, 0)
        >>> g.shape, abs(float(g.sum())) < 1e-9
        ((7, 7), True)
        >>> bool(np.allclose(gabor_kernel(7, 90), g.T))
        True
    """
    size = max(2, int(size))
    wavelength = float(wavelength or max(2.0, size / 2))
    sigma = float(sigma or 0.56 * wavelength)
    half = (size - 1) / 2
    y, x = np.mgrid[-half : half + 1 : 1.0, -half : half + 1 : 1.0][:, :size, :size]
    t = math.radians(theta_degrees)
    xr = x * math.cos(t) + y * math.sin(t)
    yr = -x * math.sin(t) + y * math.cos(t)
    g = np.exp(-(xr**2 + (aspect * yr) ** 2) / (2 * sigma**2)) * np.cos(2 * math.pi * xr / wavelength)
    return g - g.mean()


def classic_filters(size: int = 3) -> dict:
    """The hand-made filters the learned ones are shown beside, all at ``size`` x ``size``:
    ``{"Sobel x", "Sobel y", "Gabor 0°", "Gabor 45°", "Gabor 90°", "Gabor 135°"}``.

    Example:
        >>> list(classic_filters(5))
        ['Sobel x', 'Sobel y', 'Gabor 0°', 'Gabor 45°', 'Gabor 90°', 'Gabor 135°']
    """
    sx, sy = sobel_kernels(size)
    bank = {"Sobel x": sx, "Sobel y": sy}
    for angle in (0, 45, 90, 135):
        bank[f"Gabor {angle}°"] = gabor_kernel(size, angle)
    return bank


def closest_filter(kernel: np.ndarray, bank: dict) -> tuple:
    """The hand-made filter of ``bank`` that ``kernel`` (2-D, same size) correlates with
    most, and the absolute correlation (sign ignored: a flipped edge detector is one too).

    Example:
        >>> closest_filter(-2 * sobel_kernels(3)[1], classic_filters(3))
        ('Sobel y', 1.0)
    """
    a = np.asarray(kernel, np.float64).ravel()
    a = a - a.mean()
    best, score = "", 0.0
    for name, f in bank.items():
        b = np.asarray(f, np.float64).ravel()
        b = b - b.mean()
        den = float(np.linalg.norm(a) * np.linalg.norm(b))
        r = abs(float(a @ b)) / den if den else 0.0
        if r > score + 1e-12:
            best, score = name, r
    return best, round(score, 6)


def first_conv(model):
    """The first ``Conv2D`` of ``model`` (the learned filters), or ``None``."""
    from edgecnn._tf import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D) and not isinstance(layer, keras.layers.Conv2DTranspose):
            return layer
    return None


def _kernel_image(kernel: np.ndarray) -> tuple:
    """A kernel (h, w, c) as something imshow draws, zero at mid-grey: RGB for 3 channels,
    else the sum over input channels in grey (its response to a grey image)."""
    peak = float(np.abs(kernel).max()) or 1.0
    if kernel.shape[-1] == 3:
        return np.clip(0.5 + 0.5 * kernel / peak, 0, 1), {}
    grey = kernel.sum(axis=-1)
    peak = float(np.abs(grey).max()) or 1.0
    return grey, {"cmap": "gray", "vmin": -peak, "vmax": peak}


def plot_filters(layer, path: Path) -> Path:
    """``filters.png``: the kernels of ``layer`` (a Conv2D) in rows of 8, each captioned with
    its closest hand-made filter, then the hand-made filters at the same size."""
    plt = pyplot()
    kernel = np.asarray(layer.get_weights()[0], np.float32)  # (kh, kw, in, out)
    kh, kw, cin, cout = kernel.shape
    shown = min(cout, MAX_FILTERS)
    size = max(3, kh)
    bank = classic_filters(size)
    cols = max(len(bank), min(8, shown))
    learned_rows = math.ceil(shown / cols)
    fig, axes = plt.subplots(learned_rows + 1, cols, figsize=(max(cols * 1.5, 10.0), (learned_rows + 1) * 1.75 + 1.1),
                             squeeze=False, layout="constrained")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_visible(False)
    for i in range(shown):
        ax = axes[i // cols][i % cols]
        ax.set_visible(True)
        k = kernel[..., i]
        img, kw_args = _kernel_image(k)
        ax.imshow(img, interpolation="nearest", **kw_args)
        grey = k.sum(axis=-1)
        name, r = closest_filter(grey, bank) if (kh, kw) == (size, size) else ("", 0.0)
        ax.set_title(f"#{i}" + (f"\n~{name} |r| {r:.2f}" if name else ""), fontsize=7)
    for j, (name, f) in enumerate(bank.items()):
        ax = axes[learned_rows][j]
        ax.set_visible(True)
        peak = float(np.abs(f).max()) or 1.0
        ax.imshow(f, cmap="gray", vmin=-peak, vmax=peak, interpolation="nearest")
        ax.set_title(name, fontsize=8)
        for side in ax.spines.values():
            side.set_edgecolor("tab:blue")
            side.set_linewidth(2)
    colour = "in colour (RGB, mid-grey = 0)" if cin == 3 else "in grey (summed over input channels, mid-grey = 0)"
    more = f", first {shown} of {cout}" if shown < cout else ""
    fig.suptitle(
        f"Learned: first convolution '{layer.name}', {cout} kernels {kh}x{kw}x{cin}{more}, {colour};\n"
        "each titled with the hand-made filter it correlates with most (|r| 1 = the same up to sign and scale)\n"
        f"Hand-made (blue frames, bottom row): Sobel x/y and even Gabor filters at 4 orientations, {size}x{size}",
        fontsize=9,
    )
    return save_png(fig, path)
