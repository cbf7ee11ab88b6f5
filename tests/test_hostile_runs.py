"""Hostile and careless use of run folders, result files, runtimes and clusters (issue 15, items 10-14).

Each CLI case asserts the exit code, exactly one line on stderr (``error: ...``), no
traceback, and that no file changed outside the run folder (most: no file changed at all).
The cases: a folder locked by another run (``optimize``, ``run``, ``sweep``); unwritable
run folders; a rerun with other settings into the same ``--out`` (no leftover of the first
run, a manifest of this run's files only); a failure and a full disk mid-run
(``config.json`` and ``metrics.json`` still agree); a result file that cannot be written
(the result is printed first); ``tflite-runtime`` under numpy 2; ``TF_CONFIG`` without
``--strategy multiworker``; a worker lost outside ``model.fit``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgecnn._io import run_lock, sha256_file
from edgecnn.errors import UserError

ROOT = Path(__file__).resolve().parent.parent
TRAIN = ["--epochs", "1", "--train-fraction", "0.2", "--no-bench"]


# --- helpers ---------------------------------------------------------------------------------


def snapshot(root: Path, skip: Path | None = None) -> dict:
    """``{relative path: (size, mtime_ns, sha256)}`` of every file under ``root`` outside ``skip``."""
    files = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not (skip and (p == skip or skip in p.parents)):
            files[str(p.relative_to(root))] = (p.stat().st_size, p.stat().st_mtime_ns, sha256_file(p))
    return files


def one_line_error(stderr: str, *words: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{stderr}"
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in stderr
    for word in words:
        assert word in lines[0], f"{word!r} not in {lines[0]!r}"
    return lines[0]


def edgecnn(*args, env=None):
    """``edgecnn ARGS`` in this process (click's runner): fast, TensorFlow loaded once."""
    from edgecnn.cli import main

    result = CliRunner().invoke(main, [str(a) for a in args], env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def console(*args, env=None, timeout=240):
    """A command in a child process (``edgecnn-device`` needs no TensorFlow: it starts fast)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", "import sys; from edgecnn.device.cli import main; sys.exit(main())", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


@contextlib.contextmanager
def held_lock(folder: Path):
    """Another process holding ``folder``'s run lock (as a run in progress does)."""
    code = (
        "import sys, time\nfrom edgecnn._io import run_lock\n"
        "with run_lock(sys.argv[1], command='edgecnn optimize lenet5 --int8 (the holder)'):\n"
        "    print('locked', flush=True)\n    time.sleep(300)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(folder)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        proc.kill()
        proc.wait()


# --- one run per folder: the lock ------------------------------------------------------------

RECIPE = "model: {name: lenet5}\ntrain: {epochs: 1}\nout: run\n"


@pytest.mark.parametrize(
    "command",
    [
        ["optimize", "lenet5", *TRAIN, "--out", "run"],
        ["run", "recipe.yaml"],
        ["sweep", "--models", "lenet5", "--alphas", "1.0", "--epochs", "1", "--out", "run"],
    ],
    ids=["optimize", "run", "sweep"],
)
def test_a_second_run_on_a_locked_folder_exits_2_naming_the_holder(command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("recipe.yaml").write_text(RECIPE)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.json").write_text('{"from": "the run in progress"}')
    with held_lock(tmp_path / "run") as holder:
        before = snapshot(tmp_path, skip=tmp_path / "run" / ".lock")
        result = edgecnn(*command)
        assert result.exit_code == 2
        one_line_error(result.stderr, "run folder run is in use by", f"pid {holder.pid}", "(the holder)")
        assert snapshot(tmp_path, skip=tmp_path / "run" / ".lock") == before  # nothing written, nothing moved


def test_the_lock_dies_with_its_holder(tmp_path):
    with held_lock(tmp_path) as holder:
        with pytest.raises(UserError, match=f"in use by pid {holder.pid}"):
            with run_lock(tmp_path):
                pass
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with run_lock(tmp_path):  # a killed run never leaves the folder locked
        assert f"pid {os.getpid()} " in (tmp_path / ".lock").read_text()


def test_the_lock_nests_in_one_process_and_its_line_goes_with_it(tmp_path):
    with run_lock(tmp_path / "run", command="outer"):
        with run_lock(tmp_path / "run", command="inner"):  # a recipe around the pipeline
            assert "outer" in (tmp_path / "run" / ".lock").read_text()
        assert "outer" in (tmp_path / "run" / ".lock").read_text()
    assert (tmp_path / "run" / ".lock").read_text() == ""


# --- unwritable run folders ------------------------------------------------------------------


@contextlib.contextmanager
def read_only(folder: Path):
    """``folder`` made read-only; as root (who writes anyway) opening files in it is refused instead."""
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):  # root: simulate what the kernel tells everyone else
            real_open = os.open

            def refuse(path, *args, **kwargs):
                if Path(os.path.abspath(path)).parent == folder.resolve():
                    raise PermissionError(errno.EACCES, "Permission denied", str(path))
                return real_open(path, *args, **kwargs)

            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(os, "open", refuse)
                yield
        else:
            yield
    finally:
        folder.chmod(0o755)


@pytest.mark.parametrize("case", ["read-only folder", "parent is a file", "recipe out is a file"])
def test_an_unwritable_out_is_one_line(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("afile").write_text("not a folder")
    Path("recipe.yaml").write_text(RECIPE.replace("out: run", "out: afile"))
    (tmp_path / "ro").mkdir()
    before = snapshot(tmp_path)
    with read_only(tmp_path / "ro") if case == "read-only folder" else contextlib.nullcontext():
        if case == "recipe out is a file":  # (--out afile is refused by click's own check of the flag)
            result = edgecnn("run", "recipe.yaml")
        else:
            result = edgecnn("optimize", "lenet5", *TRAIN, "--out", "ro" if case == "read-only folder" else "afile/run")
    assert result.exit_code == 2
    words = {"read-only folder": "cannot write to", "parent is a file": "cannot be created",
             "recipe out is a file": "is a file; give a folder"}
    one_line_error(result.stderr, words[case])  # refused before any work (config.check_out_path)
    assert snapshot(tmp_path) == before


# --- reruns, failures, a full disk: the folder holds one consistent run ---------------------


@pytest.fixture(scope="module")
def int8_run(tmp_path_factory):
    """``edgecnn optimize lenet5 --int8`` (one short epoch), the first of the issue's two runs."""
    folder = tmp_path_factory.mktemp("int8")
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        result = edgecnn("optimize", "lenet5", *TRAIN, "--int8", "--out", "run")
    finally:
        os.chdir(cwd)
    assert result.exit_code == 0, result.output
    assert (folder / "run" / "model_int8.tflite").is_file()
    return folder / "run"


@pytest.fixture()
def rerun_folder(int8_run, tmp_path, monkeypatch):
    """A copy of the int8 run in ``tmp_path/run``, with ``tmp_path`` as the working folder."""
    shutil.copytree(int8_run, tmp_path / "run")
    monkeypatch.chdir(tmp_path)
    return tmp_path / "run"


def _agree(folder: Path) -> None:
    """``config.json`` and ``metrics.json`` in ``folder`` describe the same run."""
    assert json.loads((folder / "metrics.json").read_text())["config"] == json.loads(
        (folder / "config.json").read_text()
    )


def test_a_rerun_with_other_settings_keeps_no_output_of_the_first(rerun_folder, tmp_path):
    (tmp_path / "keep.txt").write_text("a file beside the run")
    before = snapshot(tmp_path, skip=rerun_folder)
    first = snapshot(rerun_folder)
    result = edgecnn("optimize", "lenet5", *TRAIN, "--alpha", "0.5", "--out", "run")
    assert result.exit_code == 0, result.output
    assert snapshot(tmp_path, skip=rerun_folder) == before
    tops = sorted(p.name for p in rerun_folder.iterdir() if p.is_file() and not p.name.startswith("."))
    assert "model_int8.tflite" not in tops  # the case: the alpha-1.0 int8 file is gone
    assert tops == sorted(
        ["config.json", "preprocess.json", "metrics.json", "manifest.json", "report.md", "model_float32.tflite",
         "table.md", "table.csv", "table.json"]
    )  # fmt: skip
    (previous,) = (rerun_folder / ".previous").iterdir()
    for name in ("model_int8.tflite", "model_float32.tflite", "metrics.json", "config.json", "manifest.json"):
        assert snapshot(previous)[name][2] == first[name][2]  # moved aside unchanged
    _agree(rerun_folder)
    _agree(previous)
    assert json.loads((rerun_folder / "config.json").read_text())["model"]["alpha"] == 0.5
    manifest = json.loads((rerun_folder / "manifest.json").read_text())
    assert set(manifest["outputs"]) == {n for n in tops if n != "manifest.json"} | {
        "train/stage.json", "train/weights.h5", "train/model.keras"
    }  # fmt: skip
    for name, entry in manifest["outputs"].items():
        assert entry["sha256"] == sha256_file(rerun_folder / name)
    rows = json.loads((rerun_folder / "metrics.json").read_text())["rows"]
    assert [r["file"] for r in rows] == ["model_float32.tflite"]
    assert rows[0]["sha256"] == manifest["outputs"]["model_float32.tflite"]["sha256"]


def test_a_failure_mid_run_leaves_config_and_metrics_agreeing(rerun_folder, monkeypatch):
    import edgecnn.tflite.convert
    from edgecnn.pipeline import optimize
    from edgecnn.settings.run_config import RunConfig

    def broken(*args, **kwargs):
        raise RuntimeError("the converter failed half-way")

    monkeypatch.setattr(edgecnn.tflite.convert, "convert", broken)
    cfg = RunConfig.from_dict(
        {"model": {"name": "lenet5"}, "data": {"train_fraction": 0.2}, "train": {"epochs": 1, "verbose": 0},
         "convert": {"fp16": True}, "bench": {"enabled": False}, "out": "run"}
    )  # fmt: skip
    with pytest.raises(RuntimeError, match="half-way"):
        optimize(cfg, echo=lambda *a: None)
    assert not (rerun_folder / "metrics.json").exists()  # no metrics.json of another run beside this config.json
    assert json.loads((rerun_folder / "config.json").read_text())["convert"]["fp16"] is True
    assert not list(rerun_folder.glob("*.tflite")) and not (rerun_folder / "manifest.json").exists()
    (previous,) = (rerun_folder / ".previous").iterdir()
    _agree(previous)  # the earlier run, whole, beside it
    assert (previous / "model_int8.tflite").is_file()


def test_a_full_disk_mid_run_is_one_line_and_the_folder_stays_consistent(rerun_folder, monkeypatch):
    if not Path(f"/proc/self/fd/{sys.stdout.fileno()}").exists():
        pytest.skip("this machine has no /proc/self/fd to tell which file a descriptor writes")
    real = os.fsync

    def full(fd):  # the disk fills as metrics.json is written: fsync says so, naming no file
        if Path(os.readlink(f"/proc/self/fd/{fd}")).name.startswith(".metrics.json."):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    monkeypatch.setattr(os, "fsync", full)
    result = edgecnn("optimize", "lenet5", *TRAIN, "--fp16", "--out", "run")
    assert result.exit_code == 2
    one_line_error(result.stderr, "cannot write to run/metrics.json", "No space left on device")
    assert not (rerun_folder / "metrics.json").exists()
    assert json.loads((rerun_folder / "config.json").read_text())["convert"]["fp16"] is True
    (previous,) = (rerun_folder / ".previous").iterdir()
    _agree(previous)


def test_only_the_last_three_earlier_runs_are_kept(tmp_path):
    from edgecnn.pipeline import KEEP_PREVIOUS, set_aside_earlier_outputs

    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "stage.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("the user's")
    moved = []
    for i in range(KEEP_PREVIOUS + 2):
        (tmp_path / "metrics.json").write_text(str(i))
        (tmp_path / "model_int8.tflite").write_bytes(b"x" * i)
        moved.append(set_aside_earlier_outputs(tmp_path, echo=lambda *a: None))
    kept = sorted((tmp_path / ".previous").iterdir())
    assert kept == moved[-KEEP_PREVIOUS:] and len(set(moved)) == len(moved)
    assert [(p / "metrics.json").read_text() for p in kept] == ["2", "3", "4"]
    assert (tmp_path / "train" / "stage.json").exists() and (tmp_path / "notes.txt").exists()  # not run files
    assert set_aside_earlier_outputs(tmp_path) is None  # nothing left to move


def test_the_manifest_lists_only_the_files_named(tmp_path):
    from edgecnn.manifest import output_files

    for name in ("model_float32.tflite", "model_int8.tflite", "train/weights.h5", "train/_backup/ckpt",
                 "pruned/weights.h5", ".previous/x/metrics.json"):  # fmt: skip
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(name.encode())
    listed = output_files(tmp_path, ["model_float32.tflite", "train"])
    assert sorted(listed) == ["model_float32.tflite", "train/weights.h5"]
    assert listed["train/weights.h5"] == {"sha256": sha256_file(tmp_path / "train/weights.h5"), "bytes": 16}


# --- results are printed before they are written ---------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from _tiny_tflite import build_tiny_models, tiny_npz

    folder = tmp_path_factory.mktemp("tiny")
    return build_tiny_models(folder)["int8"], tiny_npz(folder / "images.npz")


@pytest.mark.parametrize(
    "tool, command, figure",
    [
        ("edgecnn-device", "bench", "median"),
        ("edgecnn-device", "eval", "top-1"),
        ("edgecnn", "bench", "median"),
        ("edgecnn", "eval", "top-1"),
        ("edgecnn", "bench --json", '"median_ms"'),
    ],
)
def test_a_result_that_cannot_be_written_is_printed_first(tool, command, figure, tiny, tmp_path, monkeypatch):
    model, images = tiny
    monkeypatch.chdir(tmp_path)
    Path("afile").write_text("not a folder")
    before = snapshot(tmp_path)
    args = [*command.split(), model, "--runs", "3"] if "bench" in command else [command, model, "--data", images]
    args += ["-o", "afile/result.json"]
    if tool == "edgecnn":
        result = edgecnn(*args)
        stdout, stderr, code = result.stdout, result.stderr, result.exit_code
    else:
        proc = console(*args)
        stdout, stderr, code = proc.stdout, proc.stderr, proc.returncode
    assert code == 2
    assert figure in stdout  # the measurement survives the failed write
    one_line_error(stderr, "cannot write afile/result.json", "the result is printed above")
    assert snapshot(tmp_path) == before


# --- tflite-runtime 2.14 under numpy 2 -------------------------------------------------------


def fake_tflite_runtime(folder: Path, failure: str) -> Path:
    """An installed ``tflite-runtime`` 2.14 that fails as the real one does under numpy 2."""
    pkg = folder / "tflite_runtime"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    if failure == "import":  # what numpy 2 does to an extension built for numpy 1.x
        body = (
            "import sys\nsys.stderr.write('A module that was compiled using NumPy 1.x cannot be run in\\n"
            "NumPy 2.0 as it may crash.\\n')\nraise ImportError('numpy.core.multiarray failed to import')\n"
        )
    else:  # the import works, the first call into the extension does not
        body = (
            "class Interpreter:\n    def __init__(self, *a, **k):\n"
            "        raise SystemError('<built-in method CreateWrapperFromFile> returned NULL without setting an "
            "exception')\n"
        )
    (pkg / "interpreter.py").write_text(body)
    info = folder / "tflite_runtime-2.14.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tflite-runtime\nVersion: 2.14.0\n")
    return folder


@pytest.mark.parametrize(
    "failure, command", [("import", "eval"), ("import", "bench"), ("call", "eval")], ids=["eval", "bench", "call"]
)
def test_tflite_runtime_under_numpy_2_names_the_fix(failure, command, tiny, tmp_path, monkeypatch):
    import numpy

    if int(numpy.__version__.split(".")[0]) < 2:
        pytest.skip("this machine has numpy 1.x, under which tflite-runtime loads")
    model, images = tiny
    fake = fake_tflite_runtime(tmp_path / "site", failure)
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    args = [model, "--runs", "2"] if command == "bench" else [model, "--data", images]
    proc = console(command, *args, "--runtime", "tflite_runtime", env={"PYTHONPATH": f"{ROOT}{os.pathsep}{fake}"})
    assert proc.returncode == 2
    one_line_error(proc.stderr, "tflite_runtime cannot run with numpy 2", 'pip install "numpy<2"')
    assert snapshot(tmp_path) == before


# --- TF_CONFIG without --strategy multiworker -------------------------------------------------


def _tf_config(index: int) -> str:
    return json.dumps(
        {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": index}}
    )


def test_tf_config_with_strategy_auto_means_multiworker():
    from edgecnn.distribute import strategy_for_environment

    name, note = strategy_for_environment("auto", {"TF_CONFIG": _tf_config(1)})
    assert name == "multiworker" and "worker 1 of 2" in note
    assert strategy_for_environment("mirrored", {}) == ("mirrored", None)
    name, note = strategy_for_environment("default", {"TF_CONFIG": _tf_config(0)})  # the chief: alone, warned
    assert name == "default" and note.startswith("warning: TF_CONFIG is set")


@pytest.mark.parametrize(
    "tf_config, strategy, words",
    [
        (_tf_config(1), "default", "would write the run folder as a second chief"),
        (_tf_config(1), "mirrored", "not the chief"),
        ("{not json", "auto", "TF_CONFIG is not valid JSON"),
    ],
    ids=["worker-default", "worker-mirrored", "bad-json"],
)
def test_tf_config_never_makes_a_second_chief(tf_config, strategy, words, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = edgecnn("optimize", "lenet5", *TRAIN, "--strategy", strategy, "--out", "run", env={"TF_CONFIG": tf_config})
    assert result.exit_code == 2
    one_line_error(result.stderr, words)
    assert not any(tmp_path.iterdir())  # nothing written


# --- a worker lost outside model.fit ---------------------------------------------------------


def test_a_collective_aborted_outside_fit_is_the_one_line_worker_lost(monkeypatch):
    from edgecnn import distribute
    from edgecnn._tf import tf

    class Extended:
        def _in_multi_worker_mode(self):
            return True

    class LostPeer:
        extended = Extended()
        num_replicas_in_sync = 2

        def run(self, fn):
            return fn()

        def reduce(self, *args, **kwargs):
            raise tf.errors.UnavailableError(None, None, "Collective ops is aborted by: worker 1 is down")

    with pytest.raises(distribute.WorkerLost, match="lost contact with another worker .*worker 1 is down"):
        distribute.all_agree(True, LostPeer())
    with pytest.raises(distribute.WorkerLost):
        distribute.barrier(LostPeer())


@pytest.mark.distributed
@pytest.mark.slow
@pytest.mark.parametrize("where", ["all_agree", "barrier"])
def test_a_worker_lost_outside_fit_ends_the_chief_in_bounded_time(where, tmp_path):
    """Two real processes; the non-chief exits before the collective (took ~80 s on 2 busy cores)."""
    from test_distribute import _launch

    script = Path(__file__).resolve().parent / "_distributed_lost.py"
    started = time.time()
    results = _launch(lambda index: [sys.executable, str(script), where], tmp_path)
    (chief_rc, chief_log), (worker_rc, _) = results
    assert time.time() - started < 240
    assert worker_rc == 0 and chief_rc == 2, chief_log
    # The chief's log holds TensorFlow's own lines too (stdout and stderr together): one error line.
    errors = [line for line in chief_log.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "lost contact with another worker" in errors[0], chief_log[-3000:]
    assert "Traceback" not in chief_log
