"""The zoo's import structure and what it shares with tfmot.

- ``import edgecnn.models`` does not import tfmot (it is slow; only QAT, pruning and
  counting a wrapped model need it).
- Every layer that quantizes its output only uses one ``QuantizeConfig`` class.
- :func:`~edgecnn.models.count_macs` sees through tfmot's wrappers (recognised by type).
"""

from __future__ import annotations

import subprocess
import sys

from edgecnn._tf import keras
from edgecnn.models import count_macs, count_params
from edgecnn.models._layers import CUSTOM_OBJECTS, LocalResponseNormalization, activation, batch_norm


def test_importing_the_zoo_does_not_import_tfmot():
    code = (
        "import edgecnn.models, sys; "
        "assert not [m for m in sys.modules if m.startswith('tensorflow_model_optimization')]"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _tiny():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = batch_norm("standalone_bn", standalone=True)(x)
    x = activation("hard_swish", "hard_swish")(x)
    x = LocalResponseNormalization(name="lrn")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="classifier")(x))


def test_output_only_layers_share_one_quantize_config():
    model = _tiny()
    configs = {type(model.get_layer(name).quantize_config()) for name in ("standalone_bn", "hard_swish", "lrn")}
    assert [cls.__name__ for cls in configs] == ["OutputQuantizeConfig"]
    assert CUSTOM_OBJECTS["OutputQuantizeConfig"] in configs  # registered: QAT models clone and reload


def test_counts_see_through_tfmot_wrappers():
    from edgecnn.optimize.qat import quantize_model

    model = _tiny()
    qat = quantize_model(model)
    assert count_macs(qat) == count_macs(model) == 6 * 6 * 3 * 3 * 3 * 4 + 4 * 3
    assert count_params(qat)["trainable"] == count_params(model)["trainable"]
