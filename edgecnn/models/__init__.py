"""The model zoo. Importing this package registers every family.

Example:
    >>> from edgecnn.models import create_model, list_models
    >>> "mobilenet" in list_models()
    True
"""

from edgecnn.models._layers import batch_norm_defaults, make_divisible
from edgecnn.models._profile import count_macs, count_params
from edgecnn.models._registry import ModelEntry, create_model, list_models, model_info, register_model

# Family files: importing one registers its models.
from edgecnn.models import mobilenet  # noqa: F401,E402  isort: skip
from edgecnn.models import alexnet, densenet, googlenet, lenet, mlp, resnet, vgg  # noqa: F401,E402  isort: skip

__all__ = [
    "ModelEntry",
    "batch_norm_defaults",
    "count_macs",
    "count_params",
    "create_model",
    "list_models",
    "make_divisible",
    "model_info",
    "register_model",
]
