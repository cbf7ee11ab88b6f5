"""``--weights`` with Keras v3 files (edgecnn.models._weights): a ``.keras`` zip and a
``.weights.h5`` saved from our own model load and give the same outputs, whatever the file
is named; a ``.keras`` with a Lambda layer (or an unknown class) is refused before anything
is deserialised and its code never runs; truncated or corrupt files and files of another
architecture or alpha are refused on one line; another class count re-initialises the
classifier and says so.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

import edgecnn
from edgecnn.errors import UserError
from edgecnn.models._weights import weights_format

SMALL = dict(alpha=0.25, input_shape=(32, 32, 3))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """lenet5 and mobilenet 0.25 (32x32, 10 classes) saved as .keras and .weights.h5."""
    folder = tmp_path_factory.mktemp("v3")
    out = {}
    for name, kwargs in (("lenet5", {}), ("mobilenet", SMALL)):
        model = edgecnn.create_model(name, classes=10, **kwargs)
        rng = np.random.default_rng(0)  # BatchNorm statistics away from 0/1, so that they matter
        model.set_weights([w + rng.normal(0, 0.1, w.shape).astype(w.dtype) for w in model.get_weights()])
        model.save(folder / f"{name}.keras")
        model.save_weights(str(folder / f"{name}.weights.h5"))
        x = rng.uniform(-1, 1, (2, *model.input_shape[1:])).astype("float32")
        out[name] = (model, x, model.predict(x, verbose=0))
    return folder, out


def _one_line(kwargs: dict, expected: str, name: str = "mobilenet") -> str:
    with pytest.raises(UserError) as err:
        edgecnn.create_model(name, **kwargs)
    message = str(err.value)
    assert expected in message and "\n" not in message, (expected, message)
    return message


@pytest.mark.parametrize("name", ["lenet5", "mobilenet"])
def test_keras_and_weights_h5_give_the_same_outputs(saved, name, capsys):
    folder, models = saved
    _, x, want = models[name]
    kwargs = SMALL if name == "mobilenet" else {}
    # Told from the content: the same files under names that say nothing.
    shutil.copy(folder / f"{name}.keras", folder / f"{name}_zip.bin")
    shutil.copy(folder / f"{name}.weights.h5", folder / f"{name}_v3.h5")
    for file, kind in (("keras", "keras"), ("weights.h5", "v3"), ("_zip.bin", "keras"), ("_v3.h5", "v3")):
        path = folder / (f"{name}.{file}" if not file.startswith("_") else f"{name}{file}")
        assert weights_format(path) == kind
        ours = edgecnn.create_model(name, classes=10, weights=str(path), **kwargs)
        assert float(np.abs(ours.predict(x, verbose=0) - want).max()) == 0.0, path
        assert ours._edgecnn_weights["fresh"] == [] and len(ours._edgecnn_weights["sha256"]) == 64
    assert "Keras v3 model" in capsys.readouterr().err
    # Another class count: the classifier starts fresh, listed on one line; the body is the file's.
    fewer = edgecnn.create_model(name, classes=3, weights=str(folder / f"{name}.keras"), **kwargs)
    assert list(fewer._edgecnn_weights["fresh"]) == ["classifier"]
    assert "re-initialised (not in the file or another shape): classifier" in capsys.readouterr().err
    first = next(layer for layer in fewer.layers if layer.weights)
    source = models[name][0].get_layer(first.name)
    np.testing.assert_array_equal(first.get_weights()[0], source.get_weights()[0])


def _lambda_model(marker: Path):
    """A tiny model whose Lambda layer writes ``marker`` whenever its code runs."""
    from edgecnn._tf import keras

    write_marker = eval(f"lambda x: (__import__('pathlib').Path({str(marker)!r}).write_text('ran'), x)[1]")
    inputs = keras.Input((32, 32, 1))
    x = keras.layers.Lambda(write_marker, name="evil")(inputs)
    x = keras.layers.Conv2D(6, 5, name="c1")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="classifier")(x))


def _rewrite(src: Path, dst: Path, edit) -> None:
    """Copy a .keras zip with its config.json changed by ``edit(config)``."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename == "config.json":
                config = json.loads(data)
                edit(config)
                data = json.dumps(config).encode()
            zout.writestr(info.filename, data)


def test_keras_file_with_code_is_refused_and_never_runs(saved, tmp_path):
    folder, _ = saved
    marker = tmp_path / "marker"
    model = _lambda_model(marker)
    assert marker.exists()  # building the model runs the Lambda: the marker works
    model.save(tmp_path / "lambda.keras")
    model.save(tmp_path / "lambda.h5")  # a whole-model HDF5 carries the Lambda's bytecode too
    marker.unlink()
    for file in ("lambda.keras", "lambda.h5"):
        message = _one_line({"weights": str(tmp_path / file)}, "layer 'evil' is a Lambda layer", "lenet5")
        assert message.startswith("refusing the weight file"), message
        assert not marker.exists(), f"loading {file} ran the Lambda's code"
    # Our own lenet5 file with a Lambda (or a class from elsewhere) slipped into its config.
    layers = json.loads(zipfile.ZipFile(tmp_path / "lambda.keras").read("config.json"))["config"]["layers"]
    evil = next(e for e in layers if e["class_name"] == "Lambda")
    _rewrite(folder / "lenet5.keras", tmp_path / "slipped.keras", lambda c: c["config"]["layers"].insert(1, evil))
    _one_line({"weights": str(tmp_path / "slipped.keras")}, "layer 'evil' is a Lambda layer", "lenet5")

    def rename(config):
        config["config"]["layers"][1]["class_name"] = "EvilLayer"
        config["config"]["layers"][1]["module"] = "evil_package"

    _rewrite(folder / "lenet5.keras", tmp_path / "class.keras", rename)
    _one_line({"weights": str(tmp_path / "class.keras")}, "has class 'EvilLayer'", "lenet5")
    assert not marker.exists()
    # Through the command line: exit 2, one "error:" line, no traceback, the code not run.
    from click.testing import CliRunner

    from edgecnn.cli import main

    args = ["optimize", "lenet5", "--weights", str(tmp_path / "lambda.keras"), "--epochs", "1", "--no-bench"]
    res = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "run"), "--allow-outside"])
    errors = [line for line in res.output.splitlines() if line.startswith("error: ")]
    assert res.exit_code == 2 and len(errors) == 1 and "Lambda layer" in errors[0], res.output[-2000:]
    assert "Traceback" not in res.output and not marker.exists()


def test_truncated_and_corrupt_files_are_refused_on_one_line(saved, tmp_path):
    folder, _ = saved
    for file in ("mobilenet.keras", "mobilenet.weights.h5"):
        data = (folder / file).read_bytes()
        (tmp_path / file).write_bytes(data[: len(data) // 2])
        _one_line({"weights": str(tmp_path / file), **SMALL}, "cannot read weight file")
    # A zip without config.json, and one whose model.weights.h5 is not HDF5.
    with zipfile.ZipFile(tmp_path / "bare.keras", "w") as z:
        z.writestr("model.weights.h5", b"x")
    _one_line({"weights": str(tmp_path / "bare.keras"), **SMALL}, "is not a Keras v3 model")
    src = folder / "mobilenet.keras"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(tmp_path / "garbage.keras", "w") as zout:
        zout.writestr("config.json", zin.read("config.json"))
        zout.writestr("model.weights.h5", b"not hdf5 at all" * 100)
    _one_line({"weights": str(tmp_path / "garbage.keras"), **SMALL}, "cannot read weight file")
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(tmp_path / "badjson.keras", "w") as zout:
        zout.writestr("config.json", b"{not json")
        zout.writestr("model.weights.h5", zin.read("model.weights.h5"))
    _one_line({"weights": str(tmp_path / "badjson.keras"), **SMALL}, "config.json is not valid JSON")
    (tmp_path / "text.keras").write_text("hello")
    _one_line({"weights": str(tmp_path / "text.keras"), **SMALL}, "not an HDF5 file nor a .keras zip")


def test_another_architecture_or_alpha_is_refused(saved):
    folder, _ = saved
    message = _one_line({"weights": str(folder / "mobilenet.keras"), "alpha": 0.5, "input_shape": (32, 32, 3)},
                        "does not fit")  # another alpha, mapped by name
    assert "another architecture, alpha or depth?" in message and "holds the model 'mobilenet_0.25_32'" in message
    path = str(folder / "mobilenet.weights.h5")  # mapped by Keras' order: another alpha or family
    _one_line({"weights": path, "alpha": 0.5, "input_shape": (32, 32, 3)}, "does not fit")
    _one_line({"weights": path, "alpha": 0.35, "input_shape": (32, 32, 3)}, "does not fit", "mobilenet_v2")
    _one_line({"weights": str(folder / "lenet5.keras")}, "does not fit", "mlp")


def _run(tmp_path, name: str, **sections):
    from edgecnn.pipeline import optimize
    from edgecnn.settings.run_config import RunConfig

    base = {
        "model": {"name": "lenet5"},
        "train": {"epochs": 3},
        "bench": {"enabled": False},
        "convert": {"int8_debug": False, "metadata": False},
        "out": str(tmp_path / name),
    }
    for key, value in sections.items():
        base[key] = {**base.get(key, {}), **value}
    return optimize(RunConfig.from_dict(base), echo=lambda line: None)


def _first_kernel(run) -> np.ndarray:
    import h5py

    with h5py.File(run / "train" / "weights.h5", "r") as f:
        group = f["c1"]
        return np.asarray(group[[n.decode() if isinstance(n, bytes) else n for n in group.attrs["weight_names"]][0]])


@pytest.mark.slow
def test_every_stage_starts_from_pretrained_weights(tmp_path):
    """lenet5 on digits, pretrained 3 epochs; then a run from that run folder through every
    stage (distill with a teacher from the same weights, channel pruning, pruning, QAT) at a
    learning rate too small to learn anything in 1 epoch: each stage's accuracy is the
    pretrained model's, far above chance, and the first layer is the file's. The manifest
    records both weight files' sha256 and the report shows where each row started; another
    alpha is refused on one line."""
    import hashlib

    from edgecnn.report.results import load_results
    from edgecnn.report.tables import format_table, report_columns

    pretrained = _run(tmp_path, "a")
    accuracy = pretrained["stages"]["trained"]["keras_accuracy"]
    assert accuracy > 0.6, accuracy  # chance is 0.1
    a = tmp_path / "a"
    tiny = {"learning_rate": 1e-7, "fine_tune_lr": 1e-7, "epochs": 1, "freeze_epochs": 0}
    metrics = _run(
        tmp_path,
        "b",
        model={"weights": str(a)},
        train=tiny,
        distill={"teacher": "lenet5", "teacher_weights": str(a), "teacher_epochs": 1},
        channel_prune={"fraction": 0.25, "epochs": 1, "learning_rate": 1e-7},
        prune={"sparsity": 0.5, "epochs": 1, "learning_rate": 1e-7},
        qat={"enabled": True, "epochs": 1, "learning_rate": 1e-7},
    )
    b = tmp_path / "b"
    np.testing.assert_allclose(_first_kernel(b), _first_kernel(a), atol=1e-4)
    stages = metrics["stages"]
    assert {"trained", "distilled", "channel_pruned", "pruned", "qat"} <= set(stages), sorted(stages)
    for name, info in stages.items():
        assert info["keras_accuracy"] > accuracy - 0.15, (name, info["keras_accuracy"], accuracy)
    assert stages["distilled"]["teacher_keras_accuracy"] > accuracy - 0.05
    sha = hashlib.sha256((a / "train" / "weights.h5").read_bytes()).hexdigest()
    assert stages["trained"]["weights"]["sha256"] == sha
    inputs = json.loads((b / "manifest.json").read_text())["inputs"]
    assert inputs["weights:weights.h5"]["sha256"] == sha and inputs["teacher_weights:weights.h5"]["sha256"] == sha
    rows = load_results([a, b])
    assert {r["weights"] for r in rows} == {"random", f"run a {sha[:8]}"}
    table = format_table(rows, report_columns(rows))
    assert "started from" in table.splitlines()[0] and f"run a {sha[:8]}" in table
    assert f"Started from: run a {sha[:8]}" in (b / "report.md").read_text()
    with pytest.raises(UserError, match="does not fit") as err:  # another alpha: refused, as documented
        _run(tmp_path, "c", model={"weights": str(a), "alpha": 0.5}, train=tiny)
    assert "\n" not in str(err.value)


def test_report_rows_say_which_weights_they_started_from():
    from edgecnn.report.results import rows_from_metrics
    from edgecnn.report.tables import REPORT_COLUMNS, format_table, report_columns

    def metrics(source, file=None):
        started = {"weights": {"source": source, "file": file, "sha256": "ab" * 32}} if source else {}
        return {
            "config": {"model": {"weights": source}},
            "stages": {"trained": started},
            "rows": [{"variant": "float32", "precision": "float32", "file": "m.tflite", "model": "lenet5"}],
        }

    scratch = rows_from_metrics(metrics(None))
    assert scratch[0]["weights"] == "random" and report_columns(scratch) == REPORT_COLUMNS
    rows = scratch + rows_from_metrics(metrics("imagenet", "/k/models/x.h5"))
    rows += rows_from_metrics(metrics("runs/a", "runs/a/train/weights.h5"))
    rows += rows_from_metrics(metrics("w/m.keras", "w/m.keras"))
    assert [r["weights"] for r in rows] == ["random", "imagenet abababab", "run a abababab", "m.keras abababab"]
    table = format_table(rows, report_columns(rows)).splitlines()
    assert table[0].split()[1:3] == ["started", "from"] and "run a abababab" in table[4]


def test_a_run_from_keras_weights_rebuilds_keras_network(tmp_path, capsys):
    """A run that started from Keras' weights trained the keras_compatible network (here
    MobileNetV3's in-model rescaling, no weights of its own): its run folder, and the
    train/model.keras and train/weights.h5 in it, build that network again and take the
    run's input convention, so the weights compute the run's function."""
    from edgecnn.models import model_info
    from edgecnn.models._weights import input_convention

    kwargs = dict(alpha=0.75, input_shape=(32, 32, 3), classes=4)
    source = edgecnn.create_model("mobilenet_v3_small", keras_compatible=True, **kwargs)
    run = tmp_path / "run"
    (run / "train").mkdir(parents=True)
    source.save_weights(str(run / "train" / "weights.h5"))
    source.save(run / "train" / "model.keras")
    (run / "config.json").write_text(json.dumps({"model": {"name": "mobilenet_v3_small", "weights": "imagenet"}}))
    (run / "preprocess.json").write_text(json.dumps({"scale": 1.0, "offset": 0.0, "class_names": list("abcd")}))
    x = np.random.default_rng(5).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    want = source.predict(x, verbose=0)
    for weights in (run, run / "train" / "model.keras", run / "train" / "weights.h5"):
        ours = edgecnn.create_model("mobilenet_v3_small", weights=str(weights), **kwargs)
        assert float(np.abs(ours.predict(x, verbose=0) - want).max()) <= 1e-5, weights
        assert input_convention(model_info("mobilenet_v3_small"), str(weights)) == {"scale": 1.0, "offset": 0.0}
    assert ours.layers[1].name == "rescaling"  # Keras' include_preprocessing, which the weights expect
