"""edgecnn: shrink classic CNNs for edge devices and measure what each step costs.

The public API is re-exported here lazily, so that ``import edgecnn.device`` on a
Raspberry Pi never pulls in TensorFlow (see :mod:`edgecnn.device`).

Example:
    >>> import edgecnn
    >>> model = edgecnn.create_model("mobilenet", alpha=0.5, input_shape=(32, 32, 3), classes=10)
    >>> edgecnn.list_models("mobilenet*")[:1]
    ['mobilenet']
"""

import os as _os

# The one place where the Keras flavour is chosen: tfmot only works with Keras 2
# (``tf_keras``), and TensorFlow reads this variable when it is first imported.
_os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# Quiet by default: TensorFlow's C++ logger (absl) prints lines such as "E0000 ...
# NodeDef mentions attribute use_unbounded_threadpool" that read as errors and are not.
# Level 3 keeps only fatal ones. ``EDGECNN_VERBOSE=1`` (``edgecnn --verbose``) lets
# everything through; an explicit TF_CPP_MIN_LOG_LEVEL is left as it is.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if _os.environ.get("EDGECNN_VERBOSE") else "3")

__version__ = "0.1.0"

_LAZY = {
    "create_model": "edgecnn.models",
    "list_models": "edgecnn.models",
    "register_model": "edgecnn.models",
    "model_info": "edgecnn.models",
    "load_dataset": "edgecnn.data.dataset",
    "fit": "edgecnn.train",
    "convert": "edgecnn.tflite.convert",
    "evaluate_tflite": "edgecnn.device.evaluate",
    "benchmark": "edgecnn.device.bench",
    "optimize": "edgecnn.pipeline",
    "RunConfig": "edgecnn.settings.run_config",
    "UserError": "edgecnn.errors",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edgecnn' has no attribute {name!r}")
