"""Keras v3 weight files: ``.keras`` zips and ``.weights.h5``, read with h5py only.

- a ``.keras`` zip (``model.save("x.keras")``): its ``config.json`` is read as JSON and
  refused, on one line, if it holds a ``Lambda`` layer, a class that is not a Keras or
  edgecnn layer or a module to import (:func:`~edgecnn.models._safe_config.unsafe_config_entry`);
  nothing is deserialised. The arrays come from the zip's ``model.weights.h5``, mapped onto
  the model by layer name (the config says which layer each group of the file holds).
- a ``.weights.h5`` (``model.save_weights("x.weights.h5")``): the groups Keras names after
  each layer's class and position (``layers/conv2d_3/vars/0``), mapped by order onto the
  same walk of the model, which this module repeats (Keras' own is private).

:func:`edgecnn.models._weights.weights_format` tells these from the HDF5 weight files that
:mod:`edgecnn.models._weights` reads.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from edgecnn.errors import UserError

# Dense layers after the global pooling in edgecnn's models: a file may hold another shape.
_EDGECNN_TOP = {"classifier", "conv_head", "fc1", "fc2"}

# Budgets checked before a .keras zip is read: its config.json, and its model.weights.h5.
_MAX_CONFIG_BYTES = 64 << 20
_MAX_WEIGHTS_BYTES = 16 << 30


def _fits(array: np.ndarray, var) -> bool:
    """Whether ``array`` can be ``var``'s value (the same shape, up to 1x1 spatial axes)."""
    shape = tuple(var.shape)
    if array.shape == shape:
        return True
    # A 1x1 Conv2D kernel (1, 1, cin, cout) is the same as a Dense kernel (cin, cout).
    return array.size == int(np.prod(shape)) and [d for d in array.shape if d != 1] == [d for d in shape if d != 1]


def _keras_archive(path: Path):
    """``(config, weights .h5 path)`` of a ``.keras`` zip; the config is checked for code
    (:func:`~edgecnn.models._safe_config.unsafe_config_entry`) before anything else is read,
    and ``model.weights.h5`` is copied out to a temporary file (the caller deletes it)."""
    import json
    import shutil
    import tempfile
    import zipfile

    from edgecnn.models._safe_config import unsafe_config_entry

    where = f"cannot read weight file {path}"
    try:
        with zipfile.ZipFile(path) as archive:
            infos = {info.filename: info for info in archive.infolist()}
            if "config.json" not in infos or "model.weights.h5" not in infos:
                raise UserError(f"{where}: a zip without config.json and model.weights.h5 is not a Keras v3 model")
            if infos["config.json"].file_size > _MAX_CONFIG_BYTES:
                size = infos["config.json"].file_size
                raise UserError(f"{where}: its config.json declares {size} bytes (over 64 MiB)")
            text = archive.read("config.json")
            try:
                config = json.loads(text.decode("utf8"))
            except (ValueError, RecursionError, UnicodeDecodeError) as exc:
                raise UserError(f"{where}: config.json is not valid JSON ({str(exc)[:80]})") from None
            if isinstance(config, dict):
                config.pop("compile_config", None)  # never read: only the weights are used
            reason = unsafe_config_entry(config)
            if reason:
                raise UserError(f"refusing the weight file {path}: {reason}")
            info = infos["model.weights.h5"]
            if info.file_size > _MAX_WEIGHTS_BYTES or (
                info.compress_type != zipfile.ZIP_STORED and info.file_size > max(100 * info.compress_size, 64 << 20)
            ):
                raise UserError(f"{where}: model.weights.h5 declares {info.file_size} bytes (over the budget)")
            tmp = tempfile.NamedTemporaryFile(prefix="edgecnn-weights-", suffix=".h5", delete=False)
            with tmp, archive.open(info) as src:
                shutil.copyfileobj(src, tmp, 1 << 20)
            return config, Path(tmp.name)
    except (OSError, zipfile.BadZipFile, EOFError, ValueError, KeyError) as exc:
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise UserError(f"{where}: {reason} (truncated or corrupt?)") from None


def _snake(cls_name: str) -> str:
    """A class name as Keras v3 names its group (tf_keras' ``generic_utils.to_snake_case``:
    ``Conv2D`` -> ``conv2d``, ``BatchNormalization`` -> ``batch_normalization``)."""
    intermediate = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", cls_name)
    snake = re.sub("([a-z])([A-Z])", r"\1_\2", intermediate).lower()
    return snake if snake[0] != "_" else "private" + snake


def _numbered(names) -> list[str]:
    """Keras v3's group names for a container of layers: the class in snake case, numbered
    from the second of a kind (``conv2d``, ``conv2d_1``)."""
    used, out = {}, []
    for name in names:
        if name in used:
            used[name] += 1
            out.append(f"{name}_{used[name]}")
        else:
            used[name] = 0
            out.append(name)
    return out


# Attributes Keras v3's saving walk skips (tf_keras' ``saving_lib.ATTR_SKIPLIST``): each
# is a second path to layers or variables the walk reaches by their own attribute.
_ATTR_SKIPLIST = frozenset(
    "_callable_losses _captured_weight_regularizer _checkpoint_dependencies _layer_checkpoint_dependencies "
    "_deferred_dependencies _eager_losses _inbound_nodes _inbound_nodes_value _output_layers _input_layers "
    "_keras_api_names _keras_api_names_v1 _name_based_restores _outbound_nodes _outbound_nodes_value "
    "_saved_model_arg_spec _self_name_based_restores _self_saveable_object_factories _self_tracked_trackables "
    "_saved_model_inputs_spec _self_unconditional_checkpoint_dependencies _self_unconditional_deferred_dependencies "
    "_self_unconditional_dependency_names _tf_api_names _tf_api_names_v1 _trainable_weights _non_trainable_weights "
    "_unconditional_checkpoint_dependencies _unconditional_dependency_names _updates _layer_call_argspecs "
    "inbound_nodes outbound_nodes input_shape output_shape submodules weights non_trainable_weights "
    "trainable_weights variables non_trainable_variables trainable_variables updates state_updates".split()
)


def _walk_trackable(obj):
    """``(attribute, value)`` of ``obj`` in the order Keras v3's saving walks them
    (tf_keras' ``saving_lib._walk_trackable``: names in reverse order, some skipped)."""
    for attr in sorted(dir(obj), reverse=True):
        if attr.startswith("__") or attr in _ATTR_SKIPLIST:
            continue
        try:
            child = getattr(obj, attr)
        except Exception:  # a property that fails is skipped, as Keras' walk does
            continue
        yield attr, child


def _is_keras_trackable(obj) -> bool:
    """What Keras v3's saving descends into (a metric is a layer in tf_keras)."""
    from edgecnn._tf import keras

    return isinstance(obj, (keras.layers.Layer, keras.optimizers.Optimizer, keras.losses.Loss))


def _v3_variables(model) -> list[tuple[str, object, list]]:
    """``[(group path, top-level layer, [variables])]``: where Keras v3's ``save_weights``
    puts each layer's own variables, found by the same walk (``saving_lib._save_state``)."""
    from edgecnn._tf import keras

    out, visited = [], set()

    def visit(obj, path, top):
        if id(obj) in visited:
            return
        visited.add(id(obj))
        if isinstance(obj, keras.layers.Layer):
            own = list(obj._trainable_weights) + list(obj._non_trainable_weights)
            if own:
                out.append((path, top, own))
        for attr, child in _walk_trackable(obj):
            if _is_keras_trackable(child):
                visit(child, f"{path}/{attr}".lstrip("/"), top if top is not None else child)
            elif isinstance(child, (list, dict, tuple, set)):
                items = list(child.values()) if isinstance(child, dict) else list(child)
                items = [t for t in items if _is_keras_trackable(t) and id(t) not in visited]
                for t, name in zip(items, _numbered(_snake(type(t).__name__) for t in items)):
                    visit(t, f"{path}/{attr}/{name}".lstrip("/"), top if top is not None else t)

    visit(model, "", None)
    return out


def _file_groups(f) -> dict[str, list]:
    """Every ``.../vars`` group under ``layers/`` of a v3 weight file: path -> arrays in order."""
    import h5py

    found = {}

    def collect(name, obj):
        if isinstance(obj, h5py.Group) and name.endswith("vars") and (name == "vars" or name.endswith("/vars")):
            keys = sorted(obj.keys(), key=lambda k: int(k) if k.isdigit() else -1)
            if keys:
                found[name[: -len("/vars")]] = [obj[k] for k in keys]

    if isinstance(f.get("layers"), h5py.Group):
        f["layers"].visititems(lambda n, o: collect(f"layers/{n}", o))
    return found


def _renamed_by_config(model, config, groups: dict) -> dict[str, str]:
    """Map the model's top-level group names to the file's, by layer name through the
    file's ``config.json`` (``{our "layers/conv2d_3": the file's "layers/conv2d_5"}``);
    empty if the config does not describe a functional model whose groups are in the file."""
    layers = config.get("config", {}).get("layers") if isinstance(config, dict) else None
    if not isinstance(layers, list):
        return {}
    entries = [(e.get("name"), e.get("class_name")) for e in layers if isinstance(e, dict)]
    if len(entries) != len(layers) or not all(isinstance(n, str) and isinstance(c, str) for n, c in entries):
        return {}
    keys = _numbered(_snake(c) for _, c in entries)
    theirs = {name: f"layers/{key}" for (name, _), key in zip(entries, keys)}
    ours = _numbered(_snake(type(layer).__name__) for layer in model.layers)
    mapping = {}
    for layer, key in zip(model.layers, ours):
        if layer.name in theirs:
            mapping[f"layers/{key}"] = theirs[layer.name]
    prefixes = {"/".join(p.split("/")[:2]) for p in groups}
    if not set(mapping.values()) & prefixes:  # groups not named as this Keras names them: by order
        return {}
    return mapping


def load_v3_weights(model, path, kind: str) -> list[str]:
    """Set ``model``'s weights from a Keras v3 file (``kind`` ``"keras"`` or ``"v3"``, see
    :func:`weights_format`) read with h5py; returns the top layers left at their
    initialisation (another class count). A file of another architecture or alpha, or one
    whose layers the model lacks, is refused on one line."""
    import h5py

    from edgecnn._tf import keras

    path = Path(path)
    config, h5path = (None, path)
    if kind == "keras":
        config, h5path = _keras_archive(path)
    source = ""
    if isinstance(config, dict) and isinstance(config.get("config"), dict):
        name = config["config"].get("name")
        source = f" (the file holds the model {str(name)[:80]!r})" if isinstance(name, str) else ""
    hint = f"a file of another architecture, alpha or depth?{source}"
    try:
        with h5py.File(str(h5path), "r") as f:
            groups = _file_groups(f)
            if not groups:
                raise UserError(f"cannot read weight file {path}: no layer weights in it (truncated or corrupt?)")
            rename = _renamed_by_config(model, config, groups) if config is not None else {}
            pairs, fresh, used = [], [], set()
            for group, top, variables in _v3_variables(model):
                head, _, rest = group.partition("/")
                head2, _, rest2 = rest.partition("/")
                prefix = f"{head}/{head2}"
                theirs = rename.get(prefix, prefix if not rename else None)
                where = None if theirs is None else f"{theirs}/{rest2}".rstrip("/")
                arrays = groups.get(where) if where else None
                if arrays is not None:
                    used.add(where)
                fits = arrays is not None and len(arrays) == len(variables)
                if fits:
                    arrays = [np.asarray(a) for a in arrays]
                    fits = all(_fits(a, v) for a, v in zip(arrays, variables))
                if fits:
                    pairs += [(v, a.reshape(tuple(v.shape))) for a, v in zip(arrays, variables)]
                elif top is not None and top.name in _EDGECNN_TOP:
                    if top.name not in fresh:
                        fresh.append(top.name)
                else:
                    label = top.name if top is not None else group
                    found = "not in the file" if arrays is None else "another shape or number of weights in the file"
                    raise UserError(f"{path} does not fit {model.name}: layer {label!r} has {found} ({hint})")
            extra = sorted(set(groups) - used)
            if extra:
                raise UserError(
                    f"{path} does not fit {model.name}: the file holds weights the model lacks, "
                    f"{len(extra)} groups such as {extra[0]!r} ({hint})"
                )
            if not pairs:
                raise UserError(f"{path} does not fit {model.name}: none of its layers is in the file ({hint})")
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise UserError(f"cannot read weight file {path}: {reason} (truncated or corrupt?)") from None
    finally:
        if h5path != path:
            h5path.unlink(missing_ok=True)
    keras.backend.batch_set_value(pairs)
    return fresh
