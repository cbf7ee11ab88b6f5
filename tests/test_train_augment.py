"""The shift(+flip) augmentation: built from slices, the very pixels of the tf.image composition it replaces."""

import numpy as np
import pytest

from edgecnn._tf import tf
from edgecnn.train import _augment_fn


def _reference(kind, image_shape, seed):
    """What the augmentation was: symmetric padding by 1/16 of the size, a stateless random crop
    back to the size, then (shift_flip) a stateless random left-right flip."""
    h, w, c = image_shape
    pad_h, pad_w = max(1, h // 16), max(1, w // 16)

    def augment(x, k):
        s = tf.stack([tf.cast(seed, tf.int64), tf.cast(k, tf.int64)])
        x = tf.pad(x, [[pad_h, pad_h], [pad_w, pad_w], [0, 0]], mode="SYMMETRIC")
        x = tf.image.stateless_random_crop(x, [h, w, c], seed=s)
        return tf.image.stateless_random_flip_left_right(x, seed=s + 1) if kind == "shift_flip" else x

    return augment


@pytest.mark.parametrize("shape", [(8, 8, 1), (24, 24, 3), (224, 224, 3), (17, 40, 1), (1, 1, 3)])
@pytest.mark.parametrize("kind", ["shift", "shift_flip"])
def test_same_pixels_as_pad_crop_flip(shape, kind):
    rng = np.random.default_rng(0)
    ours, reference = _augment_fn(kind, shape, 7), _reference(kind, shape, 7)
    for dtype in (np.float32, np.uint8):
        x = tf.constant(rng.integers(0, 255, shape).astype(dtype))
        shifts = set()
        for k in range(0, 600, 20):
            got = ours(x, tf.constant(3), tf.constant(k, tf.int64))
            assert int(got[1]) == 3  # the label passes through
            want = reference(x, tf.constant(k, tf.int64)).numpy()
            assert got[0].dtype == x.dtype and np.array_equal(got[0].numpy(), want), (dtype, k)
            shifts.add(want.tobytes())
        assert len(shifts) > 5 or shape[0] * shape[1] == 1  # the draws do move the image


def test_the_static_shape_is_kept_in_a_pipeline():
    """Inside tf.data (graph mode) the shifted image keeps its static shape (the slices' sizes are
    dynamic), so the pipeline can batch it and build its end-of-pass marker."""
    augment = _augment_fn("shift_flip", (24, 24, 3), 0)
    ds = tf.data.Dataset.range(4).map(lambda k: augment(tf.zeros((24, 24, 3)), k, k))
    assert ds.element_spec[0].shape == (24, 24, 3)
