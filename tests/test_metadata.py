"""TFLite Metadata in exported files: read back independently, outputs unchanged, read on the device."""

from __future__ import annotations

import io
import json
import shutil
import zipfile

import numpy as np
import pytest
from _metadata_reader import assert_matches_preprocess, metadata_buffer, read

from edgecnn.pipeline import optimize
from edgecnn.settings.run_config import RunConfig
from edgecnn.tflite.metadata import add_metadata

TINY_SPEC = {"scale": 1 / 127.5, "offset": -1.0, "channels": 3, "image_size": [16, 16], "class_names": list("abcd")}


@pytest.fixture(scope="module")
def tiny(tiny_models):
    return tiny_models


def _outputs(content: bytes, x: np.ndarray, interpreter_cls) -> bytes:
    it = interpreter_cls(model_content=content)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    it.set_tensor(inp["index"], x.astype(inp["dtype"]))
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"]).tobytes()


def _inputs(dtype):
    rng = np.random.default_rng(0)
    if dtype == "int8":
        return rng.integers(-128, 128, (1, 16, 16, 3))
    return rng.uniform(-1, 1, (1, 16, 16, 3)).astype(np.float32)


def test_exported_files_carry_metadata_equal_to_preprocess_json(lenet_run):
    out, metrics = lenet_run
    spec = json.loads((out / "preprocess.json").read_text())
    for precision in ("float32", "int8"):
        md = assert_matches_preprocess(out / f"model_{precision}.tflite", out / "preprocess.json")
        assert md["name"].startswith("lenet5") and md["labels"] == [str(i) for i in range(10)]
        assert md["zip_names"] == ["labels.txt"]
        if precision == "float32":  # the normalised pixel range, as tflite-support's writer gives it
            lo, hi = 0 * spec["scale"] + spec["offset"], 255 * spec["scale"] + spec["offset"]
            np.testing.assert_allclose(md["input_stats"]["min"], [lo] * spec["channels"], rtol=1e-6)
            np.testing.assert_allclose(md["input_stats"]["max"], [hi] * spec["channels"], rtol=1e-6)
        else:  # int8: the tensor's own quantisation describes it; the writer gives no stats
            assert md["input_stats"] is None
    # The accuracy of the files with metadata is what the run measured.
    rows = {r["precision"]: r for r in metrics["rows"]}
    assert rows["int8"]["tflite_accuracy"] > 0.5


@pytest.mark.parametrize("precision", ["float32", "int8", "dynamic"])
def test_metadata_leaves_litert_outputs_bit_identical(tiny, precision):
    from ai_edge_litert.interpreter import Interpreter

    raw = tiny[precision].read_bytes()
    with_md = add_metadata(raw, TINY_SPEC, name="tiny")
    assert metadata_buffer(raw) is None and metadata_buffer(with_md) is not None
    x = _inputs("int8" if precision == "int8" else "float32")
    assert _outputs(with_md, x, Interpreter) == _outputs(raw, x, Interpreter)


def _data_offsets(content: bytes) -> list:
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.Model.GetRootAs(content, 0)
    out = []
    for i in range(model.BuffersLength()):
        buf = model.Buffers(i)
        if buf.DataLength():
            out.append(buf._tab.Vector(buf._tab.Offset(4)))
    return out


def test_weights_stay_16_byte_aligned(tiny):
    """schema.fbs asks buffers to start on 16 bytes (force_align); the rewrite keeps it."""
    with_md = add_metadata(tiny["float32"].read_bytes(), TINY_SPEC, name="tiny")
    offsets = _data_offsets(with_md)
    assert len(offsets) >= 4 and all(o % 16 == 0 for o in offsets)


def test_sparse_weights_survive_the_rewrite_bit_for_bit():
    """Sparse storage (DENSIFY, SparsityParameters) repacked with the metadata: same outputs."""
    from ai_edge_litert.interpreter import Interpreter

    from edgecnn._tf import keras
    from edgecnn.tflite.convert import convert_bytes

    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Flatten()(keras.layers.Conv2D(16, 3, activation="relu")(inp))
    model = keras.Model(inp, keras.layers.Dense(4, activation="softmax")(keras.layers.Dense(32)(x)), name="sp")
    for layer in model.layers:
        if layer.get_weights():
            w, *rest = layer.get_weights()
            w[np.abs(w) < np.quantile(np.abs(w), 0.8)] = 0
            layer.set_weights([w, *rest])
    raw = convert_bytes(model, "float32", sparse=True)
    from edgecnn.device.flatbuffer import read_model

    assert any(name == "DENSIFY" for name, _ in read_model(raw).op_counts())
    with_md = add_metadata(raw, TINY_SPEC, name="sp")
    x = _inputs("float32")
    assert _outputs(with_md, x, Interpreter) == _outputs(raw, x, Interpreter)


# On tflite-runtime 2.14 (its own venv, numpy<2): tests/test_tflite_runtime.py.


def test_metadata_is_replaced_not_doubled(tiny):
    once = add_metadata(tiny["int8"].read_bytes(), TINY_SPEC, name="tiny")
    twice = add_metadata(once, {**TINY_SPEC, "class_names": list("wxyz")}, name="tiny")
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.Model.GetRootAs(twice, 0)
    names = [model.Metadata(i).Name() for i in range(model.MetadataLength())]
    assert names.count(b"TFLITE_METADATA") == 1
    assert zipfile.ZipFile(io.BytesIO(twice)).namelist() == ["labels.txt"]
    assert read_labels(twice) == list("wxyz")


def read_labels(content: bytes) -> list:
    return zipfile.ZipFile(io.BytesIO(content)).read("labels.txt").decode().splitlines()


def test_metadata_refuses_labels_that_do_not_match_the_outputs(tiny):
    with pytest.raises(ValueError, match="3 class names for a model with 4 outputs"):
        add_metadata(tiny["float32"].read_bytes(), {**TINY_SPEC, "class_names": list("abc")}, name="tiny")


def test_per_channel_normalisation_round_trips(tiny, tmp_path):
    from edgecnn.device.metadata import read_metadata, spec_from_metadata
    from edgecnn.device.preprocess import normalize

    # preprocess.json's mean/std apply after scale and offset (pretrained weights' conventions).
    spec = {"scale": 1.0, "offset": 0.0, "mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375]}
    spec["class_names"] = list("abcd")
    path = tmp_path / "m.tflite"
    path.write_bytes(add_metadata(tiny["float32"].read_bytes(), spec, name="tiny"))
    back = spec_from_metadata(read_metadata(path))
    np.testing.assert_allclose(back["mean"], spec["mean"], rtol=1e-6)
    np.testing.assert_allclose(back["std"], spec["std"], rtol=1e-6)
    pixels = np.full((1, 2, 2, 3), 200, np.uint8)
    expected = (200 - np.array(spec["mean"])) / spec["std"]
    np.testing.assert_allclose(normalize(pixels, back)[0, 0, 0], expected, rtol=1e-5)


def test_device_reads_normalisation_and_labels_from_metadata(lenet_run, tmp_path):
    from edgecnn.device.preprocess import normalize, read_spec

    out, _ = lenet_run
    spec = json.loads((out / "preprocess.json").read_text())
    alone = tmp_path / "model_int8.tflite"  # no preprocess.json beside it
    shutil.copy(out / "model_int8.tflite", alone)
    from_md = read_spec(alone)
    assert from_md["from"] == "metadata"
    assert from_md["class_names"] == spec["class_names"]
    pixels = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
    np.testing.assert_allclose(normalize(pixels, from_md), normalize(pixels, spec), rtol=1e-6, atol=1e-6)
    # preprocess.json beside the model still wins.
    assert read_spec(out / "model_int8.tflite") == spec


def test_no_metadata_setting_and_flag(tmp_path):
    from click.testing import CliRunner

    from edgecnn.cli import main

    assert RunConfig.from_dict({"model": {"name": "mlp"}}).convert.metadata is True
    help_text = CliRunner().invoke(main, ["optimize", "--help"]).output
    assert "--no-metadata" in help_text
    out = tmp_path / "mlp"
    cfg = RunConfig.from_dict(
        {
            "model": {"name": "mlp"},
            "data": {"train_fraction": 0.2},
            "train": {"epochs": 1, "verbose": 0},
            "convert": {"metadata": False},
            "bench": {"enabled": False},
            "out": str(out),
        }
    )
    optimize(cfg, echo=lambda *a: None)
    assert read(out / "model_float32.tflite") is None


def test_bgr_is_said_where_the_schema_cannot_and_the_device_reverses_the_channels(tiny, tmp_path):
    """Keras caffe-style weights (ResNet, VGG): the colour space says RGB (the schema has no
    BGR), the descriptions and input_convention.json say BGR, and edgecnn-device reverses."""
    from edgecnn.device.preprocess import normalize, read_spec

    spec = {"scale": 1.0, "offset": 0.0, "channel_order": "BGR", "mean": [103.939, 116.779, 123.68]}
    spec.update(class_names=list("abcd"), channels=3, image_size=[16, 16])
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "preprocess.json").write_text(json.dumps(spec))
    path = tmp_path / "alone" / "m.tflite"
    path.parent.mkdir()
    path.write_bytes(add_metadata(tiny["float32"].read_bytes(), spec, name="resnet50"))
    md = assert_matches_preprocess(path, tmp_path / "run" / "preprocess.json")  # BGR checks included
    assert md["color_space"] == 1 and md["mean"] == pytest.approx(spec["mean"])
    from_md = read_spec(path)
    assert from_md["channel_order"] == "BGR" and from_md["from"] == "metadata"
    pixels = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    np.testing.assert_allclose(normalize(pixels, from_md), normalize(pixels, spec), atol=1e-4)
    assert not np.allclose(normalize(pixels, {**from_md, "channel_order": "RGB"}), normalize(pixels, spec), atol=1)
    # An RGB spec gets no such file.
    rgb = add_metadata(tiny["float32"].read_bytes(), {**spec, "channel_order": "RGB"}, name="x")
    assert zipfile.ZipFile(io.BytesIO(rgb)).namelist() == ["labels.txt"]
