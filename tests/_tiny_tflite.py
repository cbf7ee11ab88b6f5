"""Tiny ``.tflite`` files for the device, bench and report tests (built once per module)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def build_tiny_models(folder) -> dict:
    """A 16x16x3 -> 4-class conv net as float32, int8 and dynamic-range ``.tflite`` files."""
    from edgecnn._tf import keras
    from edgecnn.tflite.convert import convert

    folder = Path(folder)
    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inp)
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(4, activation="softmax")(x)
    model = keras.Model(inp, out, name="tiny")
    rng = np.random.default_rng(0)
    calib = rng.uniform(-1, 1, (16, 1, 16, 16, 3)).astype(np.float32)

    def rep():
        for row in calib:
            yield [row]

    paths = {}
    for precision in ("float32", "int8", "dynamic"):
        paths[precision] = convert(
            model, folder / f"tiny_{precision}.tflite", precision, representative=rep if precision == "int8" else None
        )
    return paths


def tiny_npz(path, n: int = 12) -> Path:
    """Labelled 16x16 RGB images (uint8) with 4 classes in an ``.npz``."""
    rng = np.random.default_rng(1)
    np.savez(path, x=rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8), y=np.arange(n) % 4)
    return Path(path)
