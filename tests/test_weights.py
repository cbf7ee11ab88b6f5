"""Pretrained weights (edgecnn.models._weights): Keras Applications files give the same
function as the Keras model, "imagenet" from Keras' cache with its hash checked, and every
bad input refused on one line. No network: the files are made here with
``tf_keras.applications.X(weights=None, ...).save_weights(...)``.
"""

from __future__ import annotations

import inspect
import shutil

import numpy as np
import pytest

import edgecnn
from edgecnn.errors import UserError
from edgecnn.models import model_info
from edgecnn.models._weights import fetch_imagenet, imagenet_file, input_convention


def _keras_app(name: str, pixels: str = "[-1, 1]", **kwargs):
    """Keras' model with random weights whose BatchNorm statistics are those of one batch of
    random images (as a trained model's are of its data), then perturbed: the statistics
    matter, and the signal reaches the output (with statistics left at 0/1, deep random
    networks such as MobileNetV3 give the same output whatever the input)."""
    import tf_keras

    model = getattr(tf_keras.applications, name)(weights=None, **kwargs)
    rng = np.random.default_rng(0)
    norms = [layer for layer in model.layers if isinstance(layer, tf_keras.layers.BatchNormalization)]
    for layer in norms:
        layer.momentum = 0.0
    shape = (8, *[d or 64 for d in model.input_shape[1:]])
    batch = rng.uniform(0, 255, shape).astype("float32")
    model(batch / 127.5 - 1 if pixels == "[-1, 1]" else batch, training=True)  # moving stats := this batch's
    for layer in norms:
        ws = layer.get_weights()
        ws[-2] = (ws[-2] + rng.normal(0, 0.05, ws[-2].shape) * np.sqrt(ws[-1])).astype("float32")
        ws[-1] = (ws[-1] * rng.uniform(0.8, 1.25, ws[-1].shape)).astype("float32")
        layer.set_weights(ws)
    return model


def _same_function(tmp_path, app: str, name: str, size: int, pixels: str, **kwargs) -> None:
    """Keras' model and edgecnn's loaded from its saved weights agree to 1e-4, with the top
    (logits) and without it (pooled features)."""
    x = np.random.default_rng(1).uniform(0, 255, (2, size, size, 3)).astype("float32")
    if pixels == "[-1, 1]":
        x = x / 127.5 - 1
    other = np.random.default_rng(2).uniform(0, 255, x.shape).astype("float32")
    other = other / 127.5 - 1 if pixels == "[-1, 1]" else other
    for top in ({"classifier_activation": "linear"}, {"include_top": False, "pooling": "avg"}):
        keras_model = _keras_app(app, pixels, input_shape=(size, size, 3), **kwargs, **top)
        path = tmp_path / f"{app}.h5"
        keras_model.save_weights(str(path))
        ours = edgecnn.create_model(name, input_shape=(size, size, 3), weights=str(path), **kwargs, **top)
        want, got = keras_model.predict(x, verbose=0), ours.predict(x, verbose=0)
        assert got.shape == want.shape
        assert float(np.abs(got - want).max()) <= 1e-4, (app, top)
        assert float(np.abs(want).max()) > 1e-2  # a real signal, not two zero outputs
        # ... that depends on the input (a network that ignores it would match anything).
        assert float(np.abs(keras_model.predict(other, verbose=0) - want).max()) > 1e-3, (app, top)


def test_mobilenet_keras_file_computes_the_keras_function(tmp_path, capsys):
    """The cheap default-suite case: with the top (logits); without it, see
    test_imagenet_from_keras_cache; a classifier of another size is re-initialised and listed."""
    keras_model = _keras_app(
        "MobileNet", input_shape=(32, 32, 3), alpha=0.25, classes=7, classifier_activation="linear"
    )
    path = tmp_path / "top.h5"
    keras_model.save_weights(str(path))
    kwargs = dict(alpha=0.25, input_shape=(32, 32, 3), weights=str(path))
    ours = edgecnn.create_model("mobilenet", classes=7, classifier_activation="linear", **kwargs)
    x = np.random.default_rng(1).uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
    want = keras_model.predict(x, verbose=0)
    assert float(np.abs(ours.predict(x, verbose=0) - want).max()) <= 1e-4 < float(np.abs(want).max())
    assert "re-initialised" not in capsys.readouterr().err
    other = edgecnn.create_model("mobilenet", classes=3, **kwargs)
    assert other.output_shape == (None, 3)
    assert "re-initialised (not in the file or another shape): classifier" in capsys.readouterr().err


# One variant per family, at a small input (all of them build Keras' model and ours twice).
FAMILIES = [
    ("MobileNet", "mobilenet", 96, "[-1, 1]", {"alpha": 0.5}),
    ("MobileNetV2", "mobilenet_v2", 96, "[-1, 1]", {"alpha": 0.35}),
    ("MobileNetV3Small", "mobilenet_v3_small", 96, "0..255", {}),
    ("MobileNetV3Large", "mobilenet_v3_large", 96, "0..255", {"minimalistic": True}),
    ("EfficientNetB0", "efficientnet_b0", 96, "0..255", {}),
    ("ResNet50", "resnet50", 96, "caffe", {}),
    ("VGG16", "vgg16", 64, "caffe", {}),
    ("DenseNet121", "densenet121", 96, "torch", {}),
]


@pytest.mark.slow
@pytest.mark.parametrize("app,name,size,pixels,kwargs", FAMILIES, ids=[f[1] for f in FAMILIES])
def test_keras_file_computes_the_keras_function(tmp_path, app, name, size, pixels, kwargs):
    _same_function(tmp_path, app, name, size, pixels, **kwargs)


def _published_in_tf_keras() -> set:
    """Every (Keras application, alpha, rows, minimalistic) Keras Applications publishes a
    weight file for, read from tf_keras itself: MobileNet v1/V2's alpha and rows lists in
    its code, MobileNetV3's and EfficientNet's ``WEIGHTS_HASHES``, ResNet's ``WEIGHTS_HASHES``
    (v1 only: v2 and ResNeXt are not in edgecnn), VGG-16/19 and DenseNet-121/169/201."""
    import re

    from tf_keras.src.applications import efficientnet, mobilenet, mobilenet_v2, mobilenet_v3, resnet

    def numbers(module, pattern):
        found = re.search(pattern, inspect.getsource(module))
        return [float(v) for v in found.group(1).split(",")]

    out = set()
    v1_alphas = numbers(mobilenet, r"alpha not in \[([^\]]+)\]")
    v1_rows = numbers(mobilenet, r"rows not in \[([^\]]+)\]")
    out |= {("MobileNet", a, int(r), False) for a in v1_alphas for r in v1_rows}
    v2_alphas = numbers(mobilenet_v2, r"alpha not in \[([^\]]+)\]")
    v2_rows = numbers(mobilenet_v2, r"rows not in \[([^\]]+)\]")
    out |= {("MobileNetV2", a, int(r), False) for a in v2_alphas for r in v2_rows}
    for key in mobilenet_v3.WEIGHTS_HASHES:  # "small_minimalistic_224_1.0_float"
        parts = key.split("_")
        out.add((f"MobileNetV3{parts[0].title()}", float(parts[-2]), int(parts[-3]), "minimalistic" in parts))
    out |= {(f"EfficientNet{key.upper()}", 1.0, None, False) for key in efficientnet.WEIGHTS_HASHES}
    out |= {(f"ResNet{key[6:]}", 1.0, None, False) for key in resnet.WEIGHTS_HASHES if re.fullmatch(r"resnet\d+", key)}
    out |= {(app, 1.0, None, False) for app in ("VGG16", "VGG19", "DenseNet121", "DenseNet169", "DenseNet201")}
    return out


def _published_variants() -> list:
    """(Keras app, edgecnn name, input size, pixels, kwargs) for every published file. The
    MobileNet v1/V2 files are one per alpha and resolution: each is tested at its resolution.
    The others are one per model (any resolution): tested at 64x64."""
    from edgecnn.models._registry import pretrained_models

    names = {model_info(n).pretrained: n for n in pretrained_models()}
    out = []
    for app, alpha, rows, minimalistic in sorted(_published_in_tf_keras(), key=str):
        kwargs = {} if alpha == 1.0 and not app.startswith("MobileNetV") else {"alpha": alpha}
        kwargs |= {"minimalistic": True} if minimalistic else {}
        if app in ("MobileNet", "MobileNetV2"):
            out.append((app, names[app], rows, "[-1, 1]", {**kwargs, "alpha": alpha}))
        else:
            out.append((app, names[app], 64, "0..255" if app.startswith(("MobileNetV3", "Eff")) else "raw", kwargs))
    return out


PUBLISHED = _published_variants()


def test_every_published_variant_is_tested():
    """The slow set's variants are exactly what tf_keras publishes (no alpha or resolution
    missing), and each maps to its own published file name, top and no top."""
    assert len(PUBLISHED) == len(_published_in_tf_keras()) == 16 + 30 + 6 + 8 + 3 + 2 + 3
    files = set()
    for _, name, size, _, kwargs in PUBLISHED:
        args = {**kwargs, "input_shape": (size, size, 3)}
        for top in (True, False):
            files.add(imagenet_file(model_info(name), args, include_top=top)[0])
    assert len(files) == 2 * len(PUBLISHED)
    assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.3_96_no_top.h5" in files
    assert "mobilenet_7_5_160_tf.h5" in files and "weights_mobilenet_v3_large_224_0.75_float.h5" in files


@pytest.mark.slow
@pytest.mark.parametrize(
    "app,name,size,pixels,kwargs",
    PUBLISHED,
    ids=[f"{v[1]}-{v[2]}-{'-'.join(map(str, v[4].values()))}" for v in PUBLISHED],
)
def test_every_published_variant_computes_the_keras_function(tmp_path, app, name, size, pixels, kwargs):
    """Exhaustive (about 70 variants): every published alpha and resolution, with and
    without the top."""
    _same_function(tmp_path, app, name, size, pixels, **kwargs)


@pytest.fixture(scope="module")
def v1_file(tmp_path_factory):
    """A MobileNet 0.25 no-top file at 32x32, and the Keras model that wrote it."""
    path = tmp_path_factory.mktemp("w") / "mobilenet_025_notop.h5"
    model = _keras_app("MobileNet", input_shape=(32, 32, 3), alpha=0.25, include_top=False, pooling="avg")
    model.save_weights(str(path))
    return path, model


def test_imagenet_from_keras_cache(tmp_path, monkeypatch, v1_file):
    """'imagenet' reads the published file's name from Keras' cache ($KERAS_HOME/models)."""
    path, keras_model = v1_file
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    fname, url, file_hash = imagenet_file(model_info("mobilenet"), {"alpha": 0.25}, include_top=False)
    assert (fname, file_hash) == ("mobilenet_2_5_224_tf_no_top.h5", None)  # tf_keras publishes no hash for v1
    assert url == "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet/" + fname
    (tmp_path / "models").mkdir()
    shutil.copy(path, tmp_path / "models" / fname)
    ours = edgecnn.create_model(
        "mobilenet", alpha=0.25, input_shape=(32, 32, 3), include_top=False, pooling="avg", weights="imagenet"
    )
    x = np.random.default_rng(2).uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
    assert float(np.abs(ours.predict(x, verbose=0) - keras_model.predict(x, verbose=0)).max()) <= 1e-4
    assert ours._edgecnn_weights["file"] == str(tmp_path / "models" / fname)
    assert len(ours._edgecnn_weights["sha256"]) == 64


def test_imagenet_hash_is_checked(tmp_path, monkeypatch, v1_file):
    """A cached file that is not the published one (its md5 differs) is refused on one line."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    fname, _, file_hash = imagenet_file(model_info("mobilenet_v3_small"), {}, include_top=False)
    assert fname == "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5" and len(file_hash) == 32
    (tmp_path / "models").mkdir()
    shutil.copy(v1_file[0], tmp_path / "models" / fname)
    with pytest.raises(UserError, match=r"is not the published .*md5 is not " + file_hash) as err:
        edgecnn.create_model("mobilenet_v3_small", include_top=False, weights="imagenet")
    assert "\n" not in str(err.value)
    # A file with the right hash is accepted (the check is the hash, not the name).
    import hashlib

    good = tmp_path / "models" / "some.h5"
    shutil.copy(v1_file[0], good)
    md5 = hashlib.md5(good.read_bytes()).hexdigest()
    assert fetch_imagenet("some.h5", "http://127.0.0.1:9/some.h5", md5) == good


def test_offline_and_not_cached_names_file_url_and_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    url = "http://127.0.0.1:9/resnet50_weights_tf_dim_ordering_tf_kernels.h5"
    with pytest.raises(UserError) as err:
        fetch_imagenet("resnet50_weights_tf_dim_ordering_tf_kernels.h5", url, None)
    msg = str(err.value)
    assert "\n" not in msg and url in msg and f"put that file in {tmp_path / 'models'}/" in msg


def test_published_names_and_hashes_come_from_tf_keras():
    """The URLs and hashes each family declares beside its builders (``PRETRAINED``) are
    tf_keras' own: its ``BASE_WEIGHT(S)_PATH`` and ``WEIGHTS_HASHES``, and for VGG and
    DenseNet the hashes and URLs written inline in its source."""
    from tf_keras.src.applications import (
        densenet,
        efficientnet,
        mobilenet,
        mobilenet_v2,
        mobilenet_v3,
        resnet,
        vgg16,
        vgg19,
    )

    from edgecnn.models._registry import pretrained_models

    cfgs = {model_info(n).pretrained: model_info(n).pretrained_cfg for n in pretrained_models()}
    assert cfgs["MobileNet"].url == mobilenet.BASE_WEIGHT_PATH
    assert cfgs["MobileNetV2"].url == mobilenet_v2.BASE_WEIGHT_PATH
    for kind in ("Small", "Large"):
        cfg = cfgs[f"MobileNetV3{kind}"]
        assert cfg.url == mobilenet_v3.BASE_WEIGHT_PATH
        assert dict(cfg.published) == {
            k: v for k, v in mobilenet_v3.WEIGHTS_HASHES.items() if k.startswith(kind.lower())
        }
    for key, md5 in efficientnet.WEIGHTS_HASHES.items():
        assert cfgs[f"EfficientNet{key.upper()}"].url == efficientnet.BASE_WEIGHTS_PATH
        assert dict(cfgs[f"EfficientNet{key.upper()}"].published) == {key: md5}
    for depth in (50, 101, 152):
        assert cfgs[f"ResNet{depth}"].url == resnet.BASE_WEIGHTS_PATH
        assert dict(cfgs[f"ResNet{depth}"].published) == {f"resnet{depth}": resnet.WEIGHTS_HASHES[f"resnet{depth}"]}
    source = "".join(inspect.getsource(m) for m in (vgg16, vgg19, densenet))
    for app in ("VGG16", "VGG19", "DenseNet121", "DenseNet169", "DenseNet201"):
        for md5 in next(iter(cfgs[app].published.values())):
            assert f'file_hash="{md5}"' in source
    assert imagenet_file(model_info("resnet101"), {}, True)[2] == resnet.WEIGHTS_HASHES["resnet101"][0]
    assert imagenet_file(model_info("efficientnet_b3"), {}, False) == (
        "efficientnetb3_notop.h5",
        efficientnet.BASE_WEIGHTS_PATH + "efficientnetb3_notop.h5",
        efficientnet.WEIGHTS_HASHES["b3"][1],
    )
    assert imagenet_file(model_info("vgg16"), {}, False)[1] == vgg16.WEIGHTS_PATH_NO_TOP
    assert imagenet_file(model_info("vgg19"), {}, True)[1] == vgg19.WEIGHTS_PATH
    assert imagenet_file(model_info("densenet121"), {}, True)[1] == densenet.DENSENET121_WEIGHT_PATH
    assert imagenet_file(model_info("densenet169"), {}, False)[1] == densenet.DENSENET169_WEIGHT_PATH_NO_TOP
    assert imagenet_file(model_info("mobilenet_v2"), {"alpha": 0.35, "input_shape": (96, 96, 3)}, True)[0] == (
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96.h5"
    )


def test_bad_weights_are_refused_on_one_line(tmp_path, v1_file):
    path, _ = v1_file
    cases = {
        "unknown weights 'imagenette'": dict(name="mobilenet", weights="imagenette"),
        "lenet5 has no published ImageNet weights; these have: densenet121": dict(name="lenet5", weights="imagenet"),
        "does not fit": dict(name="mobilenet", alpha=0.5, weights=str(path)),  # another alpha
        "publishes MobileNet weights for alpha 0.25, 0.5, 0.75, 1.0; got alpha 0.3": dict(
            name="mobilenet", alpha=0.3, weights="imagenet"
        ),
        "publishes ResNet50 weights for alpha 1 only": dict(name="resnet50", alpha=0.5, weights="imagenet"),
    }
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    cases["cannot read weight file"] = dict(name="mobilenet", alpha=0.25, weights=str(truncated))
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not hdf5 at all")
    cases["not an HDF5 file"] = dict(name="mobilenet", alpha=0.25, weights=str(garbage))
    for expected, kwargs in cases.items():
        with pytest.raises(UserError) as err:
            edgecnn.create_model(input_shape=(32, 32, 3), include_top=False, **kwargs)
        assert expected in str(err.value) and "\n" not in str(err.value), (expected, str(err.value))


def test_another_architecture_is_refused(tmp_path, v1_file):
    with pytest.raises(UserError, match="does not fit") as err:
        edgecnn.create_model("mobilenet_v2", alpha=0.35, input_shape=(32, 32, 3), weights=str(v1_file[0]))
    assert "\n" not in str(err.value)


def test_input_convention_training_side_equals_device_side(tmp_path):
    """An image file becomes the same tensor through load_dataset (training, evaluation,
    calibration) and through the device's load_image + normalize(preprocess.json), and the
    tensor is what tf_keras' preprocess_input makes for the family."""
    from PIL import Image
    from tf_keras.src.applications import densenet, mobilenet, resnet

    from edgecnn.data.dataset import load_dataset
    from edgecnn.device.preprocess import load_image, normalize

    rng = np.random.default_rng(3)
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
    keras_preprocess = {
        "resnet50": resnet.preprocess_input,
        "densenet121": densenet.preprocess_input,
        "mobilenet": mobilenet.preprocess_input,
    }
    for name, reference in keras_preprocess.items():
        convention = input_convention(model_info(name), "imagenet")  # scale and offset included
        ds = load_dataset(
            str(tmp_path), image_size=(16, 16), channels=3, val_split=0.0, test_split=0.0, convention=convention
        )
        one = tmp_path / "a" / "0.png"
        pixels = load_image(one, (16, 16), 3)
        device = normalize(pixels[None], ds.preprocess)
        index = [i for i, img in enumerate(ds.x["train"]) if np.array_equal(img, pixels)][0]
        training = ds.normalized("train")[index : index + 1]
        np.testing.assert_array_equal(device, training)
        want = reference(pixels[None].astype("float32"))
        np.testing.assert_allclose(device, want, atol=1e-4, err_msg=name)
    assert input_convention(model_info("efficientnet_b0"), "imagenet") == {"scale": 1.0, "offset": 0.0}
    assert input_convention(model_info("mobilenet"), None) == {}


def test_fine_tune_schedule_defaults_follow_the_weights(tmp_path, v1_file):
    from edgecnn.settings.run_config import RunConfig, resolve

    plain = resolve(RunConfig.from_dict({"model": {"name": "mobilenet"}}))
    assert (plain.train.freeze_epochs, plain.train.epochs) == (0, 30)
    tuned = resolve(RunConfig.from_dict({"model": {"name": "mobilenet", "weights": str(v1_file[0])}}))
    # At most 30 head epochs (it stops early), then 10 of the whole network at 4e-4: --lr (2e-3)
    # wrecked the ImageNet features on real photos (benchmarks/RESULTS.md, transfer_photos).
    assert (tuned.train.freeze_epochs, tuned.train.epochs, tuned.train.fine_tune_lr) == (30, 10, 4e-4)
    assert tuned.train.learning_rate == plain.train.learning_rate  # the head phase's rate
    lower = {"model": {"name": "mobilenet", "weights": str(v1_file[0])}, "train": {"fine_tune_lr": 3e-5}}
    lower = resolve(RunConfig.from_dict(lower))
    assert lower.train.fine_tune_lr == 3e-5
    with pytest.raises(UserError, match="resnet18 has no published ImageNet weights; these have: densenet121"):
        resolve(RunConfig.from_dict({"model": {"name": "resnet18", "weights": "imagenet"}}))
    with pytest.raises(UserError, match="model.weights 'missing.h5': no such file"):
        resolve(RunConfig.from_dict({"model": {"name": "mobilenet", "weights": "missing.h5"}}))


def _fine_tune_setup(tmp_path, **train):
    """A MobileNet 0.25 'pretrained' for one epoch on digits (real BatchNorm statistics), and a
    5-class model started from it through --weights RUN_FOLDER, with its Context."""
    from edgecnn.data.dataset import load_dataset
    from edgecnn.settings.run_config import RunConfig, resolve
    from edgecnn.settings.sections import TrainConfig
    from edgecnn.stages._base import Context
    from edgecnn.train import fit

    run = tmp_path / "run"
    (run / "train").mkdir(parents=True)
    data = load_dataset("digits", image_size=32, train_fraction=0.05)
    source = edgecnn.create_model("mobilenet", alpha=0.25, input_shape=(32, 32, 3), classes=10)
    fit(source, data, TrainConfig(epochs=1, verbose=0))  # pretrained: BatchNorm statistics of real images
    source.save_weights(str(run / "train" / "weights.h5"))
    settings = {"epochs": 1, "freeze_epochs": 1, "verbose": 0, "augment": "none", **train}
    cfg = resolve(
        RunConfig.from_dict({"model": {"name": "mobilenet", "alpha": 0.25, "weights": str(run)}, "train": settings})
    )
    data.y = {s: np.minimum(y, 4) for s, y in data.y.items()}  # 5 classes: a new classifier
    model = edgecnn.create_model("mobilenet", alpha=0.25, input_shape=(32, 32, 3), classes=5, weights=str(run))
    assert model._edgecnn_weights["fresh"] == ["classifier"]
    lines = []
    ctx = Context(cfg=cfg, data=data, out=tmp_path / "out", echo=lines.append, entry=model_info("mobilenet"))
    return ctx, model, lines


def test_fine_tune_schedule_keeps_batchnorm_statistics(tmp_path):
    """Both phases of the --weights schedule: BatchNorm in inference mode (its pretrained
    moving statistics untouched, as Keras' transfer-learning guide does), the head trained
    first on the frozen backbone's features, then every other weight at --fine-tune-lr; the
    model is left all trainable."""
    from edgecnn.stages._base import StageStore
    from edgecnn.stages.train import fine_tune_schedule

    ctx, model, lines = _fine_tune_setup(tmp_path, fine_tune_lr=1e-3)
    before = {w.name: np.array(w.numpy(), copy=True) for w in model.weights}  # not a view of the variable
    hist = fine_tune_schedule(ctx, model, StageStore(tmp_path / "out", "train", "k"))
    assert hist["head"]["epochs"] == 1 and hist["head"]["cached_features"] and hist["epochs"] == 1
    assert "frozen backbone's features" in lines[0] and "BatchNorm frozen" in lines[2]
    moved = {w.name for w in model.weights if not np.array_equal(w.numpy(), before[w.name])}
    assert not {n for n in moved if "moving_" in n or "_bn/" in n}  # gamma, beta and statistics as loaded
    if hist["chosen"] == "fine-tune":
        assert {"conv_pw_12/kernel:0", "conv_pw_13/kernel:0", "classifier/kernel:0"} <= moved  # the whole network
    else:  # the head phase validated better: only the classifier moved
        assert moved == {"classifier/kernel:0", "classifier/bias:0"}
    assert len(hist["phases"]["head_val_accuracy"]) == 1 and len(hist["phases"]["fine_tune_val_accuracy"]) == 1
    assert all(layer.trainable for layer in model.layers)


def test_fine_tuning_that_validates_worse_keeps_the_head_phase_model(tmp_path):
    """A fine-tuning rate that wrecks the pretrained features (as --lr did on real photos):
    the best epoch is chosen over both phases, the head-phase model is kept and a line says so."""
    from edgecnn.stages._base import StageStore
    from edgecnn.stages.train import fine_tune_schedule

    ctx, model, lines = _fine_tune_setup(tmp_path, freeze_epochs=20, fine_tune_lr=5.0)
    loaded = {w.name: np.array(w.numpy(), copy=True) for w in model.weights if "classifier" not in w.name}
    hist = fine_tune_schedule(ctx, model, StageStore(tmp_path / "out", "train", "k"))
    assert hist["chosen"] == "head"
    assert hist["best_val_accuracy"] < hist["head"]["best_val_accuracy"]
    assert any(line.startswith("      kept the head-phase model: fine-tuning reached") for line in lines)
    for w in model.weights:  # the backbone exactly as loaded
        if w.name in loaded:
            np.testing.assert_array_equal(w.numpy(), loaded[w.name], err_msg=w.name)


def test_head_tail_is_the_chain_after_the_first_head_layer():
    from edgecnn._tf import keras
    from edgecnn.stages.train import head_tail

    model = edgecnn.create_model("mobilenet", alpha=0.25, input_shape=(32, 32, 3), classes=5)
    assert [layer.name for layer in head_tail(model, {"classifier"})] == ["classifier", "predictions"]
    x = keras.Input((8,))
    a, b = keras.layers.Dense(4, name="a")(x), keras.layers.Dense(4, name="b")(x)
    branched = keras.Model(x, keras.layers.Add(name="sum")([a, b]))
    assert head_tail(branched, {"a"}) is None  # 'sum' has two inputs: no chain to train alone
    assert head_tail(model, {"nothing"}) is None
    # What Keras' no-top files leave fresh: VGG's fully connected layers, MobileNetV3's conv_head.
    vgg = edgecnn.create_model("vgg16", input_shape=(32, 32, 3), classes=5)
    assert [layer.name for layer in head_tail(vgg, {"fc1", "fc2", "classifier"})][:2] == ["fc1", "fc1_relu"]
    v3 = edgecnn.create_model("mobilenet_v3_small", input_shape=(32, 32, 3), classes=5)
    assert head_tail(v3, {"conv_head", "classifier"})[0].name == "conv_head"


def test_few_images_per_class_with_weights_is_warned(tmp_path):
    from types import SimpleNamespace

    from edgecnn.stages.train import few_images_warning

    lines, warnings = [], []
    data = SimpleNamespace(y={"train": np.array([0] * 30 + [1] * 7)}, class_names=["cat", "dog"], num_classes=2)
    ctx = SimpleNamespace(data=data, echo=lines.append, warnings=warnings)
    line = few_images_warning(ctx)
    assert line.startswith("warning: class dog has only 7 training image(s)") and lines == warnings == [line]
    data.y["train"] = np.array([0] * 30 + [1] * 20)
    assert few_images_warning(ctx) is None


def test_list_has_a_pretrained_column():
    from click.testing import CliRunner

    from edgecnn.cli import main

    out = CliRunner().invoke(main, ["list", "resnet*"]).output
    rows = {line.split()[0]: line for line in out.splitlines()[2:] if line.strip()}
    assert rows["resnet50"].split()[5] == "ResNet50" and rows["resnet18"].split()[5] == "-"
    assert out.splitlines()[0].split()[5] == "pretrained"


@pytest.mark.slow
def test_optimize_fine_tunes_from_a_keras_file(tmp_path):
    """Head phase then whole network, through the pipeline; the run records the file's sha256."""
    import hashlib

    import tf_keras

    from edgecnn.pipeline import optimize
    from edgecnn.settings.run_config import RunConfig

    path = tmp_path / "m.h5"
    tf_keras.applications.MobileNet(weights=None, input_shape=(32, 32, 3), alpha=0.25).save_weights(str(path))
    cfg = RunConfig.from_dict(
        {
            "model": {"name": "mobilenet", "alpha": 0.25, "weights": str(path)},
            "data": {"train_fraction": 0.1},
            "train": {"epochs": 1, "freeze_epochs": 1},
            "bench": {"enabled": False},
            "out": str(tmp_path / "run"),
        }
    )
    lines = []
    metrics = optimize(cfg, echo=lines.append)
    text = "\n".join(lines)
    assert "head phase: classifier on the frozen backbone's features" in text
    assert "fine-tune phase: the whole network" in text
    weights = metrics["stages"]["trained"]["weights"]
    assert weights["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert not (tmp_path / "run" / "train" / "head").exists()


def test_run_folder_weights_and_its_input_convention(tmp_path):
    """--weights RUN_FOLDER: the run's train/weights.h5 by layer name, and the run's
    preprocess.json convention; another family's run is refused on one line."""
    run = tmp_path / "run"
    (run / "train").mkdir(parents=True)
    source = edgecnn.create_model("lenet5", classes=10)
    source.save_weights(str(run / "train" / "weights.h5"))
    (run / "preprocess.json").write_text('{"scale": 0.00392156862745098, "offset": 0.0, "class_names": []}')
    ours = edgecnn.create_model("lenet5", classes=10, weights=str(run))
    x = np.random.default_rng(4).uniform(0, 1, (2, *source.input_shape[1:])).astype("float32")
    np.testing.assert_allclose(ours.predict(x, verbose=0), source.predict(x, verbose=0), atol=1e-6)
    assert ours._edgecnn_weights["file"] == str(run / "train" / "weights.h5")
    assert input_convention(model_info("lenet5"), str(run)) == {"scale": 0.00392156862745098, "offset": 0.0}
    fewer = edgecnn.create_model("lenet5", classes=4, weights=str(run))  # a new classifier for 4 classes
    assert fewer.output_shape == (None, 4) and fewer._edgecnn_weights["fresh"] == ["classifier"]
    with pytest.raises(UserError, match="does not fit") as err:
        edgecnn.create_model("mlp", classes=10, weights=str(run))
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="not an edgecnn run folder"):
        edgecnn.create_model("lenet5", weights=str(tmp_path))


def test_teacher_weights_must_share_the_students_input_convention():
    from types import SimpleNamespace

    from edgecnn.stages.distill import _check_teacher_convention

    ctx = SimpleNamespace(data=SimpleNamespace(preprocess={"scale": 1.0 / 127.5, "offset": -1.0}))
    _check_teacher_convention(ctx, "mobilenet_v2", "imagenet")  # [-1, 1] like the student: fine
    with pytest.raises(UserError, match="the teacher resnet50 with weights 'imagenet' expects input") as err:
        _check_teacher_convention(ctx, "resnet50", "imagenet")
    assert "'channel_order': 'BGR'" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(UserError, match="lenet5 has no published ImageNet weights"):
        _check_teacher_convention(ctx, "lenet5", "imagenet")
