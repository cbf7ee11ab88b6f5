"""tf.distribute strategies: selection, TF_CONFIG parsing, and real two-worker runs on this machine.

The ``distributed`` tests start two processes with ``TF_CONFIG`` on loopback ports (the
same thing the README tells a user to do) and check that the chief's outputs are complete,
that the other worker wrote nothing, and that both ended with the same weights.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edgecnn import distribute
from edgecnn.errors import UserError

ROOT = Path(__file__).resolve().parent.parent
WORKER_SCRIPT = Path(__file__).resolve().parent / "_distributed_worker.py"
EPOCHS_SCRIPT = Path(__file__).resolve().parent / "_distributed_epochs.py"
LAUNCH_TIMEOUT = 480  # seconds; a healthy run takes well under a minute on 2 idle cores


def _tf_config(workers: int = 2, index: int = 0, chief: bool = False) -> str:
    jobs = {"worker": [f"10.0.0.{i}:2222" for i in range(workers)]}
    if chief:
        jobs["chief"] = ["10.0.0.9:2222"]
    return json.dumps({"cluster": jobs, "task": {"type": "worker", "index": index}})


# --- TF_CONFIG and strategy names ------------------------------------------------------------


def test_cluster_from_env_reads_the_task_and_finds_the_chief():
    assert distribute.cluster_from_env({}) is None
    first = distribute.cluster_from_env({"TF_CONFIG": _tf_config(3, 0)})
    second = distribute.cluster_from_env({"TF_CONFIG": _tf_config(3, 2)})
    assert (first.num_workers, first.is_chief, second.is_chief) == (3, True, False)
    # With an explicit chief task, worker 0 is not the chief.
    with_chief = distribute.cluster_from_env({"TF_CONFIG": _tf_config(2, 0, chief=True)})
    assert (with_chief.num_workers, with_chief.is_chief) == (3, False)


@pytest.mark.parametrize(
    "raw, message",
    [
        ("{not json", "not valid JSON"),
        ('{"cluster": {"worker": ["a:1"]}}', 'no "task"'),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}', "out of range"),
        ('{"cluster": {"worker": ["a:1"], "ps": ["b:1"]}, "task": {"type": "worker", "index": 0}}', "ps"),
        ('{"cluster": {"worker": ["a"]}, "task": {"type": "worker", "index": 0}}', "host:port"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}', "not a job"),
    ],
)
def test_bad_tf_config_is_one_clear_user_error(raw, message):
    with pytest.raises(UserError, match=message):
        distribute.cluster_from_env({"TF_CONFIG": raw})


def test_auto_picks_mirrored_only_with_several_gpus():
    assert distribute.resolve_name("auto", num_gpus=0) == "default"
    assert distribute.resolve_name("auto", num_gpus=1) == "default"
    assert distribute.resolve_name("auto", num_gpus=2) == "mirrored"
    assert distribute.resolve_name("multiworker", num_gpus=0) == "multiworker"
    with pytest.raises(UserError, match="did you mean: mirrored"):
        distribute.resolve_name("mirored")


def test_multiworker_without_tf_config_says_what_is_missing(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(UserError, match="needs the TF_CONFIG"):
        distribute.get_strategy("multiworker")


def test_strategy_setting_reaches_the_config_from_flags_and_recipes():
    from edgecnn.cli.optimize import config_from_flags
    from edgecnn.settings.run_config import RunConfig

    assert config_from_flags("lenet5", {"strategy": "mirrored"}).train.strategy == "mirrored"
    assert config_from_flags("lenet5", {}).train.strategy == "auto"
    assert RunConfig.from_dict({"train": {"strategy": "multiworker"}}).train.strategy == "multiworker"
    with pytest.raises(UserError, match="train.strategy must be one of"):
        RunConfig.from_dict({"train": {"strategy": "horovod"}}).train.validate()


def test_cli_multiworker_without_tf_config_exits_2_in_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    proc = subprocess.run(
        [sys.executable, "-m", "edgecnn", "optimize", "lenet5", "--strategy", "multiworker", "--allow-outside",
         "--out", str(tmp_path)],  # fmt: skip
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: --strategy multiworker needs the TF_CONFIG")
    assert "Traceback" not in proc.stderr
    assert not any(tmp_path.iterdir())  # nothing was written


# --- one process: the strategy's scope in fit ------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    from edgecnn.data.dataset import load_dataset

    return load_dataset("digits", image_size=32, channels=1, train_fraction=0.2)


def test_fit_under_mirrored_trains_the_model_built_in_its_scope(digits, tmp_path):
    from edgecnn.models import create_model
    from edgecnn.optimize.prune import prune_model, pruning_callbacks
    from edgecnn.train import TrainConfig, fit

    strategy = distribute.get_strategy("mirrored")
    config = TrainConfig(epochs=1, strategy="mirrored", verbose=0)
    with strategy.scope():
        model = create_model("lenet5", input_shape=digits.input_shape, classes=10)
        before = distribute.weights_digest(model)
        fit(model, digits, config, out_dir=tmp_path / "train")
        pruned = prune_model(model, sparsity=0.5, end_step=5, frequency=1)
        fit(pruned, digits, config, extra_callbacks=pruning_callbacks())
    assert model.distribute_strategy is strategy and pruned.distribute_strategy is strategy
    assert distribute.weights_digest(model) != before
    assert distribute.is_chief(strategy) and distribute.describe(strategy)["strategy"] == "mirrored"
    assert not (tmp_path / "train" / "_backup").exists()  # the epoch checkpoint is removed after success


def test_fit_refuses_a_model_built_outside_the_named_strategy(digits):
    from edgecnn.models import create_model
    from edgecnn.train import TrainConfig, fit

    model = create_model("lenet5", input_shape=digits.input_shape, classes=10)
    with pytest.raises(UserError, match=r"inside edgecnn.distribute.get_strategy\('mirrored'\).scope\(\)"):
        fit(model, digits, TrainConfig(epochs=1, strategy="mirrored", verbose=0))


@pytest.mark.parametrize("kind", ["memory", "folder", "tfrecord"])
def test_each_epoch_reads_a_new_order_with_new_shifts_and_the_same_epoch_again(kind, digits, image_folder, tmp_path):
    """The training pipeline reads the epoch when a pass starts (what :class:`EpochCounter`
    gives every worker): epoch 1 differs from epoch 0, and epoch 0 read again is epoch 0."""
    from click.testing import CliRunner

    from edgecnn.cli import main
    from edgecnn.data.contract import LoadSpec
    from edgecnn.data.stream import load_stream
    from edgecnn.data.tfrecord import load_tfrecords
    from edgecnn.train import EpochCounter, TrainConfig, make_datasets

    data = digits
    if kind == "folder":
        data = load_stream(image_folder, LoadSpec((8, 8), 3, cache="none", val_split=0.25, test_split=0.25))
    elif kind == "tfrecord":
        packed = CliRunner().invoke(main, ["data", "pack", str(image_folder), str(tmp_path / "s"), "--shards", "3"])
        assert packed.exit_code == 0, packed.output
        data = load_tfrecords(str(tmp_path / "s" / "*.tfrecord"), LoadSpec((8, 8), 3, val_split=0.25, test_split=0.25))
    epoch = EpochCounter()
    train, _ = make_datasets(data, TrainConfig(batch_size=8), "shift_flip", epoch_fn=epoch.read)

    def read(e):
        epoch.on_epoch_begin(e)
        return np.concatenate([x for x, _ in train.as_numpy_iterator()])

    first, second, again = read(0), read(1), read(0)
    assert first.shape == second.shape and not np.array_equal(first, second)
    np.testing.assert_array_equal(first, again)


def test_a_fit_stopped_after_an_epoch_resumes_with_that_epochs_batches(digits, tmp_path):
    """Killed at the end of epoch 1 (before its checkpoint), a rerun resumes at epoch 1 and
    trains it exactly as the uninterrupted run did: the pipeline read the restored epoch."""
    from edgecnn._tf import keras
    from edgecnn.models import create_model
    from edgecnn.train import TrainConfig, fit

    class Killed(Exception):
        pass

    class KillAfterTheSecondEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise Killed

    config = TrainConfig(epochs=3, batch_size=64, verbose=0)

    def train(out, callbacks=()):
        keras.utils.set_random_seed(config.seed)
        model = create_model("lenet5", input_shape=digits.input_shape, classes=10)
        return fit(model, digits, config, out_dir=out, extra_callbacks=callbacks)["history"]["loss"]

    uninterrupted = train(tmp_path / "a")
    with pytest.raises(Killed):
        train(tmp_path / "b", [KillAfterTheSecondEpoch()])
    assert (tmp_path / "b" / "_backup").is_dir()
    resumed = train(tmp_path / "b")
    assert len(resumed) == 2 and resumed[0] == uninterrupted[1]  # bit for bit


def test_write_dir_gives_non_chiefs_a_temporary_folder_that_disappears(monkeypatch, tmp_path):
    monkeypatch.setattr(distribute, "is_chief", lambda strategy=None: False)
    with distribute.write_dir(tmp_path / "run" / "train", strategy=object()) as folder:
        folder.mkdir(parents=True)
        (folder / "w.h5").write_bytes(b"x")
        assert tmp_path not in folder.parents
    assert not folder.exists() and not (tmp_path / "run").exists()


# --- two real workers ------------------------------------------------------------------------


def _free_ports(n: int) -> list:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _launch(argv_for, tmp_path, workers: int = 2, kill_worker_when=None, env_for=None):
    """Start ``workers`` processes with TF_CONFIG on loopback ports; return their (rc, output).
    ``env_for(index)``: more environment variables for worker ``index``."""
    ports = _free_ports(workers)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs, logs = [], []
    for index in reversed(range(workers)):  # the chief last, like a cluster manager would
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **(env_for(index) if env_for else {})}
        env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        log = open(tmp_path / f"worker{index}.log", "w+")
        procs.insert(0, subprocess.Popen(argv_for(index), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
        logs.insert(0, log)
    deadline = time.time() + LAUNCH_TIMEOUT
    killed = False
    try:
        while any(p.poll() is None for p in procs):
            if time.time() > deadline:
                raise AssertionError("two-worker run timed out:\n" + "\n".join(_read(log)[-3000:] for log in logs))
            if kill_worker_when and not killed and re.search(kill_worker_when, _read(logs[1])):
                procs[1].send_signal(signal.SIGKILL)
                killed = True
            time.sleep(0.5)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return [(p.returncode, _read(log)) for p, log in zip(procs, logs)]


def _read(log) -> str:
    log.flush()
    log.seek(0)
    return log.read()


def _cli(out: Path, *flags):
    return lambda index: [sys.executable, "-m", "edgecnn", "optimize", "lenet5", "--strategy", "multiworker",
                          "--allow-outside", "--out", str(out), "--no-bench", *flags]  # fmt: skip


def _check_ok(results):
    for index, (rc, output) in enumerate(results):
        assert rc == 0, f"worker {index} failed (rc {rc}):\n{output[-4000:]}"


@pytest.mark.distributed
def test_two_workers_train_lenet5_and_only_the_chief_writes(tmp_path):
    out = tmp_path / "run"
    results = _launch(_cli(out, "--epochs", "1", "--train-fraction", "0.3", "--int8"), tmp_path)
    _check_ok(results)
    (_, chief_log), (_, worker_log) = results
    assert "2 worker(s), 2 replica(s); the chief" in chief_log
    assert "not the chief: writes nothing" in worker_log
    expected = {
        "config.json", "preprocess.json", "metrics.json", "report.md", "table.md", "table.csv", "table.json",
        "model_float32.tflite", "model_int8.tflite", "train/stage.json", "train/weights.h5", "train/model.keras",
        "manifest.json",
    }  # fmt: skip
    written = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and p.name != ".lock"}
    assert written == expected  # complete, and no worker files, temporary folders or checkpoints left
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["distribute"]["workers"] == 2 and metrics["distribute"]["chief"]
    assert {r["precision"] for r in metrics["rows"]} == {"float32", "int8"}
    assert metrics["rows"][0]["tflite_accuracy"] > 0.3  # one short epoch of 30% of digits learns something
    # The workers agreed: the other worker's final weights are the chief's, bit for bit.
    worker_digest = json.loads(re.search(r"worker done: weights (\{.*?\})", worker_log).group(1))
    assert worker_digest == metrics["distribute"]["weights_digest"]
    stage = json.loads((out / "train" / "stage.json").read_text())
    assert stage["weights_digest"] == worker_digest["trained"]


@pytest.mark.slow
@pytest.mark.distributed
def test_two_workers_run_the_pruning_and_qat_stages_of_the_pipeline(tmp_path):
    out = tmp_path / "run"
    flags = ("--epochs", "1", "--train-fraction", "0.3", "--prune", "0.5", "--prune-epochs", "1", "--qat",
             "--qat-epochs", "1")  # fmt: skip
    results = _launch(_cli(out, *flags), tmp_path)
    _check_ok(results)
    worker_log = results[1][1]
    metrics = json.loads((out / "metrics.json").read_text())
    digests = metrics["distribute"]["weights_digest"]
    assert set(digests) == {"trained", "pruned", "qat"}
    assert json.loads(re.search(r"worker done: weights (\{.*?\})", worker_log).group(1)) == digests
    assert len(set(digests.values())) == 3
    sparsity = [v for v in metrics["stages"]["pruned"]["layer_sparsity"].values() if v > 0]
    assert sparsity and min(sparsity) > 0.4  # the pruning schedule ran its course under the strategy
    files = {p.name for p in out.glob("*.tflite")}
    expected = {f"{row}_{p}.tflite" for row in ("model", "pruned") for p in ("float32", "int8")}
    assert files == expected | {"qat_int8.tflite"}
    for stage in ("train", "pruned", "qat"):
        assert (out / stage / "stage.json").exists() and not (out / stage / "_backup").exists()
    assert not list(out.rglob("workertemp*"))


@pytest.mark.distributed
@pytest.mark.slow
def test_two_workers_agree_through_pruning_and_qat_with_the_python_api(tmp_path):
    export = tmp_path / "export"
    export.mkdir()

    def argv(index):
        return [sys.executable, str(WORKER_SCRIPT), str(tmp_path / f"result{index}.json"), str(export)]

    _check_ok(_launch(argv, tmp_path))
    chief, worker = (json.loads((tmp_path / f"result{i}.json").read_text()) for i in range(2))
    assert chief["chief"] and not worker["chief"] and chief["workers"] == 2
    for stage in ("trained", "pruned", "qat"):
        assert chief[stage] == worker[stage], f"workers disagree after {stage}"
    assert len({chief["trained"], chief["pruned"], chief["qat"]}) == 3  # each stage changed the weights
    assert 0.45 < chief["sparsity"] < 0.55  # pruning reached its 50% target under the strategy
    assert [p.name for p in export.iterdir()] == ["qat_int8.tflite"]  # the chief alone exported
    assert chief["tflite_accuracy"] > 0.3


@pytest.mark.distributed
@pytest.mark.slow
def test_a_killed_worker_stops_the_job_and_a_restart_resumes(tmp_path):
    out = tmp_path / "run"
    flags = ("--epochs", "4", "--train-fraction", "0.5", "--batch-size", "16")
    results = _launch(_cli(out, *flags), tmp_path, kill_worker_when=r"Epoch 3/4")
    chief_rc, chief_log = results[0]
    assert chief_rc == 2 and "error: lost contact with another worker" in chief_log
    assert "Traceback" not in chief_log
    assert list((out / "train" / "_backup").rglob("ckpt-*.index"))  # the finished epochs are kept
    _check_ok(results := _launch(_cli(out, *flags), tmp_path))
    assert "Epoch 3/4" in results[0][1] and "Epoch 1/4" not in results[0][1]  # resumed, not restarted
    assert (out / "metrics.json").exists() and not (out / "train" / "_backup").exists()


# --- two workers on streamed data: each reads its own files -------------------------------------


@pytest.fixture(scope="module")
def digits_folder(tmp_path_factory):
    """The built-in digits (1,797 8x8 images) written out as an image folder of PNGs."""
    from PIL import Image
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("digits") / "digits"
    d = load_digits()
    for i, (image, label) in enumerate(zip(d.images, d.target)):
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray((image * 255 / 16).round().astype("uint8")).save(root / str(label) / f"{i:04d}.png")
    return root


def _reads(path: Path) -> dict:
    """split -> set of files (or shards) a worker's pipelines read, from its EDGECNN_TRACE_READS file."""
    reads: dict = {}
    for line in path.read_text().splitlines():
        split, name, _k = line.split("\t")
        reads.setdefault(split, set()).add(name)
    return reads


def _two_workers_on(source: str, tmp_path, *flags):
    out = tmp_path / "run"
    traces = [tmp_path / f"reads{i}.txt" for i in range(2)]
    results = _launch(
        _cli(out, "--data", source, "--epochs", "1", "--batch-size", "32", *flags),
        tmp_path,
        env_for=lambda i: {"EDGECNN_TRACE_READS": str(traces[i])},
    )
    _check_ok(results)
    (_, chief_log), (_, worker_log) = results
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["distribute"]["workers"] == 2
    # The final weights are the same on both workers, bit for bit.
    worker_digest = json.loads(re.search(r"worker done: weights (\{.*?\})", worker_log).group(1))
    assert worker_digest == metrics["distribute"]["weights_digest"]
    assert metrics["rows"][0]["tflite_accuracy"] > 0.3  # one epoch learns something
    assert re.search(r"\b40/40\b", chief_log), "an epoch is 1,257 training digits at the global batch of 32"
    splits = json.loads((out / "splits.json").read_text())  # the chief recorded the split
    return [_reads(t) for t in traces], splits, metrics


@pytest.mark.distributed
@pytest.mark.slow
def test_two_workers_on_a_streamed_folder_read_disjoint_files(digits_folder, tmp_path):
    (chief, worker), splits, _ = _two_workers_on(str(digits_folder), tmp_path, "--cache", "none")
    for split in ("train", "val"):
        recorded = {str(digits_folder / f) for f, _ in splits["splits"][split]}
        assert chief[split].isdisjoint(worker[split]), f"both workers read {split} files"
        assert chief[split] | worker[split] == recorded  # together, exactly the recorded split
        assert abs(len(chief[split]) - len(worker[split])) <= 1  # every other file each
    assert not (chief["train"] | worker["train"]) & {str(digits_folder / f) for f, _ in splits["splits"]["test"]}


@pytest.mark.distributed
@pytest.mark.slow
def test_two_workers_on_tfrecord_shards_read_disjoint_shards(digits_folder, tmp_path):
    from click.testing import CliRunner

    from edgecnn.cli import main

    shards = tmp_path / "shards"
    packed = CliRunner().invoke(main, ["data", "pack", str(digits_folder), str(shards), "--shards", "4"])
    assert packed.exit_code == 0, packed.output
    (chief, worker), splits, _ = _two_workers_on(str(shards / "*.tfrecord"), tmp_path)
    names = set(splits["shards"])
    for split in ("train", "val"):
        assert chief[split].isdisjoint(worker[split]), f"both workers read records of the same {split} shard"
        assert chief[split] | worker[split] == names and len(chief[split]) == len(worker[split]) == 2


def _epochs(trace: Path, span: int, by_record: bool) -> dict:
    """epoch -> the training items a worker read that epoch, in the order read: file names
    (``by_record``: shard record numbers), from its trace (the epoch is ``k // span``)."""
    epochs: dict = {}
    for line in trace.read_text().splitlines():
        split, name, k = line.split("\t")
        if split == "train":
            epochs.setdefault(int(k) // span, []).append(int(k) % span if by_record else name)
    return epochs


@pytest.mark.distributed
@pytest.mark.slow
def test_two_workers_read_a_new_order_and_new_draws_each_epoch(digits_folder, tmp_path):
    """Three epochs on two workers, on an image folder and on TFRecord shards: each epoch, a
    worker reads its own part (disjoint from the other's) in a new order, with new augmentation
    counters (``k``: the draws are a function of ``(seed, k)``); a rerun with the same seed (in
    the same processes, to keep CI's slow step short) ends with the same weights."""
    from click.testing import CliRunner

    from edgecnn.cli import main

    shards = tmp_path / "shards"
    packed = CliRunner().invoke(main, ["data", "pack", str(digits_folder), str(shards), "--shards", "4"])
    assert packed.exit_code == 0, packed.output
    argv = [sys.executable, str(EPOCHS_SCRIPT), str(tmp_path), str(digits_folder), str(shards / "*.tfrecord")]
    _check_ok(_launch(lambda index: argv, tmp_path))
    results = [json.loads((tmp_path / f"result{i}.json").read_text()) for i in range(2)]
    for source in ("folder", "shards"):
        runs = [results[i][source][run] for i in range(2) for run in ("first", "again")]
        assert len(set(runs)) == 1, "the workers agree, and a rerun with the same seed gives the same weights"
        span = results[0][source]["span"]
        parts = [_epochs(tmp_path / f"{source}{i}_first.txt", span, source == "shards") for i in range(2)]
        assert parts == [_epochs(tmp_path / f"{source}{i}_again.txt", span, source == "shards") for i in range(2)]
        for epochs in parts:
            assert sorted(epochs) == [0, 1, 2], "every epoch has its own augmentation counters"
            assert len({tuple(items) for items in epochs.values()}) == 3, "each epoch reads a new order"
            assert set(epochs[0]) == set(epochs[1]) == set(epochs[2])  # ... of the same part
        for epoch in range(3):
            assert set(parts[0][epoch]).isdisjoint(parts[1][epoch]), f"both workers read the same items in {epoch}"


@pytest.mark.parametrize("kind", ["folder", "tfrecord"])
def test_streams_split_by_file_between_workers_in_one_process(kind, image_folder, tmp_path, monkeypatch):
    """The pipelines two workers build, each auto-sharded as tf.distribute does it: disjoint
    files, together the whole split, the same number of items (no empty batch for anyone)."""
    from click.testing import CliRunner
    from tensorflow.python.data.experimental.ops.distribute import _AutoShardDataset

    from edgecnn.cli import main
    from edgecnn.data.contract import LoadSpec
    from edgecnn.data.stream import load_stream
    from edgecnn.data.tfrecord import load_tfrecords
    from edgecnn.train import TrainConfig, make_datasets

    if kind == "tfrecord":
        packed = CliRunner().invoke(main, ["data", "pack", str(image_folder), str(tmp_path / "s"), "--shards", "3"])
        assert packed.exit_code == 0, packed.output
        data = load_tfrecords(str(tmp_path / "s" / "*.tfrecord"), LoadSpec((8, 8), 3, val_split=0.25, test_split=0.25))
    else:
        data = load_stream(image_folder, LoadSpec((8, 8), 3, cache="none", val_split=0.25, test_split=0.25))
    reads, sizes = [], []
    for worker in range(2):
        trace = tmp_path / f"reads{worker}.txt"
        monkeypatch.setenv("EDGECNN_TRACE_READS", str(trace))
        train, val = make_datasets(data, TrainConfig(batch_size=4), shard=(2, worker))
        # A worker's part batched at the global size would claim half the steps: Keras must read to the end.
        assert int(train.cardinality()) == int(val.cardinality()) == -2  # tf.data.UNKNOWN_CARDINALITY
        train, val = _AutoShardDataset(train, 2, worker, 2), _AutoShardDataset(val, 2, worker, 2)
        sizes.append((sum(len(y) for _, y in train), sum(len(y) for _, y in val)))
        reads.append({tuple(line.split("\t")[:2]) for line in trace.read_text().splitlines()})
    assert sizes[0] == sizes[1]  # evened out: the same number of steps on both workers
    assert reads[0].isdisjoint(reads[1])
    if kind == "tfrecord":
        assert {name for _, name in reads[0] | reads[1]} == {Path(s).name for s in data.shards}
    else:
        for split in ("train", "val"):
            assert {n for s, n in reads[0] | reads[1] if s == split} == set(data.files[split])


@pytest.mark.distributed
@pytest.mark.slow
def test_workers_that_list_different_files_stop_before_training(digits_folder, tmp_path):
    """Each worker lists the data itself: a copy on worker 1 that lacks a file gives another
    split, and both workers stop with one line instead of training on different data."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(digits_folder, copy)
    next(copy.rglob("*.png")).unlink()
    out = tmp_path / "run"

    def argv(index):
        data = str(digits_folder if index == 0 else copy)
        return _cli(out, "--data", data, "--epochs", "1", "--cache", "none")(index)

    results = _launch(argv, tmp_path)
    for rc, output in results:
        errors = [line for line in output.splitlines() if line.startswith("error:")]
        assert rc == 2 and len(errors) == 1 and "the workers see different data" in errors[0], output[-2000:]
        assert "Traceback" not in output and "Epoch 1/1" not in output
