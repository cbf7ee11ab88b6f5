"""Every registered model, at a small input, through every stage of the toolkit.

Parametrized over the registry itself (timm's habit): a model is tested the moment it is
registered. Each model is built at its small size (``model_info(name).small_size``,
32x32 for most), alpha 0.25 and 10 classes.

- :func:`test_model_builds_and_wraps`: forward pass and output shape, the
  ``get_config``/``from_config`` round trip, pruning and QAT wrapping. Every model, in the
  fast suite except the deepest (``DEEP``).
- :func:`test_qat_model_converts_to_int8`: full-integer int8 conversion of the QAT model,
  run once in the TFLite interpreter. Converting a QAT model takes 5 s (LeNet-5) to several
  minutes (ResNet-152, DenseNets) on 2 CPU cores, so only ``QUICK_INT8`` models run in the
  fast suite; every model runs in the ``slow`` step.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgecnn._tf import keras
from edgecnn.models import create_model, list_models, model_info
from edgecnn.models._layers import CUSTOM_OBJECTS

ALPHA, CLASSES = 0.25, 10

# Building and wrapping these takes over ~20 s on 2 CPU cores (400-500 layers).
DEEP = {"resnet101", "resnet152", "densenet121", "densenet169", "densenet201"}
# Models whose QAT int8 conversion takes under ~20 s on 2 CPU cores.
QUICK_INT8 = {"mlp", "lenet5", "alexnet", "vgg11", "vgg13", "vgg16", "vgg19", "mobilenet"}


def _params(slow):
    return [pytest.param(name, id=name, marks=pytest.mark.slow if slow(name) else ()) for name in list_models()]


def _small(name: str):
    entry = model_info(name)
    shape = (entry.small_size, entry.small_size, entry.channels)
    return create_model(name, alpha=ALPHA, input_shape=shape, classes=CLASSES), shape


def _batch(shape, n=2):
    return np.random.default_rng(0).random((n, *shape), dtype=np.float32)


@pytest.mark.parametrize("name", _params(lambda name: name in DEEP))
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


@pytest.mark.parametrize("name", _params(lambda name: name not in QUICK_INT8))
def test_qat_model_converts_to_int8(name, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    from edgecnn.convert import convert
    from edgecnn.optimize.qat import quantize_model

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
