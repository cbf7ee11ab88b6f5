"""Hostile input: malformed recipes, damaged .tflite files, bad images and data, escaping paths.

Each must end in one clear error (exit code 2 from the CLI), never a hang, never a crash
of the main process, and never the loss of an earlier result.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgecnn.errors import UserError
from edgecnn.recipe import parse_recipe
from edgecnn.stages import ORDER

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def parses_or_user_error(text: str):
    try:
        parse_recipe(text, "fuzz.yaml", check_files=True)
    except UserError as exc:
        msg = str(exc)
        assert msg.startswith(("fuzz.yaml", "--set")) and "\n" not in msg.strip(), msg


@SETTINGS
@given(st.text(max_size=300))
def test_random_text_never_crashes(text):
    parses_or_user_error(text)


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**6), 10**6), st.floats(allow_nan=True), st.text(max_size=20)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)
section_keys = st.sampled_from(
    ["model", "data", "train", "convert", "bench", "out", "stages", "vars", "name", "prune", "qat", "bogus"]
)
field_keys = st.sampled_from(
    [
        "name",
        "alpha",
        "args",
        "source",
        "image_size",
        "seed",
        "epochs",
        "batch_size",
        "learning_rate",
        "int8",
        "runs",
        "threads",
        "precisions",
        "sparsity",
        "x",
    ]
)
sections = st.dictionaries(section_keys, st.one_of(values, st.dictionaries(field_keys, values, max_size=4)), max_size=6)
stage_lists = st.lists(
    st.one_of(st.sampled_from(ORDER + ("nope",)), st.dictionaries(st.sampled_from(ORDER), values, max_size=2)),
    max_size=5,
)


@SETTINGS
@given(sections, stage_lists)
def test_random_mappings_are_valid_or_a_user_error(tree, stages):
    tree = dict(tree)
    if stages:
        tree["stages"] = stages
    parses_or_user_error(yaml.safe_dump(tree))


def test_alias_bombs_and_deep_nesting_are_refused():
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
    )
    with pytest.raises(UserError):
        parse_recipe(bomb, "bomb.yaml")
    with pytest.raises(UserError):
        parse_recipe("a: " + "[" * 5000 + "]" * 5000, "deep.yaml")


# ----------------------------------------------------------------------------- .tflite files
@pytest.fixture(scope="module")
def tflite_model(tmp_path_factory):
    from edgecnn._tf import keras
    from edgecnn.tflite.convert import convert

    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    path = tmp_path_factory.mktemp("tfl") / "good.tflite"
    convert(model, path, "float32")
    return path


def damaged_copies(good: Path, folder: Path) -> list:
    data = bytearray(good.read_bytes())
    out = []
    for name, blob in (("empty", b""), ("truncated", bytes(data[: len(data) // 2])), ("text", b"hello " * 20)):
        (folder / f"{name}.tflite").write_bytes(blob)
        out.append(folder / f"{name}.tflite")
    rng = np.random.default_rng(0)
    for i in range(3):  # bit flips in the flatbuffer's tables (the first part of the file)
        flipped = bytearray(data)
        for pos in rng.integers(8, min(len(data), 600), size=8):
            flipped[pos] ^= 1 << int(rng.integers(0, 8))
        (folder / f"flipped{i}.tflite").write_bytes(bytes(flipped))
        out.append(folder / f"flipped{i}.tflite")
    return out


def cli(*args, timeout=240):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "edgecnn", *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT
    )


def test_damaged_tflite_files_give_one_line_errors(tflite_model, tmp_path):
    """bench and eval: exit 2 with one error line, or (a harmless flip) a normal result; never a crash or hang."""
    for path in damaged_copies(tflite_model, tmp_path):
        for args in (["bench", str(path), "--runs", "3", "--timeout", "60"], ["eval", str(path), "--data", "digits"]):
            res = cli(*args)
            assert res.returncode in (0, 2), (path.name, args[0], res.returncode, res.stderr[-2000:])
            assert "Traceback" not in res.stderr, (path.name, res.stderr[-2000:])
            if res.returncode == 2:
                errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
                assert len(errors) == 1, res.stderr[-2000:]


# ----------------------------------------------------------------------------- data
def image_folder(root: Path, classes=("a", "b"), per_class=6) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


def test_corrupt_and_mislabeled_images(tmp_path):
    from edgecnn.data.dataset import load_dataset

    root = image_folder(tmp_path / "photos")
    # A PNG saved under a .jpg name is still an image: it loads.
    (root / "a" / "0.png").rename(root / "a" / "renamed.jpg")
    assert load_dataset(str(root), image_size=16, channels=3).num_classes == 2
    # Garbage bytes under an image name, and a truncated PNG: one error naming the file.
    (root / "b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(50))
    with pytest.raises(UserError, match="broken.png"):
        load_dataset(str(root), image_size=16, channels=3)
    (root / "b" / "broken.png").unlink()
    good = (root / "b" / "1.png").read_bytes()
    (root / "b" / "cut.png").write_bytes(good[: len(good) // 2])
    with pytest.raises(UserError, match="cut.png"):
        load_dataset(str(root), image_size=16, channels=3)


def test_empty_class_folder_is_named(tmp_path):
    from edgecnn.data.dataset import load_dataset

    root = image_folder(tmp_path / "photos")
    (root / "empty_class").mkdir()
    with pytest.raises(UserError, match="empty_class"):
        load_dataset(str(root), image_size=16, channels=3)


def test_npz_with_pickled_objects_is_refused(tmp_path):
    from edgecnn.data.dataset import load_dataset

    path = tmp_path / "evil.npz"
    np.savez(path, x=np.array([{"a": 1}] * 20, dtype=object), y=np.zeros(20, dtype=np.int64))
    with pytest.raises(UserError, match="pickled"):
        load_dataset(str(path))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="junk.npz"):  # refused, naming the file (numpy reads junk as a pickle)
        load_dataset(str(tmp_path / "junk.npz"))


# ----------------------------------------------------------------------------- paths
def test_recipe_outputs_cannot_escape_and_earlier_results_stay(tmp_path):
    keep = ROOT / "runs" / "hostile-keep"
    keep.mkdir(parents=True, exist_ok=True)
    (keep / "metrics.json").write_text('{"kept": true}\n')
    for out in ("../../etc", "runs/../../outside", "/etc"):
        recipe = tmp_path / "escape.yaml"
        recipe.write_text(f"model: {{name: lenet5}}\nout: {out}\n")
        res = cli("run", str(recipe))
        assert res.returncode == 2 and "escape.yaml line 2: out " in res.stderr, res.stderr[-1000:]
    res = cli("run", str(recipe), "--set", "out=runs/hostile-keep", "--set", "train.epoch=1")
    assert res.returncode == 2 and "did you mean epochs" in res.stderr
    assert (keep / "metrics.json").read_text() == '{"kept": true}\n'


# ----------------------------------------------------------------------------- code in files and folders
def lambda_model(marker: Path):
    """A tiny model whose Lambda layer writes ``marker`` whenever its code runs."""
    from edgecnn._tf import keras

    # eval: the lambda carries the path as a constant, so its bytecode runs anywhere it is loaded
    write_marker = eval(f"lambda x: (__import__('pathlib').Path({str(marker)!r}).write_text('ran'), x)[1]")
    inputs = keras.Input((32, 32, 1))
    x = keras.layers.Lambda(write_marker, name="evil")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))


@pytest.fixture(scope="module")
def lambda_teachers(tmp_path_factory):
    """The same Lambda teacher as HDF5, as a Keras v3 zip and as HDF5 renamed to .keras."""
    import shutil

    folder = tmp_path_factory.mktemp("teachers")
    marker = folder / "marker"
    model = lambda_model(marker)
    assert marker.exists()  # building the model runs the Lambda: the marker works
    model.save(folder / "lambda.h5")
    model.save(folder / "lambda.keras")
    shutil.copy(folder / "lambda.h5", folder / "lambda_h5.keras")
    marker.unlink()
    return folder, marker


@pytest.mark.parametrize(
    "name, words",
    [
        ("lambda.h5", "layer 'evil' is a Lambda layer"),
        ("lambda.keras", "layer 'evil' is a Lambda layer"),
        ("lambda_h5.keras", "not a Keras v3 zip"),
    ],
)
def test_teacher_files_with_code_are_refused_unrun(lambda_teachers, name, words):
    """The legacy HDF5 loader runs a Lambda's bytecode even in safe mode: it is refused before loading."""
    from edgecnn.optimize.distill import load_teacher_file

    folder, marker = lambda_teachers
    with pytest.raises(UserError) as info:
        load_teacher_file(str(folder / name))
    message = str(info.value)
    assert words in message and name in message and "\n" not in message, message
    assert not marker.exists(), f"loading {name} ran the Lambda's code"


@pytest.mark.parametrize(
    "entry, words",
    [
        ({"class_name": "Lambda", "config": {"name": "f"}}, "Lambda"),
        (
            {
                "class_name": "Dense",
                "config": {
                    "name": "d",
                    "activation": {"class_name": "function", "module": "builtins", "config": "exec"},
                },
            },
            "'function'",
        ),
        ({"class_name": "Dense", "module": "os", "config": {"name": "d"}}, "module 'os'"),
        ({"class_name": "TFOpLambda", "config": {"name": "op", "function": "io.write_file"}}, "TFOpLambda"),
        ({"class_name": "Dense", "registered_name": "evil>Thing", "config": {"name": "d"}}, "evil>Thing"),
        ({"class_name": "Dense", "config": {"name": "d", "function_type": "lambda"}}, "Python code"),
    ],
)
def test_unsafe_config_entries_are_named(entry, words):
    from edgecnn.optimize.distill import unsafe_config_entry

    config = {"class_name": "Functional", "config": {"layers": [{"class_name": "InputLayer", "config": {}}, entry]}}
    reason = unsafe_config_entry(config)
    assert reason and words in reason, reason


def test_saved_zoo_teachers_still_load(tmp_path):
    """The guard refuses code, not our models: custom layers (SE, hard swish) load from both formats."""
    from edgecnn.models import create_model
    from edgecnn.optimize.distill import load_teacher_file

    model = create_model("mobilenet_v3_small", alpha=0.25, input_shape=(32, 32, 3), classes=10)
    for name in ("teacher.keras", "teacher.h5"):
        model.save(tmp_path / name)
        loaded = load_teacher_file(str(tmp_path / name))
        assert loaded.count_params() == model.count_params(), name
    (tmp_path / "teacher.bin").write_bytes(b"\0" * 64)
    with pytest.raises(UserError, match="teacher.bin: not a Keras model file"):
        load_teacher_file(str(tmp_path / "teacher.bin"))


def as_console_script(*args, cwd, timeout=240):
    """Run the CLI as its console script does: the current directory is not on ``sys.path``."""
    code = "import sys; sys.path[:] = [p for p in sys.path if p]; from edgecnn.cli import main; sys.exit(main())"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd
    )


def test_distill_from_a_lambda_teacher_fails_without_running_it(lambda_teachers, tmp_path):
    folder, marker = lambda_teachers
    res = as_console_script(
        "optimize",
        "lenet5",
        "--epochs",
        "0",
        "--distill-from",
        str(folder / "lambda.h5"),
        "--no-bench",
        "--out",
        "runs/x",
        cwd=tmp_path,
    )
    assert res.returncode == 2, res.stderr[-2000:]
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Lambda" in errors[0] and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert not marker.exists()


def test_bench_child_does_not_import_from_the_current_folder(tflite_model, tmp_path):
    """``python -m`` puts the current folder first on sys.path; the bench child must not run ./edgecnn."""
    marker = tmp_path / "marker"
    (tmp_path / "edgecnn").mkdir()
    (tmp_path / "edgecnn" / "__init__.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    res = as_console_script("bench", str(tflite_model), "--runs", "3", "--timeout", "120", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "median" in res.stdout and not marker.exists()
