"""``manifest.json``: the sha256 of every input and output of a run, and the versions that made it.

With it, a run can be checked later (were these the files it produced? from which data?)
and two runs compared byte for byte. Inputs are the data source (the digits file that
ships with scikit-learn, every file of an image folder, or the ``.npz``), the files a
stage's settings name (:meth:`edgecnn.stages.Stage.input_files`: a distillation teacher
given as a file), and the recipe; outputs are the files the run wrote (and the
files of the cached stage folders it reused), never whatever else the folder holds.

Example:
    >>> write_manifest("runs/lenet5_digits", cfg)            # doctest: +SKIP
    >>> json.load(open("runs/lenet5_digits/manifest.json"))["outputs"]["model_int8.tflite"]  # doctest: +SKIP
    {'sha256': '...', 'bytes': 81234}
"""

from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path

from edgecnn import __version__
from edgecnn._io import sha256_file, write_json

MANIFEST = "manifest.json"


def data_inputs(source: str) -> dict:
    """``{name: {"sha256", "bytes" | "files"}}`` for a data source (``digits``, folder, ``.npz``).

    Example:
        >>> sorted(data_inputs("digits"))  # doctest: +SKIP
        ['data:digits']
    """
    if source == "digits":
        try:
            import sklearn.datasets

            path = Path(sklearn.datasets.__file__).parent / "data" / "digits.csv.gz"
            return {"data:digits": {"path": str(path), "sha256": sha256_file(path), "bytes": path.stat().st_size}}
        except (ImportError, OSError):
            return {"data:digits": {"sha256": None, "note": "scikit-learn's digits file not found"}}
    p = Path(source).expanduser()
    if p.is_file():
        return {f"data:{p.name}": {"path": str(p.resolve()), "sha256": sha256_file(p), "bytes": p.stat().st_size}}
    if p.is_dir():
        h, count, total = hashlib.sha256(), 0, 0
        for f in sorted(q for q in p.rglob("*") if q.is_file()):
            rel = f.relative_to(p).as_posix()
            h.update(rel.encode() + b"\0" + sha256_file(f).encode() + b"\n")
            count, total = count + 1, total + f.stat().st_size
        # sha256 over "relative path NUL sha256(file)" lines, sorted by path.
        return {f"data:{p.name}/": {"path": str(p.resolve()), "sha256": h.hexdigest(), "files": count, "bytes": total}}
    return {}


def output_files(out, names=None) -> dict:
    """``{relative path: {"sha256", "bytes"}}`` for the finished files under ``out``.

    ``names`` (paths relative to ``out``; a folder stands for the files in it) limits the
    list to what a run wrote; without it, every file under ``out`` is listed.

    Example:
        >>> sorted(output_files("runs/lenet5", ["metrics.json", "train"]))  # doctest: +SKIP
        ['metrics.json', 'train/model.keras', 'train/stage.json', 'train/weights.h5']
    """
    out = Path(out)
    files = {}
    if names is None:
        candidates = out.rglob("*")
    else:
        candidates = []
        for name in dict.fromkeys(names):
            path = out / name
            candidates += list(path.rglob("*")) if path.is_dir() else [path]
    for f in sorted(candidates):
        rel = f.relative_to(out)
        if not f.is_file() or rel.as_posix() == MANIFEST or any(part.startswith((".", "_")) for part in rel.parts):
            continue  # temporary files (".x.tmp") and resume checkpoints ("_backup") are not outputs
        files[rel.as_posix()] = {"sha256": sha256_file(f), "bytes": f.stat().st_size}
    return files


def versions() -> dict:
    """The versions of edgecnn, Python and the packages that made a run, and the runtimes present."""
    from importlib.metadata import PackageNotFoundError, version

    from edgecnn.device.runtime import available_runtimes

    found = {"edgecnn": __version__, "python": platform.python_version()}
    for dist in (
        "tensorflow",
        "tf-keras",
        "tensorflow-model-optimization",
        "ai-edge-litert",
        "tflite-runtime",
        "numpy",
    ):
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            pass
    found["runtimes"] = available_runtimes()
    return found


def write_manifest(out, cfg, extra_inputs: dict | None = None, outputs=None) -> Path:
    """Write ``<out>/manifest.json`` (inputs, outputs, versions) atomically; returns its path.

    ``extra_inputs`` maps a label to a file (e.g. ``{"recipe": "recipes/x.yaml"}``);
    ``outputs`` names the files (and stage folders) the run wrote, relative to ``out``
    (:func:`edgecnn.pipeline.optimize` passes them); without it every file is listed.
    """
    from edgecnn.stages import model_stages

    inputs = data_inputs(cfg.data.source)
    for stage in model_stages():  # the files each stage's settings name (distill: a saved teacher)
        if hasattr(cfg, stage.name):
            for role, t in stage.input_files(cfg).items():
                inputs[f"{role}:{t.name}"] = {"path": str(t.resolve()), "sha256": sha256_file(t),
                                              "bytes": t.stat().st_size}
    for label, path in (extra_inputs or {}).items():
        if path is not None and Path(path).is_file():
            inputs[label] = {
                "path": str(Path(path).resolve()),
                "sha256": sha256_file(path),
                "bytes": Path(path).stat().st_size,
            }
    manifest = {
        "versions": versions(),
        "inputs": inputs,
        "outputs": output_files(out, outputs),
        "config_sha256": hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode()).hexdigest(),
    }
    return write_json(Path(out) / MANIFEST, manifest)
