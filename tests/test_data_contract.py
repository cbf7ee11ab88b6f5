"""The data contract: every source kind that load_run_data returns is a RunData, writes the same
preprocess.json keys (one builder), and records its split under the same splits.json key."""

import json

import numpy as np
import pytest

from edgecnn.data.contract import LazySplit, RunData
from edgecnn.data.dataset import Dataset
from edgecnn.data.npz import ArrayStream
from edgecnn.data.stream import StreamDataset
from edgecnn.data.tfrecord import TFRecordStream

# source kind -> the type load_run_data gives for it here
KINDS = {
    "digits": Dataset,
    "folder": StreamDataset,
    "folder-memory": Dataset,
    "npz": Dataset,
    "npz-mmap": ArrayStream,
    "tfrecord": TFRecordStream,
}


def _subclasses(cls) -> set:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub} | _subclasses(sub)
    return found


def test_every_source_type_is_covered_here():
    """A new RunData type must join KINDS (and so every contract test below)."""
    assert {t for t in _subclasses(RunData) if t.__module__.startswith("edgecnn.")} == set(KINDS.values())


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """Each source kind on disk: the same 30 coloured images as a folder, an .npz and TFRecord shards."""
    from PIL import Image

    from edgecnn.data.tfrecord import pack_folder

    root = tmp_path_factory.mktemp("contract")
    rng = np.random.default_rng(0)
    x = np.zeros((30, 12, 12, 3), np.uint8)
    y = np.arange(30) % 3
    for i in range(30):
        x[i, ..., y[i]] = 150 + rng.integers(0, 100)
        (root / "folder" / f"c{y[i]}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(x[i]).save(root / "folder" / f"c{y[i]}" / f"{i:02d}.png")
    np.savez(root / "data.npz", x=x, y=y, class_names=np.asarray(["c0", "c1", "c2"]))
    pack_folder(root / "folder", root / "shards", shards=2)
    return {
        "digits": "digits",
        "folder": str(root / "folder"),
        "folder-memory": str(root / "folder"),
        "npz": str(root / "data.npz"),
        "npz-mmap": str(root / "data.npz"),
        "tfrecord": str(root / "shards" / "*.tfrecord"),
    }


def _load(kind, sources, run_dir, monkeypatch):
    from edgecnn.data.loader import load_run_data
    from edgecnn.models import model_info
    from edgecnn.settings.run_config import RunConfig

    cache = "memory" if kind == "folder-memory" else "none"
    if kind == "npz-mmap":
        monkeypatch.setenv("EDGECNN_MEMORY_BUDGET", "1000")
    data = {"source": sources[kind], "image_size": 16, "cache": cache, "resize": "bilinear", "val_split": 0.2}
    cfg = RunConfig.from_dict({"model": {"name": "lenet5"}, "data": data})
    return load_run_data(cfg, model_info("lenet5"), run_dir=run_dir)


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_source_implements_the_contract(kind, sources, tmp_path, monkeypatch):
    from edgecnn.train import split_batches

    data = _load(kind, sources, tmp_path / "run", monkeypatch)
    assert type(data) is KINDS[kind] and isinstance(data, RunData)
    assert data.streamed == isinstance(data, StreamDataset)
    assert data.input_shape == (16, 16, 1) and data.num_classes == len(data.class_names) >= 3
    assert isinstance(data.normalized("test"), LazySplit) == data.streamed
    batches = list(split_batches(data, "test", 4))
    assert sum(len(yb) for _, yb in batches) == len(data.y["test"]) > 0
    assert all(xb.shape[1:] == (16, 16, 1) and xb.dtype == np.float32 for xb, _ in batches)
    first = next(data.representative(samples=3, seed=0)())
    assert first[0].shape == (1, 16, 16, 1)
    assert len(data.fingerprint()) == 16 and data.summary().startswith(data.name)
    digest = data.split_digest()
    assert (digest is None) == (not data.streamed)
    assert data.skipped == set()


def test_every_source_writes_the_same_preprocess_keys_and_split_key(sources, tmp_path, monkeypatch):
    """One builder of preprocess.json: the same keys, in the same order, with the input convention
    (here ``resize``) merged in; one splits.json key for the sources that record their split."""
    keys, split_keys = {}, {}
    for kind in KINDS:
        run = tmp_path / kind
        data = _load(kind, sources, run, monkeypatch)
        keys[kind] = list(data.preprocess)
        assert data.preprocess["resize"] == "bilinear" and data.preprocess["image_size"] == [16, 16]
        assert data.preprocess["val_split"] == 0.2 and data.preprocess["class_names"] == data.class_names
        if (run / "splits.json").is_file():
            split_keys[kind] = json.loads((run / "splits.json").read_text())["key"]
    assert all(k == keys["digits"] for k in keys.values()), keys
    assert set(split_keys) == {"folder", "folder-memory", "tfrecord"}
    fields = {"source", "seed", "val_split", "test_split", "train_fraction"}
    assert all(set(key) == fields and key["val_split"] == 0.2 for key in split_keys.values()), split_keys
