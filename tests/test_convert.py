import numpy as np
import pytest

from edgecnn.device.evaluate import predict
from edgecnn.device.runtime import load_interpreter
from edgecnn.errors import UserError
from edgecnn.models import create_model
from edgecnn.tflite.convert import PRECISIONS, convert, inference_model


@pytest.fixture(scope="module")
def small_model():
    return create_model("mobilenet", alpha=0.25, input_shape=(32, 32, 3), classes=10)


def _rep():
    rng = np.random.default_rng(0)
    for _ in range(16):
        yield [rng.uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32)]


def test_every_precision_converts_and_agrees_with_keras(small_model, tmp_path):
    x = np.random.default_rng(1).uniform(-1, 1, (8, 32, 32, 3)).astype(np.float32)
    expected = small_model.predict(x, verbose=0)
    sizes = {}
    # int16x8 has its own checks in tests/test_int8.py (this untrained model's ranges overflow
    # the 16x8 CONV_2D kernel's bias check in LiteRT, which refuses to prepare it).
    for precision in [p for p in PRECISIONS if p != "int16x8"]:
        path = convert(small_model, tmp_path / f"m_{precision}.tflite", precision, representative=_rep)
        sizes[precision] = path.stat().st_size
        interpreter, _, _ = load_interpreter(path)
        detail = interpreter.get_input_details()[0]
        assert (detail["dtype"] == np.int8) == (precision == "int8")
        got = predict(interpreter, x)
        tol = {"float32": 1e-4, "float16": 2e-2, "dynamic": 0.1, "int8": 0.15}[precision]
        assert np.abs(got - expected).max() < tol, precision
    assert sizes["int8"] < 0.35 * sizes["float32"] and sizes["float16"] < 0.6 * sizes["float32"]


def test_int8_needs_calibration_data(small_model, tmp_path):
    with pytest.raises(UserError, match="representative"):
        convert(small_model, tmp_path / "m.tflite", "int8")
    with pytest.raises(UserError, match="unknown precision"):
        convert(small_model, tmp_path / "m.tflite", "int4")
    assert not (tmp_path / "m.tflite").exists()


def test_inference_model_drops_auxiliary_outputs(small_model):
    from edgecnn._tf import keras

    aux = keras.layers.Dense(10, name="aux")(small_model.layers[-4].output)
    two = keras.Model(small_model.inputs, [small_model.output, aux])
    assert len(inference_model(two).outputs) == 1


def test_one_shared_export_gives_the_same_bytes_as_converting_each_time():
    """``exported_once`` saves the model once for every conversion of it: the files are the
    very bytes ``from_keras_model`` writes, float32 and int8 alike."""
    import numpy as np

    from edgecnn import create_model
    from edgecnn.tflite.convert import convert_bytes, exported_once

    model = create_model("lenet5", input_shape=(32, 32, 1), classes=3)
    x = np.random.default_rng(0).uniform(-1, 1, (8, 1, 32, 32, 1)).astype("float32")

    def rep():
        return ([x[i]] for i in range(len(x)))

    alone = [convert_bytes(model, "float32"), convert_bytes(model, "int8", rep)]
    with exported_once(model):
        shared = [convert_bytes(model, "float32"), convert_bytes(model, "int8", rep)]
    assert shared == alone
