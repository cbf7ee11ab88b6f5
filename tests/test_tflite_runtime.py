"""The device side on tflite-runtime 2.14 in its own virtualenv, as a Raspberry Pi user installs it.

``python -m venv`` + ``pip install <this repo> tflite-runtime==2.14.0 "numpy<2"`` (the README's
Pi line; numpy, Pillow and click come with edgecnn's base install, TensorFlow does not), then
``edgecnn-device predict`` from that venv on the small main job's (``lenet_run``) int8 and
float32 files, with their metadata and without it (with ``preprocess.json`` beside the file):

* the outputs are bit-identical with and without metadata on tflite-runtime 2.14;
* the predictions equal LiteRT's (this process) on the same files.

The venv is kept under pytest's cache (``.pytest_cache/d/tflite-runtime-2.14``) so reruns
skip the install; the venv's ``edgecnn-device`` runs this worktree's code (``PYTHONPATH``).
Skipped only when pip cannot reach a package index.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _metadata_reader import without_metadata

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["tflite-runtime==2.14.0", "numpy<2"]
OFFLINE_SIGNS = (
    "No matching distribution found",
    "Could not find a version that satisfies",
    "Temporary failure in name resolution",
    "Network is unreachable",
    "Failed to establish a new connection",
    "ProxyError",
)


def cached_venv(config, tmp_path_factory, name: str, packages: list, with_edgecnn: bool) -> Path:
    """A virtualenv with ``packages`` (and this repo, installed as a user would, when
    ``with_edgecnn``), kept under pytest's cache and rebuilt when setup.py or the list changes;
    skips the test when pip cannot reach a package index."""
    key = hashlib.sha256((ROOT / "setup.py").read_bytes() + "\n".join(packages).encode()).hexdigest()[:12]
    cache = getattr(config, "cache", None)
    base = cache.mkdir(name) if cache is not None else tmp_path_factory.mktemp("venv")
    venv = Path(base) / f"venv-{key}"
    python = venv / "bin" / "python"
    if (venv / "installed").is_file():
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    extra = []
    if with_edgecnn:  # a copy of the source tree without build outputs, so pip builds a clean wheel
        src = venv / "src"
        shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", "runs", "*.tflite", ".pytest_cache", "build"))
        extra = [str(src)]
    pip = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", *extra, *packages], capture_output=True, text=True
    )
    if pip.returncode != 0:
        if any(sign in pip.stdout + pip.stderr for sign in OFFLINE_SIGNS):
            pytest.skip(f"pip cannot reach a package index for {' '.join(packages)}: {pip.stderr.strip()[-300:]}")
        raise AssertionError(f"pip install failed:\n{pip.stdout}\n{pip.stderr}")
    (venv / "installed").write_text("ok\n")
    return venv


@pytest.fixture(scope="session")
def device_venv(request, tmp_path_factory) -> Path:
    """A virtualenv with edgecnn's device side and tflite-runtime 2.14 (no TensorFlow)."""
    return cached_venv(request.config, tmp_path_factory, "tflite-runtime-2.14", PACKAGES, with_edgecnn=True)


def _device(venv: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this worktree's edgecnn over the installed copy
    return subprocess.run([str(venv / "bin" / "edgecnn-device"), *args], capture_output=True, text=True, env=env)


@pytest.mark.slow
def test_device_side_installs_without_tensorflow(device_venv):
    python = str(device_venv / "bin" / "python")
    probe = (
        "import importlib.util, numpy, tflite_runtime; "
        "print(importlib.util.find_spec('tensorflow') is None, numpy.__version__, tflite_runtime.__version__)"
    )
    out = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "True" and int(out[1].split(".")[0]) == 1 and out[2] == "2.14.0"
    assert (device_venv / "bin" / "edgecnn-device").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["int8", "float32"])
def test_tflite_runtime_predicts_like_litert_with_and_without_metadata(
    device_venv, lenet_run, digit_pngs, precision, tmp_path
):
    from click.testing import CliRunner

    from edgecnn.device.cli import main

    out, _ = lenet_run
    root, n = digit_pngs
    with_md = tmp_path / "with" / f"model_{precision}.tflite"  # alone: the metadata gives labels and mean/std
    bare = tmp_path / "bare" / f"model_{precision}.tflite"  # no metadata: preprocess.json beside it
    with_md.parent.mkdir()
    bare.parent.mkdir()
    shutil.copy(out / with_md.name, with_md)
    bare.write_bytes(without_metadata(with_md.read_bytes()))
    shutil.copy(out / "preprocess.json", bare.parent / "preprocess.json")

    results = {}
    for name, model in (("with", with_md), ("bare", bare)):
        args = ["predict", str(model), str(root), "--json", "--top-k", "3", "--runtime", "tflite_runtime"]
        r = _device(device_venv, *args)
        assert r.returncode == 0, r.stderr
        results[name] = json.loads(r.stdout)
        assert results[name]["runtime"] == "tflite_runtime" and results[name]["runtime_version"] == "2.14.0"
        assert len(results[name]["images"]) == n
    top = {name: [(i["image"], i["top_k"]) for i in res["images"]] for name, res in results.items()}
    assert top["with"] == top["bare"]  # same labels, same scores to the bit
    args = ["predict", str(with_md), str(root), "--json", "--top-k", "3", "--runtime", "litert"]
    litert = CliRunner().invoke(main, args)
    assert litert.exit_code == 0, litert.output
    lite = json.loads(litert.output)
    assert lite["runtime"] == "litert"
    # The same top-1 label on every image; scores within a few steps of the int8 output
    # (1/256: LiteRT's and tflite-runtime 2.14's int8 kernels round differently), float32 to 1e-5.
    runtime_214 = results["with"]["images"]
    assert [i["top_k"][0]["label"] for i in lite["images"]] == [i["top_k"][0]["label"] for i in runtime_214]
    gaps = [abs(a["top_k"][0]["score"] - b["top_k"][0]["score"]) for a, b in zip(lite["images"], runtime_214)]
    assert max(gaps) <= (4 / 256 if precision == "int8" else 1e-5), max(gaps)
