"""The figures each registry entry records are what its builder makes.

``edgecnn list`` prints a model's recorded parameters and MACs at its canonical setting
(``entry.input_shape``, ``entry.classes``, default arguments) without building it; these
tests keep those figures equal to ``count_params(model)["trainable"]`` and
``count_macs(model)`` of the built model. Parametrized over the registry itself: the
default suite builds the smallest model of each family (the one with the fewest recorded
parameters), the ``slow`` step every model.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from edgecnn.models import count_macs, count_params, create_model, list_models, model_info


def _smallest_per_family() -> set:
    smallest: dict = {}
    for name in list_models():
        entry = model_info(name)
        best = smallest.get(entry.family)
        if best is None or (entry.params or 0) < (best.params or 0):
            smallest[entry.family] = entry
    return {entry.name for entry in smallest.values()}


QUICK = _smallest_per_family()


@pytest.mark.parametrize(
    "name", [pytest.param(n, id=n, marks=() if n in QUICK else pytest.mark.slow) for n in list_models()]
)
def test_recorded_figures_match_the_built_model(name):
    entry = model_info(name)
    model = create_model(name, input_shape=tuple(entry.input_shape), classes=entry.classes)
    assert (count_params(model)["trainable"], count_macs(model)) == (entry.params, entry.macs)


def test_every_model_records_its_figures():
    missing = [name for name in list_models() if model_info(name).params is None or model_info(name).macs is None]
    assert missing == []
    assert model_info("resnet50").params == 25_557_032  # Keras' ResNet50, torchvision's too
    assert model_info("lenet5").classes == 10 and model_info("resnet50").classes == 1000


def test_list_prints_recorded_figures_without_building(monkeypatch):
    import edgecnn.models
    from edgecnn.cli import main

    def no_build(*args, **kwargs):
        raise AssertionError("edgecnn list built a model at the canonical setting")

    monkeypatch.setattr(edgecnn.models, "create_model", no_build)
    result = CliRunner().invoke(main, ["list"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line.split() for line in result.output.splitlines()[2:]}
    assert set(lines) == set(list_models())
    assert lines["resnet50"][2:5] == ["224x224x3", "25.56M", "4.09G"]
    assert lines["efficientnet_b3"][2:5] == ["300x300x3", "12.23M", "1.84G"]
    assert lines["lenet5"][2:5] == ["32x32x1", "61.71K", "416.52K"]


def test_list_builds_at_other_settings():
    from edgecnn.cli import main

    result = CliRunner().invoke(main, ["list", "lenet5", "--classes", "100"])
    assert result.exit_code == 0, result.output
    row = result.output.splitlines()[2].split()
    assert row[:3] == ["lenet5", "lenet", "32x32x1"] and row[3] == "69.36K"  # 61,706 + 90 * (84 + 1)
