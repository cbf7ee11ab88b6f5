"""``edgecnn-device predict``: classifies like ``eval``, reads paths/images from stdin, refuses bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from edgecnn.device.cli import main


def _run(args, input=None):
    return CliRunner().invoke(main, args, input=input)


def test_predict_classifies_like_eval(lenet_run, digit_pngs, tmp_path):
    out, metrics = lenet_run
    root, n = digit_pngs
    model = out / "model_int8.tflite"
    ev = _run(["eval", str(model), "--data", str(root), "--json"])
    assert ev.exit_code == 0, ev.output
    eval_accuracy = json.loads(ev.output)["accuracy"]
    pr = _run(["predict", str(model), str(root), "--top-k", "3", "--json", "-o", str(tmp_path / "p.json")])
    assert pr.exit_code == 0, pr.output
    result = json.loads(pr.output)
    assert len(result["images"]) == n
    hits = [r["top_k"][0]["label"] == r["image"].split("/")[-2] for r in result["images"]]
    assert np.mean(hits) == pytest.approx(eval_accuracy, abs=1e-12)
    # ... and as the run itself measured the file on the same images.
    row = next(r for r in metrics["rows"] if r["precision"] == "int8")
    assert eval_accuracy == pytest.approx(row["tflite_accuracy"], abs=1e-12)
    first = result["images"][0]
    assert len(first["top_k"]) == 3 and first["top_k"][0]["score"] >= first["top_k"][1]["score"]
    assert all(r[k] > 0 for r in result["images"] for k in ("decode_ms", "resize_ms", "invoke_ms"))
    assert result["sha256"] and result["cpu"] and json.loads((tmp_path / "p.json").read_text()) == result


def test_predict_reads_paths_and_image_bytes_from_stdin(lenet_run, digit_pngs, tmp_path):
    out, _ = lenet_run
    root, _ = digit_pngs
    alone = tmp_path / "model_int8.tflite"  # no preprocess.json: labels and normalisation from the metadata
    shutil.copy(out / "model_int8.tflite", alone)
    files = sorted(root.rglob("*.png"))[:3]
    by_path = _run(["predict", str(alone), "-", "--json", "--top-k", "1"], input="\n".join(map(str, files)) + "\n")
    assert by_path.exit_code == 0, by_path.output
    labels = [r["top_k"][0]["label"] for r in json.loads(by_path.output)["images"]]
    by_bytes = _run(["predict", str(alone), "-", "--json", "--top-k", "1"], input=files[0].read_bytes())
    assert by_bytes.exit_code == 0, by_bytes.output
    (only,) = json.loads(by_bytes.output)["images"]
    assert only["image"] == "<stdin>" and only["top_k"][0]["label"] == labels[0]
    text = _run(["predict", str(alone), str(files[0])])
    assert text.exit_code == 0 and "median per image: decode" in text.output


def test_predict_converts_colour_images_for_a_grayscale_model(lenet_run, tmp_path):
    from PIL import Image

    out, _ = lenet_run
    rgba = tmp_path / "rgba.png"
    Image.fromarray(np.full((50, 40, 4), 255, np.uint8)).save(rgba)
    r = _run(["predict", str(out / "model_int8.tflite"), str(rgba), "--json"])
    assert r.exit_code == 0, r.output


def _error_line(result):
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def test_predict_bad_input_is_one_line_and_nothing_written(lenet_run, tmp_path):
    out, _ = lenet_run
    model = out / "model_int8.tflite"
    good = tmp_path / "good.png"
    from PIL import Image

    Image.fromarray(np.zeros((32, 32), np.uint8)).save(good)
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    target = tmp_path / "result.json"
    line = _error_line(_run(["predict", str(model), str(good), str(corrupt), "-o", str(target)]))
    assert "cannot read image" in line and "corrupt.jpg" in line
    assert not target.exists()
    assert "does not exist" in _error_line(_run(["predict", str(model), str(tmp_path / "nope.png")]))
    assert "neither an image" in _error_line(_run(["predict", str(model), "-"], input=b"\x00\xff\xfe\x00"))
    # No metadata and no preprocess.json: predict will not guess the normalisation.
    bare = tmp_path / "bare" / "model.tflite"
    bare.parent.mkdir()
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema  # strip the metadata to make such a file

    m = schema.ModelT.InitFromObj(schema.Model.GetRootAs(model.read_bytes(), 0))
    m.metadata = [e for e in m.metadata if e.name != b"TFLITE_METADATA"]
    b = flatbuffers.Builder(0)
    b.Finish(m.Pack(b), b"TFL3")
    bare.write_bytes(bytes(b.Output()))
    line = _error_line(_run(["predict", str(bare), str(good)]))
    assert "no TFLite Metadata and no preprocess.json" in line


def test_predict_runs_with_tensorflow_blocked(lenet_run, digit_pngs, tmp_path):
    """On the Pi there is no TensorFlow: predict (metadata reader included) must not need it."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from test_device import BLOCKER

    out, _ = lenet_run
    alone = tmp_path / "model_int8.tflite"
    shutil.copy(out / "model_int8.tflite", alone)  # no preprocess.json: the metadata path
    image = sorted(digit_pngs[0].rglob("*.png"))[0]
    code = f"""
import sys
from edgecnn.device.cli import main
try:
    main(["predict", {str(alone)!r}, {str(image)!r}, "--json"])
except SystemExit as exc:
    assert not exc.code, exc.code
assert "tensorflow" not in sys.modules
"""
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-c", BLOCKER + code],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(root)),
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    blocked = json.loads(proc.stdout)["images"][0]["top_k"]
    unblocked = json.loads(_run(["predict", str(alone), str(image), "--json"]).output)["images"][0]["top_k"]
    assert blocked == unblocked and len(blocked) == 5


def test_a_model_that_cannot_take_images_is_one_line_and_nothing_written(tmp_path):
    """A 4-channel input (no image has 4 channels after decoding): one line, exit 2, no output file."""
    from PIL import Image

    from edgecnn._tf import keras
    from edgecnn.tflite.convert import convert

    inp = keras.Input((8, 8, 4))
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(inp)), name="four")
    path = convert(model, tmp_path / "four.tflite", "float32", metadata={"scale": 1 / 255, "offset": 0.0})
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(image)
    target = tmp_path / "out.json"
    line = _error_line(_run(["predict", str(path), str(image), "--json", "-o", str(target)]))
    assert "takes input of shape [1, 8, 8, 4]" in line and "1 (grayscale) or 3 (RGB) channels" in line
    assert not target.exists()
