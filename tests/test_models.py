"""Every registered model, at a small input, through every stage of the toolkit.

Parametrized over the registry itself (timm's habit): a model is tested the moment it is
registered. Each model is built at its small size (``model_info(name).small_size``,
32x32 for most), alpha 0.25 and 10 classes, and checked for: a forward pass and its
output shape, the ``get_config``/``from_config`` round trip, pruning and QAT wrapping,
and full-integer int8 conversion of the QAT model, run once in the TFLite interpreter.
Models measured over ~20 s for all of that on 2 CPU cores are marked ``slow``.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgecnn._tf import keras
from edgecnn.models import create_model, list_models, model_info
from edgecnn.models._layers import CUSTOM_OBJECTS

ALPHA, CLASSES = 0.25, 10

# Measured on 2 shared CPU cores: the whole pipeline takes over ~20 s for these.
SLOW = {"resnet101", "resnet152", "densenet169", "densenet201"}


def _params():
    return [pytest.param(name, id=name, marks=pytest.mark.slow if name in SLOW else ()) for name in list_models()]


def _small(name: str):
    entry = model_info(name)
    size = entry.small_size
    return create_model(name, alpha=ALPHA, input_shape=(size, size, entry.channels), classes=CLASSES), (
        size,
        size,
        entry.channels,
    )


def _outputs(model):
    return model.outputs[:1]


@pytest.mark.parametrize("name", _params())
def test_model_every_stage(name, tmp_path):
    from edgecnn.convert import convert
    from edgecnn.optimize.prune import prune_model
    from edgecnn.optimize.qat import quantize_model

    model, shape = _small(name)
    x = np.random.default_rng(0).random((2, *shape), dtype=np.float32)

    # Forward pass; the main output comes first (auxiliary heads, if any, after it).
    out = model(x, training=False)
    main = out[0] if isinstance(out, (list, tuple)) else out
    assert tuple(main.shape) == (2, CLASSES)
    assert np.allclose(np.sum(main, axis=-1), 1.0, atol=1e-3)  # softmax

    # get_config / from_config round trip gives the same architecture and weights count.
    clone = keras.Model.from_config(model.get_config(), custom_objects=CUSTOM_OBJECTS)
    assert [layer.name for layer in clone.layers] == [layer.name for layer in model.layers]
    assert clone.count_params() == model.count_params()

    # Pruning wraps at least one layer.
    pruned = prune_model(model, 0.5)
    assert any(layer.__class__.__name__ == "PruneLowMagnitude" for layer in pruned.layers)

    # QAT wraps every layer, and its int8 conversion runs.
    qat = quantize_model(model)
    assert any(layer.__class__.__name__.startswith("QuantizeWrapper") for layer in qat.layers)

    def representative():
        for row in x:
            yield [row[None]]

    path = convert(qat, tmp_path / f"{name}_qat_int8.tflite", "int8", representative=representative)

    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()
    inp, outp = interpreter.get_input_details()[0], interpreter.get_output_details()
    assert len(outp) == 1, "training-only outputs must not be exported"
    assert inp["dtype"] == np.int8 and tuple(inp["shape"][1:]) == shape
    interpreter.set_tensor(inp["index"], np.zeros(inp["shape"], np.int8))
    interpreter.invoke()
    assert tuple(interpreter.get_tensor(outp[0]["index"]).shape) == (1, CLASSES)
