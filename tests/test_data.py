import numpy as np
import pytest

from edgecnn.data.dataset import load_dataset
from edgecnn.errors import UserError


def test_digits_splits_are_stratified_and_disjoint(digits32):
    ds = digits32
    assert ds.num_classes == 10 and ds.input_shape == (32, 32, 3)
    sizes = {s: len(ds.y[s]) for s in ("train", "val", "test")}
    assert sum(sizes.values()) == 1797 and sizes["test"] == 360
    # stratified: every class present in every split, in proportion
    for s in ("train", "val", "test"):
        counts = np.bincount(ds.y[s], minlength=10)
        assert counts.min() > 0 and counts.max() / counts.min() < 1.5
    x = ds.normalized("train")
    assert x.dtype == np.float32 and x.min() >= -1.0 and x.max() <= 1.0


def test_splits_are_seeded():
    a = load_dataset("digits", image_size=32, channels=1, seed=3)
    b = load_dataset("digits", image_size=32, channels=1, seed=3)
    c = load_dataset("digits", image_size=32, channels=1, seed=4)
    assert np.array_equal(a.y["test"], b.y["test"]) and a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != c.fingerprint()
    assert a.input_shape == (32, 32, 1)


def test_representative_data_comes_from_training_split(digits32):
    gen = digits32.representative(samples=5)
    batches = list(gen())
    assert len(batches) == 5 and batches[0][0].shape == (1, 32, 32, 3)
    train = digits32.normalized("train")
    for (sample,) in batches:
        assert np.any(np.all(np.isclose(train, sample[0]), axis=(1, 2, 3)))


def test_image_folder(image_folder):
    ds = load_dataset(str(image_folder), image_size=16, channels=3, val_split=0.1, test_split=0.25)
    assert ds.class_names == ["blue", "green", "red"]
    assert ds.input_shape == (16, 16, 3) and sum(len(ds.y[s]) for s in ds.y) == 24
    # pixel colours survive: a "red" image has its red channel high
    red = ds.x["train"][ds.y["train"] == 2]
    assert red[..., 0].mean() > 150 and red[..., 2].mean() < 10


def test_npz_and_pickle_refused(tmp_path):
    x = np.random.default_rng(0).random((40, 8, 8))
    y = np.arange(40) % 4
    np.savez(tmp_path / "ok.npz", x=x, y=y, class_names=np.array(["a", "b", "c", "d"]))
    ds = load_dataset(str(tmp_path / "ok.npz"), image_size=8, channels=1)
    assert ds.class_names == ["a", "b", "c", "d"] and ds.x["train"].dtype == np.uint8
    np.savez(tmp_path / "bad.npz", x=np.array([object()] * 3, dtype=object), y=np.arange(3))
    with pytest.raises(UserError, match="pickled"):
        load_dataset(str(tmp_path / "bad.npz"))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p / "missing", "not found"),
        (lambda p: (p / "empty").mkdir() or p / "empty", "no class subfolders"),
        (lambda p: (p / "e" / "cat").mkdir(parents=True) or p / "e", "has no images"),
        (lambda p: (p / "t.npz").write_bytes(b"garbage") and p / "t.npz", "not a valid .npz"),
    ],
    ids=["missing", "no-classes", "empty-class", "corrupt-npz"],
)
def test_bad_sources_give_one_line(tmp_path, make, message):
    with pytest.raises(UserError, match=message) as info:
        load_dataset(str(make(tmp_path)))
    assert "\n" not in str(info.value)


def test_unreadable_image_names_the_file(image_folder):
    bad = image_folder / "red" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(UserError, match="broken.jpg"):
        load_dataset(str(image_folder), image_size=16)


def test_write_split_images_all_is_every_digit_at_the_given_size(tmp_path):
    """``split="all"`` (benchmarks/int8_drop.py's PNG folder): every digit, unsplit, in scikit-learn's order,
    the in-memory source's pixels at the size and channels asked for; without a run, a split needs one."""
    from PIL import Image

    from edgecnn.data.dataset import write_split_images

    n = write_split_images(None, tmp_path / "all", "all", image_size=16, channels=3)
    ref = load_dataset("digits", image_size=16, channels=3, val_split=0.0, test_split=0.0)
    assert n == 1797 == len(ref.y["train"])
    files = sorted((tmp_path / "all").glob("*/*.png"))
    assert len(files) == 1797 and sorted({f.parent.name for f in files}) == [str(i) for i in range(10)]
    for i in (0, 1, 900, 1796):
        img = np.asarray(Image.open(tmp_path / "all" / str(ref.y["train"][i]) / f"{i:04d}.png"))
        assert img.shape == (16, 16, 3) and np.array_equal(img, ref.x["train"][i])
    with pytest.raises(ValueError, match="needs the run"):
        write_split_images(None, tmp_path / "x", "test", image_size=16, channels=3)
    with pytest.raises(ValueError, match="image_size and channels"):
        write_split_images(None, tmp_path / "x", "all")
