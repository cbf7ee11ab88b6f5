"""Import TensorFlow, tf_keras and tfmot once, quietly.

TensorFlow 2.21 prints absl start-up lines (oneDNN, CUDA probing) before any log level
applies; they are swallowed here. Import ``tf``/``keras`` from this module, never set
``TF_USE_LEGACY_KERAS`` anywhere else (``edgecnn/__init__.py`` does).
"""

import logging
import os
import warnings

import edgecnn  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from edgecnn._io import quiet_native_stderr

with quiet_native_stderr():
    import tensorflow as tf
    import tf_keras as keras

    # Device discovery prints CUDA probing errors on machines without a GPU.
    tf.config.list_physical_devices()

if not os.environ.get("EDGECNN_VERBOSE"):  # ``edgecnn --verbose`` keeps TF's own logging
    tf.get_logger().setLevel(logging.ERROR)
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:  # pragma: no cover
        pass
for _module in ("tensorflow", "tf_keras", "tensorflow_model_optimization", "keras"):
    warnings.filterwarnings("ignore", module=_module)
warnings.filterwarnings("ignore", message=".*Statistics for quantized inputs.*")


def tfmot():
    """Return ``tensorflow_model_optimization``, imported on first use (it is slow)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import tensorflow_model_optimization as _tfmot
    return _tfmot


__all__ = ["tf", "keras", "tfmot"]
