"""Shared fixtures: small datasets and image folders made on the fly (no downloads)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def digits32():
    """The built-in digits at 32x32x3 (the default for most models)."""
    from edgecnn.data import load_dataset

    return load_dataset("digits", image_size=32, channels=3)


@pytest.fixture()
def image_folder(tmp_path):
    """A tiny image folder: 3 classes x 8 PNGs of distinct colours."""
    from PIL import Image

    root = tmp_path / "photos"
    rng = np.random.default_rng(0)
    for c, name in enumerate(["red", "green", "blue"]):
        (root / name).mkdir(parents=True)
        for i in range(8):
            img = np.zeros((20, 24, 3), np.uint8)
            img[..., c] = 200 + rng.integers(0, 50)
            Image.fromarray(img).save(root / name / f"{i}.png")
    return root
