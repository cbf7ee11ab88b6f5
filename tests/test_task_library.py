"""The TFLite Task Library's ``ImageClassifier`` (tflite-support 0.4.4, the C++ library the
Android Task Library is built from) reads edgecnn's metadata as an Android app would.

In its own virtualenv (cached under pytest's cache, as in ``tests/test_tflite_runtime.py``):
the float32 file is accepted, the labels come from ``labels.txt`` and the normalisation from
``NormalizationOptions`` only (no ``preprocess.json``), and its scores equal
``edgecnn-device predict``'s on the same images, for edgecnn's ``[-1, 1]`` and for a
per-channel (torch-style) mean/std. The int8 file (int8 input) is refused, as the README says.
"""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from test_tflite_runtime import cached_venv

SCRIPT = """
import json, sys
from tflite_support.task import core, processor, vision
out = {}
for model, images in json.loads(sys.argv[1]).items():
    try:
        options = vision.ImageClassifierOptions(
            base_options=core.BaseOptions(file_name=model),
            classification_options=processor.ClassificationOptions(max_results=4))
        classifier = vision.ImageClassifier.create_from_options(options)
    except Exception as exc:
        out[model] = {"error": str(exc)}
        continue
    out[model] = {img: [(c.category_name, c.score) for c in
                        classifier.classify(vision.TensorImage.create_from_file(img)).classifications[0].categories]
                  for img in images}
print(json.dumps(out))
"""


@pytest.fixture(scope="session")
def task_venv(request, tmp_path_factory):
    venv = cached_venv(
        request.config,
        tmp_path_factory,
        "tflite-support-0.4.4",
        ["tflite-support==0.4.4", "numpy<2"],
        with_edgecnn=False,
    )
    probe = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import tflite_support.task.vision"], capture_output=True, text=True
    )
    if probe.returncode != 0 and "libusb" in probe.stderr:
        pytest.skip("tflite-support's wheel needs the system library libusb-1.0 (apt-get install libusb-1.0-0)")
    assert probe.returncode == 0, probe.stderr
    return venv


@pytest.mark.slow
def test_task_library_image_classifier_reads_the_metadata_as_edgecnn_device_does(task_venv, tiny_models, tmp_path):
    from click.testing import CliRunner
    from PIL import Image

    from edgecnn.device.cli import main
    from edgecnn.tflite.metadata import add_metadata

    names = ["cat", "dog", "bird", "fish"]
    specs = {
        "minus1_1": {"scale": 1 / 127.5, "offset": -1.0},
        "torch": {"scale": 1 / 255, "offset": 0.0, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
    }
    models = {}
    for key, spec in specs.items():
        for precision in ("float32", "int8"):
            path = tmp_path / key / f"model_{precision}.tflite"  # alone: no preprocess.json
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(add_metadata(tiny_models[precision].read_bytes(), {**spec, "class_names": names}, "t"))
            models[(key, precision)] = path
    rng = np.random.default_rng(0)
    images = []
    for i in range(12):  # at the model's size (16x16), so both sides skip resizing
        images.append(tmp_path / f"{i}.png")
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(images[-1])
    request = {str(p): [str(i) for i in images] for p in models.values()}
    run = subprocess.run(
        [str(task_venv / "bin" / "python"), "-c", SCRIPT, json.dumps(request)], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    task = json.loads(run.stdout)
    for (key, precision), path in models.items():
        got = task[str(path)]
        if precision == "int8":  # int8 input: the Task Library's image preprocessing takes uint8/float32
            assert "INT8" in got["error"], got
            continue
        ours = CliRunner().invoke(main, ["predict", str(path), *map(str, images), "--json", "--top-k", "4"])
        assert ours.exit_code == 0, ours.output
        for row in json.loads(ours.output)["images"]:
            want = {k["label"]: k["score"] for k in row["top_k"]}
            theirs = dict(got[row["image"]])
            assert set(theirs) == set(names)  # labels from labels.txt
            for label, score in theirs.items():
                assert abs(score - want[label]) <= 1e-5, (key, row["image"], label, score, want[label])
