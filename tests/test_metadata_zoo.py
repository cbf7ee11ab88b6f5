"""TFLite Metadata on every zoo family: float32 and int8, untrained at a tiny width and input.

For each family of the registry (``edgecnn list``), with the input convention its published
weights bring (``input_convention(entry, "imagenet")``: caffe BGR mean for ResNet/VGG, torch
mean/std for DenseNet, ``[-1, 1]`` for MobileNet v1/v2, in-model rescaling for EfficientNet
and MobileNetV3; edgecnn's ``[-1, 1]`` for the families without weights), the exported files:

* carry metadata that the independent reader (``tests/_metadata_reader.py``) parses, equal to
  the ``preprocess.json`` written beside them (labels, per-channel mean/std, BGR said where
  the schema cannot);
* give bit-identical LiteRT outputs to the same file without metadata;
* are read by ``edgecnn-device`` without ``preprocess.json`` into the same normalisation.

No weights are downloaded: the convention is what a run from those weights writes.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from _metadata_reader import assert_matches_preprocess, metadata_buffer, without_metadata

from edgecnn.models import list_models, model_info

# One model per family (the smallest with published weights where the family has them) and
# tiny builder arguments; test_the_list_covers_the_zoo fails when a family is added without one.
FAMILIES = {
    "alexnet": ("alexnet", {"alpha": 0.25}),
    "densenet": ("densenet121", {"alpha": 0.25}),
    "efficientnet": ("efficientnet_b0", {"alpha": 0.25}),
    "googlenet": ("googlenet", {"alpha": 0.25}),
    "lenet": ("lenet5", {}),
    "mlp": ("mlp", {}),
    "mobilenet_v1": ("mobilenet", {"alpha": 0.25}),
    "mobilenet_v2": ("mobilenet_v2", {"alpha": 0.35}),
    "mobilenet_v3": ("mobilenet_v3_small", {"alpha": 0.75}),
    "resnet": ("resnet50", {"alpha": 0.25}),
    "shufflenet_v1": ("shufflenet_v1", {"alpha": 0.5, "groups": 3}),
    "shufflenet_v2": ("shufflenet_v2", {"alpha": 0.5}),
    "vgg": ("vgg16", {"alpha": 0.25}),
}


SIZES = {"alexnet": 64}  # the smallest input each family takes, where 32 is too small


def test_the_list_covers_the_zoo():
    """Every family of ``edgecnn list`` is here, by a model of that family."""
    assert {model_info(name).family for name in list_models()} == set(FAMILIES)
    assert all(model_info(name).family == family for family, (name, _) in FAMILIES.items())
    assert {f for f, (name, _) in FAMILIES.items() if model_info(name).pretrained} == {
        "densenet",
        "efficientnet",
        "mobilenet_v1",
        "mobilenet_v2",
        "mobilenet_v3",
        "resnet",
        "vgg",
    }


def _outputs(content: bytes, x: np.ndarray) -> bytes:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=content)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    if inp["dtype"] == np.int8:
        s, z = inp["quantization"]
        x = np.clip(np.round(x / s + z), -128, 127)
    chunks = []
    for row in x:
        it.set_tensor(inp["index"], row[None].astype(inp["dtype"]))
        it.invoke()
        chunks.append(it.get_tensor(out["index"]).tobytes())
    return b"".join(chunks)


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_exports_metadata_equal_to_preprocess_json(family, tmp_path):
    from edgecnn import create_model
    from edgecnn._io import write_json
    from edgecnn._tf import keras
    from edgecnn.data.dataset import load_dataset
    from edgecnn.device.preprocess import normalize, read_spec
    from edgecnn.models._weights import input_convention
    from edgecnn.tflite.convert import convert

    name, tiny = FAMILIES[family]
    entry = model_info(name)
    channels = int(entry.input_shape[-1]) if entry.input_shape else 3
    convention = dict(input_convention(entry, "imagenet")) if entry.pretrained else {}
    keras.utils.set_random_seed(0)
    size = SIZES.get(family, 32)
    model = create_model(name, input_shape=(size, size, channels), classes=10, **tiny)
    data = load_dataset(
        "digits",
        image_size=size,
        channels=channels,
        convention=convention,  # scale and offset included; edgecnn's defaults where absent
    )
    spec = data.preprocess
    write_json(tmp_path / "preprocess.json", spec)
    x = normalize(data.x["test"][:8], spec)

    def representative():
        for row in normalize(data.x["train"][:8], spec):
            yield [row[None]]

    alone = tmp_path / "alone"
    alone.mkdir()
    for precision in ("float32", "int8"):
        path = convert(
            model, tmp_path / f"model_{precision}.tflite", precision, representative=representative, metadata=spec
        )
        md = assert_matches_preprocess(path, tmp_path / "preprocess.json")
        assert md["labels"] == [str(c) for c in data.class_names] and len(md["labels"]) == 10
        content = path.read_bytes()
        bare = without_metadata(content)
        assert metadata_buffer(content) is not None and len(bare) < len(content)
        assert _outputs(content, x) == _outputs(bare, x), f"{name} {precision}: metadata changed the outputs"
        # The device, with no preprocess.json beside the file, normalises as preprocess.json says.
        shutil.copy(path, alone / path.name)
        from_md = read_spec(alone / path.name)
        assert from_md["from"] == "metadata" and from_md["class_names"] == spec["class_names"]
        assert from_md.get("channel_order", "RGB") == spec.get("channel_order", "RGB")
        pixels = data.x["test"][:2]
        want = normalize(pixels, spec)
        np.testing.assert_allclose(normalize(pixels, from_md), want, rtol=1e-5, atol=1e-5 * float(np.abs(want).max()))
    if entry.pretrained:  # the convention really is the family's, not the default
        assert json.loads((tmp_path / "preprocess.json").read_text()).get("scale") == spec["scale"]
