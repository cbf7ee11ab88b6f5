"""Find and open a TFLite interpreter: LiteRT, then ``tflite_runtime``, then TensorFlow.

``auto`` tries :data:`AUTO_ORDER`: LiteRT, then ``tflite_runtime`` (what many Pis still
have), and TensorFlow's ``tf.lite.Interpreter`` last, as the project decided. The
TensorFlow fallback is explicit: it is the last entry of :data:`AUTO_ORDER`, and it is
imported directly (``import tensorflow``, inside the one function that opens it), the one
TensorFlow import under ``device/`` (``tests/test_structure.py`` allows it here and nowhere
else). numpy only otherwise, so this module runs on a Raspberry Pi with just a TFLite
runtime installed.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import io
import sys
import warnings
from pathlib import Path

from edgecnn._io import quiet_native_stderr
from edgecnn.errors import UserError

RUNTIMES = ("litert", "tflite_runtime", "tensorflow")
# What ``auto`` tries, in order; TensorFlow last, only where neither TFLite runtime is installed.
AUTO_ORDER = ("litert", "tflite_runtime", "tensorflow")
_MODULES = {
    "litert": ("ai_edge_litert.interpreter", "ai-edge-litert"),
    "tflite_runtime": ("tflite_runtime.interpreter", "tflite-runtime"),
    "tensorflow": ("tensorflow.lite", "tensorflow"),
}


class RuntimeUnavailable(UserError, RuntimeError):
    """The TFLite runtime asked for is not installed (a :class:`UserError`: the CLI prints one line)."""


class ModelLoadError(UserError, ValueError):
    """A ``.tflite`` file that is missing, empty, truncated or not a TFLite model (a :class:`UserError`)."""


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def available_runtimes() -> dict:
    """``{runtime name: version}`` for every installed runtime, without importing TF.

    Example:
        >>> available_runtimes()  # doctest: +SKIP
        {'litert': '2.3.0', 'tensorflow': '2.21.0'}
    """
    found = {}
    for name, (_module, dist) in _MODULES.items():
        version = _version(dist) or (_version("tensorflow-cpu") if name == "tensorflow" else None)
        if version:
            found[name] = version
    return found


NUMPY_FIX = 'pip install "numpy<2" alongside tflite-runtime (pip install tflite-runtime "numpy<2")'
_NUMPY_SIGNS = (
    "_ARRAY_API",
    "numpy.core.multiarray",
    "NumPy 1.x",
    "numpy.core._multiarray_umath",
    "compiled using NumPy",
)


def _numpy_major() -> int:
    import numpy

    try:
        return int(numpy.__version__.split(".")[0])
    except ValueError:  # pragma: no cover - a development build with an odd version string
        return 0


def runtime_failure(runtime: str, exc: BaseException) -> RuntimeUnavailable:
    """The one-line error for a runtime that is installed but cannot run here.

    ``tflite-runtime`` 2.14 (the last release) was built against numpy 1.x: under numpy 2 its
    import fails (``ImportError: numpy.core.multiarray failed to import``, ``_ARRAY_API not
    found``) or a later call raises ``SystemError``. The message names the fix.

    Example:
        >>> str(runtime_failure("tflite_runtime", ImportError("numpy.core.multiarray failed to import")))[:30]
        'tflite_runtime cannot run with'
    """
    text = f"{type(exc).__name__}: {exc}".strip().splitlines()
    first = text[-1] if text else type(exc).__name__
    numpy_major = _numpy_major()
    if runtime == "tflite_runtime" and (numpy_major >= 2 or any(sign in str(exc) for sign in _NUMPY_SIGNS)):
        import numpy

        return RuntimeUnavailable(
            f"tflite_runtime cannot run with numpy {numpy.__version__} (tflite-runtime was built for numpy 1.x; "
            f"{first[:160]}): {NUMPY_FIX}"
        )
    return RuntimeUnavailable(f"runtime {runtime!r} is installed but cannot be loaded ({first[:200]})")


def _interpreter_class(runtime: str):
    if runtime == "tensorflow":
        # Only when named (never by ``auto``); a direct import, not edgecnn._tf, which is outside
        # the sealed device/ (tests/test_structure.py). ``tensorflow.lite`` the module is not
        # ``tf.lite`` the API namespace (no Interpreter there).
        try:
            with quiet_native_stderr():
                import tensorflow as tf
        except ImportError as exc:
            raise runtime_failure(runtime, exc) from None
        return tf.lite.Interpreter
    # numpy 2 prints a long banner (with a stack) when an extension built for numpy 1.x is
    # imported: it is kept back, and shown only if the import works after all.
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said):
            module = importlib.import_module(_MODULES[runtime][0])
            interpreter = module.Interpreter
    except (ImportError, SystemError, AttributeError) as exc:  # e.g. tflite-runtime built for numpy 1.x
        raise runtime_failure(runtime, exc) from None
    if said.getvalue():
        sys.stderr.write(said.getvalue())
    return interpreter


def resolve_runtime(runtime: str = "auto") -> str:
    """The runtime name that ``runtime`` (``auto`` or a name) resolves to on this machine.

    Example:
        >>> resolve_runtime("auto")  # doctest: +SKIP
        'litert'
    """
    installed = available_runtimes()
    if runtime == "auto":
        for name in AUTO_ORDER:
            if name in installed:
                return name
        raise RuntimeUnavailable("no TFLite runtime is installed: pip install ai-edge-litert (or tflite-runtime)")
    if runtime not in RUNTIMES:
        raise RuntimeUnavailable(f"unknown runtime {runtime!r}; choose auto or one of {', '.join(RUNTIMES)}")
    if runtime not in installed:
        have = ", ".join(f"{k} {v}" for k, v in installed.items()) or "none"
        raise RuntimeUnavailable(
            f"runtime {runtime!r} is not installed (installed: {have}); "
            f"pip install {_MODULES[runtime][1]}, or choose --runtime auto"
        )
    return runtime


def check_model_file(path) -> bytes:
    """Read a ``.tflite`` file and check its structure (header, tables, buffers), raising
    :class:`ModelLoadError` for a missing, empty, truncated or corrupt file.

    Example:
        >>> check_model_file("missing.tflite")
        Traceback (most recent call last):
        ...
        edgecnn.device.runtime.ModelLoadError: model file missing.tflite does not exist
    """
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"model file {path} does not exist")
    data = path.read_bytes()
    if len(data) < 16:
        raise ModelLoadError(f"{path} is {len(data)} bytes, too small to be a TFLite model")
    from edgecnn.device.flatbuffer import TFLITE_IDENTIFIER, FlatbufferError, read_model

    if data[4:8] != TFLITE_IDENTIFIER:
        raise ModelLoadError(f"{path} is not a TFLite flatbuffer (no TFL3 identifier)")

    try:
        read_model(data)
    except FlatbufferError as exc:
        raise ModelLoadError(f"{path} is not a valid TFLite model: {exc}") from None
    return data


def load_interpreter(model_path, num_threads: int = 1, runtime: str = "auto", delegate: bool = True,
                     preserve_all_tensors: bool = False):
    """Open ``model_path`` with the chosen runtime and allocate its tensors.

    Returns ``(interpreter, runtime_name, runtime_version)``. ``delegate=False`` disables
    the default XNNPACK delegate (reference kernels only). ``preserve_all_tensors=True``
    keeps every intermediate tensor readable after ``invoke`` (``get_tensor``), for looking
    inside a model (``edgecnn show``); it implies ``delegate=False``, since a delegated
    partition does not write its inner tensors.

    Example:
        >>> it, name, version = load_interpreter("model_int8.tflite", num_threads=2)  # doctest: +SKIP
    """
    check_model_file(model_path)
    name = resolve_runtime(runtime)
    cls = _interpreter_class(name)
    kwargs = {"model_path": str(model_path), "num_threads": int(num_threads)}
    if preserve_all_tensors:
        kwargs["experimental_preserve_all_tensors"] = True
        delegate = False
    if not delegate:
        module = importlib.import_module(cls.__module__)
        resolver = getattr(module, "OpResolverType", None)
        if resolver is not None:
            kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    with quiet_native_stderr(), warnings.catch_warnings():
        # TensorFlow's own Interpreter warns that it is deprecated in favour of LiteRT: it was
        # chosen by name, so the warning tells the user nothing new.
        warnings.filterwarnings("ignore", message=r"\s*Warning: tf\.lite\.Interpreter is deprecated")
        # Asked for by name: the warning that it costs memory and is for debugging tells nothing new.
        warnings.filterwarnings("ignore", message=r".*experimental_preserve_all_tensors")
        try:
            interpreter = cls(**kwargs)
            interpreter.allocate_tensors()
        except SystemError as exc:  # a runtime's C extension built for another numpy: not the model's fault
            raise runtime_failure(name, exc) from None
        except (ValueError, RuntimeError) as exc:
            msg = str(exc).strip().splitlines()
            raise ModelLoadError(f"{model_path} cannot be loaded by {name}: {msg[-1] if msg else exc}") from None
    return interpreter, name, available_runtimes().get(name, "unknown")
