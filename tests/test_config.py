import pytest

from edgecnn.errors import UserError
from edgecnn.settings.run_config import RunConfig, resolve, run_folder


def test_from_dict_and_resolve_fill_family_defaults():
    cfg = resolve(RunConfig.from_dict({"model": {"name": "MobileNet", "alpha": 0.5}, "convert": {"int8": True}}))
    assert cfg.model.name == "mobilenet" and cfg.data.image_size == 32
    assert cfg.train.epochs is not None and cfg.train.learning_rate is not None
    assert cfg.convert.precisions == ["float32", "int8"]
    assert run_folder(cfg).name == "mobilenet-a0.50-32px"


@pytest.mark.parametrize(
    "data, message",
    [
        ({"modle": {}}, "unknown setting 'modle' (did you mean: model?)"),
        ({"train": {"epoch": 3}}, "train.epoch"),
        ({"train": {"epochs": "ten"}}, "train.epochs must be an integer"),
        ({"convert": {"int8": "yes"}}, "convert.int8 must be true or false"),
        ({"model": {"name": "mobilenet", "alpha": 9}}, "alpha must be between"),
        ({"model": {"name": "mobilenet_v9"}}, "unknown model"),
        ({"data": {"image_size": 16}}, "at least 32x32"),
        ({"train": {"optimizer": "adamw"}}, "train.optimizer must be one of"),
    ],
)
def test_bad_settings_name_the_key(data, message):
    with pytest.raises(UserError) as info:
        resolve(RunConfig.from_dict(data))
    assert message in str(info.value)


def test_model_args_are_checked_against_the_builder():
    cfg = resolve(RunConfig.from_dict({"model": {"name": "efficientnet", "args": {"phi": 1.5}}}))
    assert cfg.model.args == {"phi": 1.5} and run_folder(cfg).name == "efficientnet-phi1.5-a1.00-32px"
    # Arguments a variant passes on to its family builder count (densenet121 -> densenet).
    resolve(RunConfig.from_dict({"model": {"name": "densenet121", "args": {"growth_rate": 12}}}))
    with pytest.raises(UserError, match=r"model.args.phy: unexpected argument 'phy' for efficientnet \(did you mean"):
        resolve(RunConfig.from_dict({"model": {"name": "efficientnet", "args": {"phy": 1.5}}}))
    with pytest.raises(UserError, match="model.args.phi: unexpected argument 'phi' for efficientnet_b0"):
        resolve(RunConfig.from_dict({"model": {"name": "efficientnet_b0", "args": {"phi": 1}}}))
    with pytest.raises(UserError, match="model.args.classes cannot be set"):
        resolve(RunConfig.from_dict({"model": {"name": "mobilenet", "args": {"classes": 3}}}))
    # Photos default to the resolution the arguments call for.
    photos = {"model": {"name": "efficientnet", "args": {"phi": 1.5}}, "data": {"source": "photos/"}}
    assert resolve(RunConfig.from_dict(photos)).data.image_size == 276
