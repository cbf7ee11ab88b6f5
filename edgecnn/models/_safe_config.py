"""Whether a saved model's config could run code on loading, read before anything is built.

A Keras model file (a ``.keras`` zip's ``config.json``, an HDF5 model's ``model_config``)
describes its layers by class name; a ``Lambda`` layer carries Python code (bytecode or a
module to import), and an unknown class or module would be imported to build it. Both the
teacher loader (:mod:`edgecnn.optimize.distill`) and the weights loader
(:mod:`edgecnn.models._weights`) refuse such a file with :func:`unsafe_config_entry` first.
"""

from __future__ import annotations

from edgecnn._tf import keras

# Config keys that only a Lambda-like layer has: Python code (bytecode or a module to import).
_CODE_KEYS = ("function", "function_type", "output_shape_type", "output_shape_module")


def _known_class_names() -> set:
    """Class names a teacher's config may use: tf_keras layers, initializers, regularizers and
    constraints (``Lambda`` excluded), the model classes, and edgecnn's own layers."""
    import inspect

    # Importing this module imported the package edgecnn.models first, which registers every custom layer.
    from edgecnn.models._layers import CUSTOM_OBJECTS

    names = {"Functional", "Sequential", "Model", "Policy"}
    for module in (keras.layers, keras.initializers, keras.regularizers, keras.constraints):
        names |= {n for n in dir(module) if inspect.isclass(getattr(module, n))}
    names.discard("Lambda")
    for name, obj in CUSTOM_OBJECTS.items():
        names |= {name, keras.saving.get_registered_name(obj)}
    return names


def _trusted_module(module) -> bool:
    return isinstance(module, str) and (
        module in ("keras", "tf_keras") or module.startswith(("keras.", "tf_keras.", "edgecnn.models."))
    )


def unsafe_config_entry(config, known: set | None = None) -> str | None:
    """Why a saved model's config could run code on loading, or ``None`` if it cannot.

    Refuses a ``Lambda`` layer (its Python function is stored as bytecode or as a module to
    import), any class that is not a tf_keras layer/initializer/regularizer/constraint or an
    edgecnn layer, any ``module`` outside tf_keras and ``edgecnn.models``, and any
    function-valued entry.

    Example:
        >>> unsafe_config_entry({"class_name": "Lambda", "config": {"name": "evil"}})
        "layer 'evil' is a Lambda layer, whose Python code would run on loading"
        >>> unsafe_config_entry({"class_name": "Dense", "config": {"name": "fc", "units": 10}}) is None
        True
    """
    known = _known_class_names() if known is None else known
    stack = [config]
    while stack:  # iterative: a hostile config may nest deeper than the recursion limit
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        cls = node.get("class_name")
        inner = node.get("config")
        name = inner.get("name") if isinstance(inner, dict) else None
        label = f"layer {name!r}" if isinstance(name, str) else f"class {cls!r}"
        if cls in ("Lambda", "__lambda__"):
            return f"{label} is a Lambda layer, whose Python code would run on loading"
        if cls is not None and (not isinstance(cls, str) or cls not in known):
            return f"{label} has class {str(cls)[:80]!r}, which is not a tf_keras or edgecnn layer"
        if "module" in node and node["module"] is not None and not _trusted_module(node["module"]):
            return f"{label} names the module {str(node['module'])[:80]!r}, which loading would import"
        registered = node.get("registered_name")
        if registered is not None and registered != cls and registered not in known:
            return f"{label} is registered as {str(registered)[:80]!r}, not a tf_keras or edgecnn layer"
        for key in _CODE_KEYS:
            if key in node:
                return f"{label} holds Python code ({key!r})"
        stack.extend(node.values())
    return None
