"""``edgecnn-device predict``/``eval`` on a ``.tflite`` with neither metadata nor a
``preprocess.json`` (a published ImageNet MobileNet and its ``labels.txt``): the
preprocessing from ``--labels``, ``--mean``/``--std`` and ``--background-class``."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from edgecnn.device.cli import main

CLASSES = ["red", "green", "dark blue"]  # output 0 is the background, as in the TF-slim MobileNets
FLAGS = ["--mean", "127.5", "--std", "127.5", "--background-class"]


def _colour_model(channels: int):
    """8x8 images -> 1 + 3 scores: output 1 + c grows with channel c's mean, output 0 (the
    background) is 0, so a bright red image is class 'red' with (p - 127.5) / 127.5 inputs."""
    from edgecnn._tf import keras

    inp = keras.Input((8, 8, channels))
    x = keras.layers.GlobalAveragePooling2D()(inp)
    dense = keras.layers.Dense(1 + len(CLASSES), activation="softmax")
    model = keras.Model(inp, dense(x), name=f"colour{channels}")
    kernel = np.zeros((channels, 1 + len(CLASSES)), np.float32)
    for c in range(channels):
        kernel[c, 1 + c] = 6.0
    dense.set_weights([kernel, np.zeros(1 + len(CLASSES), np.float32)])
    return model


@pytest.fixture(scope="module")
def bare(tmp_path_factory):
    """The colour model as float32 and int8 ``.tflite`` without metadata (each alone in its
    folder: no ``preprocess.json``), a one-channel float32 one, the Keras model, and labels."""
    from edgecnn.tflite.convert import convert

    root = tmp_path_factory.mktemp("bare")
    model = _colour_model(3)
    calib = np.random.default_rng(0).uniform(-1, 1, (16, 1, 8, 8, 3)).astype(np.float32)
    paths = {}
    for precision in ("float32", "int8"):
        (root / precision).mkdir()
        rep = (lambda: ([row] for row in calib)) if precision == "int8" else None
        paths[precision] = convert(model, root / precision / "model.tflite", precision, representative=rep)
    (root / "grey").mkdir()
    paths["grey"] = convert(_colour_model(1), root / "grey" / "model.tflite", "float32")
    labels = root / "labels.txt"
    labels.write_text("\n".join(CLASSES) + "\n\n\n")  # blank trailing lines are ignored
    return paths, model, labels


def _run(args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


def _error_line(result):
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def _folder(image_folder, tmp_path):
    """The image folder with its classes named as a user might: other case, '_' for ' '."""
    root = tmp_path / "val"
    for src, dst in (("red", "Red"), ("green", "GREEN"), ("blue", "dark_blue")):
        shutil.copytree(image_folder / src, root / dst)
    return root


@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_predict_and_eval_from_flags(bare, image_folder, tmp_path, precision):
    paths, _, labels = bare
    model = paths[precision]
    data = _folder(image_folder, tmp_path)
    pr = _run(["predict", model, data, "--labels", labels, *FLAGS, "--top-k", "10", "--json"])
    assert pr.exit_code == 0, pr.output
    result = json.loads(pr.output)
    assert len(result["images"]) == 24
    by_folder = {"Red": "red", "GREEN": "green", "dark_blue": "dark blue"}
    for r in result["images"]:
        # Only the labels, background left out, indices counting the labels.
        assert [t["label"] for t in r["top_k"]][:1] == [by_folder[r["image"].split("/")[-2]]]
        assert sorted(t["index"] for t in r["top_k"]) == [0, 1, 2]
        assert {t["label"] for t in r["top_k"]} == set(CLASSES)
    assert result["preprocess"] == {"scale": 1 / 127.5, "offset": -1.0, "from": "flags", "background_class": True}

    ev = _run(["eval", model, "--data", data, "--labels", labels, *FLAGS, "--json"])
    assert ev.exit_code == 0, ev.output
    metrics = json.loads(ev.output)
    assert metrics["accuracy"] == 1.0 and metrics["samples"] == 24
    assert metrics["classes"] == CLASSES and np.trace(metrics["confusion"]) == 24
    assert np.shape(metrics["confusion"]) == (3, 3)

    # A labels file that names the background too (the TF Hub MobileNets' labels.txt): the same.
    with_background = tmp_path / "labels_1001.txt"
    with_background.write_text("background\n" + "\n".join(CLASSES) + "\n")
    again = _run(["eval", model, "--data", data, "--labels", with_background, *FLAGS, "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.output)["classes"] == CLASSES and json.loads(again.output)["accuracy"] == 1.0


def test_mean_and_std_per_channel_give_the_keras_scores(bare, tmp_path):
    from PIL import Image

    paths, keras_model, labels = bare
    pixels = np.random.default_rng(3).integers(0, 256, (8, 8, 3), dtype=np.uint8)  # the model's size: no resize
    image = tmp_path / "x.png"
    Image.fromarray(pixels).save(image)
    mean, std = np.array([100.0, 20.0, 230.0]), np.array([50.0, 10.0, 80.0])
    args = ["predict", paths["float32"], image, "--labels", labels, "--background-class", "--json"]
    r = _run([*args, "--mean", "100,20,230", "--std", "50,10,80"])
    assert r.exit_code == 0, r.output
    got = {t["label"]: t["score"] for t in json.loads(r.output)["images"][0]["top_k"]}
    want = keras_model.predict(((pixels - mean) / std)[None].astype(np.float32), verbose=0)[0]
    np.testing.assert_allclose([got[c] for c in CLASSES], want[1:], atol=1e-5)
    # Without --background-class and with no labels: every output, named by index.
    plain = _run(["predict", paths["float32"], image, "--mean", "100,20,230", "--std", "50,10,80", "--json"])
    assert plain.exit_code == 0, plain.output
    scores = {t["index"]: t["score"] for t in json.loads(plain.output)["images"][0]["top_k"]}
    np.testing.assert_allclose([scores[i] for i in range(4)], want, atol=1e-5)


def test_flags_that_contradict_the_model_are_one_line(bare, image_folder, tmp_path):
    paths, _, labels = bare
    model, grey = paths["float32"], paths["grey"]
    image = next((image_folder / "red").iterdir())
    data = _folder(image_folder, tmp_path)
    norm = ["--mean", "127.5", "--std", "127.5"]
    # No flags: the message of before, naming the flags now.
    line = _error_line(_run(["predict", model, image]))
    assert "no TFLite Metadata and no preprocess.json" in line and "--mean and --std" in line
    # Three labels for four outputs, no --background-class: it says which flag fits.
    for command in (["predict", model, image], ["eval", model, "--data", data]):
        line = _error_line(_run([*command, "--labels", labels, *norm]))
        assert "scores 4 classes but" in line and "labels.txt names 3" in line and "add --background-class" in line
    five = tmp_path / "five.txt"
    five.write_text("a\nb\nc\nd\ne\n")
    line = _error_line(_run(["eval", model, "--data", data, "--labels", five, *FLAGS]))
    assert "names 5 (it needs 4 labels, or 3 with --background-class)" in line
    # Three means for a one-channel model.
    line = _error_line(_run(["predict", grey, image, "--mean", "1,2,3", "--std", "2"]))
    assert "takes 1-channel input, but its normalisation has 3 values per channel (mean [1.0, 2.0, 3.0]" in line
    line = _error_line(_run(["eval", grey, "--data", data, "--std", "1,2,3"]))
    assert "takes 1-channel input" in line and "std [1.0, 2.0, 3.0]); give one value" in line
    # Values that are no normalisation, files that are no labels.
    assert "'--mean'" in _error_line(_run(["predict", model, image, "--mean", "1,2", "--std", "1"]))
    assert "not one number" in _error_line(_run(["predict", model, image, "--mean", "grey", "--std", "1"]))
    assert "cannot divide by 0" in _error_line(_run(["eval", model, "--data", data, "--std", "1,0,1"]))
    assert "does not exist" in _error_line(_run(["predict", model, image, "--labels", tmp_path / "no.txt", *norm]))
    gap = tmp_path / "gap.txt"
    gap.write_text("red\n\ngreen\n")
    assert "line 2 is blank" in _error_line(_run(["predict", model, image, "--labels", gap, *norm]))
    # A class folder the labels do not name.
    shutil.copytree(data / "Red", data / "purple")
    line = _error_line(_run(["eval", model, "--data", data, "--labels", labels, *FLAGS]))
    assert "class(es) 'purple'" in line and "does not know" in line


def test_flags_override_the_preprocess_json(bare, image_folder, tmp_path):
    """A preprocess.json beside the model with the wrong names and scale: the flags win."""
    paths, _, labels = bare
    folder = tmp_path / "model"
    shutil.copytree(paths["int8"].parent, folder)
    (folder / "preprocess.json").write_text(json.dumps({"scale": 1 / 255, "offset": 0.0, "class_names": list("wxyz")}))
    data = _folder(image_folder, tmp_path)
    ev = _run(["eval", folder / "model.tflite", "--data", data, "--labels", labels, *FLAGS, "--json"])
    assert ev.exit_code == 0, ev.output
    assert json.loads(ev.output)["accuracy"] == 1.0


def test_edgecnn_eval_takes_the_same_flags(bare, image_folder, tmp_path):
    """``edgecnn eval`` (the workstation's, sharing the flags) reads the folder its own way."""
    from edgecnn.cli import main as edgecnn

    paths, _, labels = bare
    data = _folder(image_folder, tmp_path)
    args = ["eval", paths["int8"], "--data", data, "--split", "all", "--labels", labels, *FLAGS, "--json"]
    r = CliRunner().invoke(edgecnn, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    metrics = json.loads(r.output)
    assert metrics["accuracy"] == 1.0 and metrics["classes"] == CLASSES and metrics["samples"] == 24
