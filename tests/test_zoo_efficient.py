"""The efficient families: reference figures, scaling, custom layers, QAT vs int8.

The registry-wide checks (build, forward, config, prune, QAT, int8 for every model) live
in tests/test_models.py; this file checks what is specific to the efficient zoo.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from edgecnn._tf import keras
from edgecnn.errors import UserError
from edgecnn.models import count_macs, count_params, create_model, list_models
from edgecnn.models._blocks import decode_arch, decode_block
from edgecnn.models._layers import CUSTOM_OBJECTS
from edgecnn.models._quant_layers import ZOO_LAYERS
from edgecnn.models.efficientnet import efficientnet_coefficients, efficientnet_resolution

# (name, kwargs, trainable params, MACs or None), REFERENCE.md at the canonical input.
REFERENCE = [
    ("mobilenet_v2", {}, 3_504_872, 300e6),
    ("mobilenet_v3_small", {}, 2_542_856, 56e6),
    ("mobilenet_v3_large", {}, 5_483_032, 219e6),
    ("efficientnet_b0", {}, 5_288_548, 0.39e9),
    ("efficientnet_b1", {}, 7_794_184, None),
    ("efficientnet_b2", {}, 9_109_994, None),
    ("efficientnet_b3", {}, 12_233_232, None),
    ("shufflenet_v2_x0_5", {}, 1_366_792, 41e6),
    ("shufflenet_v2_x1_0", {}, 2_278_604, 146e6),
    ("shufflenet_v2_x1_5", {}, 3_503_624, 299e6),
    ("shufflenet_v2_x2_0", {}, 7_393_996, 591e6),
]
REFERENCE_SLOW = [
    ("efficientnet_b4", {}, 19_341_616, None),
    ("efficientnet_b5", {}, 30_389_784, None),
    ("efficientnet_b6", {}, 43_040_704, None),
    ("efficientnet_b7", {}, 66_347_960, None),
]
# Keras Applications' count_params() (BatchNorm statistics included), where it equals ours.
KERAS_TOTAL = {"mobilenet_v2": 3_538_984, "mobilenet_v3_small": 2_554_968, "mobilenet_v3_large": 5_507_432}


@functools.cache
def _canonical(name: str):
    model = create_model(name)
    return count_params(model), count_macs(model)


def _params(case):
    return [pytest.param(*c, id=c[0]) for c in case]


@pytest.mark.parametrize("name,kwargs,trainable,macs", _params(REFERENCE))
def test_canonical_trainable_params_exact(name, kwargs, trainable, macs):
    params, _ = _canonical(name)
    assert params["trainable"] == trainable
    if name in KERAS_TOTAL:
        assert params["total"] == KERAS_TOTAL[name]


@pytest.mark.slow
@pytest.mark.parametrize("name,kwargs,trainable,macs", _params(REFERENCE_SLOW))
def test_canonical_trainable_params_exact_large(name, kwargs, trainable, macs):
    params, _ = _canonical(name)
    assert params["trainable"] == trainable


@pytest.mark.parametrize("name,kwargs,trainable,macs", _params([c for c in REFERENCE if c[3]]))
def test_canonical_macs_within_5_percent(name, kwargs, trainable, macs):
    _, measured = _canonical(name)
    assert abs(measured - macs) / macs < 0.05, f"{name}: {measured / 1e6:.1f}M MACs vs {macs / 1e6:.0f}M"


def test_shufflenet_v1_g3_reference():
    # The paper gives 140 MFLOPs (MACs); "1.9M" parameters is the rounded figure of the
    # official implementation (megvii-model/ShuffleNet-Series), which this reproduces:
    # 1,865,728 (its MACs 137.5M match megvii's 138M). Within 2% of 1.9M.
    model = create_model("shufflenet_v1", groups=3)
    assert count_params(model)["trainable"] == 1_865_728
    assert abs(count_params(model)["trainable"] - 1.9e6) / 1.9e6 < 0.02
    assert abs(count_macs(model) - 140e6) / 140e6 < 0.05


@pytest.mark.slow
@pytest.mark.parametrize("groups", [1, 2, 4, 8])
def test_shufflenet_v1_groups_macs(groups):
    # Table 2 of the paper: every 1x variant is about 140 MFLOPs.
    model = create_model("shufflenet_v1", groups=groups)
    assert abs(count_macs(model) - 140e6) / 140e6 < 0.05


def test_efficientnet_compound_scaling_by_phi():
    assert efficientnet_resolution(0) == 224
    assert efficientnet_resolution(1.5) == 276
    assert efficientnet_coefficients(1.5) == (1.1537, 1.3145, 276)
    small = (32, 32, 3)  # parameters do not depend on the input size
    phi0 = create_model("efficientnet", phi=0, input_shape=small)
    assert count_params(phi0)["trainable"] == 5_288_548  # phi = 0 is B0
    counts = {
        phi: count_params(create_model("efficientnet", phi=phi, input_shape=small))["trainable"] for phi in (1, 1.5, 2)
    }
    assert counts[1] < counts[1.5] < counts[2]
    # The formula's phi=1 (1.1, 1.2, 258) is B2's published (1.1, 1.2, 260): same network.
    assert counts[1] == 9_109_994
    model = create_model("efficientnet", phi=1.5)
    assert model.input_shape == (None, 276, 276, 3)
    assert "r276" in model.name


def test_efficientnet_phi_states_its_resolution():
    from click.testing import CliRunner

    from edgecnn.cli import main
    from edgecnn.models import model_info

    entry = model_info("efficientnet")
    assert entry.preferred_resolution(phi=1.5) == 276 and entry.preferred_resolution() == 224
    assert entry.resolution_note(32, phi=1.5) == (
        "efficientnet phi 1.5 is designed for 276x276 input; training at 32x32 (set --image-size 276 to match)"
    )
    assert entry.resolution_note(276, phi=1.5) is None
    assert model_info("efficientnet_b3").preferred_resolution() == 300
    assert model_info("mobilenet_v2").resolution_note(32) is None  # declares no preferred resolution
    with pytest.raises(UserError, match="phi must be a number"):
        create_model("efficientnet", phi="big")
    listed = CliRunner().invoke(main, ["list", "efficientnet", "--arg", "phi=1.5"])
    assert listed.exit_code == 0, listed.output
    assert "276x276x3" in listed.output and "11.01M" in listed.output


def test_builder_arguments_and_unexpected_ones():
    from edgecnn.models import model_info

    with pytest.raises(UserError, match="unexpected argument 'phi' for mobilenet_v2"):
        create_model("mobilenet_v2", phi=1)
    with pytest.raises(TypeError, match="unexpected argument 'grups' for shufflenet_v1 \\(did you mean: groups"):
        create_model("shufflenet_v1", grups=8)
    # Thin variants take what their family builder takes (less what they fix themselves).
    assert model_info("shufflenet_v2_x0_5").arguments == model_info("shufflenet_v2").arguments
    assert "phi" in model_info("efficientnet").arguments and "phi" not in model_info("efficientnet_b0").arguments
    assert {"minimalistic", "dropout"} <= model_info("mobilenet_v3_large").arguments


@pytest.mark.parametrize(
    "name", ["mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0", "shufflenet_v1", "shufflenet_v2"]
)
def test_too_small_input_is_refused(name):
    with pytest.raises(UserError, match="too small"):
        create_model(name, input_shape=(31, 31, 3), classes=10)
    model = create_model(name, input_shape=(32, 32, 3), alpha=0.5, classes=10)
    assert model(np.zeros((1, 32, 32, 3), "float32")).shape == (1, 10)


def test_registered_names():
    names = list_models()
    for expected in [
        "mobilenet_v2",
        "mobilenet_v3_small",
        "mobilenet_v3_large",
        "efficientnet",
        "shufflenet_v1",
        "shufflenet_v2",
        "shufflenet_v2_x1_0",
    ] + [f"efficientnet_b{i}" for i in range(8)]:
        assert expected in names


def test_block_strings():
    block = decode_block("ir_r2_k5_s2_e6_c40_se0.25_nre")
    assert (
        block.kind,
        block.repeats,
        block.kernel,
        block.stride,
        block.expansion,
        block.channels,
        block.se,
        block.act,
    ) == ("ir", 2, 5, 2, 6.0, 40, 0.25, "relu")
    blocks = decode_arch([["ir_r2_k3_s2_e6_c24"], ["ir_r3_k3_s1_e6_c40"]], width=1.1, depth=1.2)
    assert [b.stride for b in blocks] == [2, 1, 1, 1, 1, 1, 1]  # ceil(2*1.2)=3, ceil(3*1.2)=4
    assert {b.channels for b in blocks} == {24, 48}  # make_divisible(26.4)=24, make_divisible(44)=48
    with pytest.raises(ValueError, match="unknown block type"):
        decode_block("xx_r1")


def test_minimalistic_and_pruning_skips():
    from edgecnn.optimize.prune import prune_model

    model = create_model("mobilenet_v3_small", input_shape=(32, 32, 3), minimalistic=True, alpha=0.5, classes=10)
    assert not any(layer.__class__.__name__ in ("SqueezeExcite", "HardSwish") for layer in model.layers)
    model = create_model("mobilenet_v3_small", input_shape=(32, 32, 3), alpha=0.5, classes=10)
    pruned = prune_model(model, 0.5)
    wrapped = {
        layer.layer.__class__.__name__ for layer in pruned.layers if layer.__class__.__name__ == "PruneLowMagnitude"
    }
    assert wrapped == {"Conv2D", "Dense", "SqueezeExcite"}
    names = {layer.name for layer in pruned.layers if layer.__class__.__name__ == "PruneLowMagnitude"}
    assert "stem_conv" not in names and "classifier" not in names


@pytest.mark.parametrize("cls_name", sorted(ZOO_LAYERS))
def test_custom_layer_config_round_trip(cls_name):
    cls = ZOO_LAYERS[cls_name]
    kwargs = {
        "SqueezeExcite": {"reduce_channels": 4, "act": "swish", "gate": "sigmoid"},
        "ChannelShuffle": {"groups": 4},
        "ChannelSplit": {"parts": 2, "index": 1},
        "StochasticDepth": {"rate": 0.3},
    }.get(cls_name, {})
    layer = cls(name="probe", **kwargs)
    x = np.random.default_rng(0).normal(size=(2, 5, 5, 16)).astype("float32")
    y = layer(x).numpy()
    clone = keras.layers.deserialize(keras.layers.serialize(layer), custom_objects=CUSTOM_OBJECTS)
    assert type(clone) is cls and clone.get_config() == layer.get_config()
    clone.build(x.shape)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone(x).numpy(), y, rtol=1e-6, atol=1e-6)
    assert hasattr(layer, "get_prunable_weights") and callable(layer.quantize_config)
    cfg = layer.quantize_config()
    assert type(cfg).from_config(cfg.get_config()).get_config() == cfg.get_config()


def test_channel_shuffle_and_split_values():
    from edgecnn.models._quant_layers import ChannelShuffle, ChannelSplit

    x = np.arange(6, dtype="float32").reshape(1, 1, 1, 6)
    assert ChannelShuffle(2)(x).numpy().ravel().tolist() == [0, 3, 1, 4, 2, 5]
    assert ChannelSplit(2, 1)(x).numpy().ravel().tolist() == [3, 4, 5]


def test_squeeze_excite_qat_int8_has_no_degenerate_scale(tmp_path):
    """Every int8 tensor of SE gets its range from a QAT fake-quant: none is left to the
    converter, which gives it a ~1e-8 scale on an untrained QAT model (XNNPACK then aborts)."""
    import subprocess
    import sys

    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from edgecnn.models._quant_layers import SqueezeExcite
    from edgecnn.optimize.qat import quantize_model
    from edgecnn.tflite.convert import convert

    inputs = keras.Input((16, 16, 8))
    x = keras.layers.Conv2D(8, 3, padding="same", name="c1")(inputs)
    x = SqueezeExcite(2, act="swish", gate="sigmoid", name="se_effnet")(x)
    x = keras.layers.Conv2D(8, 1, name="c2")(x)
    x = SqueezeExcite(2, act="relu", gate="hard_sigmoid", name="se_v3")(x)
    qat = quantize_model(keras.Model(inputs, x))  # untrained: ranges at their initial values
    data = np.random.default_rng(0).random((4, 16, 16, 8), dtype=np.float32)

    def representative():
        for row in data:
            yield [row[None]]

    path = convert(qat, tmp_path / "se_qat_int8.tflite", "int8", representative=representative)
    plain = Interpreter(
        model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )
    scales = {t["index"]: t["quantization_parameters"]["scales"] for t in plain.get_tensor_details()}
    ops = plain._get_ops_details()
    degenerate = [
        (op["op_name"], float(scales[t].min())) for op in ops for t in op["outputs"] if scales[t].min() < 1e-5
    ]
    assert not degenerate, degenerate
    names = [op["op_name"] for op in ops]
    assert names.count("LOGISTIC") == 2  # swish + sigmoid gate
    assert "ADD" not in names  # hard-sigmoid's +3 is folded into the expand conv's bias, its ReLU6 fused
    # And XNNPACK takes it (in a child process: a native abort must not take pytest down).
    probe = (
        "import numpy as np, sys; from ai_edge_litert.interpreter import Interpreter; "
        "it = Interpreter(model_path=sys.argv[1]); it.allocate_tensors(); d = it.get_input_details()[0]; "
        "it.set_tensor(d['index'], np.zeros(d['shape'], d['dtype'])); it.invoke()"
    )
    run = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-500:]


def _qat_vs_int8(name, **kwargs):
    from ai_edge_litert.interpreter import Interpreter

    from edgecnn.optimize.qat import quantize_model
    from edgecnn.tflite.convert import convert_bytes

    keras.utils.set_random_seed(0)  # the same weights every run: agreement is a property of one model
    model = create_model(name, input_shape=(32, 32, 3), classes=10, classifier_activation="linear", **kwargs)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 32, 32, 3)).astype("float32")
    qat = quantize_model(model)
    qat.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    qat.fit(x, rng.integers(0, 10, len(x)), epochs=1, batch_size=16, verbose=0)  # learns the ranges

    def representative():
        for row in x[:16]:
            yield [row[None]]

    interpreter = Interpreter(model_content=convert_bytes(qat, "int8", representative))
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    (s_in, z_in), (s_out, z_out) = inp["quantization"], out["quantization"]
    probe = rng.normal(size=(16, 32, 32, 3)).astype("float32")
    expected = qat.predict(probe, verbose=0)
    got = []
    for row in probe:
        interpreter.set_tensor(inp["index"], np.clip(np.round(row[None] / s_in + z_in), -128, 127).astype(np.int8))
        interpreter.invoke()
        got.append((interpreter.get_tensor(out["index"]).astype(np.float32) - z_out) * s_out)
    return expected, np.concatenate(got), s_out


# Converting a QAT model takes about a minute per model on 2 busy cores: all in the slow step,
# MobileNetV3 (hard-swish, hard-sigmoid SE) in CI's representative set.
@pytest.mark.parametrize(
    "name,kwargs",
    [
        pytest.param("mobilenet_v3_small", {}, id="mobilenet_v3_small", marks=pytest.mark.slow),
        pytest.param("efficientnet_b0", {"alpha": 0.5}, id="efficientnet_b0", marks=pytest.mark.slow),
        pytest.param("shufflenet_v2", {"alpha": 0.5}, id="shufflenet_v2", marks=pytest.mark.slow),
        pytest.param("shufflenet_v1", {"alpha": 0.5, "groups": 3}, id="shufflenet_v1", marks=pytest.mark.slow),
        pytest.param("mobilenet_v2", {"alpha": 0.35}, id="mobilenet_v2", marks=pytest.mark.slow),
    ],
)
def test_qat_model_and_int8_tflite_agree(name, kwargs):
    expected, got, step = _qat_vs_int8(name, **kwargs)
    spread = float(expected.max() - expected.min())
    err = np.abs(got - expected)
    # A few output quantization steps at most, and the same predicted class.
    assert err.max() <= max(4 * step, 0.03 * spread), (err.max(), step, spread)
    assert (got.argmax(1) == expected.argmax(1)).mean() >= 0.9


@pytest.mark.parametrize("act,gate", [("relu", "hard_sigmoid"), ("swish", "sigmoid")])
def test_qat_squeeze_excite_saves_to_h5_and_loads_back(act, gate, tmp_path):
    """A QAT-wrapped SE block holds several fake-quantized activations in one wrapper; their
    range variables must have distinct names, or the QAT stage's ``save_weights(.h5)`` fails
    (it did for MobileNetV3 and EfficientNet: "name already exists")."""
    from edgecnn.models._quant_layers import SqueezeExcite
    from edgecnn.optimize.qat import quantize_model

    def build():
        x = inputs = keras.Input((8, 8, 16))
        x = keras.layers.Conv2D(16, 3, padding="same")(x)
        x = SqueezeExcite(8, act=act, gate=gate)(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        return quantize_model(keras.Model(inputs, keras.layers.Dense(4)(x)))

    model = build()
    x = np.random.default_rng(0).random((2, 8, 8, 16), dtype=np.float32)
    model(x, training=True)  # moves the activation ranges off their initial values
    model.save_weights(tmp_path / "qat.h5")
    other = build()
    other.load_weights(tmp_path / "qat.h5")
    np.testing.assert_array_equal(model(x, training=False), other(x, training=False))
