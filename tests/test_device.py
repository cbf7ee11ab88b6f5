"""The device side: no TensorFlow, flatbuffer reading, compatibility, delegation, edgecnn-device."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _tiny_tflite import build_tiny_models, tiny_npz

ROOT = Path(__file__).resolve().parents[1]

BLOCKER = """
import sys
BLOCKED = ("tensorflow", "tf_keras", "keras", "tensorflow_model_optimization", "sklearn", "matplotlib")
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"device code imported {name}")
        return None
sys.meta_path.insert(0, Block())
"""


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return build_tiny_models(tmp_path_factory.mktemp("tiny"))


def _run_blocked(code: str, cwd) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), EDGECNN_DEVICE="test-device")
    return subprocess.run(
        [sys.executable, "-c", BLOCKER + code], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )


def test_device_modules_never_import_tensorflow(tmp_path):
    code = """
import importlib, pkgutil, edgecnn.device
names = [m.name for m in pkgutil.iter_modules(edgecnn.device.__path__, "edgecnn.device.")]
for name in names:
    importlib.import_module(name)
assert "tensorflow" not in sys.modules and "sklearn" not in sys.modules
print("imported", len(names))
"""
    proc = _run_blocked(code, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "imported" in proc.stdout


def test_edgecnn_device_bench_and_eval_run_with_tensorflow_blocked(models, tmp_path):
    from edgecnn.device.profile import why_no_profiler
    from edgecnn.device.runtime import available_runtimes

    npz = tiny_npz(tmp_path / "data.npz")
    # The per-op profile too, where LiteRT is installed (its C API is the only profiler).
    profiled = "litert" in available_runtimes() and why_no_profiler("litert") is None
    profile_flag = ["--profile"] if profiled else []
    code = f"""
import sys
from edgecnn.device.cli import main
for argv in (["bench", {str(models["int8"])!r}, "--runs", "5", "-o", "bench.json"] + {profile_flag!r},
             ["eval", {str(models["int8"])!r}, "--data", {str(npz)!r}, "-o", "eval.json"]):
    try:
        main(argv, standalone_mode=False)
    except SystemExit as exc:
        assert not exc.code, exc.code
assert "tensorflow" not in sys.modules
"""
    proc = _run_blocked(code, tmp_path)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    bench = json.loads((tmp_path / "bench.json").read_text())
    evaluation = json.loads((tmp_path / "eval.json").read_text())
    assert (
        bench["status"] == "ok"
        and bench["device"] == "test-device"
        and bench["runtime"] in ("litert", "tflite_runtime")
    )
    assert bench["cpu"] and bench["runtime_version"]
    if profiled:
        assert bench["profile"]["status"] == "ok" and bench["profile"]["op_types"]
        assert (tmp_path / "bench_profile_ops.md").is_file()
    assert evaluation["kind"] == "eval" and evaluation["samples"] == 12 and evaluation["sha256"] == bench["sha256"]
    assert np.asarray(evaluation["confusion"]).sum() == 12


def test_flatbuffer_reader_sees_ops_and_versions(models):
    from edgecnn.device.flatbuffer import read_model

    info = read_model(models["int8"])
    names = {op.name for op in info.operators}
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"} <= names
    conv = next(op for op in info.operators if op.name == "CONV_2D")
    assert conv.input_types[0] == "int8" and conv.version >= 3  # int8 conv is version 3+
    assert info.min_runtime_version and info.min_runtime_version[0].isdigit()


def test_the_hand_reader_reads_what_literts_schema_reads(models):
    """The one .tflite reader has two backends; the fallback (a Pi without LiteRT) must give the
    same ops, tensors (type, shape, constant), subgraphs and metadata as LiteRT's schema."""
    from edgecnn.device import flatbuffer as fb

    for precision, path in models.items():
        buf = Path(path).read_bytes()
        by_schema = fb._parse_with_schema(buf, fb.litert_schema())
        assert fb._parse_by_hand(buf) == by_schema, precision
        assert by_schema.operators and by_schema.metadata["min_runtime_version"]
        assert any(t.is_const for op in by_schema.operators for t in op.inputs), precision


def test_the_fallback_op_names_are_generated_from_literts_schema():
    """The hand reader's op-name and tensor-type tables are not kept by hand: they are the text
    ``python -m edgecnn.device.flatbuffer`` generates from the installed LiteRT schema."""
    from edgecnn.device import _schema_tables
    from edgecnn.device.flatbuffer import SCHEMA_TABLES_FILE, builtin_ops, litert_schema, schema_tables_source

    schema = litert_schema()
    assert SCHEMA_TABLES_FILE.read_text() == schema_tables_source(schema), (
        "LiteRT's schema changed: regenerate with python -m edgecnn.device.flatbuffer"
    )
    assert _schema_tables.BUILTIN_OPS == builtin_ops()
    assert _schema_tables.BUILTIN_OPS[schema.BuiltinOperator.TOPK_V2] == "TOPK_V2"
    assert _schema_tables.TENSOR_TYPES[schema.TensorType.INT8] == "int8"


def test_one_module_reads_tflite_files():
    """The one reader: only device/flatbuffer.py imports a generated TFLite schema; the metadata
    writer takes LiteRT's from it (to re-pack the model) and nothing else parses a .tflite."""
    import ast

    importers, parsers = [], []
    for path in sorted((ROOT / "edgecnn").rglob("*.py")):
        tree = ast.parse(path.read_text())
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [f"{n.module}.{a.name}" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names]
        if any("schema_py_generated" in name for name in names):
            importers.append(path.relative_to(ROOT).as_posix())
        if any(isinstance(n, ast.Attribute) and n.attr == "GetRootAs" for n in ast.walk(tree)):
            parsers.append(path.relative_to(ROOT).as_posix())
    assert importers == ["edgecnn/device/flatbuffer.py"]
    assert parsers == ["edgecnn/device/flatbuffer.py", "edgecnn/tflite/metadata.py"]


@pytest.mark.parametrize("backend", ["litert schema", "hand reader"])
def test_truncated_files_are_refused_by_either_reader(models, backend, monkeypatch):
    from edgecnn.device import flatbuffer as fb

    if backend == "hand reader":
        monkeypatch.setattr(fb, "litert_schema", lambda: None)
    data = Path(models["float32"]).read_bytes()
    with pytest.raises(fb.FlatbufferError, match="truncated"):
        fb.read_model(data[: len(data) // 2])
    with pytest.raises(fb.FlatbufferError, match="TFL3"):
        fb.read_model(b"not a model at all, really")


def test_truncated_and_corrupt_files_are_reported(models, tmp_path):
    from edgecnn.device.runtime import ModelLoadError, check_model_file

    data = Path(models["float32"]).read_bytes()
    (tmp_path / "cut.tflite").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.tflite").write_bytes(b"\0\0\0\0TFL3" + bytes(range(256)) * 4)
    (tmp_path / "text.tflite").write_text("not a model at all, really")
    for name, words in (("cut", "truncated"), ("junk", "not a valid"), ("text", "TFL3")):
        with pytest.raises(ModelLoadError, match=words):
            check_model_file(tmp_path / f"{name}.tflite")


def test_device_errors_are_user_errors():
    """``except UserError`` (the CLIs) catches them; their old bases still match."""
    from edgecnn.device.preprocess import ImageError
    from edgecnn.device.runtime import ModelLoadError, RuntimeUnavailable
    from edgecnn.errors import UserError

    for cls, base in ((ModelLoadError, ValueError), (RuntimeUnavailable, RuntimeError), (ImageError, ValueError)):
        assert issubclass(cls, UserError) and issubclass(cls, base), cls


def test_compatibility_flags_ops_newer_than_the_runtime(models):
    from edgecnn.device.compat import compatibility, first_release, parse_version

    assert parse_version("2.16.0rc1") == (2, 16, 0) and parse_version("1.13.1") > parse_version("1.13")
    assert first_release("CONV_2D", 1) == "1.5" and first_release("CONV_2D", 99) is None
    old = compatibility(models["int8"], "2.14")
    assert old["compatible"] is True and old["needs_newer"] == []
    ancient = compatibility(models["int8"], "1.5")
    assert ancient["compatible"] is False
    assert {e["op"] for e in ancient["needs_newer"]} >= {"CONV_2D"}


def test_dynamic_range_model_needs_newer_runtime_than_2_14(models):
    from edgecnn.device.compat import compatibility

    rep = compatibility(models["dynamic"], "2.14")
    fc = [e for e in rep["ops"] if e["op"] == "FULLY_CONNECTED"][0]
    # TF 2.21 writes FULLY_CONNECTED v12 (2.17+) for dynamic-range models.
    assert (rep["compatible"] is False) == (fc["version"] >= 11)


def test_delegation_partition_walk():
    from edgecnn.device.delegation import report_from_ops

    ops = [
        {"index": 0, "op_name": "CONV_2D", "inputs": [0, 1], "outputs": [2]},
        {"index": 1, "op_name": "CONV_2D", "inputs": [2, 3], "outputs": [4]},
        {"index": 2, "op_name": "SOFTMAX", "inputs": [4], "outputs": [5]},
        {"index": 3, "op_name": "DELEGATE", "inputs": [0, 1, 3], "outputs": [4]},
    ]
    rep = report_from_ops(ops)
    assert rep["total"] == 3 and rep["delegated"] == 2 and rep["fallback_ops"] == {"SOFTMAX": 1}


def test_delegation_report_matches_runtime_with_and_without_xnnpack(models):
    from edgecnn.device.delegation import delegation_report, interpreter_delegation
    from edgecnn.device.flatbuffer import read_model
    from edgecnn.device.runtime import load_interpreter

    n_ops = len(read_model(models["float32"]).operators)
    rep = delegation_report(models["float32"])
    assert rep["total"] == n_ops and rep["delegated"] == n_ops and rep["fallback_ops"] == {}  # float32: all XNNPACK
    plain, _, _ = load_interpreter(models["float32"], delegate=False)
    none = interpreter_delegation(plain)
    assert none["delegated"] == 0 and sum(none["fallback_ops"].values()) == n_ops


def test_load_labelled_folder_and_npz(tmp_path):
    from PIL import Image

    from edgecnn.device.evaluate import load_labelled

    for cls in ("cat", "dog"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.full((20, 20, 3), 40 * i, np.uint8)).save(tmp_path / "imgs" / cls / f"{i}.png")
    x, y, names = load_labelled(tmp_path / "imgs", (16, 16), 3)
    assert x.shape == (4, 16, 16, 3) and list(y) == [0, 0, 1, 1] and names == ["cat", "dog"]
    np.savez(tmp_path / "f.npz", x_test=np.random.rand(3, 8, 8).astype(np.float32), y_test=np.array([0, 1, 2]))
    x, y, names = load_labelled(tmp_path / "f.npz", (16, 16), 3)
    # no class_names: the labels are class indices of the model, used as they are
    assert x.shape == (3, 16, 16, 3) and x.dtype == np.uint8 and names is None and list(y) == [0, 1, 2]
    np.savez(tmp_path / "bad.npz", images=np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="needs arrays x and y"):
        load_labelled(tmp_path / "bad.npz", (16, 16), 3)
