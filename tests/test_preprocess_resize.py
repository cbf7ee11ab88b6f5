"""``--resize bilinear``: Keras' resize (no antialiasing), the same bits in training and on the device."""

import json

import numpy as np
import pytest

from edgecnn.device.preprocess import DataError, bilinear_resize, load_image, normalize, read_spec, resize_batch


@pytest.mark.parametrize(
    "shape, size",
    [
        ((256, 256, 3), (224, 224)),
        ((8, 8, 1), (32, 32)),
        ((1, 1, 3), (5, 7)),
        ((37, 91, 3), (224, 160)),
        ((500, 333, 1), (96, 96)),
        ((17, 1024, 3), (224, 224)),
        ((224, 224, 3), (224, 224)),
    ],
)
def test_numpy_twin_is_tensorflows_resize_bit_for_bit(shape, size):
    from edgecnn._tf import tf

    rng = np.random.default_rng(sum(shape))
    image = rng.integers(0, 256, shape).astype(np.uint8)
    keras_side = tf.image.resize(image, size, method="bilinear", antialias=False).numpy()  # float32, unrounded
    assert np.array_equal(bilinear_resize(image, size), np.clip(np.round(keras_side), 0, 255).astype(np.uint8))


def _folder(tmp_path):
    from PIL import Image

    root = tmp_path / "imgs"
    rng = np.random.default_rng(3)
    for c in range(3):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(8):
            img = rng.integers(0, 120, (41, 53, 3)).astype(np.uint8)
            img[..., c] += 100
            if i % 4 == 0:  # grey PNG, RGB PNG, JPEG: every route of the TF reader
                Image.fromarray(img[..., 0]).save(root / f"c{c}" / f"{i}.png")
            elif i % 4 == 1:
                Image.fromarray(img).save(root / f"c{c}" / f"{i}.png")
            else:
                Image.fromarray(img).save(root / f"c{c}" / f"{i}.jpg", quality=90)
    return root


def test_stream_and_device_give_the_same_tensor_with_bilinear(tmp_path):
    from edgecnn._tf import tf
    from edgecnn.data.contract import LoadSpec
    from edgecnn.data.dataset import load_dataset
    from edgecnn.data.stream import load_stream

    root = _folder(tmp_path)
    conv = {"resize": "bilinear"}
    ds = load_stream(root, LoadSpec((24, 24), 3, seed=0, cache="none", convention=conv), run_dir=tmp_path / "run")
    assert ds.preprocess["resize"] == "bilinear" and ds.resize == "bilinear"
    n = len(ds.y["train"])
    order = tf.data.Dataset.from_tensor_slices((tf.range(n, dtype=tf.int64), tf.range(n, dtype=tf.int64)))
    streamed = np.stack([x.numpy() for x, _, _ in ds.tf_split("train", order, tf)])
    device = np.stack(
        [normalize(load_image(f, (24, 24), 3, "bilinear")[None], ds.preprocess)[0] for f in ds.files["train"]]
    )
    assert np.array_equal(streamed, device)
    antialiased = np.stack([normalize(load_image(f, (24, 24), 3)[None], ds.preprocess)[0] for f in ds.files["train"]])
    assert not np.array_equal(streamed, antialiased)  # the option changes the pixels
    # the in-memory path (decoded up front) and a disk-cached stream read the same
    mem = load_dataset(str(root), image_size=24, channels=3, seed=0, convention=conv)
    assert np.array_equal(mem.normalized("train"), device)
    cached = load_stream(root, LoadSpec((24, 24), 3, seed=0, cache="disk", convention=conv), run_dir=tmp_path / "run2")
    assert np.array_equal(np.stack([x.numpy() for x, _, _ in cached.tf_split("train", order, tf)]), device)
    # the same run folder's disk cache, filled with the default resize first, is not read back for bilinear
    (tmp_path / "run4").mkdir()
    first = load_stream(root, LoadSpec((24, 24), 3, seed=0, cache="disk"), run_dir=tmp_path / "run4")
    assert np.array_equal(np.stack([x.numpy() for x, _, _ in first.tf_split("train", order, tf)]), antialiased)
    again = load_stream(root, LoadSpec((24, 24), 3, seed=0, cache="disk", convention=conv), run_dir=tmp_path / "run4")
    assert np.array_equal(np.stack([x.numpy() for x, _, _ in again.tf_split("train", order, tf)]), device)
    # grey models: the TF side's RGB->L and the device's convert("L") then the same resize
    grey = load_stream(root, LoadSpec((16, 16), 1, seed=0, cache="none", convention=conv), run_dir=tmp_path / "run3")
    g = np.stack([x.numpy() for x, _, _ in grey.tf_split("train", order, tf)])
    assert np.array_equal(
        g,
        np.stack(
            [normalize(load_image(f, (16, 16), 1, "bilinear")[None], grey.preprocess)[0] for f in grey.files["train"]]
        ),
    )
    # an .npz's arrays go through the same resize
    x = np.stack([load_image(f, (41, 53), 3) for f in ds.files["train"][:3]])
    assert np.array_equal(resize_batch(x, (24, 24), 3, "bilinear")[0], bilinear_resize(x[0], (24, 24)))


def test_metadata_carries_the_resize_and_a_bad_one_is_refused(tmp_path, tiny_models):
    from edgecnn.device.metadata import read_metadata, spec_from_metadata
    from edgecnn.tflite.metadata import add_metadata

    raw = tiny_models["float32"].read_bytes()
    spec = {
        "scale": 1 / 127.5,
        "offset": -1.0,
        "channels": 3,
        "image_size": [16, 16],
        "class_names": ["a", "b", "c", "d"],
        "resize": "bilinear",
    }
    model = tmp_path / "m.tflite"
    model.write_bytes(add_metadata(raw, spec, "m"))
    assert spec_from_metadata(read_metadata(model))["resize"] == "bilinear"
    assert read_spec(model)["resize"] == "bilinear"  # no preprocess.json: from the metadata alone
    plain = tmp_path / "p.tflite"
    plain.write_bytes(add_metadata(raw, {**spec, "resize": "antialias"}, "p"))
    assert "resize" not in read_spec(plain)
    (tmp_path / "preprocess.json").write_text(json.dumps({**spec, "resize": "nearest"}))
    with pytest.raises(DataError, match="'resize' must be one of antialias, bilinear"):
        read_spec(model)


def test_optimize_records_the_resize_and_the_device_follows_it(tmp_path, monkeypatch):
    """`edgecnn optimize --resize bilinear`: preprocess.json and the .tflite's metadata say so, and
    edgecnn-device, given the .tflite alone, evaluates the test images as the run did."""
    from click.testing import CliRunner

    from edgecnn.cli import main
    from edgecnn.device.evaluate import evaluate_tflite

    monkeypatch.chdir(tmp_path)
    root = _folder(tmp_path)
    args = ["optimize", "lenet5", "--data", str(root), "--image-size", "32", "--resize", "bilinear"]
    result = CliRunner().invoke(main, [*args, "--epochs", "1", "--no-bench", "--out", "run"])
    assert result.exit_code == 0, result.output
    spec = json.loads((tmp_path / "run" / "preprocess.json").read_text())
    assert spec["resize"] == "bilinear"
    alone = tmp_path / "device" / "model_float32.tflite"
    alone.parent.mkdir()
    alone.write_bytes((tmp_path / "run" / "model_float32.tflite").read_bytes())
    device_spec = read_spec(alone)
    assert device_spec["from"] == "metadata" and device_spec["resize"] == "bilinear"
    # the run's test split, read by the device side from the metadata alone: the run's own accuracy
    test = json.loads((tmp_path / "run" / "splits.json").read_text())["splits"]["test"]
    x = np.stack([load_image(root / f, (32, 32), 1, device_spec["resize"]) for f, _ in test])
    y = np.asarray([label for _, label in test])
    device = evaluate_tflite(alone, normalize(x, device_spec), y)["accuracy"]
    run = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert device == next(r["tflite_accuracy"] for r in run["rows"] if r["precision"] == "float32")
    bad = CliRunner().invoke(main, [*args[:-1], "nearest", "--epochs", "1", "--out", "run2"])
    assert bad.exit_code == 2 and "'nearest' is not one of 'antialias', 'bilinear'" in bad.output
