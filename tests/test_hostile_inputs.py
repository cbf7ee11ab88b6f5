"""Hostile and faulty inputs to the data loaders and the evaluator (issue 15, items 3-9).

Budgets before work (image pixels, ``.npz`` sizes, class counts, links out of the data
folder), labels matched by class name, models the evaluator cannot judge, value ranges of
``.npz`` images, 16-bit and transparent images, NaN settings, and byte flips of a
``.tflite`` run through the benchmark child. Each CLI case asserts the exit code, exactly
one line on stderr, no traceback, and that no file changed in the folder it ran in.
"""

from __future__ import annotations

import io
import json
import os
import struct
import tempfile
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgecnn.errors import UserError

# ----------------------------------------------------------------------------- helpers


def snapshot(root: Path) -> dict:
    """``{path: (size, mtime)}`` of every entry under ``root`` (links not followed)."""
    state = {}
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in dirs + files:
            path = Path(folder) / name
            st_ = path.lstat()
            state[str(path)] = (st_.st_size, st_.st_mtime_ns)
    return state


def invoke(args, cwd: Path, device: bool = False):
    """Run ``edgecnn`` (or ``edgecnn-device``) in this process, in ``cwd``."""
    from edgecnn.cli import main
    from edgecnn.device.cli import main as device_main

    before = Path.cwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(device_main if device else main, [str(a) for a in args])
    finally:
        os.chdir(before)


def refused(args, cwd: Path, *words, device: bool = True) -> str:
    """Run the CLI on ``args``: exit 2, one ``error:`` line naming ``words``, nothing changed."""
    state = snapshot(cwd)
    res = invoke(args, cwd, device=device)
    lines = res.stderr.splitlines()
    assert res.exit_code == 2, (res.exit_code, res.stderr, res.stdout, res.exception)
    assert isinstance(res.exception, SystemExit), res.exception  # not an uncaught exception
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert snapshot(cwd) == state, "a refused command changed files"
    return lines[0]


def png_declaring(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header declares ``width`` x ``height`` (its pixel data is short)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    blob = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 1024))
    path.write_bytes(blob + chunk(b"IEND", b""))
    return path


def npy_bytes(shape, descr: str = "|u1", payload: bytes = b"") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": tuple(shape)})
    return buf.getvalue() + payload


def npz_declaring(path: Path, shape, payload: int, compress: bool) -> Path:
    """An ``.npz`` whose ``x`` declares ``shape`` uint8 but holds ``payload`` zero bytes."""
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", method) as z:
        z.writestr("x.npy", npy_bytes(shape, payload=b"\0" * payload))
        y = io.BytesIO()
        np.save(y, np.zeros(4, np.int64))
        z.writestr("y.npy", y.getvalue())
    return path


def image_folder(root: Path, classes=("0", "1", "2", "3"), per_class=3, size=16) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


def weights(shape, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.5, shape).astype(np.float32)


def image_spec(shape=(16, 16, 3), dtype=None):
    from edgecnn._tf import tf

    return tf.TensorSpec([None, *shape], dtype or tf.float32)


def to_tflite(fn, specs, path: Path, trackable=None) -> Path:
    """A ``.tflite`` of a TF function (``trackable``: the Keras model it calls), converted
    from its concrete function: a fraction of the time of a Keras model's conversion."""
    from edgecnn._tf import tf

    concrete = tf.function(fn, input_signature=specs).get_concrete_function()
    path.write_bytes(tf.lite.TFLiteConverter.from_concrete_functions([concrete], trackable).convert())
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 16x16x3 -> 4-class float32 model, with a preprocess.json naming classes 0..3."""
    from edgecnn._tf import tf

    folder = tmp_path_factory.mktemp("tiny")
    kernel, dense = weights((3, 3, 3, 8)), weights((8, 4))

    def tiny_net(x):
        return tf.nn.softmax(tf.reduce_mean(tf.nn.relu(tf.nn.conv2d(x, kernel, 2, "VALID")), [1, 2]) @ dense)

    path = to_tflite(tiny_net, [image_spec()], folder / "tiny.tflite")
    spec = {"image_size": [16, 16], "channels": 3, "scale": 1 / 127.5, "offset": -1.0, "class_names": list("0123")}
    (folder / "preprocess.json").write_text(json.dumps(spec))
    return path


@pytest.fixture
def work(tmp_path, monkeypatch):
    """A folder to run ``eval`` in, for the data cases: without the child-process probe of
    the model (a good one here; the probe has its own tests below), which saves a child
    process per case."""
    import edgecnn.cli.tflite
    import edgecnn.device.cli

    for module in (edgecnn.device.cli, edgecnn.cli.tflite):
        monkeypatch.setattr(module, "probe_in_child", lambda *args, **kwargs: None)
    return tmp_path


# ----------------------------------------------------------------------------- images: budgets


@pytest.mark.parametrize(
    "width, height, words",
    [
        (20_000, 10_000, "decompression bomb"),  # 200 Mpx: Pillow's own error, as one line
        (12_000, 10_000, "decompression bomb"),  # 120 Mpx: Pillow's warning, made an error
        (7_000, 6_000, "over the limit of 40,000,000"),  # 42 Mpx: edgecnn's budget
    ],
)
def test_images_over_the_pixel_budget_are_refused_before_decoding(tiny, work, width, height, words):
    image_folder(work / "data")
    png_declaring(work / "data" / "1" / "huge.png", width, height)
    start = time.perf_counter()
    refused(["eval", tiny, "--data", work / "data"], work, "huge.png", words)
    assert time.perf_counter() - start < 10  # nothing was decoded


def test_pixel_budget_applies_without_pillows_limit(tmp_path, monkeypatch):
    """With Pillow's own limit lifted, edgecnn's budget still refuses from the header."""
    from PIL import Image

    from edgecnn.device.preprocess import ImageError, load_image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    path = png_declaring(tmp_path / "big.png", 20_000, 10_000)
    with pytest.raises(ImageError, match=r"big.png declares 20000x10000 = 200,000,000 pixels"):
        load_image(path, (16, 16), 3)


# ----------------------------------------------------------------------------- images: conversions


@pytest.mark.parametrize("mode", ["I;16", "I"])
def test_16_bit_images_are_scaled_to_8_bits(tmp_path, mode):
    from PIL import Image

    from edgecnn.device.preprocess import _eight_bit, load_image

    values = np.array([[0, 256, 32768, 65535]], dtype=np.uint16 if mode == "I;16" else np.int32)
    img = Image.fromarray(values.repeat(4, axis=0))
    assert img.mode == mode
    if mode == "I;16":  # a 16-bit grey PNG opens as I;16
        img.save(tmp_path / "deep.png")
        got = load_image(tmp_path / "deep.png", (4, 4), 1)[0, :, 0]
    else:  # 32-bit "I" (other formats; Pillow does not write it as PNG)
        got = np.asarray(_eight_bit(img))[0]
    assert list(got) == [0, 1, 128, 255]


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparency_is_composited_on_white(tmp_path, mode):
    from PIL import Image

    from edgecnn.device.preprocess import load_image

    if mode == "RGBA":
        arr = np.zeros((4, 4, 4), np.uint8)  # black, fully transparent
        arr[:, 2:] = (255, 0, 0, 128)  # red, half transparent
        img = Image.fromarray(arr, "RGBA")
    elif mode == "LA":
        arr = np.zeros((4, 4, 2), np.uint8)
        arr[:, 2:] = (255, 128)
        img = Image.fromarray(arr, "LA")
    else:
        img = Image.new("P", (4, 4), 0)
        img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
        img.paste(1, (2, 0, 4, 4))
        img.info["transparency"] = 0
    img.save(tmp_path / "alpha.png")
    rgb = load_image(tmp_path / "alpha.png", (4, 4), 3)
    assert (rgb[:, :2] == 255).all(), rgb[0, 0]  # transparent: white, not black
    if mode == "RGBA":
        assert tuple(rgb[0, 3]) == (255, 127, 127)
    if mode == "P":
        assert tuple(rgb[0, 3]) == (255, 0, 0)


def test_four_channel_arrays_are_composited_on_white():
    from edgecnn.device.preprocess import resize_batch

    x = np.zeros((1, 2, 2, 4), np.uint8)
    assert (resize_batch(x, (2, 2), 3) == 255).all() and (resize_batch(x, (2, 2), 1) == 255).all()


# ----------------------------------------------------------------------------- folders


def test_hidden_folders_are_skipped(tmp_path):
    from edgecnn.device.evaluate import load_labelled

    root = image_folder(tmp_path / "data")
    image_folder(root / ".ipynb_checkpoints", classes=("x",))  # a hidden class folder
    image_folder(root / "0", classes=(".ipynb_checkpoints",))  # hidden folder inside a class
    (root / "1" / ".hidden.png").write_bytes((root / "1" / "0.png").read_bytes())
    x, y, names = load_labelled(root, (16, 16), 3)
    assert names == list("0123") and len(y) == 12 and np.bincount(y).tolist() == [3, 3, 3, 3]


@pytest.mark.parametrize("what", ["class folder", "image", "subfolder", "test split"])
def test_links_out_of_the_data_folder_are_refused(tiny, work, what):
    outside = image_folder(work / "outside", classes=("2",))
    root = image_folder(work / "data", classes=("0", "1"))
    if what == "class folder":
        (root / "2").symlink_to(outside / "2")
    elif what == "image":
        (root / "1" / "linked.png").symlink_to(outside / "2" / "0.png")
    elif what == "subfolder":
        (root / "1" / "more").symlink_to(outside / "2")
    else:
        (work / "split").mkdir()
        (work / "split" / "test").symlink_to(root)
        root = work / "split"
    refused(["eval", tiny, "--data", root], work, "outside the data folder")


def test_links_inside_the_data_folder_are_followed_once(tmp_path):
    from edgecnn.device.evaluate import load_labelled

    root = image_folder(tmp_path / "data", classes=("0", "1"))
    (root / "1" / "same").symlink_to(root / "1")  # a loop: read once
    (root / "0" / "alias.png").symlink_to(root / "1" / "0.png")
    x, y, names = load_labelled(root, (16, 16), 3)
    assert np.bincount(y).tolist() == [4, 3]


# ----------------------------------------------------------------------------- .npz: budgets and values


@pytest.mark.parametrize(
    "shape, payload, compress, words",
    [
        ((1_000, 1_000, 1_000), 1 << 20, True, "refused as a zip bomb"),  # 1 GB declared, 1 MB of zeros
        ((10**6, 10**6), 0, False, "may hold 2,147,483,648 bytes in all"),  # 10^12 bytes declared
    ],
)
def test_npz_declared_sizes_are_checked_before_loading(tiny, work, shape, payload, compress, words):
    npz_declaring(work / "bomb.npz", shape, payload, compress)
    refused(["eval", tiny, "--data", work / "bomb.npz"], work, "bomb.npz", words)


def test_npz_budget_in_training_data_too(tmp_path):
    from edgecnn.data.dataset import load_dataset

    npz_declaring(tmp_path / "bomb.npz", (1_000, 1_000, 1_000), 1 << 20, True)
    with pytest.raises(UserError, match="zip bomb"):
        load_dataset(str(tmp_path / "bomb.npz"))


def test_npz_object_arrays_are_refused_from_the_header(tmp_path):
    from edgecnn.device.arrays import read_npz

    with zipfile.ZipFile(tmp_path / "obj.npz", "w") as z:
        z.writestr("x.npy", npy_bytes((3,), descr="|O", payload=b"\x80\x04junk"))
    with pytest.raises(UserError, match="pickled Python objects"):
        read_npz(tmp_path / "obj.npz")


def npy_long_header(dims: int = 5_000) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_2_0(buf, {"descr": "<f4", "fortran_order": False, "shape": (1,) * dims})
    return buf.getvalue()


@pytest.mark.parametrize(
    "blob, words",
    [
        (npy_bytes((10**6, 10**6), descr="<f4"), "may hold 2,147,483,648 bytes"),  # 4 * 10^12 bytes declared
        (npy_long_header(), "no valid .npy header"),  # a header over numpy's 10,000-byte limit for untrusted files
        (npy_bytes((3,), descr="|O", payload=b"\x80\x04junk"), "pickled Python objects"),
    ],
    ids=["declared-size", "header-size", "objects"],
)
@pytest.mark.parametrize("device", [False, True], ids=["edgecnn", "edgecnn-device"])
def test_bench_input_npy_is_held_to_the_npz_budget(tiny, tmp_path, blob, words, device):
    """``bench --input x.npy``: the budget of ``.npz`` data, checked from the header before any
    child process starts; over it, one ``error:`` line and exit 2."""
    (tmp_path / "x.npy").write_bytes(blob)
    refused(["bench", tiny, "--input", tmp_path / "x.npy", "--runs", "2"], tmp_path, "x.npy", words, device=device)


def rng_images(n=8, dtype=np.float32, low=0.0, high=1.0):
    return np.random.default_rng(0).uniform(low, high, (n, 16, 16, 3)).astype(dtype)


NPZ_CASES = {
    "float in [-1, 1]": (dict(x=rng_images(low=-1, high=1), y=np.arange(8) % 4), "found [-0.9"),
    "float in 0..255": (dict(x=rng_images(high=255), y=np.arange(8) % 4), "must hold values in [0, 1]"),
    "float 1.01": (dict(x=np.full((8, 16, 16, 3), 1.01, np.float32), y=np.arange(8) % 4), "found [1.01, 1.01]"),
    "uint16": (dict(x=np.full((8, 16, 16, 3), 40000, np.uint16), y=np.arange(8) % 4), "uint16 images"),
    "NaN pixels": (dict(x=np.full((8, 16, 16, 3), np.nan, np.float32), y=np.arange(8) % 4), "NaN"),
    "y shorter": (dict(x_test=rng_images(), y_test=np.arange(7) % 4), "8 images but 7 labels"),
    "y longer": (dict(x=rng_images(), y=np.arange(9) % 4), "8 images but 9 labels"),
    "label 10^12": (dict(x=rng_images(), y=np.array([0, 1, 2, 3, 0, 1, 2, 10**12])), "found 0..1000000000000"),
    "negative label": (dict(x=rng_images(), y=np.array([0, 1, 2, 3, 0, 1, 2, -1])), "found -1..3"),
    "fractional label": (dict(x=rng_images(), y=np.arange(8) / 2), "whole numbers"),
    "2-D labels": (dict(x=rng_images(), y=np.zeros((8, 2), np.int64)), "1-D array"),
    "10,001 class names": (
        dict(x=rng_images(), y=np.arange(8) % 4, class_names=np.array([str(i) for i in range(10_001)])),
        "at most 10,000",
    ),
    "channels first": (dict(x=rng_images().transpose(0, 3, 1, 2), y=np.arange(8) % 4), "channels last"),
    "bool images": (dict(x=np.zeros((8, 16, 16), bool), y=np.arange(8) % 4), "dtype bool"),
}


@pytest.mark.parametrize("case", list(NPZ_CASES))
def test_npz_values_outside_the_convention_are_refused(tiny, work, case):
    arrays, words = NPZ_CASES[case]
    np.savez(work / "data.npz", **arrays)
    refused(["eval", tiny, "--data", work / "data.npz"], work, "data.npz", words)


@pytest.mark.parametrize("case", ["float in [-1, 1]", "y shorter", "label 10^12", "10,001 class names"])
def test_npz_values_are_checked_for_training_too(tmp_path, case):
    from edgecnn.data.dataset import load_dataset

    arrays, words = NPZ_CASES[case]
    if "x_test" in arrays:  # the train/test layout: a short y_test next to a good train split
        arrays = dict(arrays, x_train=rng_images(), y_train=np.arange(8) % 4)
    np.savez(tmp_path / "data.npz", **arrays)
    with pytest.raises(UserError, match=words.replace("[", r"\[").replace("^", r"\^")) as info:
        load_dataset(str(tmp_path / "data.npz"), image_size=16)
    assert "\n" not in str(info.value)


def test_float_images_at_one_plus_rounding_keep_their_values():
    """One pixel at 1.0001 (rounding) is white, and the others keep their grey levels."""
    from edgecnn.device.arrays import images_to_uint8

    x = np.full((2, 4, 4), 0.5, np.float32)
    x[0, 0, 0] = 1.0001
    got = images_to_uint8(x, "x")
    assert got[0, 0, 0] == 255 and (got.reshape(-1)[1:] == 128).all()


# ----------------------------------------------------------------------------- labels by name


@pytest.fixture(scope="module")
def lenet_digits(tmp_path_factory):
    """LeNet-5 trained briefly on digits, exported as float32 with its preprocess.json, and
    the digits test split as PNG folders with and without the 3s."""
    from PIL import Image

    from edgecnn._tf import keras
    from edgecnn.data.dataset import load_dataset
    from edgecnn.models import create_model

    folder = tmp_path_factory.mktemp("lenet")
    ds = load_dataset("digits", image_size=32, channels=1)
    keras.utils.set_random_seed(0)
    model = create_model("lenet5", input_shape=(32, 32, 1), classes=10)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    model.fit(ds.normalized("train"), ds.y["train"], epochs=1, batch_size=16, verbose=0)
    path = to_tflite(model, [image_spec((32, 32, 1))], folder / "lenet5.tflite", model)
    (folder / "preprocess.json").write_text(json.dumps(ds.preprocess))
    for name, skip in (("all", None), ("no3", 3)):
        for i, (img, label) in enumerate(zip(ds.x["test"], ds.y["test"])):
            if label != skip:
                (folder / name / str(label)).mkdir(parents=True, exist_ok=True)
                Image.fromarray(img[..., 0]).save(folder / name / str(label) / f"{i}.png")
    return path, folder


def eval_json(args, cwd, device=True) -> dict:
    res = invoke([*args, "--json"], cwd, device=device)
    assert res.exit_code == 0, (res.stderr, res.exception)
    return json.loads(res.stdout[res.stdout.index("{") :])


@pytest.mark.parametrize("device", [True, False], ids=["edgecnn-device", "edgecnn"])
def test_a_class_missing_from_the_folder_keeps_its_index(lenet_digits, tmp_path, device):
    """Before: labels by folder position gave 31.2% instead of 83.7% without the 3s."""
    path, folder = lenet_digits
    extra = [] if device else ["--split", "all"]
    full = eval_json(["eval", path, "--data", folder / "all", *extra], tmp_path, device)
    no3 = eval_json(["eval", path, "--data", folder / "no3", *extra], tmp_path, device)
    full_conf, no3_conf = np.array(full["confusion"]), np.array(no3["confusion"])
    assert full_conf.shape == no3_conf.shape == (10, 10) and no3["classes"] == [str(i) for i in range(10)]
    keep = [i for i in range(10) if i != 3]
    assert (full_conf[keep] == no3_conf[keep]).all()  # the same per-class results
    assert no3_conf[3].sum() == 0 and full_conf[3].sum() > 0
    assert full["accuracy"] > 0.7, full["accuracy"]
    assert no3["accuracy"] == pytest.approx(np.trace(full_conf[keep][:, keep]) / full_conf[keep].sum())


def test_a_folder_naming_an_unknown_class_is_refused(lenet_digits, tmp_path):
    import shutil

    path, folder = lenet_digits
    shutil.copytree(folder / "no3", tmp_path / "data")
    (tmp_path / "data" / "2").rename(tmp_path / "data" / "two")
    refused(["eval", path, "--data", tmp_path / "data"], tmp_path, "class(es) 'two'", "does not know")
    refused(["eval", path, "--data", tmp_path / "data", "--split", "all"], tmp_path, "'two'", device=False)


def test_npz_class_names_are_matched_by_name(tiny, tmp_path):
    x = rng_images(n=6, dtype=np.uint8, high=255)
    np.savez(tmp_path / "named.npz", x=x, y=np.array([0, 1, 0, 1, 0, 1]), class_names=np.array(["3", "1"]))
    np.savez(tmp_path / "bare.npz", x=x, y=np.array([3, 1, 3, 1, 3, 1]))
    named = eval_json(["eval", tiny, "--data", tmp_path / "named.npz"], tmp_path)
    bare = eval_json(["eval", tiny, "--data", tmp_path / "bare.npz"], tmp_path)
    assert named["confusion"] == bare["confusion"] and np.array(named["confusion"])[[1, 3]].sum() == 6
    np.savez(tmp_path / "big.npz", x=x, y=np.array([0, 1, 2, 3, 4, 5]))
    refused(["eval", tiny, "--data", tmp_path / "big.npz"], tmp_path, "labels up to 5", "scores 4 classes")


def test_preprocess_json_that_does_not_fit_the_model_is_refused(tiny, tmp_path):
    image_folder(tmp_path / "data")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"class_names": list("012")}))
    refused(["eval", tiny, "--data", tmp_path / "data", "--preprocess", spec], tmp_path, "scores 4 classes")
    spec.write_text('{"scale": NaN}')
    refused(["eval", tiny, "--data", tmp_path / "data", "--preprocess", spec], tmp_path, "finite number")
    spec.write_text("{not json")
    refused(["eval", tiny, "--data", tmp_path / "data", "--preprocess", spec], tmp_path, "not valid JSON", device=False)


# ----------------------------------------------------------------------------- models the evaluator cannot judge


def _odd_models() -> dict:
    """``{case: (function, input specs)}`` of models the evaluator cannot judge."""
    from edgecnn._tf import tf

    def scores(x, n=4):
        return tf.nn.softmax(tf.reduce_mean(x, [1, 2]) @ weights((3, n)))

    return {
        "two inputs": (
            lambda a, b: tf.nn.softmax(tf.concat([tf.reduce_mean(a, [1, 2]), b], 1) @ weights((7, 4))),
            [image_spec(), tf.TensorSpec([None, 4], tf.float32)],
        ),
        "flat input": (lambda a: tf.nn.softmax(a @ weights((48, 4))), [tf.TensorSpec([None, 48], tf.float32)]),
        "channels first": (
            lambda a: tf.nn.softmax(tf.reshape(a, [-1, 768]) @ weights((768, 4))),
            [image_spec((3, 16, 16))],
        ),
        "int32 input": (lambda a: scores(tf.cast(a, tf.float32)), [image_spec(dtype=tf.int32)]),
        "4-D output": (lambda a: tf.nn.conv2d(a, weights((3, 3, 3, 4)), 1, "SAME"), [image_spec()]),
        "two outputs": (lambda a: (scores(a), scores(a, 2)), [image_spec()]),
        "one score": (lambda a: tf.sigmoid(tf.reduce_mean(a, [1, 2]) @ weights((3, 1))), [image_spec()]),
    }


ODD_WORDS = {
    "two inputs": "has 2 inputs",
    "flat input": "needs an image model (N, H, W, C)",
    "channels first": "channels first (NCHW)",
    "int32 input": "its input is int32",
    "4-D output": "output of shape [1, 16, 16, 4]",
    "two outputs": "has 2 outputs",
    "one score": "output of shape [1, 1]",
}


@pytest.fixture(scope="module")
def odd_models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("odd")
    return {
        name: to_tflite(fn, specs, folder / (name.replace(" ", "_") + ".tflite"))
        for name, (fn, specs) in _odd_models().items()
    }


@pytest.mark.parametrize("case", list(ODD_WORDS))
def test_models_the_evaluator_cannot_judge_are_refused(odd_models, tmp_path, case):
    image_folder(tmp_path / "data")
    refused(["eval", odd_models[case], "--data", tmp_path / "data"], tmp_path, ODD_WORDS[case])


@pytest.mark.parametrize("case", ["two inputs", "channels first", "4-D output"])
def test_edgecnn_eval_refuses_them_too(odd_models, tmp_path, case):
    image_folder(tmp_path / "data")
    refused(["eval", odd_models[case], "--data", tmp_path / "data"], tmp_path, ODD_WORDS[case], device=False)


def test_the_python_api_refuses_them_too(odd_models):
    from edgecnn.device.evaluate import NotEvaluable, evaluate_tflite

    with pytest.raises(NotEvaluable, match="output of shape"):
        evaluate_tflite(odd_models["4-D output"], np.zeros((2, 16, 16, 3), np.float32), np.zeros(2, np.int64))


def test_nchw_is_named_from_preprocess_channels(odd_models, tmp_path):
    """(1, 3, 16, 16) with preprocess.json saying 3 channels: channels first, not an accuracy."""
    image_folder(tmp_path / "data")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"channels": 3}))
    args = ["eval", odd_models["channels first"], "--data", tmp_path / "data", "--preprocess", spec]
    refused(args, tmp_path, "channels first")


# ----------------------------------------------------------------------------- settings: aliases, NaN, threads


def alias_bomb(levels: int = 9, under_vars: bool = False) -> str:
    """A mapping "billion laughs": 9 levels of 9 aliases each (~800 bytes, 9^9 nodes)."""
    lines = ["l0: &l0 {" + ", ".join(f"k{i}: x" for i in range(9)) + "}"]
    for level in range(1, levels):
        lines.append(f"l{level}: &l{level} {{" + ", ".join(f"k{i}: *l{level - 1}" for i in range(9)) + "}")
    body = "\n".join(lines) + "\n"
    if under_vars:
        return "vars:\n" + "".join("  " + line + "\n" for line in body.splitlines()) + "model: {name: lenet5}\n"
    return body + "model: {name: lenet5}\n"


@pytest.mark.parametrize("under_vars", [False, True], ids=["top", "vars"])
def test_yaml_alias_bomb_is_refused_quickly_even_with_check(tmp_path, under_vars):
    recipe = tmp_path / "bomb.yaml"
    recipe.write_text(alias_bomb(under_vars=under_vars))
    assert recipe.stat().st_size < 1000
    start = time.perf_counter()
    refused(["run", recipe, "--check"], tmp_path, "bomb.yaml", device=False)
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize(
    "section, key, value",
    [
        ("train", "warmup_epochs", ".nan"),
        ("train", "weight_decay", ".inf"),
        ("train", "learning_rate", ".nan"),
        ("bench", "timeout", ".inf"),
        ("bench", "threads", "100000"),
    ],
)
def test_nan_inf_and_huge_thread_counts_in_recipes_are_refused(tmp_path, section, key, value):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"model: {{name: lenet5}}\n{section}:\n  {key}: {value}\n")
    refused(["run", recipe, "--check"], tmp_path, key, device=False)


@pytest.mark.parametrize("key, value", [("temperature", ".nan"), ("mixup", ".inf")])
def test_nan_in_stage_settings_is_refused(tmp_path, key, value):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"model: {{name: lenet5}}\nstages:\n  - distill: {{teacher: lenet5, {key}: {value}}}\n")
    refused(["run", recipe, "--check"], tmp_path, key, device=False)


@pytest.mark.parametrize(
    "flag, value, words",
    [("--temperature", "nan", "temperature"), ("--lr", "inf", "learning_rate"), ("--threads", "100000", "1<=x<=256")],
)
def test_nan_and_huge_values_on_the_command_line_are_refused(tmp_path, flag, value, words):
    args = ["optimize", "lenet5", "--distill-from", "lenet5", flag, value, "--epochs", "1", "--no-bench"]
    refused([*args, "--out", tmp_path / "run"], tmp_path, words, device=False)
    assert not (tmp_path / "run").exists()


def test_an_empty_recipe_is_refused(tmp_path):
    (tmp_path / "empty.yaml").write_text("# nothing\n")
    refused(["run", tmp_path / "empty.yaml", "--check"], tmp_path, "empty.yaml", device=False)


# ----------------------------------------------------------------------------- fuzzing the child


# Derandomized: the same 20 flipped files each run (some reach the child, the others are
# refused by the flatbuffer check first), so the suite's cost and outcome do not vary.
FUZZ = settings(
    max_examples=20, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(flips=st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 7)), min_size=1, max_size=12))
def test_byte_flips_in_a_tflite_never_crash_the_parent(tiny, flips):
    """Random bit flips through the benchmark child (as ``edgecnn bench`` and ``eval`` do):
    a result or a one-line failure (error, crashed, timeout), never a crash of this process."""
    from edgecnn.device.bench import benchmark

    data = bytearray(Path(tiny).read_bytes())
    for pos, bit in flips:
        data[pos % len(data)] ^= 1 << bit
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "flipped.tflite"
        path.write_bytes(bytes(data))
        result = benchmark(path, warmup=0, runs=1, timeout=60)
    assert result["status"] in ("ok", "error", "crashed", "timeout"), result
    if result["status"] != "ok":
        error = result["error"]
        assert isinstance(error, str) and error.strip() and "\n" not in error.strip(), error
        assert "Traceback" not in error


def test_a_crash_in_the_child_is_one_line(tiny, tmp_path, monkeypatch):
    """A runtime that dies with SIGSEGV in the child: ``bench`` and ``eval`` say so on one line."""
    import sys

    from edgecnn.device import bench

    crash = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"]
    monkeypatch.setattr(bench, "child_command", lambda module="edgecnn.device.bench": crash)
    result = bench.benchmark(tiny, warmup=0, runs=1, timeout=60)
    assert result["status"] == "crashed" and result["error"] == "the runtime crashed (SIGSEGV) running this model"
    image_folder(tmp_path / "data")
    refused(["bench", tiny, "--runs", "1"], tmp_path, "crashed with 1 thread(s)", "SIGSEGV", device=False)
    refused(["eval", tiny, "--data", tmp_path / "data"], tmp_path, "crashed", "SIGSEGV", device=False)
    refused(["eval", tiny, "--data", tmp_path / "data"], tmp_path, "crashed", "SIGSEGV", device=True)


def test_a_given_test_split_without_a_class_keeps_its_indices(tmp_path):
    """train/ defines the classes; test/ without class 1 keeps class 2 at index 2."""
    from edgecnn.data.dataset import load_dataset

    image_folder(tmp_path / "data" / "train", classes=("0", "1", "2"), per_class=4)
    image_folder(tmp_path / "data" / "test", classes=("0", "2"), per_class=2)
    ds = load_dataset(str(tmp_path / "data"), image_size=16, val_split=0.25)
    assert ds.class_names == ["0", "1", "2"] and sorted(ds.y["test"].tolist()) == [0, 0, 2, 2]
    image_folder(tmp_path / "data" / "test", classes=("9",), per_class=1)
    with pytest.raises(UserError, match=r"has classes \['9'\] that .*train lacks"):
        load_dataset(str(tmp_path / "data"), image_size=16)
