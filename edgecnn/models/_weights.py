"""Pretrained weights: Keras Applications' ImageNet files and weight files on disk.

``create_model(name, weights=...)`` (:func:`~edgecnn.models.create_model`) calls
:func:`build_with_weights`:

- ``"imagenet"``: the file Keras Applications publishes for the model, as the family
  module declares it beside its builders (its ``PRETRAINED`` table of
  :class:`~edgecnn.models._pretrained.KerasWeights`: file name per variant, URL, md5,
  input convention), which the registry entry carries (``entry.pretrained_cfg``); this
  module knows no family. It is fetched with ``keras.utils.get_file`` into Keras' cache,
  ``$KERAS_HOME/models`` (default ``~/.keras/models``), so a machine that already used
  ``keras.applications`` needs no network. Offline and not cached: one line naming the
  file, its URL and the folder to put it in.
- a path to a weight file, its format told from its content (:func:`weights_format`), not
  its name:

  - an HDF5 file with ``layer_names``: the format ``keras.applications.X(...).save_weights("x.h5")``
    writes (the published files' format), or one an edgecnn model's ``save_weights("x.h5")``
    wrote. Read with h5py only (``layer_names`` and each layer's ``weight_names``).
  - a Keras v3 ``.keras`` zip or ``.weights.h5`` of the same family, read with h5py by
    :mod:`edgecnn.models._weights_v3` (a ``.keras`` whose config holds code is refused).

  No model is deserialised and nothing from the file runs.
- an edgecnn run folder: its ``train/weights.h5``, by layer name.

A Keras Applications file is mapped onto the edgecnn network by the order of its weight
tensors, shape by shape (edgecnn's builders build the same layers in the same order; a
squeeze-excite's two Keras convolutions are one edgecnn layer with the same four tensors);
a family whose Keras files list layers in another order says how to reorder them
(``file_order``: ResNet's shortcut projection comes first in each block). Where edgecnn's
network computes another function than Keras' (ResNet v1.5 vs v1 and conv biases, the
stems' explicit padding, EfficientNet's and MobileNetV3's in-model rescaling) the family's
builder has ``keras_compatible=True``, which a Keras file selects (and says so, in the
declaration's ``compat_note``).

The classifier (and the other layers after global pooling) may differ: layers whose shapes
do not fit, such as a classifier with another class count, keep their fresh initialisation
and are listed on one line. Any other difference refuses the file, on one line.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from pathlib import Path

import numpy as np

from edgecnn.errors import UserError
from edgecnn.models._weights_v3 import _EDGECNN_TOP, _fits, load_v3_weights

# Layers after the global pooling in Keras Applications' files (their "top").
_KERAS_TOP = {"predictions", "conv_preds", "Logits", "Conv_2", "fc1", "fc2", "fc1000"}


def _say(line: str) -> None:
    print(f"weights: {line}", file=sys.stderr)


def input_convention(entry, weights) -> dict:
    """How pixels must be prepared for ``entry`` started from ``weights``: ``{}`` (edgecnn's
    default, ``p / 127.5 - 1``) unless the weights are Keras' (``"imagenet"`` or a Keras
    Applications file), then the family's (``scale``, ``offset``, and ``channel_order``,
    ``mean``, ``std`` where needed), which training, evaluation, int8 calibration and
    ``preprocess.json`` then all use.

    Example:
        >>> from edgecnn.models import model_info
        >>> input_convention(model_info("resnet50"), "imagenet")["channel_order"]
        'BGR'
    """
    cfg = entry.pretrained_cfg
    if weights is None or str(weights).lower() in ("none", ""):
        return {}
    run = Path(weights) if Path(weights).is_dir() else _run_folder_of(weights) if Path(weights).is_file() else None
    if run is not None and (run / "preprocess.json").is_file():
        # An edgecnn run folder, or a file in one: the convention that run was trained with.
        import json

        spec = json.loads((run / "preprocess.json").read_text())
        keys = ("scale", "offset", "channel_order", "mean", "std")
        return {k: spec[k] for k in keys if spec.get(k) is not None}
    if cfg is None:
        return {}
    if str(weights).lower() != "imagenet":
        path = Path(weights)
        if not path.is_file() or not _is_keras_file(_weighted_layer_names(path)[:1], cfg):
            return {}
    return dict(cfg.convention)


def _weighted_layer_names(path) -> list[tuple[str, list]]:
    """``[(layer name, [weight names])]`` of an HDF5 weight file, attributes only (cheap)."""
    import h5py

    try:
        with h5py.File(str(path), "r") as f:
            group = f["model_weights"] if "model_weights" in f else f
            out = []
            for layer in (_text(n) for n in group.attrs.get("layer_names", [])):
                names = [_text(n) for n in group[layer].attrs.get("weight_names", [])]
                if names:
                    out.append((layer, names))
            return out
    except (OSError, KeyError, ValueError, TypeError, RuntimeError):
        return []


def keras_cache_dir() -> Path:
    """Where ``keras.utils.get_file(..., cache_subdir="models")`` keeps files:
    ``$KERAS_HOME/models``, default ``~/.keras/models``."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models"


def imagenet_file(entry, args: dict, include_top: bool) -> tuple[str, str, str | None]:
    """``(file name, URL, md5 or None)`` of the ImageNet weights Keras publishes for
    ``entry`` built with ``args``, from the family's declaration (``entry.pretrained_cfg``,
    :meth:`~edgecnn.models._pretrained.KerasWeights.file_for`).

    MobileNet v1/v2 files have no published hash (tf_keras passes none).

    Example:
        >>> from edgecnn.models import model_info
        >>> imagenet_file(model_info("resnet50"), {}, False)[0]
        'resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5'
    """
    cfg = entry.pretrained_cfg
    if cfg is None:
        raise UserError(f"{entry.name} has no published ImageNet weights")
    shape = args.get("input_shape") or entry.input_shape
    rows = int(shape[0]) if shape and shape[0] else 224
    return cfg.file_for(float(args.get("alpha", 1.0)), rows, include_top, bool(args.get("minimalistic")))


def _md5_matches(path: Path, file_hash: str) -> bool:
    """Whether ``path`` has the published hash: sha256 when it is 64 hex digits long, md5
    otherwise, as ``keras.utils.get_file`` checks it."""
    digest = hashlib.sha256() if len(file_hash) == 64 else hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest() == file_hash


def fetch_imagenet(fname: str, url: str, file_hash: str | None) -> Path:
    """The published file ``fname``: from Keras' cache (its hash checked), else downloaded
    with ``keras.utils.get_file`` (with progress). Offline and not cached: a one-line
    :class:`UserError` naming the file, its URL and the folder to put it in."""
    cache = keras_cache_dir()
    path = cache / fname
    if path.exists():
        if file_hash and not _md5_matches(path, file_hash):
            raise UserError(
                f"{path} is not the published {fname} (its md5 is not {file_hash}); "
                f"delete it, or replace it with the file from {url}"
            )
        return path
    from edgecnn._tf import keras

    try:
        got = keras.utils.get_file(fname, url, file_hash=file_hash, cache_subdir="models")
    except Exception as exc:  # no network, DNS, HTTP errors: all say the same to the user
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        # tf_keras says "URL fetch failure on URL: errno -- reason": keep the reason.
        reason = text.split(" -- ")[-1] if " -- " in text else text.replace(url, "").strip(": ")[:120]
        raise UserError(f"cannot download {fname} from {url} ({reason}); offline, put that file in {cache}/") from None
    return Path(got)


def sha256_of(path) -> str:
    """The sha256 of a file, for the manifest."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _text(value) -> str:
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def read_h5_weights(path) -> list[tuple[str, list[tuple[str, np.ndarray]]]]:
    """``[(layer name, [(weight name, array), ...]), ...]`` of an HDF5 weight file, in the
    file's layer order, read with h5py only (``save_weights``' format, or a whole-model
    ``.h5``'s ``model_weights`` group). A truncated or corrupt file: one line."""
    import h5py

    path = Path(path)
    try:
        if not h5py.is_hdf5(str(path)):
            raise OSError("not an HDF5 file")
        out = []
        with h5py.File(str(path), "r") as f:
            group = f["model_weights"] if "model_weights" in f else f
            if "layer_names" not in group.attrs:
                raise KeyError("no 'layer_names' attribute: not a Keras weight file")
            for layer in (_text(n) for n in group.attrs["layer_names"]):
                names = [_text(n) for n in group[layer].attrs.get("weight_names", [])]
                out.append((layer, [(w, np.asarray(group[layer][w])) for w in names]))
        return out
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise UserError(f"cannot read weight file {path}: {reason} (truncated or corrupt?)") from None


def _describe(layer: str, weight: str, shape) -> str:
    return f"{layer}/{weight.split('/')[-1].split(':')[0]} {tuple(shape)}"


def assign_keras_weights(model, layers_in_file, path, cfg=None) -> list[str]:
    """Set ``model``'s weights from a Keras Applications file's ``layers_in_file`` (see
    :func:`read_h5_weights`) by tensor order and shape, in the order the family's
    declaration ``cfg`` puts them (its ``file_order``); returns the names of the top layers
    left at their initialisation. Refuses (one line) a file whose body does not fit."""
    from edgecnn._tf import keras

    if cfg is not None and cfg.file_order is not None:
        layers_in_file = cfg.file_order(layers_in_file, model)
    weighted = [(name, ws) for name, ws in layers_in_file if ws]
    file_body = [(n, w, a) for n, ws in weighted if n not in _KERAS_TOP for w, a in ws]
    file_top = [(n, ws) for n, ws in weighted if n in _KERAS_TOP]
    model_layers = [layer for layer in model.layers if layer.weights]
    body = [(layer, v) for layer in model_layers if layer.name not in _EDGECNN_TOP for v in layer.weights]
    top = [layer for layer in model_layers if layer.name in _EDGECNN_TOP]
    hint = "a file of another architecture, alpha or depth?"
    if len(file_body) != len(body):
        raise UserError(
            f"{path} does not fit {model.name}: it holds {len(file_body)} weights below the top, "
            f"the model has {len(body)} ({hint})"
        )
    pairs = []
    for (fname, wname, array), (layer, var) in zip(file_body, body):
        if not _fits(array, var):
            raise UserError(
                f"{path} does not fit {model.name}: {_describe(fname, wname, array.shape)} in the file "
                f"vs {_describe(layer.name, var.name, var.shape)} in the model ({hint})"
            )
        pairs.append((var, array.reshape(tuple(var.shape))))
    fresh = []
    for i, layer in enumerate(top):
        if i < len(file_top) and len(file_top[i][1]) == len(layer.weights):
            arrays = [a for _, a in file_top[i][1]]
            if all(_fits(a, v) for a, v in zip(arrays, layer.weights)):
                pairs += [(v, a.reshape(tuple(v.shape))) for v, a in zip(layer.weights, arrays)]
                continue
        fresh.append(layer.name)
    keras.backend.batch_set_value(pairs)
    return fresh


def assign_by_name(model, layers_in_file, path) -> list[str]:
    """Set ``model``'s weights from an edgecnn-written file by layer name (same family);
    top layers whose shapes differ stay initialised and are returned. Anything else that
    does not fit refuses the file."""
    from edgecnn._tf import keras

    stored = {name: ws for name, ws in layers_in_file if ws}
    pairs, fresh = [], []
    for layer in model.layers:
        if not layer.weights:
            continue
        ws = stored.get(layer.name)
        fits = (
            ws is not None
            and len(ws) == len(layer.weights)
            and all(_fits(a, v) for (_, a), v in zip(ws, layer.weights))
        )
        if fits:
            pairs += [(v, a.reshape(tuple(v.shape))) for (_, a), v in zip(ws, layer.weights)]
        elif layer.name in _EDGECNN_TOP:
            fresh.append(layer.name)
        else:
            found = "not in the file" if ws is None else "another shape in the file"
            raise UserError(
                f"{path} does not fit {model.name}: layer {layer.name!r} has {found} "
                "(a file of another architecture, alpha or depth?)"
            )
    if not pairs:
        raise UserError(
            f"{path} does not fit {model.name}: none of its layers is in the file (a file of another architecture?)"
        )
    extra = [name for name in stored if name not in {layer.name for layer in model.layers}]
    if extra:  # e.g. a deeper network of the family, or Keras' in-model Normalization
        raise UserError(
            f"{path} does not fit {model.name}: the file holds {len(extra)} layer(s) the model lacks, such as "
            f"{extra[0]!r} (a file of another architecture, depth or builder option?)"
        )
    keras.backend.batch_set_value(pairs)
    return fresh


def run_weights(folder) -> Path:
    """The trained weights of an edgecnn run folder (``train/weights.h5``); one line if
    ``folder`` is not a run folder."""
    path = Path(folder) / "train" / "weights.h5"
    if not path.is_file():
        raise UserError(
            f"weights {str(folder)!r} is a folder without train/weights.h5: not an edgecnn run folder "
            "(give a run folder, 'imagenet' or a weight file: .h5, .weights.h5 or .keras)"
        )
    return path


def _is_keras_file(layers_in_file, cfg) -> bool:
    """Whether a file's first weighted layer is the one Keras' files of the family start with."""
    first = next((name for name, ws in layers_in_file if ws), "")
    # Keras numbers a layer name taken twice in one process (``normalization_1``).
    first = re.sub(r"_\d+$", "", first) if first.startswith("normalization") else first
    return cfg is not None and first == cfg.first_layer


def _weights_path(entry, weights, kwargs: dict) -> tuple[Path, bool]:
    """``(the weight file to read, whether it is a run folder's)`` for ``weights``:
    ``"imagenet"``'s published file (fetched), a file, or a run folder's weights."""
    if isinstance(weights, str) and weights.lower() == "imagenet":
        # Another class count: the no-top file (the classifier is new either way; VGG's top
        # file is 500 MB); the layers between pooling and classifier start fresh too.
        include_top = kwargs.get("include_top", True)
        top_file = include_top and int(kwargs.get("classes", entry.classes)) == entry.classes
        return fetch_imagenet(*imagenet_file(entry, kwargs, top_file)), False
    if isinstance(weights, (str, os.PathLike)) and Path(weights).is_file():
        return Path(weights), False
    if isinstance(weights, (str, os.PathLike)) and Path(weights).is_dir():
        return run_weights(weights), True
    raise UserError(
        f"unknown weights {weights!r}: expected none, 'imagenet', a run folder or the path of a weight file "
        "(.h5, .weights.h5, .keras)"
    )


def build_with_weights(entry, weights, kwargs: dict):
    """Build ``entry``'s model from ``kwargs`` and load ``weights`` (``"imagenet"`` or a
    path); see the module docstring. Lines saying what was done go to stderr."""
    path, run_folder = _weights_path(entry, weights, kwargs)
    kind = weights_format(path)
    run = _run_folder_of(path)
    if run is not None:  # a run started from Keras' weights built Keras' network: build it again
        added = {k: v for k, v in _run_builder_args(run, entry).items() if k not in kwargs}
        if added:
            kwargs = {**added, **kwargs}
            said = ", ".join(f"{k}={v}" for k, v in added.items())
            _say(f"built with {said}, as the run {run} was (it started from Keras' weights)")
    if kind != "h5":
        model = entry.builder(**kwargs)
        fresh = load_v3_weights(model, path, kind)
        _say(f"{entry.name} from {'Keras v3 model' if kind == 'keras' else 'Keras v3 weight file'} {path}")
        return _finish(model, weights, path, fresh)
    _refuse_code_in_h5(path)
    layers_in_file = read_h5_weights(path)
    cfg = entry.pretrained_cfg
    keras_file = not run_folder and _is_keras_file(layers_in_file, cfg)
    args = dict(kwargs)
    compat = keras_file and "keras_compatible" in entry.arguments
    if compat:
        args.setdefault("keras_compatible", True)
        if weights == "imagenet" and "imagenet_rescaling" in entry.arguments:
            args.setdefault("imagenet_rescaling", True)
    model = entry.builder(**args)
    if keras_file:
        fresh = assign_keras_weights(model, layers_in_file, path, cfg)
    else:
        fresh = assign_by_name(model, layers_in_file, path)
    source = "Keras Applications file" if keras_file else "weight file"
    _say(f"{entry.name} from {source} {path}")
    if compat and args.get("keras_compatible"):
        _say(f"built with keras_compatible=True ({cfg.compat_note})")
    return _finish(model, weights, path, fresh)


def _run_folder_of(path) -> Path | None:
    """The edgecnn run folder a weight file belongs to (``<run>/train/weights.h5``,
    ``<run>/train/model.keras``, or a file at the run's top), or ``None``."""
    for folder in list(Path(path).parents)[:2]:
        if (folder / "config.json").is_file() and (folder / "preprocess.json").is_file():
            return folder
    return None


def _run_builder_args(run: Path, entry, depth: int = 0) -> dict:
    """The builder options a run's weights need that its ``config.json`` does not spell out:
    a run started from Keras' weights (``imagenet``, a Keras Applications file, or a run that
    did) built ``keras_compatible=True`` (and, from ``imagenet``, EfficientNet's
    ``imagenet_rescaling``), so its weights only compute its function in that network."""
    import json

    try:
        model = json.loads((run / "config.json").read_text()).get("model") or {}
    except (OSError, ValueError, AttributeError):
        return {}
    args = model.get("args") if isinstance(model.get("args"), dict) else {}
    out = {k: args[k] for k in ("keras_compatible", "imagenet_rescaling") if k in args}
    source = model.get("weights")
    if not isinstance(source, str) or source.lower() in ("", "none") or depth > 3:
        return out
    if source.lower() == "imagenet":
        keras_weights = True
        if "imagenet_rescaling" in entry.arguments:
            out.setdefault("imagenet_rescaling", True)
    elif Path(source).is_dir():
        return {**_run_builder_args(Path(source), entry, depth + 1), **out}
    else:
        keras_weights = Path(source).is_file() and _is_keras_file(_weighted_layer_names(source), entry.pretrained_cfg)
    if keras_weights and "keras_compatible" in entry.arguments:
        out.setdefault("keras_compatible", True)
    return out


def _refuse_code_in_h5(path) -> None:
    """A whole-model ``.h5`` carries its config too: only its weights are read, but one with a
    ``Lambda`` layer or an unknown class is refused like a ``.keras`` (it is not what
    ``--weights`` is for, and another tool would run that code)."""
    import json

    import h5py

    from edgecnn.models._safe_config import unsafe_config_entry

    try:
        with h5py.File(str(path), "r") as f:
            text = f.attrs.get("model_config")
        config = None if text is None else json.loads(text.decode() if isinstance(text, bytes) else str(text))
    except (OSError, ValueError, RecursionError, UnicodeDecodeError):
        return  # read_h5_weights says what is wrong with the file
    reason = unsafe_config_entry(config) if config is not None else None
    if reason:
        raise UserError(f"refusing the weight file {path}: {reason}")


def _finish(model, weights, path, fresh: list[str]):
    if fresh:
        _say(f"re-initialised (not in the file or another shape): {', '.join(fresh)}")
    model._edgecnn_weights = {"source": str(weights), "file": str(path), "sha256": sha256_of(path), "fresh": fresh}
    return model


def weights_format(path) -> str:
    """What a weight file holds, from its content: ``"h5"`` (HDF5 with ``layer_names``:
    ``save_weights("x.h5")``, Keras Applications' files, a whole-model ``.h5``), ``"v3"``
    (Keras v3 ``.weights.h5``: ``layers/<class>_<n>/vars/<i>`` groups) or ``"keras"`` (a
    ``.keras`` zip). Anything else: one line.

    Example:
        >>> weights_format("runs/mobilenet/train/weights.h5")  # doctest: +SKIP
        'h5'
    """
    import zipfile

    import h5py

    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            return "keras"
        if h5py.is_hdf5(str(path)):
            with h5py.File(str(path), "r") as f:
                group = f["model_weights"] if "model_weights" in f else f
                if "layer_names" in group.attrs:
                    return "h5"
                if isinstance(f.get("layers"), h5py.Group) or isinstance(f.get("vars"), h5py.Group):
                    return "v3"
            reason = "an HDF5 file that is neither a Keras weight file (.h5) nor a Keras v3 .weights.h5"
        else:
            reason = "not an HDF5 file nor a .keras zip"
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
    raise UserError(f"cannot read weight file {path}: {reason} (truncated or corrupt?)")
