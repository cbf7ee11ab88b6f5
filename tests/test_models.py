"""Every registered model, at a small input, through every stage of the toolkit.

Parametrized over the registry itself (timm's habit): a model is tested the moment it is
registered. Each model is built at its small size (``model_info(name).small_size``,
32x32 for most), alpha 0.25 and 10 classes.

- :func:`test_model_builds_and_wraps`: forward pass and output shape, the
  ``get_config``/``from_config`` round trip, pruning and QAT wrapping.
- :func:`test_qat_model_converts_to_int8`: full-integer int8 conversion of the QAT model,
  run once in the TFLite interpreter.

Every registered model runs both in the ``slow`` step. The fast suite runs the models
measured under ~20 s per test on 2 CPU cores (``QUICK_WRAP``, ``QUICK_INT8``): wrapping a
400-500 layer model (ResNet-101/152, DenseNets, EfficientNet-B1+) takes minutes, and so
does converting a QAT model of 100+ layers. A newly registered model is ``slow`` until
someone measures it and adds it to a QUICK set.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgecnn._tf import keras
from edgecnn.models import create_model, list_models, model_info
from edgecnn.models._layers import CUSTOM_OBJECTS

ALPHA, CLASSES = 0.25, 10

_VGG = {f"vgg{depth}{bn}" for depth in (11, 13, 16, 19) for bn in ("", "_bn")}
# Built, run and wrapped for pruning and QAT in under ~20 s on 2 CPU cores.
QUICK_WRAP = {"mlp", "lenet5", "alexnet", "googlenet", "resnet18", "resnet34", "resnet50", "mobilenet"} | _VGG
# QAT model converted to int8 in under ~20 s on 2 CPU cores.
QUICK_INT8 = {"mlp", "lenet5", "alexnet", "vgg11", "vgg13", "vgg16", "vgg19", "mobilenet"}


def _params(quick):
    return [pytest.param(name, id=name, marks=() if name in quick else pytest.mark.slow) for name in list_models()]


def _small(name: str):
    entry = model_info(name)
    shape = (entry.small_size, entry.small_size, entry.channels)
    return create_model(name, alpha=ALPHA, input_shape=shape, classes=CLASSES), shape


def _batch(shape, n=2):
    return np.random.default_rng(0).random((n, *shape), dtype=np.float32)


@pytest.mark.parametrize("name", _params(QUICK_WRAP))
def test_model_builds_and_wraps(name):
    from edgecnn.optimize.prune import prune_model
    from edgecnn.optimize.qat import quantize_model

    model, shape = _small(name)
    x = _batch(shape)

    # Forward pass; the main output comes first (auxiliary heads, if any, after it).
    out = model(x, training=False)
    main = out[0] if isinstance(out, (list, tuple)) else out
    assert tuple(main.shape) == (2, CLASSES)
    np.testing.assert_allclose(np.sum(main, axis=-1), 1.0, atol=1e-3)  # softmax

    # get_config / from_config gives the same layers and weights.
    clone = keras.Model.from_config(model.get_config(), custom_objects=CUSTOM_OBJECTS)
    assert [layer.name for layer in clone.layers] == [layer.name for layer in model.layers]
    assert clone.count_params() == model.count_params()

    pruned = prune_model(model, 0.5)
    assert any(layer.__class__.__name__ == "PruneLowMagnitude" for layer in pruned.layers)
    assert tuple(pruned(x).shape if len(pruned.outputs) == 1 else pruned(x)[0].shape) == (2, CLASSES)

    qat = quantize_model(model)
    assert all(
        layer.__class__.__name__.startswith(("QuantizeWrapper", "QuantizeLayer")) or not layer.weights
        for layer in qat.layers
    ), "every layer with weights is quantization-aware"


@pytest.mark.parametrize("name", _params(QUICK_INT8))
def test_qat_model_converts_to_int8(name, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    from edgecnn.optimize.qat import quantize_model
    from edgecnn.tflite.convert import convert

    model, shape = _small(name)
    x = _batch(shape)

    def representative():
        for row in x:
            yield [row[None]]

    path = convert(quantize_model(model), tmp_path / f"{name}_qat_int8.tflite", "int8", representative=representative)
    interpreter = Interpreter(model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()
    inp, outputs = interpreter.get_input_details()[0], interpreter.get_output_details()
    assert len(outputs) == 1, "training-only outputs must not be exported"
    assert inp["dtype"] == np.int8 and tuple(inp["shape"][1:]) == shape
    interpreter.set_tensor(inp["index"], np.zeros(inp["shape"], np.int8))
    interpreter.invoke()
    assert interpreter.get_tensor(outputs[0]["index"]).shape == (1, CLASSES)


@pytest.mark.slow
def test_trained_densenet_qat_model_converts_to_int8(tmp_path):
    """After QAT training, an AveragePooling2D's output range drifts from its input's; TFLite's int8
    AVERAGE_POOL_2D needs one scale for both, and used to refuse DenseNet's transition blocks
    ("quantization parameters violate the same scale constraint"). The pooling passes its input's
    scale through instead (edgecnn.optimize.qat.quantize_model)."""
    from edgecnn._tf import keras
    from edgecnn.models import create_model
    from edgecnn.optimize.qat import quantize_model
    from edgecnn.tflite.convert import convert

    keras.utils.set_random_seed(0)
    qat = quantize_model(create_model("densenet121", alpha=0.25, input_shape=(32, 32, 3), classes=10))
    qat.compile("adam", "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (64, 32, 32, 3)).astype(np.float32)
    qat.fit(x, rng.integers(0, 10, 64), epochs=1, batch_size=32, verbose=0)

    def representative():
        for row in x[:8]:
            yield [row[None]]

    path = convert(qat, tmp_path / "densenet_qat_int8.tflite", "int8", representative=representative)
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    q_scale, q_zero = inp["quantization"]
    interpreter.set_tensor(inp["index"], np.clip(np.round(x[:1] / q_scale + q_zero), -128, 127).astype(np.int8))
    interpreter.invoke()
    int8_top = int(np.argmax(interpreter.get_tensor(out["index"])))
    assert int8_top == int(np.argmax(qat(x[:1], training=False)))  # the same class as the QAT Keras model
