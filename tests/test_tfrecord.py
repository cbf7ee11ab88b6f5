"""TFRecord shards: 'edgecnn data pack' writes them, --data 'shards/*.tfrecord' reads them; bad shards
get one line and exit 2 before any training."""

import numpy as np
import pytest
from click.testing import CliRunner

from edgecnn.cli import main


@pytest.fixture
def shards(image_folder, tmp_path):
    out = tmp_path / "shards"
    result = CliRunner().invoke(main, ["data", "pack", str(image_folder), str(out), "--shards", "3"])
    assert result.exit_code == 0, result.output
    assert "24 images of 3 classes in 3 shards" in result.output
    return out


def _write(path, records):
    from edgecnn._tf import tf

    with tf.io.TFRecordWriter(str(path)) as w:
        for feats in records:
            feature = {
                k: tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))
                if isinstance(v, bytes)
                else tf.train.Feature(int64_list=tf.train.Int64List(value=[v]))
                for k, v in feats.items()
            }
            w.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())


def test_pack_then_stream_gives_the_folder_images(shards, image_folder):
    from edgecnn._tf import tf
    from edgecnn.data.contract import LoadSpec
    from edgecnn.data.stream import list_files
    from edgecnn.data.tfrecord import load_tfrecords
    from edgecnn.device.preprocess import load_image, normalize

    ds = load_tfrecords(str(shards / "*.tfrecord"), LoadSpec((16, 16), 3, val_split=0.25, test_split=0.25))
    assert ds.class_names == ["blue", "green", "red"] and sum(len(ds.y[s]) for s in ds.y) == 24
    assert sorted(np.bincount(ds.y["test"])) == [2, 2, 2]  # stratified on record numbers
    xs, ys = zip(*ds.normalized("test").batches(4))
    x, y = np.concatenate(xs), np.concatenate(ys)
    assert x.shape == (6, 16, 16, 3) and np.array_equal(y, ds.y["test"])
    # every streamed tensor is one of the folder's images through the device-side preprocessing
    files, _, _ = list_files(image_folder)
    device = np.stack([normalize(load_image(f, (16, 16), 3)[None], ds.preprocess)[0] for f in files])
    for img in x:
        assert np.any(np.all(device == img, axis=(1, 2, 3)))
    train = list(ds.tf_train(tf, 0).as_numpy_iterator())
    assert len(train) == len(ds.y["train"])


@pytest.mark.parametrize(
    "case, message",
    [
        ("empty", "no TFRecord files match"),
        ("features", "lack the expected features"),
        ("label", "out of range"),
        ("label_unnamed", "label 7 out of range"),
        ("truncated", "corrupt or truncated"),
    ],
)
def test_bad_shards_get_one_line(tmp_path, monkeypatch, case, message):
    from PIL import Image

    monkeypatch.chdir(tmp_path)
    d = tmp_path / "bad"
    d.mkdir()
    buf = tmp_path / "x.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf)
    png = buf.read_bytes()
    if case == "features":
        _write(d / "a.tfrecord", [{"image/raw": png, "label": 1}] * 4)
    elif case == "label":
        recs = [
            {"image/encoded": png, "image/class/label": i % 2, "image/class/text": [b"a", b"b"][i % 2]}
            for i in range(12)
        ]
        recs.append({"image/encoded": png, "image/class/label": 7, "image/class/text": b""})
        _write(d / "a.tfrecord", recs)
    elif case == "label_unnamed":  # no class names: labels 0, 1 and one stray 7
        _write(
            d / "a.tfrecord", [{"image/encoded": png, "image/class/label": [0, 1, 7][min(i % 6, 2)]} for i in range(12)]
        )
    elif case == "truncated":
        _write(d / "a.tfrecord", [{"image/encoded": png, "image/class/label": i % 2} for i in range(12)])
        data = (d / "a.tfrecord").read_bytes()
        (d / "a.tfrecord").write_bytes(data[: len(data) - 40])
    argv = ["optimize", "lenet5", "--data", str(d / "*.tfrecord"), "--epochs", "1", "--no-bench", "--out", "runs/b"]
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.output


def test_a_corrupt_image_in_a_record_is_skipped_and_counted(shards, tmp_path):
    """A record whose image bytes do not decode is skipped (named by its record number), as a
    corrupt file in a folder is: it never stops an epoch."""
    from edgecnn._tf import tf
    from edgecnn.data.contract import LoadSpec
    from edgecnn.data.tfrecord import load_tfrecords

    good = load_tfrecords(str(shards / "*.tfrecord"), LoadSpec((16, 16), 3, val_split=0.25, test_split=0.25))
    records = []
    for shard in good.shards:
        for raw in tf.data.TFRecordDataset(shard).as_numpy_iterator():
            example = tf.train.Example.FromString(raw)
            feats = {k: v for k, v in example.features.feature.items()}
            records.append(
                {k: v.bytes_list.value[0] if v.bytes_list.value else v.int64_list.value[0] for k, v in feats.items()}
            )
    from test_stream import _corrupt_jpegs

    first_train, second_train = (int(m) for m in good.members["train"][:2])
    records[first_train]["image/encoded"] = b"\x89PNG not really"
    records[second_train]["image/encoded"] = _corrupt_jpegs(1)[0]  # passes the header check, TF's decoder refuses it
    bad = tmp_path / "bad"
    bad.mkdir()
    _write(bad / "all.tfrecord", records)
    ds = load_tfrecords(str(bad / "*.tfrecord"), LoadSpec((16, 16), 3, val_split=0.25, test_split=0.25))
    train = list(ds.tf_train(tf, 0).as_numpy_iterator())
    assert len(train) == len(ds.y["train"]) - 2
    assert ds.skipped == {f"record {first_train}", f"record {second_train}"}
