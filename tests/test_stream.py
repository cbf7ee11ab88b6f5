"""Streamed image folders (edgecnn.data.stream): the same split, the same pixels, bounded reads."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgecnn.data.contract import LoadSpec
from edgecnn.data.dataset import load_dataset
from edgecnn.data.stream import LazySplit, StreamDataset, choose_cache, estimate_memory, load_stream
from edgecnn.device.preprocess import load_image, normalize


@pytest.fixture
def jpeg_folder(tmp_path):
    """4 classes x 12 textured 40x36 JPEGs (resized to 24x24, so the resize matters)."""
    from PIL import Image

    root = tmp_path / "jpegs"
    rng = np.random.default_rng(1)
    for c in range(4):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(12):
            img = rng.integers(0, 90, (36, 40, 3)).astype(np.uint8)
            img[..., c % 3] += 120
            Image.fromarray(img).save(root / f"c{c}" / f"{i:02d}.jpg", quality=85)
    return root


def _train_images(ds, tf):
    """The training pipeline's images in file order (no shuffle, no augmentation)."""
    n = len(ds.y["train"])
    order = tf.data.Dataset.from_tensor_slices((tf.range(n, dtype=tf.int64), tf.range(n, dtype=tf.int64)))
    return np.stack([x.numpy() for x, _, _ in ds.tf_split("train", order, tf)])


def test_same_split_and_same_tensors_as_in_memory_and_device(jpeg_folder, tmp_path):
    from edgecnn._tf import tf

    mem = load_dataset(str(jpeg_folder), image_size=24, channels=3, seed=2)
    ds = load_stream(jpeg_folder, LoadSpec((24, 24), 3, seed=2, cache="none"), run_dir=tmp_path / "run")
    assert isinstance(ds, StreamDataset)
    for s in ("train", "val", "test"):
        assert np.array_equal(ds.y[s], mem.y[s])
    # the tf.data side, the in-memory side and the device side give the very same float tensor
    streamed = _train_images(ds, tf)
    assert np.array_equal(streamed, mem.normalized("train"))
    device = normalize(load_image(ds.files["train"][0], (24, 24), 3)[None], ds.preprocess)[0]
    assert np.array_equal(streamed[0], device)
    # TensorFlow's own bilinear resize would not: that is why tf.data reproduces Pillow's (edgecnn.data.decode)
    raw = tf.io.decode_jpeg(tf.io.read_file(ds.files["train"][0]), channels=3)
    tf_side = tf.cast(tf.round(tf.image.resize(raw, (24, 24), antialias=True)), tf.uint8).numpy()
    pil_side = load_image(ds.files["train"][0], (24, 24), 3)
    assert np.abs(tf_side.astype(int) - pil_side.astype(int)).max() > 0
    # the test split is read in batches, never all at once, and gives the same arrays
    lazy = ds.normalized("test")
    assert isinstance(lazy, LazySplit) and len(lazy) == len(mem.y["test"])
    xs, ys = zip(*lazy.batches(4))
    assert max(len(x) for x in xs) == 4
    assert np.array_equal(np.concatenate(xs), mem.normalized("test"))
    assert np.array_equal(np.concatenate(ys), mem.y["test"])
    rep = list(ds.representative(samples=5, seed=0)())
    assert len(rep) == 5 and rep[0][0].shape == (1, 24, 24, 3)


def test_split_is_recorded_and_reused_without_reading_pixels(jpeg_folder, tmp_path):
    run = tmp_path / "run"
    a = load_stream(jpeg_folder, LoadSpec((24, 24), 3, seed=0, cache="none"), run_dir=run)
    rec = json.loads((run / "splits.json").read_text())
    assert {len(rec["splits"][s]) for s in ("train", "val", "test")} == {len(a.y[s]) for s in ("train", "val", "test")}
    assert rec["splits"]["test"][0][0] == str(a.files["test"][0].split("jpegs/")[1])
    # the recorded split wins over a recomputation: swap two files between train and test
    rec["splits"]["train"][0], rec["splits"]["test"][0] = rec["splits"]["test"][0], rec["splits"]["train"][0]
    (run / "splits.json").write_text(json.dumps(rec))
    b = load_stream(jpeg_folder, LoadSpec((24, 24), 3, seed=0, cache="none"), run_dir=run)
    assert b.files["train"][0] == a.files["test"][0] and b.files["test"][0] == a.files["train"][0]
    # another seed is another split, recorded in place of the old one
    c = load_stream(jpeg_folder, LoadSpec((24, 24), 3, seed=5, cache="none"), run_dir=run)
    assert c.files["test"] != a.files["test"]
    assert json.loads((run / "splits.json").read_text())["key"]["seed"] == 5


def test_cache_choice_follows_the_budget(tmp_path):
    need = estimate_memory(1000, (224, 224), 3)
    assert choose_cache("auto", 1000, (224, 224), 3, tmp_path, budget=need) == "memory"
    assert choose_cache("auto", 1000, (224, 224), 3, tmp_path, budget=need - 1) == "disk"
    assert choose_cache("none", 10, (8, 8), 1, tmp_path, budget=1 << 40) == "none"


def test_disk_cache_gives_the_same_tensors(jpeg_folder, tmp_path):
    from edgecnn._tf import tf

    run = tmp_path / "run"
    plain = load_stream(jpeg_folder, LoadSpec((24, 24), 3, cache="none"), run_dir=run)
    disk = load_stream(jpeg_folder, LoadSpec((24, 24), 3, cache="disk"), run_dir=run)
    first, second = _train_images(disk, tf), _train_images(disk, tf)  # filled, then read back
    assert (run / "cache").is_dir() and list((run / "cache").glob("train-*.complete"))
    assert np.array_equal(first, _train_images(plain, tf)) and np.array_equal(second, first)
    mem = load_stream(jpeg_folder, LoadSpec((24, 24), 3, cache="memory"), run_dir=run)
    assert not mem.streamed and np.array_equal(mem.normalized("train"), first)


@pytest.mark.parametrize("resize,cache", [("antialias", "none"), ("bilinear", "none"), ("antialias", "disk")])
def test_files_pillow_reads_stream_as_the_device_reads_them(tmp_path, resize, cache):
    """CMYK, palette, alpha, 16-bit, BMP and GIF files take the Pillow path inside the batched
    reader and come out as the device side's tensors, in order, grey and RGB; an unreadable
    one is left out and named. With the disk cache, the first pass fills it and the second
    reads it back: the same tensors."""
    from PIL import Image

    from edgecnn._tf import tf

    rng = np.random.default_rng(3)
    rgb = Image.fromarray(rng.integers(0, 256, (30, 34, 3)).astype(np.uint8))
    alpha = rng.integers(0, 256, (30, 34, 1)).astype(np.uint8)
    images = {
        "a.jpg": (rgb, {"quality": 90}),
        "b_cmyk.jpg": (rgb.convert("CMYK"), {}),
        "c_palette.png": (rgb.convert("P"), {"transparency": 3}),
        "d_rgba.png": (Image.fromarray(np.concatenate([np.asarray(rgb), alpha], -1), "RGBA"), {}),
        "e_16bit.png": (Image.fromarray(rng.integers(0, 65535, (20, 24)).astype(np.uint16)), {}),
        "f.bmp": (rgb, {}),
        "g.gif": (rgb, {}),
        "h_grey.png": (rgb.convert("L"), {}),
        "i_grey.jpg": (rgb.convert("L"), {"quality": 80}),
    }
    for c in range(2):
        (tmp_path / "imgs" / f"c{c}").mkdir(parents=True)
        for name, (img, kw) in images.items():
            img.save(tmp_path / "imgs" / f"c{c}" / name, **kw)
    (tmp_path / "imgs" / "c1" / "z_bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    conv = {"resize": resize}
    for size, channels in (((17, 21), 3), ((9, 9), 1)):
        run, root = tmp_path / f"run{channels}", tmp_path / f"imgs{channels}"
        shutil.copytree(tmp_path / "imgs", root)
        bad = root / "c1" / "z_bad.png"
        spec = LoadSpec(size, channels, seed=0, val_split=0.0, test_split=0.0, cache=cache, convention=conv)
        ds = load_stream(root, spec, run_dir=run)
        n = len(ds.y["train"])
        order = tf.data.Dataset.from_tensor_slices((tf.range(n, dtype=tf.int64), tf.range(n, dtype=tf.int64)))
        pipeline = ds.tf_split("train", order, tf)
        good = [(f, y) for f, y in zip(ds.files["train"], ds.y["train"]) if f != str(bad)]
        expected = [normalize(load_image(f, size, channels, resize)[None], ds.preprocess)[0] for f, _ in good]
        for epoch in range(2 if cache == "disk" else 1):
            streamed = [(x.numpy(), int(y)) for x, y, _ in pipeline]
            assert ds.skipped == {str(bad)} and len(streamed) == len(good) == n - 1
            for (x, y), (f, want_y), want_x in zip(streamed, good, expected):
                assert y == want_y and np.array_equal(x, want_x), (f, channels, epoch)
            if cache == "disk" and epoch == 0:  # the second pass reads the cache, not the files
                for f, _ in good:
                    Path(f).write_bytes(b"gone")
        if cache == "disk":
            assert list(run.rglob("*.complete")) == []  # the unreadable file is never stored


def test_corrupt_file_is_skipped_and_counted(jpeg_folder, tmp_path):
    from edgecnn._tf import tf

    ds = load_stream(jpeg_folder, LoadSpec((24, 24), 3, cache="none"), run_dir=tmp_path / "run")
    bad = ds.files["train"][3]
    with open(bad, "wb") as f:
        f.write(b"not a jpeg at all")
    images = _train_images(ds, tf)
    assert len(images) == len(ds.y["train"]) - 1 and ds.skipped == {bad}


@pytest.mark.slow
def test_optimize_streamed_equals_in_memory(jpeg_folder, tmp_path, monkeypatch):
    """Same seed, same split, same batches: the streamed run's accuracy is the in-memory run's."""
    from click.testing import CliRunner

    from edgecnn.cli import main

    monkeypatch.chdir(tmp_path)
    acc = {}
    for cache in ("memory", "none"):
        argv = ["optimize", "lenet5", "--data", str(jpeg_folder), "--image-size", "32", "--epochs", "2"]
        argv += ["--no-bench", "--cache", cache, "--out", f"runs/{cache}"]
        result = CliRunner().invoke(main, argv)
        assert result.exit_code == 0, result.output
        metrics = json.loads((tmp_path / "runs" / cache / "metrics.json").read_text())
        acc[cache] = (metrics["rows"][0]["keras_accuracy"], metrics["rows"][0]["tflite_accuracy"], metrics["dataset"])
    assert "streamed" in acc["none"][2] and "streamed" not in acc["memory"][2]
    assert acc["none"][:2] == acc["memory"][:2]


def test_npz_over_the_budget_is_memory_mapped_or_refused(tmp_path, monkeypatch):
    from edgecnn._tf import tf
    from edgecnn.data.loader import load_run_data
    from edgecnn.data.npz import ArrayStream
    from edgecnn.errors import UserError
    from edgecnn.models import model_info
    from edgecnn.settings.run_config import RunConfig

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (60, 12, 12, 3), dtype=np.uint8)
    y = np.arange(60) % 3
    np.savez(tmp_path / "raw.npz", x=x, y=y)
    np.savez_compressed(tmp_path / "small.npz", x=x, y=y)
    entry = model_info("lenet5")
    cfg = RunConfig.from_dict(
        {"model": {"name": "lenet5"}, "data": {"source": str(tmp_path / "raw.npz"), "image_size": 32}}
    )
    mem = load_run_data(cfg, entry)  # within the budget: the in-memory path
    assert not mem.streamed
    monkeypatch.setenv("EDGECNN_MEMORY_BUDGET", "1000")
    ds = load_run_data(cfg, entry)
    assert isinstance(ds, ArrayStream) and isinstance(ds.x, np.memmap)
    for s in ("train", "val", "test"):
        assert np.array_equal(ds.y[s], mem.y[s])
    xs, ys = zip(*ds.normalized("test").batches(5))
    assert np.array_equal(np.concatenate(xs), mem.normalized("test"))
    n = len(ds.y["train"])
    order = tf.data.Dataset.from_tensor_slices((tf.range(n, dtype=tf.int64), tf.range(n, dtype=tf.int64)))
    streamed = np.stack([a.numpy() for a, _, _ in ds.tf_split("train", order, tf)])
    assert np.array_equal(streamed, mem.normalized("train"))
    cfg.data.source = str(tmp_path / "small.npz")
    with pytest.raises(UserError, match="compressed.*np.savez"):
        load_run_data(cfg, entry)


def test_memory_mapped_npz_keeps_the_weights_input_convention(tmp_path, monkeypatch):
    """The .npz over the budget normalises as the in-memory path does with pretrained weights'
    convention (channel order, mean, std from the weights' preprocess.json)."""
    from edgecnn.data.loader import load_run_data
    from edgecnn.data.npz import ArrayStream
    from edgecnn.models import model_info
    from edgecnn.settings.run_config import RunConfig

    rng = np.random.default_rng(1)
    np.savez(tmp_path / "raw.npz", x=rng.integers(0, 256, (60, 12, 12, 3), dtype=np.uint8), y=np.arange(60) % 3)
    weights = tmp_path / "earlier_run"
    weights.mkdir()
    convention = {
        "scale": 1.0,
        "offset": 0.0,
        "channel_order": "BGR",
        "mean": [103.9, 116.8, 123.7],
        "std": [57.0, 57.1, 58.4],
    }
    (weights / "preprocess.json").write_text(json.dumps(convention))
    entry = model_info("mobilenet")
    cfg = RunConfig.from_dict(
        {
            "model": {"name": "mobilenet", "weights": str(weights)},
            "data": {"source": str(tmp_path / "raw.npz"), "image_size": 16},
        }
    )
    mem = load_run_data(cfg, entry)
    monkeypatch.setenv("EDGECNN_MEMORY_BUDGET", "1000")
    ds = load_run_data(cfg, entry)
    assert isinstance(ds, ArrayStream)
    for key, value in convention.items():
        assert ds.preprocess[key] == mem.preprocess[key] == value
    xs, _ = zip(*ds.normalized("test").batches(7))
    assert np.allclose(np.concatenate(xs), mem.normalized("test"), atol=1e-5)
    assert abs(float(np.concatenate(xs).mean())) < 1.0  # mean/std applied: not 0..255, not [-1, 1] shifted


def _truncate(path):
    """Cut a JPEG to a third: the header still reads (so listing accepts it), the pixels do not."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def test_corrupt_files_found_mid_epoch_are_skipped_and_reported_or_refused_when_all(jpeg_folder, tmp_path, monkeypatch):
    """Documented behaviour: an unreadable image found while streaming is skipped and counted
    (stdout line, metrics.json); a split left with nothing readable is one line and exit 2."""
    from click.testing import CliRunner

    from edgecnn.cli import main

    monkeypatch.chdir(tmp_path)
    bad = sorted(jpeg_folder.rglob("*.jpg"))[::7]  # 7 files, spread over the classes
    for f in bad:
        _truncate(f)
    argv = ["optimize", "lenet5", "--data", str(jpeg_folder), "--epochs", "1", "--cache", "none", "--no-bench"]
    result = CliRunner().invoke(main, [*argv, "--out", "runs/some"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "runs" / "some" / "metrics.json").read_text())
    assert set(metrics["skipped_files"]) == {str(f) for f in bad}  # every split read them: all are counted
    assert f"skipped {len(bad)} unreadable image(s)" in result.output
    for f in jpeg_folder.rglob("*.jpg"):
        _truncate(f)
    result = CliRunner().invoke(main, [*argv, "--out", "runs/all"])
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2 and len(errors) == 1 and "no training image of jpegs could be read" in errors[0]
    assert "Traceback" not in result.output


@pytest.fixture(scope="module")
def digits_on_disk(tmp_path_factory):
    """The built-in digits written out twice, in sklearn's order: as an image folder of PNGs
    and as an uncompressed .npz (both hold exactly the pixels of ``load_dataset("digits")``)."""
    from PIL import Image

    from edgecnn.data.dataset import _digits

    root = tmp_path_factory.mktemp("digits_on_disk")
    x, y, _ = _digits()
    for i, (image, label) in enumerate(zip(x, y)):
        (root / "folder" / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[..., 0]).save(root / "folder" / str(label) / f"{i:04d}.png")
    np.savez(root / "digits.npz", x=x[..., 0], y=y)
    return root


def _accuracies(tmp_path, name, data, *flags, env=None, monkeypatch=None):
    from click.testing import CliRunner

    from edgecnn.cli import main

    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    argv = ["optimize", "lenet5", "--data", str(data), "--epochs", "2", "--int8", "--no-bench", "--seed", "3"]
    argv += ["--allow-outside"]
    result = CliRunner().invoke(main, [*argv, *flags, "--out", str(tmp_path / name)])
    assert result.exit_code == 0, result.output
    for key in env or {}:
        monkeypatch.delenv(key)
    metrics = json.loads((tmp_path / name / "metrics.json").read_text())
    return metrics["dataset"], {r["precision"]: (r["keras_accuracy"], r["tflite_accuracy"]) for r in metrics["rows"]}


@pytest.mark.slow
def test_streamed_digits_train_to_the_in_memory_accuracy(digits_on_disk, tmp_path, monkeypatch):
    """Issue 16: same seed, same data, the streamed path's .tflite accuracies are within 0.5
    point of the in-memory path's, for digits as an image folder and as a memory-mapped .npz."""
    folder, npz = digits_on_disk / "folder", digits_on_disk / "digits.npz"
    pairs = {
        "folder": (
            _accuracies(tmp_path, "folder_memory", folder, "--cache", "memory"),
            _accuracies(tmp_path, "folder_streamed", folder, "--cache", "none"),
        ),
        "npz": (
            _accuracies(tmp_path, "npz_memory", npz),
            _accuracies(tmp_path, "npz_mapped", npz, env={"EDGECNN_MEMORY_BUDGET": "100000"}, monkeypatch=monkeypatch),
        ),
    }
    for source, ((mem_name, mem), (stream_name, stream)) in pairs.items():
        print(f"{source}: in memory {mem}, streamed {stream}")  # (keras, tflite) per precision; shown with -s
        assert "streamed" not in mem_name and "streamed" in stream_name, (mem_name, stream_name)
        assert set(mem) == set(stream) == {"float32", "int8"}
        for precision in mem:
            for which, a, b in zip(("keras", "tflite"), mem[precision], stream[precision]):
                assert abs(a - b) <= 0.005, f"{source} {precision} {which}: in memory {a:.4f}, streamed {b:.4f}"
        assert mem["float32"][1] > 0.8  # two epochs of LeNet-5 on digits: a real model, not chance


def test_a_streamed_split_slices_from_its_start(jpeg_folder, tmp_path):
    """``split[:n]`` (what the int8 per-layer report takes) reads the first n readable images."""
    ds = load_stream(jpeg_folder, LoadSpec((24, 24), 3, cache="none"), run_dir=tmp_path / "run")
    val = ds.normalized("val")
    everything = np.concatenate([x for x, _ in val.batches(3)])
    assert np.array_equal(val[:4], everything[:4]) and len(val[:1000]) == len(val) == len(everything)
    with pytest.raises(TypeError, match="split\\[:n\\]"):
        val[2:5]


def _corrupt_jpegs(n: int) -> list:
    """JPEGs whose headers pass edgecnn.data.decode.probe but whose entropy data makes libjpeg
    (TensorFlow's decoder and Pillow's alike) give up."""
    import io

    from PIL import Image

    from edgecnn.data.decode import PILLOW, probe

    rng, found = np.random.default_rng(0), []
    for trial in range(2000):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (40, 40, 3)).astype(np.uint8)).save(buf, "JPEG", quality=90)
        data = bytearray(buf.getvalue())
        start, r = data.index(b"\xff\xda"), np.random.default_rng(trial)
        for _ in range(5):
            data[int(r.integers(start + 20, len(data) - 2))] = int(r.integers(0, 256))
        data = bytes(data)
        if probe(data) == PILLOW:
            continue
        try:
            Image.open(io.BytesIO(data)).convert("RGB").load()
        except OSError:
            found.append(data)
            if len(found) == n:
                return found
    raise AssertionError("no corrupt JPEG found")


def test_file_names_beyond_ascii_stream(jpeg_folder, tmp_path):
    """Paths go to TensorFlow as the file system's bytes: accented and CJK names stream too."""
    from edgecnn._tf import tf

    for i, path in enumerate(sorted(jpeg_folder.rglob("0[0-2].jpg"))):
        path.rename(path.with_name(["é ü.jpg", "漢字.jpg", "ß ø.jpg"][i % 3]))
    ds = load_stream(jpeg_folder, LoadSpec((24, 24), 3, seed=0, cache="none"), run_dir=tmp_path / "run")
    streamed = _train_images(ds, tf)
    assert len(streamed) == len(ds.y["train"]) and not ds.skipped
    device = np.stack([load_image(f, (24, 24), 3) for f in ds.files["train"]])
    assert np.array_equal(streamed, normalize(device, ds.preprocess))


def test_a_batch_that_raises_is_read_again_item_by_item(jpeg_folder, tmp_path):
    """Batched by the read (``batch``: map and batch fuse), a file TensorFlow's decoder refuses
    loses its whole batch: the batch's items are read again by the device side's reader, the
    good ones go out ahead of the next batch (or at the end of the pass), so the items and
    their order are the item-by-item pipeline's; the refused file is named, and a pass
    abandoned midway names no file it did not try."""
    from edgecnn._tf import tf

    bad = [jpeg_folder / "c0" / f"zz{j}.jpg" for j in range(2)]
    for path, data in zip(bad, _corrupt_jpegs(2)):
        path.write_bytes(data)
    spec = LoadSpec((24, 24), 3, seed=0, val_split=0.0, test_split=0.0, cache="none")
    ds = load_stream(jpeg_folder, spec, run_dir=tmp_path / "run")
    files = ds.files["train"]
    worst = [files.index(str(p)) for p in bad]
    rest = [i for i in range(len(files)) if i not in worst]
    order = rest[:5] + worst[:1] + rest[5:] + worst[1:]  # one refused file in the middle, one in the last batch
    keys = tf.data.Dataset.from_tensor_slices((tf.constant(order, tf.int64), tf.range(len(order), dtype=tf.int64)))
    item_by_item = list(ds.tf_split("train", keys, tf))
    assert ds.skipped == {str(p) for p in bad}
    ds.skipped.clear()
    batched = ds.tf_split("train", keys, tf, batch=4)
    list(batched.take(1))
    assert ds.skipped <= {str(bad[0])}  # what the pipeline read ahead (and found refused), nothing else
    ds.skipped.clear()
    got = list(batched)
    assert ds.skipped == {str(p) for p in bad}
    assert any(len(y) != 4 for _, y, _ in got[:-1])  # a lost batch's good items went out with another
    for j, name in enumerate(("image", "label", "k")):
        expected = np.stack([item[j].numpy() for item in item_by_item])
        assert np.array_equal(np.concatenate([batch[j].numpy() for batch in got]), expected), name


@pytest.mark.parametrize("cache", ["none", "disk"])
def test_a_file_tensorflows_decoder_refuses_is_skipped_and_named_not_an_error(jpeg_folder, tmp_path, cache):
    from edgecnn._tf import tf

    bad = [jpeg_folder / "c0" / f"zz{j}.jpg" for j in range(2)]
    for path, data in zip(bad, _corrupt_jpegs(2)):
        path.write_bytes(data)
    spec = LoadSpec((24, 24), 3, seed=0, val_split=0.0, test_split=0.0, cache=cache)
    ds = load_stream(jpeg_folder, spec, run_dir=tmp_path / "run")
    n = len(ds.y["train"])
    order = tf.data.Dataset.from_tensor_slices((tf.range(n, dtype=tf.int64), tf.range(n, dtype=tf.int64)))
    pipeline = ds.tf_split("train", order, tf)
    # a pass abandoned midway (take) names nothing it did not read
    list(pipeline.take(3))
    first = list(pipeline.take(3))
    assert len(first) == 3 and ds.skipped == set()
    got = list(pipeline)  # a whole pass: every good file, in order, and no error
    assert len(got) == n - 2
    assert ds.skipped == {str(p) for p in bad}
    good = [f for f in ds.files["train"] if f not in ds.skipped]
    assert np.array_equal(got[0][0].numpy(), normalize(load_image(good[0], (24, 24), 3)[None], ds.preprocess)[0])
    if cache == "disk":  # the second pass reads the stored images and still leaves the refused files out
        ds.skipped.clear()
        again = list(pipeline)
        assert len(again) == n - 2 and ds.skipped == {str(p) for p in bad}
        assert all(np.array_equal(a[0].numpy(), b[0].numpy()) for a, b in zip(got, again))
