"""Tests of the compression steps in edgecnn.optimize, each on a tiny model."""

from __future__ import annotations

import numpy as np
import pytest

import edgecnn  # noqa: F401  (sets TF_USE_LEGACY_KERAS)
from edgecnn._tf import keras
from edgecnn.errors import UserError
from edgecnn.models import count_params, create_model
from edgecnn.optimize.channel_prune import channel_groups, prune_channels
from edgecnn.optimize.distill import Distiller, check_compatible, distillation_loss, parse_teacher
from edgecnn.optimize.prune import (
    is_pruning_wrapper,
    layer_sparsity,
    prune_model,
    pruning_callbacks,
    strip_pruning,
    strip_pruning_if_wrapped,
)
from edgecnn.optimize.qat import KeepSparsity, is_quantize_wrapper, quantize_model, sparsity_masks

L = keras.layers


def _zero_second_half(model):
    """Zero the BN scale and shift of the second half of every conv's channels: those
    channels then output exactly 0, so removing them must not change the predictions."""
    for layer in model.layers:
        if isinstance(layer, L.Conv2D) and not isinstance(layer, L.DepthwiseConv2D):
            try:
                bn = model.get_layer(f"{layer.name}_bn")
            except ValueError:
                continue
            gamma, beta, mean, var = (w.numpy() for w in bn.weights)
            n = gamma.shape[0]
            gamma[n // 2 :] = 0
            beta[n // 2 :] = 0
            bn.set_weights([gamma, beta, mean, var])


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("mobilenet", {"alpha": 0.25, "input_shape": (32, 32, 3)}),  # depthwise layers follow their input
        ("resnet18", {"alpha": 0.25, "input_shape": (32, 32, 3)}),  # residual additions
    ],
)
def test_channel_pruning_removes_dead_channels_exactly(name, kwargs):
    model = create_model(name, classes=10, **kwargs)
    _zero_second_half(model)
    x = np.random.default_rng(0).random((4, *kwargs["input_shape"]), dtype=np.float32)
    small, report = prune_channels(model, 0.5, criterion="bn")
    assert report["params_after"] < 0.4 * report["params_before"]
    assert count_params(small)["trainable"] == report["params_after"]
    np.testing.assert_allclose(small.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)
    for group in report["groups"]:
        assert group["kept"] == group["channels"] // 2


def test_channel_pruning_residual_groups_are_merged():
    model = create_model("resnet18", alpha=0.25, input_shape=(32, 32, 3), classes=10)
    small, report = prune_channels(model, 0.5)
    merged = next(g for g in report["groups"] if "conv2_block1_2" in g["layers"])
    # The identity shortcuts tie conv1 and every block output of stage 2 together.
    assert {"conv1", "conv2_block1_2", "conv2_block2_2"} <= set(merged["layers"])
    for i in (1, 2):
        add = small.get_layer(f"conv2_block{i}_add")
        assert add.input[0].shape == add.input[1].shape
    assert small.output_shape == (None, 10)


def test_channel_pruning_concatenation():
    inputs = keras.Input((8, 8, 3))
    a = L.Conv2D(8, 3, padding="same", name="a")(inputs)
    b = L.Conv2D(16, 3, padding="same", name="b")(inputs)
    c = L.Concatenate(name="cat")([L.ReLU()(a), L.ReLU()(b)])
    d = L.Conv2D(8, 1, name="d")(c)
    out = L.Dense(3, activation="softmax", name="classifier")(L.GlobalAveragePooling2D()(d))
    model = keras.Model(inputs, out)
    for layer in (model.get_layer("a"), model.get_layer("b")):  # dead second halves
        k, bias = layer.get_weights()
        k[..., k.shape[-1] // 2 :] = 0
        bias[k.shape[-1] // 2 :] = 0
        layer.set_weights([k, bias])
    small, _ = prune_channels(model, 0.5, divisor=1)
    assert small.get_layer("cat").output.shape[-1] == 12
    assert small.get_layer("d").kernel.shape == (1, 1, 12, 4)
    x = np.random.default_rng(1).random((2, 8, 8, 3), dtype=np.float32)
    # d lost half its filters too, so compare the concatenation itself: a's first 4, b's first 8.
    sub = keras.Model(model.input, model.get_layer("cat").output)
    sub_small = keras.Model(small.input, small.get_layer("cat").output)
    full = sub.predict(x, verbose=0)
    kept = np.concatenate([np.arange(4), 8 + np.arange(8)])
    np.testing.assert_allclose(sub_small.predict(x, verbose=0), full[..., kept], atol=1e-5)


def test_channel_pruning_keeps_add_of_mismatched_concat_whole():
    inputs = keras.Input((8, 8, 3))
    c = L.Concatenate()([L.Conv2D(8, 1, name="a")(inputs), L.Conv2D(8, 1, name="b")(inputs)])
    s = L.Add()([c, L.Conv2D(16, 1, name="e")(inputs)])
    model = keras.Model(inputs, L.Dense(2, name="classifier")(L.GlobalAveragePooling2D()(s)))
    groups, _ = channel_groups(model)
    small, report = prune_channels(model, 0.5)
    assert report["groups"] == []  # nothing safe to prune: the channels don't line up
    assert small.count_params() == model.count_params()
    assert any(groups.protected)


def test_channel_pruning_errors():
    model = create_model("mobilenet", alpha=0.25, input_shape=(32, 32, 3), classes=10)
    with pytest.raises(UserError, match="between 0 and 1"):
        prune_channels(model, 1.0)
    with pytest.raises(UserError, match="criterion"):
        prune_channels(model, 0.5, criterion="l3")
    shared = L.Conv2D(3, 1, name="shared")
    inputs = keras.Input((8, 8, 3))
    twice = keras.Model(inputs, shared(shared(inputs)))
    with pytest.raises(UserError, match="more than once"):
        prune_channels(twice, 0.5)


def _tiny_cnn(classes=3):
    inputs = keras.Input((8, 8, 1))
    x = L.Conv2D(8, 3, padding="same", name="conv1")(inputs)
    x = L.ReLU()(x)
    x = L.Conv2D(16, 3, padding="same", name="conv2")(x)
    x = L.ReLU()(x)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(classes, name="classifier")(x)
    return keras.Model(inputs, L.Activation("softmax", name="predictions")(x))


def _tiny_data(n=64, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.random((n, 8, 8, 1), dtype=np.float32) * 0.1 + y[:, None, None, None] / classes
    return x, y


@pytest.mark.parametrize("m_by_n", [None, (2, 4)])
def test_magnitude_pruning_reaches_target_and_skips_first_and_last(m_by_n):
    model = _tiny_cnn()
    x, y = _tiny_data()
    pruned = prune_model(model, sparsity=0.5, end_step=4, frequency=1, m_by_n=m_by_n)
    pruned.compile("adam", "sparse_categorical_crossentropy")
    pruned.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=pruning_callbacks())
    final = strip_pruning(pruned)
    sparsity = layer_sparsity(final)
    assert sparsity["conv1"] == 0 and sparsity["classifier"] == 0
    assert sparsity["conv2"] == pytest.approx(0.5, abs=0.01)
    if m_by_n:  # two zeros in every 4 consecutive input weights of each filter
        k = final.get_layer("conv2").kernel.numpy()  # (3, 3, 8, 16)
        blocks = (k.transpose(0, 1, 3, 2).reshape(-1, 4) == 0).sum(axis=1)
        assert (blocks >= 2).all()


def test_wrappers_are_recognised_by_type():
    model = _tiny_cnn()
    assert strip_pruning_if_wrapped(model) is model and not any(map(is_pruning_wrapper, model.layers))
    pruned = prune_model(model, sparsity=0.5)
    wrapped = [layer.layer.name for layer in pruned.layers if is_pruning_wrapper(layer)]
    assert wrapped == ["conv2"] and not any(map(is_quantize_wrapper, pruned.layers))
    stripped = strip_pruning_if_wrapped(pruned)
    assert stripped is not pruned and not any(map(is_pruning_wrapper, stripped.layers))
    qat = quantize_model(model)
    assert any(map(is_quantize_wrapper, qat.layers)) and strip_pruning_if_wrapped(qat) is qat


def test_magnitude_pruning_rejects_bad_sparsity():
    with pytest.raises(UserError, match="between 0 and 1"):
        prune_model(_tiny_cnn(), sparsity=1.0)


def test_prune_preserving_qat_keeps_zeros():
    from edgecnn._tf import tfmot

    model = _tiny_cnn()
    x, y = _tiny_data()
    pruned = prune_model(model, sparsity=0.5, end_step=2, frequency=1)
    pruned.compile("adam", "sparse_categorical_crossentropy")
    pruned.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=pruning_callbacks())
    sparse = strip_pruning(pruned)
    scheme = tfmot().experimental.combine.Default8BitPrunePreserveQuantizeScheme()
    masks = sparsity_masks(sparse)
    assert set(masks) == {"conv2"}
    qat = quantize_model(sparse, scheme)
    qat.compile("adam", "sparse_categorical_crossentropy")
    qat.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[KeepSparsity(masks)])
    kernel = next(w for w in qat.weights if "conv2" in w.name and "kernel" in w.name)
    assert np.mean(kernel.numpy() == 0) == pytest.approx(0.5, abs=0.01)


def test_qat_on_unquantizable_layer_is_a_user_error():
    inputs = keras.Input((8, 8, 1))
    x = L.Lambda(lambda t: t * 2.0, name="double")(inputs)
    model = keras.Model(inputs, L.Dense(2)(L.Flatten()(x)))
    with pytest.raises(UserError, match="quantization-aware training cannot wrap"):
        quantize_model(model)


def test_distillation_loss_terms():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]], "float32")
    q = np.array([[0.2, 0.7, 0.1], [0.3, 0.3, 0.4]], "float32")
    y = np.array([0, 1])
    ce = -np.mean(np.log(p[[0, 1], y]))
    assert float(distillation_loss(y, p, q, alpha=1.0)) == pytest.approx(ce, rel=1e-5)
    assert float(distillation_loss(y, p, p, alpha=0.0)) == pytest.approx(0.0, abs=1e-6)
    # KL at temperature T, scaled by T^2, computed by hand.
    t = 2.0
    soft = lambda v: np.exp(np.log(v) / t) / np.exp(np.log(v) / t).sum(-1, keepdims=True)  # noqa: E731
    kl = np.mean(np.sum(soft(q) * (np.log(soft(q)) - np.log(soft(p))), -1))
    assert float(distillation_loss(y, p, q, alpha=0.0, temperature=t)) == pytest.approx(t * t * kl, rel=1e-4)


def test_distillation_keeps_dark_knowledge_below_the_ce_clip():
    # A confident teacher: its wrong classes at 1e-9 and 1e-12. Their ratio is the "dark
    # knowledge"; a 1e-7 clip would make them equal, and the softened targets uniform.
    teacher = np.array([[1 - 1e-9 - 1e-12, 1e-9, 1e-12]], "float32")
    y = np.array([0])
    assert float(distillation_loss(y, teacher, teacher, alpha=0.0, temperature=4.0)) == pytest.approx(0.0, abs=1e-6)
    flattened = np.array([[1 - 2e-9, 1e-9, 1e-9]], "float32")  # what a 1e-7 floor would teach
    assert float(distillation_loss(y, flattened, teacher, alpha=0.0, temperature=4.0)) > 1e-3


def test_distiller_with_mixup_trains():
    x, y = _tiny_data(96)
    teacher = _tiny_cnn()
    teacher.compile("adam", "sparse_categorical_crossentropy")
    teacher.fit(x, y, epochs=2, verbose=0)
    student = _tiny_cnn()
    before = [w.copy() for w in student.get_weights()]
    d = Distiller(student, teacher, alpha=0.5, temperature=2.0, mixup=0.4)
    d.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    hist = d.fit(x, y, epochs=2, batch_size=32, verbose=0).history
    assert all(np.isfinite(v) and v > 0 for v in hist["loss"])
    assert any(not np.array_equal(a, b) for a, b in zip(before, student.get_weights()))
    with pytest.raises(UserError, match="mixup"):
        Distiller(_tiny_cnn(), teacher, mixup=-1)


def test_distiller_trains_the_student_only():
    x, y = _tiny_data(96)
    teacher = _tiny_cnn()
    teacher.compile("adam", "sparse_categorical_crossentropy")
    teacher.fit(x, y, epochs=3, verbose=0)
    teacher_weights = [w.copy() for w in teacher.get_weights()]
    student = _tiny_cnn()
    before = [w.copy() for w in student.get_weights()]
    d = Distiller(student, teacher, alpha=0.1, temperature=4.0)
    d.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    hist = d.fit(x, y, epochs=2, batch_size=32, verbose=0, validation_data=(x, y)).history
    assert all(v > 0 for v in hist["loss"]) and "val_accuracy" in hist
    assert any(not np.array_equal(a, b) for a, b in zip(before, student.get_weights()))
    assert all(np.array_equal(a, b) for a, b in zip(teacher_weights, teacher.get_weights()))


def test_distill_checks_and_teacher_specs(tmp_path):
    with pytest.raises(UserError, match="teacher .* has 5 classes"):
        check_compatible(_tiny_cnn(3), _tiny_cnn(5))
    assert parse_teacher("mobilenet:1.0") == {"name": "mobilenet", "alpha": 1.0}
    with pytest.raises(UserError, match="unknown model"):
        parse_teacher("mobilenett:1.0")
    with pytest.raises(UserError, match="alpha"):
        parse_teacher("mobilenet:9")
    with pytest.raises(UserError, match="not found"):
        parse_teacher(str(tmp_path / "missing.keras"))
