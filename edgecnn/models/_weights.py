"""Pretrained weights: Keras Applications' ImageNet files and weight files on disk.

``create_model(name, weights=...)`` (:func:`~edgecnn.models.create_model`) calls
:func:`build_with_weights`:

- ``"imagenet"``: the file Keras Applications publishes for the model, named, located and
  hashed exactly as tf_keras' own ``applications/*.py`` do (their ``BASE_WEIGHT(S)_PATH``
  and ``WEIGHTS_HASHES`` are imported, not copied; VGG's and DenseNet's hashes sit inline
  in tf_keras' code and are repeated in :data:`_INLINE_HASHES`, which a test compares
  with tf_keras' source). It is fetched with ``keras.utils.get_file`` into Keras' cache,
  ``$KERAS_HOME/models`` (default ``~/.keras/models``), so a machine that already used
  ``keras.applications`` needs no network. Offline and not cached: one line naming the
  file, its URL and the folder to put it in.
- a path to a weight file, its format told from its content (:func:`weights_format`), not
  its name:

  - an HDF5 file with ``layer_names``: the format ``keras.applications.X(...).save_weights("x.h5")``
    writes (the published files' format), or one an edgecnn model's ``save_weights("x.h5")``
    wrote. Read with h5py only (``layer_names`` and each layer's ``weight_names``).
  - a Keras v3 ``.keras`` zip of the same family (``model.save("x.keras")``): its
    ``config.json`` is read as JSON and refused, on one line, if it holds a ``Lambda`` layer,
    a class that is not a Keras or edgecnn layer or a module to import
    (:func:`~edgecnn.models._safe_config.unsafe_config_entry`); nothing is deserialised. The
    arrays come from the zip's ``model.weights.h5`` with h5py, mapped onto the model by layer
    name (the config says which layer each group of the file holds).
  - a Keras v3 ``.weights.h5`` of the same family (``model.save_weights("x.weights.h5")``):
    the groups Keras names after each layer's class and position (``layers/conv2d_3/vars/0``),
    mapped by order onto the same walk of the model.

  No model is deserialised and nothing from the file runs.
- an edgecnn run folder: its ``train/weights.h5``, by layer name.

A Keras Applications file is mapped onto the edgecnn network by the order of its weight
tensors, shape by shape (edgecnn's builders build the same layers in the same order; a
squeeze-excite's two Keras convolutions are one edgecnn layer with the same four tensors);
ResNet's files, whose shortcut projection comes first in each block, are first put in the
model's order by name (``conv2_block1_1_conv`` -> ``conv2_block1_1``). Where edgecnn's
network computes another function than Keras' (ResNet v1.5 vs v1 and conv biases, the
stems' explicit padding, EfficientNet's and MobileNetV3's in-model rescaling) the family's
builder has ``keras_compatible=True``, which a Keras file selects (and says so).

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

# Layers after the global pooling in Keras Applications' files (their "top").
_KERAS_TOP = {"predictions", "conv_preds", "Logits", "Conv_2", "fc1", "fc2", "fc1000"}
# Dense layers after the global pooling in edgecnn's models.
_EDGECNN_TOP = {"classifier", "conv_head", "fc1", "fc2"}

# The first layer with weights in a Keras Applications file of each family: how a Keras
# file is told from one an edgecnn model wrote.
_KERAS_FIRST = {
    "MobileNet": "conv1",
    "MobileNetV2": "Conv1",
    "MobileNetV3Small": "Conv",
    "MobileNetV3Large": "Conv",
    "ResNet": "conv1_conv",
    "VGG": "block1_conv1",
    "DenseNet": "conv1/conv",
    "EfficientNet": "normalization",
}

# What keras_compatible=True changes, said when a Keras file selects it.
_COMPAT_NOTE = {
    "ResNet": "Keras' ResNet v1: stride on the first 1x1, conv biases, explicit stem padding",
    "DenseNet": "Keras' DenseNet: explicit stem padding, BatchNorm epsilon 1.001e-5",
    "EfficientNet": "Keras' in-model Rescaling(1/255) and Normalization; the model takes 0..255 pixels",
    "MobileNetV3Small": "Keras' in-model Rescaling to [-1, 1]; the model takes 0..255 pixels",
    "MobileNetV3Large": "Keras' in-model Rescaling to [-1, 1]; the model takes 0..255 pixels",
}

# VGG's and DenseNet's published hashes are literals inside tf_keras' functions (no table
# to import): (top, no top). tests/test_weights.py checks each against tf_keras' source.
_INLINE_HASHES = {
    "vgg16": ("64373286793e3c8b2b4e3219cbf3544b", "6d6bbae143d832006294945121d1f1fc"),
    "vgg19": ("cbe5617147190e668d6c5d5026f83318", "253f8cb515780f3b799900260a226db6"),
    "densenet121": ("9d60b8095a5708f2dcce2bca79d332c7", "30ee3e1110167f948a6b9946edeeb738"),
    "densenet169": ("d699b8f76981ab1b30698df4c175e90b", "b8c4d4c20dd625c148057b9ff1c1176b"),
    "densenet201": ("1ceb130c1ea1b78c3bf6114dbdfd8807", "c13680b51ded0fb44dff2d8f86ac8bb1"),
}

_V1_ALPHAS = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}
_V1_ROWS = (128, 160, 192, 224)
_V2_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
_V2_ROWS = (96, 128, 160, 192, 224)


def _family(app: str) -> str:
    for prefix in ("ResNet", "VGG", "DenseNet", "EfficientNet"):
        if app.startswith(prefix):
            return prefix
    return app


def _say(line: str) -> None:
    print(f"weights: {line}", file=sys.stderr)


# The input each family's published weights expect (see edgecnn.device.preprocess):
# tf_keras' preprocess_input "tf" mode, in-model rescaling, "caffe" and "torch" modes.
_CAFFE = {"scale": 1.0, "offset": 0.0, "channel_order": "BGR", "mean": [103.939, 116.779, 123.68]}
_CONVENTIONS = {
    "MobileNet": {"scale": 1.0 / 127.5, "offset": -1.0},
    "MobileNetV2": {"scale": 1.0 / 127.5, "offset": -1.0},
    "MobileNetV3Small": {"scale": 1.0, "offset": 0.0},
    "MobileNetV3Large": {"scale": 1.0, "offset": 0.0},
    "EfficientNet": {"scale": 1.0, "offset": 0.0},
    "ResNet": _CAFFE,
    "VGG": _CAFFE,
    "DenseNet": {"scale": 1.0 / 255.0, "offset": 0.0, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
}


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
    app = entry.pretrained
    if weights is None or str(weights).lower() in ("none", ""):
        return {}
    run = Path(weights) if Path(weights).is_dir() else _run_folder_of(weights) if Path(weights).is_file() else None
    if run is not None and (run / "preprocess.json").is_file():
        # An edgecnn run folder, or a file in one: the convention that run was trained with.
        import json

        spec = json.loads((run / "preprocess.json").read_text())
        keys = ("scale", "offset", "channel_order", "mean", "std")
        return {k: spec[k] for k in keys if spec.get(k) is not None}
    if not app:
        return {}
    if str(weights).lower() != "imagenet":
        path = Path(weights)
        if not path.is_file() or not _is_keras_file(_weighted_layer_names(path)[:1], app):
            return {}
    return dict(_CONVENTIONS.get(_family(app), _CONVENTIONS.get(app, {})))


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
    ``entry`` built with ``args``, as tf_keras' ``applications/*.py`` name them.

    MobileNet v1/v2 files have no published hash (tf_keras passes none).

    Example:
        >>> from edgecnn.models import model_info
        >>> imagenet_file(model_info("resnet50"), {}, False)[0]
        'resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5'
    """
    app = entry.pretrained
    if not app:
        raise UserError(f"{entry.name} has no published ImageNet weights")
    alpha = float(args.get("alpha", 1.0))
    shape = args.get("input_shape") or entry.input_shape
    rows = int(shape[0]) if shape and shape[0] else 224
    family = _family(app)
    if family == "MobileNet":
        from tf_keras.src.applications import mobilenet as m

        if alpha not in _V1_ALPHAS:
            raise UserError(f"Keras publishes MobileNet weights for alpha 0.25, 0.5, 0.75, 1.0; got alpha {alpha:g}")
        rows = rows if rows in _V1_ROWS else 224
        name = f"mobilenet_{_V1_ALPHAS[alpha]}_{rows}_tf{'' if include_top else '_no_top'}.h5"
        return name, m.BASE_WEIGHT_PATH + name, None
    if family == "MobileNetV2":
        from tf_keras.src.applications import mobilenet_v2 as m

        if alpha not in _V2_ALPHAS:
            raise UserError(
                f"Keras publishes MobileNetV2 weights for alpha {', '.join(map(str, _V2_ALPHAS))}; got alpha {alpha:g}"
            )
        rows = rows if rows in _V2_ROWS else 224
        name = f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{alpha}_{rows}{'' if include_top else '_no_top'}.h5"
        return name, m.BASE_WEIGHT_PATH + name, None
    if family.startswith("MobileNetV3"):
        from tf_keras.src.applications import mobilenet_v3 as m

        kind = "small" if app.endswith("Small") else "large"
        key = f"{kind}{'_minimalistic' if args.get('minimalistic') else ''}_224_{alpha}_float"
        if key not in m.WEIGHTS_HASHES:
            have = ", ".join(k.replace("_224_", " alpha ").replace("_float", "") for k in m.WEIGHTS_HASHES)
            raise UserError(f"Keras publishes no MobileNetV3 weights for {key}; it has: {have}")
        name = f"weights_mobilenet_v3_{key}{'' if include_top else '_no_top_v2'}.h5"
        return name, m.BASE_WEIGHT_PATH + name, m.WEIGHTS_HASHES[key][0 if include_top else 1]
    if alpha != 1.0:
        raise UserError(f"Keras publishes {app} weights for alpha 1 only; got alpha {alpha:g}")
    if family == "EfficientNet":
        from tf_keras.src.applications import efficientnet as m

        key = app[-2:].lower()
        name = f"efficientnet{key}{'' if include_top else '_notop'}.h5"
        return name, m.BASE_WEIGHTS_PATH + name, m.WEIGHTS_HASHES[key][0 if include_top else 1]
    if family == "ResNet":
        from tf_keras.src.applications import resnet as m

        key = app.lower()
        name = f"{key}_weights_tf_dim_ordering_tf_kernels{'' if include_top else '_notop'}.h5"
        return name, m.BASE_WEIGHTS_PATH + name, m.WEIGHTS_HASHES[key][0 if include_top else 1]
    key = app.lower()
    suffix = "" if include_top else "_notop"
    name = f"{key}_weights_tf_dim_ordering_tf_kernels{suffix}.h5"
    if family == "VGG":
        base = f"https://storage.googleapis.com/tensorflow/keras-applications/{key}/"
    else:
        from tf_keras.src.applications import densenet as m

        base = m.BASE_WEIGHTS_PATH
    return name, base + name, _INLINE_HASHES[key][0 if include_top else 1]


def fetch_imagenet(fname: str, url: str, file_hash: str | None) -> Path:
    """The published file ``fname``: from Keras' cache (its hash checked), else downloaded
    with ``keras.utils.get_file`` (with progress). Offline and not cached: a one-line
    :class:`UserError` naming the file, its URL and the folder to put it in."""
    from tf_keras.src.utils.data_utils import validate_file

    cache = keras_cache_dir()
    path = cache / fname
    if path.exists():
        if file_hash and not validate_file(str(path), file_hash):
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


def _fits(array: np.ndarray, var) -> bool:
    shape = tuple(var.shape)
    if array.shape == shape:
        return True
    # A 1x1 Conv2D kernel (1, 1, cin, cout) is the same as a Dense kernel (cin, cout).
    return array.size == int(np.prod(shape)) and [d for d in array.shape if d != 1] == [d for d in shape if d != 1]


def _resnet_order(layers_in_file, model):
    """Keras ResNet files list a block's shortcut projection first; edgecnn's models last.
    Put the file in the model's order by name (``convN_blockM_K_conv`` -> ``convN_blockM_K``)."""
    position = {layer.name: i for i, layer in enumerate(model.layers)}

    def edgecnn_name(name: str) -> str:
        return "classifier" if name == "predictions" else name.removesuffix("_conv")

    def key(item):
        return position.get(edgecnn_name(item[0]), len(position))

    return sorted(layers_in_file, key=key)


def _describe(layer: str, weight: str, shape) -> str:
    return f"{layer}/{weight.split('/')[-1].split(':')[0]} {tuple(shape)}"


def assign_keras_weights(model, layers_in_file, path, app: str | None = None) -> list[str]:
    """Set ``model``'s weights from a Keras Applications file's ``layers_in_file`` (see
    :func:`read_h5_weights`) by tensor order and shape; returns the names of the top layers
    left at their initialisation. Refuses (one line) a file whose body does not fit."""
    from edgecnn._tf import keras

    if app and _family(app) == "ResNet":
        layers_in_file = _resnet_order(layers_in_file, model)
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


def _is_keras_file(layers_in_file, app: str | None) -> bool:
    first = next((name for name, ws in layers_in_file if ws), "")
    # Keras numbers a layer name taken twice in one process (``normalization_1``).
    first = re.sub(r"_\d+$", "", first) if first.startswith("normalization") else first
    return bool(app) and first == _KERAS_FIRST.get(_family(app), _KERAS_FIRST.get(app))


def build_with_weights(entry, weights, kwargs: dict):
    """Build ``entry``'s model from ``kwargs`` and load ``weights`` (``"imagenet"`` or a
    path); see the module docstring. Lines saying what was done go to stderr."""
    include_top = kwargs.get("include_top", True)
    run_folder = False
    if isinstance(weights, str) and weights.lower() == "imagenet":
        # Another class count: the no-top file (the classifier is new either way; VGG's top
        # file is 500 MB); the layers between pooling and classifier start fresh too.
        top_file = include_top and int(kwargs.get("classes", entry.classes)) == entry.classes
        fname, url, file_hash = imagenet_file(entry, kwargs, top_file)
        path = fetch_imagenet(fname, url, file_hash)
    elif isinstance(weights, (str, os.PathLike)) and Path(weights).is_file():
        path = Path(weights)
    elif isinstance(weights, (str, os.PathLike)) and Path(weights).is_dir():
        path = run_weights(weights)
        run_folder = True
    else:
        raise UserError(
            f"unknown weights {weights!r}: expected none, 'imagenet', a run folder or the path of a weight file "
            "(.h5, .weights.h5, .keras)"
        )
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
    app = entry.pretrained
    keras_file = not run_folder and _is_keras_file(layers_in_file, app)
    args = dict(kwargs)
    compat = keras_file and "keras_compatible" in entry.arguments
    if compat:
        args.setdefault("keras_compatible", True)
        if weights == "imagenet" and "imagenet_rescaling" in entry.arguments:
            args.setdefault("imagenet_rescaling", True)
    model = entry.builder(**args)
    if keras_file:
        fresh = assign_keras_weights(model, layers_in_file, path, app)
    else:
        fresh = assign_by_name(model, layers_in_file, path)
    source = "Keras Applications file" if keras_file else "weight file"
    _say(f"{entry.name} from {source} {path}")
    if compat and args.get("keras_compatible"):
        _say(f"built with keras_compatible=True ({_COMPAT_NOTE.get(_family(app), _COMPAT_NOTE.get(app))})")
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
        keras_weights = Path(source).is_file() and _is_keras_file(_weighted_layer_names(source), entry.pretrained)
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


# --- Keras v3 files: .keras zips and .weights.h5 ---------------------------------------

# Budgets checked before a .keras zip is read: its config.json, and its model.weights.h5.
_MAX_CONFIG_BYTES = 64 << 20
_MAX_WEIGHTS_BYTES = 16 << 30


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
    from tf_keras.src.utils.generic_utils import to_snake_case

    return to_snake_case(cls_name)


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


def _v3_variables(model) -> list[tuple[str, object, list]]:
    """``[(group path, top-level layer, [variables])]``: where Keras v3's ``save_weights``
    puts each layer's own variables, found by the same walk (``saving_lib._save_state``)."""
    from tf_keras.src.saving import saving_lib

    out, visited = [], set()

    def visit(obj, path, top):
        if id(obj) in visited:
            return
        visited.add(id(obj))
        if isinstance(obj, keras.layers.Layer):
            own = list(obj._trainable_weights) + list(obj._non_trainable_weights)
            if own:
                out.append((path, top, own))
        for attr, child in saving_lib._walk_trackable(obj):
            if saving_lib._is_keras_trackable(child):
                visit(child, f"{path}/{attr}".lstrip("/"), top if top is not None else child)
            elif isinstance(child, (list, dict, tuple, set)):
                items = list(child.values()) if isinstance(child, dict) else list(child)
                items = [t for t in items if saving_lib._is_keras_trackable(t) and id(t) not in visited]
                for t, name in zip(items, _numbered(_snake(type(t).__name__) for t in items)):
                    visit(t, f"{path}/{attr}/{name}".lstrip("/"), top if top is not None else t)

    from edgecnn._tf import keras

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
