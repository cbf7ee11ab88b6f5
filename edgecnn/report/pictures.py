"""Pictures of what a trained run has learned: ``edgecnn show RUN``.

Four PNGs, written into ``<run>/show/`` and linked from the run's ``report.md`` (a
"Pictures" section, rewritten in place on every call):

- ``filters.png``: the first convolution's kernels beside classic hand-made filters built
  here with numpy, Sobel x/y (Sobel & Feldman 1968, at the learned kernel's size as
  OpenCV extends it) and even Gabor filters at 0, 45, 90 and 135 degrees (Daugman 1985,
  JOSA A 2(7)). Each learned kernel is captioned with the hand-made one it correlates
  with most: the first layers of CNNs learn edge and Gabor-like detectors (Krizhevsky et
  al. 2012; Zeiler & Fergus 2014, arXiv:1311.2901).
- ``feature_maps.png``: the outputs of chosen layers for one test image, computed by the
  run's own ``.tflite`` files (float32 over int8), read with TFLite's
  ``experimental_preserve_all_tensors``; a Keras layer is found by the converter's tensor
  names (:func:`edgecnn.tflite.debugger.short_layer_name`). Each int8 map carries its error:
  the RMSE against the float map in percent of the float map's range, and in int8 steps.
- ``grad_cam.png``: Grad-CAM (Selvaraju et al. 2017, arXiv:1610.02391) of the float
  Keras model for a few test images, with their true and predicted labels.
- ``confusion.png``: the float32 file's confusion matrix on the test split (from
  ``metrics.json``), with the class names.

matplotlib draws with its Agg backend (no display needed) and every PNG is written
atomically (:func:`edgecnn._io.atomic_path`).

Example:
    >>> pictures = show_run("runs/lenet5-32px")  # doctest: +SKIP
    >>> sorted(pictures)                         # doctest: +SKIP
    ['confusion', 'feature_maps', 'filters', 'grad_cam']
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Callable

import numpy as np

from edgecnn.errors import UserError, suggest

#: The PNGs :func:`show_run` writes, in report order: file stem -> caption in report.md.
PICTURES = {
    "filters": "First-layer filters beside hand-made ones",
    "feature_maps": "Feature maps, float32 and int8",
    "grad_cam": "Grad-CAM of the float model",
    "confusion": "Confusion matrix",
}
#: The heading of the section :func:`link_pictures` keeps in report.md.
SECTION = "## Pictures"
#: Channels shown per layer in the feature-map picture (the most active ones).
MAP_CHANNELS = 8
#: Learned kernels shown at most in the filter picture.
MAX_FILTERS = 32
DPI = 110


# --- hand-made filters ------------------------------------------------------------------


def _binomial(n: int) -> np.ndarray:
    row = np.ones(1)
    for _ in range(n - 1):
        row = np.convolve(row, [1.0, 1.0])
    return row


def sobel_kernels(size: int = 3) -> tuple:
    """Sobel x and y at ``size`` x ``size``: binomial smoothing times a binomial derivative
    (the 3x3 classic, and OpenCV's extension to 5x5, 7x7...).

    Example:
        >>> sx, sy = sobel_kernels(3)
        >>> sx.astype(int).tolist()
        [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
        >>> bool((sy == sx.T).all())
        True
    """
    size = max(2, int(size))
    smooth = _binomial(size)
    derivative = np.convolve(_binomial(size - 1), [-1.0, 1.0])
    sx = np.outer(smooth, derivative)
    return sx, sx.T.copy()


def gabor_kernel(size: int, theta_degrees: float, wavelength: float | None = None, sigma: float | None = None,
                 aspect: float = 0.5) -> np.ndarray:
    """An even (cosine) Gabor filter of ``size`` x ``size`` whose stripes run across the
    direction ``theta_degrees`` (0: vertical stripes, x varies), mean removed so that a flat
    patch gives zero, as an edge filter does. ``wavelength`` defaults to ``size / 2``
    (at least 2 pixels) and ``sigma`` to ``0.56 * wavelength`` (a one-octave bandwidth).

    Example:
        >>> g = gabor_kernel(7, 0)
        >>> g.shape, abs(float(g.sum())) < 1e-9
        ((7, 7), True)
        >>> bool(np.allclose(gabor_kernel(7, 90), g.T))
        True
    """
    size = max(2, int(size))
    wavelength = float(wavelength or max(2.0, size / 2))
    sigma = float(sigma or 0.56 * wavelength)
    half = (size - 1) / 2
    y, x = np.mgrid[-half : half + 1 : 1.0, -half : half + 1 : 1.0][:, :size, :size]
    t = math.radians(theta_degrees)
    xr = x * math.cos(t) + y * math.sin(t)
    yr = -x * math.sin(t) + y * math.cos(t)
    g = np.exp(-(xr**2 + (aspect * yr) ** 2) / (2 * sigma**2)) * np.cos(2 * math.pi * xr / wavelength)
    return g - g.mean()


def classic_filters(size: int = 3) -> dict:
    """The hand-made filters the learned ones are shown beside, all at ``size`` x ``size``:
    ``{"Sobel x", "Sobel y", "Gabor 0°", "Gabor 45°", "Gabor 90°", "Gabor 135°"}``.

    Example:
        >>> list(classic_filters(5))
        ['Sobel x', 'Sobel y', 'Gabor 0°', 'Gabor 45°', 'Gabor 90°', 'Gabor 135°']
    """
    sx, sy = sobel_kernels(size)
    bank = {"Sobel x": sx, "Sobel y": sy}
    for angle in (0, 45, 90, 135):
        bank[f"Gabor {angle}°"] = gabor_kernel(size, angle)
    return bank


def closest_filter(kernel: np.ndarray, bank: dict) -> tuple:
    """The hand-made filter of ``bank`` that ``kernel`` (2-D, same size) correlates with
    most, and the absolute correlation (sign ignored: a flipped edge detector is one too).

    Example:
        >>> closest_filter(-2 * sobel_kernels(3)[1], classic_filters(3))
        ('Sobel y', 1.0)
    """
    a = np.asarray(kernel, np.float64).ravel()
    a = a - a.mean()
    best, score = "", 0.0
    for name, f in bank.items():
        b = np.asarray(f, np.float64).ravel()
        b = b - b.mean()
        den = float(np.linalg.norm(a) * np.linalg.norm(b))
        r = abs(float(a @ b)) / den if den else 0.0
        if r > score + 1e-12:
            best, score = name, r
    return best, round(score, 6)


# --- int8 error, tensor names -----------------------------------------------------------


def map_error(float_map: np.ndarray, int8_map: np.ndarray, scale: float | None = None) -> dict:
    """How far an int8 feature map (dequantized) is from the float one: ``rmse``,
    ``relative`` (RMSE over the float map's range, max - min) and ``steps`` (RMSE in
    quantization steps, ``rmse / scale``; about 0.29 is rounding alone).

    Example:
        >>> e = map_error(np.array([0.0, 1.0, 2.0, 4.0]), np.array([0.0, 1.0, 2.0, 3.0]), scale=0.5)
        >>> e["rmse"], e["relative"], e["steps"]
        (0.5, 0.125, 1.0)
    """
    f = np.asarray(float_map, np.float64)
    q = np.asarray(int8_map, np.float64)
    rmse = float(np.sqrt(np.mean((f - q) ** 2)))
    span = float(f.max() - f.min()) if f.size else 0.0
    return {
        "rmse": rmse,
        "relative": rmse / span if span > 0 else None,
        "steps": rmse / scale if scale else None,
    }


def layers_of_tensor(name: str, output_name: str | None = None) -> list:
    """The Keras layers a converted tensor's name mentions, first the one that wrote it: a
    fused op names every layer it computes (``'m/conv1_relu/Relu6;m/conv1_bn/...;m/conv1/Conv2D'``).

    Example:
        >>> layers_of_tensor("m/conv1_relu/Relu6;m/conv1_bn/FusedBatchNormV3;m/conv1/Conv2D")
        ['conv1_relu', 'conv1_bn', 'conv1']
    """
    from edgecnn.tflite.debugger import short_layer_name

    out = []
    for part in name.split(";"):
        layer = short_layer_name(part, output_name)
        if layer not in out:
            out.append(layer)
    return out


def tensor_for_layer(names: list, layer: str, output_name: str | None = None) -> tuple:
    """Which of the op outputs ``names`` (in execution order) holds ``layer``'s output:
    ``(position, written_by)``, ``written_by`` the layer the tensor is named after (another
    one where the converter fused ``layer`` into it, e.g. a convolution into its ReLU), or
    ``(None, None)``. The last tensor named after the layer wins (a layer that became
    several ops), else the first that mentions it among its fused layers.

    Example:
        >>> names = ["m/c1/BiasAdd;m/c1/Conv2D", "m/c1_tanh/Tanh", "m/conv2_relu/Relu;m/conv2_bn/x;m/conv2/Conv2D"]
        >>> tensor_for_layer(names, "c1"), tensor_for_layer(names, "conv2"), tensor_for_layer(names, "c9")
        ((0, 'c1'), (2, 'conv2_relu'), (None, None))
    """
    exact = [i for i, n in enumerate(names) if layers_of_tensor(n, output_name)[:1] == [layer]]
    if exact:
        return exact[-1], layer
    for i, n in enumerate(names):
        mentioned = layers_of_tensor(n, output_name)
        if layer in mentioned:
            return i, mentioned[0]
    return None, None


def tflite_layer_outputs(path, image: np.ndarray, layers: list, output_name: str | None = None) -> dict:
    """Run one float ``image`` (HWC, normalized) through the ``.tflite`` at ``path`` with every
    intermediate tensor kept, and return ``{layer: {"map", "scale", "tensor", "written_by"}}``
    (``map`` dequantized to float, ``scale`` the int8 step or ``None``; a layer the file
    does not hold is left out).

    Example:
        >>> outs = tflite_layer_outputs("runs/lenet5-32px/model_int8.tflite", x[0], ["c1"])  # doctest: +SKIP
        >>> outs["c1"]["map"].shape, outs["c1"]["scale"]                                     # doctest: +SKIP
        ((28, 28, 6), 0.011)
    """
    from edgecnn.device.evaluate import dequantize_output, quantize_input
    from edgecnn.device.runtime import load_interpreter

    interpreter, _, _ = load_interpreter(path, preserve_all_tensors=True)
    inp = interpreter.get_input_details()[0]
    interpreter.set_tensor(inp["index"], quantize_input(np.asarray(image, np.float32)[None], inp))
    interpreter.invoke()
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    produced = [i for op in interpreter._get_ops_details() for i in op["outputs"] if i in details]
    names = [details[i]["name"] for i in produced]
    found = {}
    for layer in layers:
        pos, written_by = tensor_for_layer(names, layer, output_name)
        if pos is None:
            continue
        d = details[produced[pos]]
        value = dequantize_output(interpreter.get_tensor(d["index"]), d)[0]
        scale = float(d["quantization"][0]) if d["dtype"] in (np.int8, np.uint8, np.int16) else None
        found[layer] = {"map": value, "scale": scale, "tensor": d["name"], "written_by": written_by}
    return found


# --- Grad-CAM ---------------------------------------------------------------------------


def last_spatial_layer(model) -> str:
    """The last layer whose output is still a map (4-D, more than 1x1): where Grad-CAM looks."""
    name = None
    for layer in model.layers:
        shape = _output_shape(layer)
        if shape is not None and len(shape) == 4 and (shape[1] or 0) * (shape[2] or 0) > 1:
            name = layer.name
    if name is None:
        raise UserError(f"{model.name} has no layer with a spatial output: no Grad-CAM or feature maps to show")
    return name


def grad_cam(model, images: np.ndarray, layer: str | None = None) -> tuple:
    """Grad-CAM heatmaps of ``model`` for ``images`` (NHWC, normalized), for the class it predicts.

    The predicted class's score before the softmax (the input of a final softmax layer, else
    the log-probability) is differentiated with respect to ``layer``'s output (default: the
    last spatial one); each channel is weighted by its mean gradient and the weighted sum,
    after a ReLU, is scaled to [0, 1]. Returns ``(cams, probabilities, layer)``, ``cams`` of
    shape ``(N, h, w)`` at the layer's resolution.

    Example:
        >>> cams, probs, layer = grad_cam(model, x_test[:4])  # doctest: +SKIP
    """
    from edgecnn._tf import keras, tf

    layer = layer or last_spatial_layer(model)
    last = model.layers[-1]
    softmax_layer = isinstance(last, keras.layers.Activation) and getattr(last.activation, "__name__", "") == "softmax"
    scores_out = last.input if softmax_layer else model.outputs[0]
    probe = keras.Model(model.inputs, [model.get_layer(layer).output, scores_out, model.outputs[0]])
    x = tf.convert_to_tensor(np.asarray(images, np.float32))
    with tf.GradientTape() as tape:
        fmap, scores, probs = probe(x, training=False)
        if not softmax_layer:
            scores = tf.math.log(tf.maximum(scores, 1e-12))
        chosen = tf.gather(scores, tf.argmax(probs, axis=-1), axis=1, batch_dims=1)
    grads = tape.gradient(chosen, fmap)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * fmap, axis=-1)).numpy()
    peak = cam.reshape(len(cam), -1).max(axis=1).reshape(-1, 1, 1)
    cam = np.where(peak > 0, cam / np.where(peak > 0, peak, 1), 0.0)
    return cam, probs.numpy(), layer


# --- the run ----------------------------------------------------------------------------


def denormalize(x: np.ndarray, spec: dict) -> np.ndarray:
    """The model's float input back to ``uint8`` pixels for display: the inverse of
    :func:`edgecnn.device.preprocess.normalize` for ``spec`` (a ``preprocess.json``).

    Example:
        >>> denormalize(np.array([[-1.0, 0.2, 1.0]]), {"scale": 2 / 255, "offset": -1.0}).tolist()
        [[0, 153, 255]]
    """
    x = np.asarray(x, np.float32)
    if spec.get("std") is not None:
        x = x * np.asarray(spec["std"], np.float32)
    if spec.get("mean") is not None:
        x = x + np.asarray(spec["mean"], np.float32)
    x = (x - float(spec.get("offset", 0.0))) / float(spec.get("scale", 1.0))
    if str(spec.get("channel_order", "RGB")).upper() == "BGR":
        x = x[..., ::-1]
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def _read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot be read ({str(exc).splitlines()[0][:120]}); {what}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: not a JSON object; {what}")
    return data


def check_run(run) -> dict:
    """What :func:`show_run` needs from a run folder, checked before any work: the folder,
    ``config.json``, ``metrics.json`` (a finished run), ``preprocess.json`` and the float32
    row's file. Returns ``{"run", "metrics", "preprocess", "rows"}``, ``rows`` by
    variant. Raises :class:`UserError` (one line) on anything missing.

    Example:
        >>> check_run("no/such/run")
        Traceback (most recent call last):
        ...
        edgecnn.errors.UserError: run folder no/such/run does not exist
    """
    run = Path(run)
    if not run.exists():
        raise UserError(f"run folder {run} does not exist")
    if not run.is_dir():
        raise UserError(f"{run} is not a folder; edgecnn show takes a run folder (runs/<name>)")
    if not (run / "config.json").is_file():
        raise UserError(f"{run} holds no config.json: not a run folder")
    if not (run / "metrics.json").is_file():
        raise UserError(f"{run} holds no metrics.json: the run did not finish (run it again to complete it)")
    metrics = _read_json(run / "metrics.json", "run the pipeline again to rewrite it")
    _read_json(run / "config.json", "not a run folder")  # checked before any work; load_run reads it
    spec = _read_json(run / "preprocess.json", "run the pipeline again") if (run / "preprocess.json").is_file() else {}
    rows = {r.get("variant"): r for r in metrics.get("rows") or [] if isinstance(r, dict)}
    if "float32" not in rows:
        raise UserError(f"{run / 'metrics.json'} has no float32 row: nothing to show")
    for variant in ("float32", "int8"):
        listed = run / str(rows.get(variant, {}).get("file"))
        if variant in rows and not listed.is_file():
            raise UserError(f"{listed} is missing (listed in metrics.json's {variant} row)")
    return {"run": run, "metrics": metrics, "preprocess": spec, "rows": rows}


def _output_shape(layer):
    try:
        shape = layer.output_shape
    except (AttributeError, RuntimeError):
        return None
    return shape if isinstance(shape, tuple) else None


def spatial_layers(model) -> list:
    """The names of ``model``'s layers with a map output (4-D, more than 1x1), in order."""
    names = []
    for layer in model.layers:
        shape = _output_shape(layer)
        if shape is not None and len(shape) == 4 and (shape[1] or 0) * (shape[2] or 0) > 1:
            names.append(layer.name)
    return names


def default_layers(model) -> list:
    """Two or three convolutions spread through ``model``: the first, one in the middle and
    the last one with a map output (fewer when it has fewer).

    Example:
        >>> default_layers(create_model("lenet5"))  # doctest: +SKIP
        ['c1', 'c3']
    """
    from edgecnn._tf import keras

    conv_types = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)
    spatial = set(spatial_layers(model))
    convs = [layer.name for layer in model.layers if isinstance(layer, conv_types) and layer.name in spatial]
    if not convs:
        convs = list(spatial)
    if not convs:
        return []
    picks = [convs[0], convs[len(convs) // 2], convs[-1]]
    return list(dict.fromkeys(picks))


def check_layers(model, names: list) -> list:
    """``names`` checked against ``model``: an unknown one, or one without a map output, is
    a :class:`UserError` naming the close matches."""
    known = [layer.name for layer in model.layers]
    spatial = spatial_layers(model)
    for name in names:
        if name not in known:
            more = ", ..." if len(spatial) > 8 else ""
            hint = suggest(name, known) or f" (layers with maps: {', '.join(spatial[:8])}{more})"
            raise UserError(f"no layer {name!r} in {model.name}{hint}")
        if name not in spatial:
            shape = _output_shape(model.get_layer(name))
            raise UserError(f"layer {name!r} has no feature maps (output {shape}); choose one with a map output"
                            + (suggest(name, spatial) or f", e.g. {', '.join(spatial[:4])}"))
    return list(names)


def first_conv(model):
    """The first ``Conv2D`` of ``model`` (the learned filters), or ``None``."""
    from edgecnn._tf import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D) and not isinstance(layer, keras.layers.Conv2DTranspose):
            return layer
    return None


def pick_images(data, count: int, seed: int) -> tuple:
    """``count`` test images drawn with ``seed``: ``(x, y, positions)``, ``x`` normalized.

    A streamed split (:class:`edgecnn.data.stream.LazySplit`) is read in order up to the last
    chosen position only."""
    split = data.normalized("test")
    labels = np.asarray(data.y["test"])
    n = len(labels)
    if n == 0:
        raise UserError("the run has no test images (data.test_split 0): nothing to show Grad-CAM or feature maps on")
    rng = np.random.default_rng(seed)
    positions = np.sort(rng.choice(n, size=min(int(count), n), replace=False))
    if isinstance(split, np.ndarray):
        return split[positions].astype(np.float32), labels[positions], positions
    wanted, xs, ys, kept, i = set(int(p) for p in positions), [], [], [], 0
    for xb, yb in split.batches(64):
        for x, y in zip(xb, yb):
            if i in wanted:
                xs.append(x)
                ys.append(y)
                kept.append(i)
            i += 1
        if i > positions[-1]:
            break
    if not xs:
        raise UserError("none of the chosen test images could be read")
    return np.stack(xs).astype(np.float32), np.asarray(ys), np.asarray(kept)


# --- pictures ---------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    from edgecnn._io import atomic_path

    plt = _pyplot()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    plt.close(fig)
    return path


def _kernel_image(kernel: np.ndarray) -> tuple:
    """A kernel (h, w, c) as something imshow draws, zero at mid-grey: RGB for 3 channels,
    else the sum over input channels in grey (its response to a grey image)."""
    peak = float(np.abs(kernel).max()) or 1.0
    if kernel.shape[-1] == 3:
        return np.clip(0.5 + 0.5 * kernel / peak, 0, 1), {}
    grey = kernel.sum(axis=-1)
    peak = float(np.abs(grey).max()) or 1.0
    return grey, {"cmap": "gray", "vmin": -peak, "vmax": peak}


def plot_filters(layer, path: Path) -> Path:
    """``filters.png``: the kernels of ``layer`` (a Conv2D) in rows of 8, each captioned with
    its closest hand-made filter, then the hand-made filters at the same size."""
    plt = _pyplot()
    kernel = np.asarray(layer.get_weights()[0], np.float32)  # (kh, kw, in, out)
    kh, kw, cin, cout = kernel.shape
    shown = min(cout, MAX_FILTERS)
    size = max(3, kh)
    bank = classic_filters(size)
    cols = max(len(bank), min(8, shown))
    learned_rows = math.ceil(shown / cols)
    fig, axes = plt.subplots(learned_rows + 1, cols, figsize=(max(cols * 1.5, 10.0), (learned_rows + 1) * 1.75 + 1.1),
                             squeeze=False, layout="constrained")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_visible(False)
    for i in range(shown):
        ax = axes[i // cols][i % cols]
        ax.set_visible(True)
        k = kernel[..., i]
        img, kw_args = _kernel_image(k)
        ax.imshow(img, interpolation="nearest", **kw_args)
        grey = k.sum(axis=-1)
        name, r = closest_filter(grey, bank) if (kh, kw) == (size, size) else ("", 0.0)
        ax.set_title(f"#{i}" + (f"\n~{name} |r| {r:.2f}" if name else ""), fontsize=7)
    for j, (name, f) in enumerate(bank.items()):
        ax = axes[learned_rows][j]
        ax.set_visible(True)
        peak = float(np.abs(f).max()) or 1.0
        ax.imshow(f, cmap="gray", vmin=-peak, vmax=peak, interpolation="nearest")
        ax.set_title(name, fontsize=8)
        for side in ax.spines.values():
            side.set_edgecolor("tab:blue")
            side.set_linewidth(2)
    colour = "in colour (RGB, mid-grey = 0)" if cin == 3 else "in grey (summed over input channels, mid-grey = 0)"
    more = f", first {shown} of {cout}" if shown < cout else ""
    fig.suptitle(
        f"Learned: first convolution '{layer.name}', {cout} kernels {kh}x{kw}x{cin}{more}, {colour};\n"
        "each titled with the hand-made filter it correlates with most (|r| 1 = the same up to sign and scale)\n"
        f"Hand-made (blue frames, bottom row): Sobel x/y and even Gabor filters at 4 orientations, {size}x{size}",
        fontsize=9,
    )
    return _save(fig, path)


def plot_feature_maps(image: np.ndarray, spec: dict, caption: str, maps: dict, path: Path, int8_note: str) -> Path:
    """``feature_maps.png``: for each layer, its most active channels from the float32 file
    over the same channels from the int8 file (same colour scale per channel), the int8
    error in the row's label. ``maps``: ``{layer: {"float": outputs, "int8": outputs or None,
    "error": map_error(...) or None}}`` (outputs as :func:`tflite_layer_outputs` returns them)."""
    plt = _pyplot()
    cols = 1 + MAP_CHANNELS
    rows = sum(2 if m["int8"] is not None else 1 for m in maps.values())
    fig = plt.figure(figsize=(cols * 1.45, rows * 1.6 + 0.8), layout="constrained")
    grid = fig.add_gridspec(rows, cols)
    _draw_image(fig.add_subplot(grid[0 : min(2, rows), 0]), image, spec).set_title(caption, fontsize=8)
    r = 0
    for layer, m in maps.items():
        f = m["float"]["map"]
        spread = f.reshape(-1, f.shape[-1]).std(axis=0)
        order = [int(c) for c in np.argsort(-spread)[:MAP_CHANNELS] if spread[c] > 0] or [int(np.argmax(spread))]
        fused = m["float"]["written_by"]
        label = layer + (f"\n(in {fused})" if fused != layer else "")
        q = m["int8"]["map"] if m["int8"] is not None else None
        for j, ch in enumerate(order):
            lo, hi = float(f[..., ch].min()), float(f[..., ch].max())
            hi = hi if hi > lo else lo + 1e-6
            ax = _blank(fig.add_subplot(grid[r, 1 + j]))
            ax.imshow(f[..., ch], cmap="viridis", vmin=lo, vmax=hi, interpolation="nearest")
            ax.set_title(f"ch {ch}", fontsize=7)
            if j == 0:
                ax.set_ylabel(f"{label}\nfloat32\n{f.shape[0]}x{f.shape[1]}x{f.shape[2]}", fontsize=7)
            if q is None:
                continue
            ax = _blank(fig.add_subplot(grid[r + 1, 1 + j]))
            ax.imshow(q[..., ch], cmap="viridis", vmin=lo, vmax=hi, interpolation="nearest")
            if j == 0:
                ax.set_ylabel("int8\n" + _error_text(m.get("error")), fontsize=7, color="tab:red")
        r += 2 if q is not None else 1
    fig.suptitle(
        "Feature maps computed by the .tflite files (most active channels, one colour scale per channel); "
        + int8_note + "\nint8 error: RMSE of the whole layer against float32, accumulated from the input, "
        "in % of the float map's range and in int8 steps (~0.29 is rounding alone)",
        fontsize=9,
    )
    return _save(fig, path)


def _error_text(err: dict | None) -> str:
    if err is None:
        return "(shapes differ)"
    text = f"RMSE {100 * err['relative']:.1f}% of range" if err["relative"] else f"RMSE {err['rmse']:.3g}"
    return text + (f"\n= {err['steps']:.2f} steps" if err["steps"] else "")


def _blank(ax):
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


def _draw_image(ax, image: np.ndarray, spec: dict):
    ax.set_visible(True)
    _blank(ax)
    pixels = denormalize(image, spec)
    if pixels.shape[-1] == 1:
        ax.imshow(pixels[..., 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    else:
        ax.imshow(pixels)
    return ax


def plot_grad_cam(images: np.ndarray, spec: dict, cams: np.ndarray, probs: np.ndarray, labels: np.ndarray,
                  names: list, layer: str, path: Path) -> Path:
    """``grad_cam.png``: each test image above its Grad-CAM heatmap, with the true and the
    predicted label (green when right, red when wrong)."""
    plt = _pyplot()
    n = len(images)
    cols = min(n, 6)
    groups = math.ceil(n / cols)
    fig, axes = plt.subplots(2 * groups, cols, figsize=(max(cols, 3) * 2.1, groups * 4.4 + 0.6), squeeze=False,
                             layout="constrained")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_visible(False)
    h, w = images.shape[1:3]
    for i in range(n):
        top, bottom = axes[2 * (i // cols)][i % cols], axes[2 * (i // cols) + 1][i % cols]
        pred = int(np.argmax(probs[i]))
        true = int(labels[i])
        _draw_image(top, images[i], spec)
        top.set_title(f"true: {_name(names, true)}", fontsize=8)
        _draw_image(bottom, images[i], spec)
        bottom.imshow(cams[i], cmap="jet", alpha=0.45, extent=(-0.5, w - 0.5, h - 0.5, -0.5),
                      interpolation="bilinear", vmin=0, vmax=1)
        bottom.set_title(f"pred: {_name(names, pred)} ({100 * float(probs[i][pred]):.0f}%)", fontsize=8,
                         color="tab:green" if pred == true else "tab:red")
    fig.suptitle(f"Grad-CAM of the float Keras model at layer '{layer}' ({cams.shape[1]}x{cams.shape[2]}): "
                 "where the predicted class's evidence lies (red = most)", fontsize=9)
    return _save(fig, path)


def _name(names: list, index: int) -> str:
    return str(names[index]) if 0 <= index < len(names) else str(index)


def plot_confusion(confusion, names: list, title: str, path: Path) -> Path:
    """``confusion.png``: counts, coloured by the share of each true class (row)."""
    plt = _pyplot()
    m = np.asarray(confusion, np.int64)
    k = len(m)
    names = [_name(names, i) for i in range(k)]
    rows = m.sum(axis=1, keepdims=True)
    share = m / np.where(rows > 0, rows, 1)
    side = min(14.0, max(4.5, 0.45 * k + 2.5))
    fig, ax = plt.subplots(figsize=(side + 1.0, side), layout="constrained")
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    if k <= 30:
        for i in range(k):
            for j in range(k):
                if m[i, j]:
                    ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=8 if k <= 15 else 6,
                            color="white" if share[i, j] > 0.6 else "black")
        ax.set_xticks(range(k))
        ax.set_yticks(range(k))
        ax.set_xticklabels(names, rotation=45 if max(len(s) for s in names) > 3 else 0, ha="right", fontsize=8)
        ax.set_yticklabels(names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    return _save(fig, path)


# --- report.md --------------------------------------------------------------------------


def pictures_section(links: dict) -> str:
    """The "Pictures" section of report.md: ``links`` maps captions to relative paths.

    Example:
        >>> print(pictures_section({"Confusion matrix": "show/confusion.png"}))
        ## Pictures
        <BLANKLINE>
        Drawn by `edgecnn show` from this run's files.
        <BLANKLINE>
        ### Confusion matrix
        <BLANKLINE>
        ![Confusion matrix](show/confusion.png)
        <BLANKLINE>
    """
    lines = [SECTION, "", "Drawn by `edgecnn show` from this run's files.", ""]
    for caption, link in links.items():
        lines += [f"### {caption}", "", f"![{caption}]({link})", ""]
    return "\n".join(lines)


def with_pictures(text: str, links: dict) -> str:
    """``text`` (a report.md) with its "Pictures" section replaced by one for ``links``, or
    that section appended: running it twice gives the same text.

    Example:
        >>> once = with_pictures("# run\\n\\n## Ops\\n\\n- x\\n", {"A": "show/a.png"})
        >>> with_pictures(once, {"A": "show/a.png"}) == once
        True
        >>> once.count("## Pictures"), once.index("## Ops") < once.index("## Pictures")
        (1, True)
    """
    lines = text.rstrip("\n").split("\n") if text.strip() else []
    if SECTION in lines:
        start = lines.index(SECTION)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        lines = lines[:start] + lines[end:]
    while lines and not lines[-1].strip():
        lines.pop()
    body = "\n".join(lines)
    return (body + "\n\n" if body else "") + pictures_section(links).rstrip("\n") + "\n"


def link_pictures(run: Path, paths: dict) -> Path:
    """Rewrite ``<run>/report.md`` with a "Pictures" section linking ``paths``
    (``{stem: png}``, in :data:`PICTURES` order); the rest of the report is kept."""
    from edgecnn._io import write_text

    report = run / "report.md"
    text = report.read_text() if report.is_file() else f"# {run.name}\n"
    links = {}
    for stem, png in paths.items():
        links[PICTURES[stem]] = Path(os.path.relpath(png, run)).as_posix()
    write_text(report, with_pictures(text, links))
    return report


def show_run(run, out=None, layers: list | None = None, images: int = 4, seed: int = 0,
             echo: Callable = print) -> dict:
    """Write the four pictures of the run folder ``run`` into ``out`` (default ``<run>/show``)
    and link them from ``<run>/report.md``; returns ``{stem: path}`` (see the module docstring).

    ``layers``: the Keras layers whose feature maps are shown (default
    :func:`default_layers`); ``images``: how many test images Grad-CAM draws; ``seed``: which.
    Any mistake (no such folder, an unfinished run, an unknown layer) is a :class:`UserError`.
    """
    from edgecnn._io import run_lock

    found = check_run(run)
    run = found["run"]
    out = Path(out) if out is not None else run / "show"
    if images < 1:
        raise UserError(f"images must be at least 1, got {images}")
    with run_lock(run, "edgecnn show"):
        return _show(found, out, layers, images, seed, echo)


def _show(found: dict, out: Path, layers, images: int, seed: int, echo: Callable) -> dict:
    from edgecnn.report.run import load_run

    run, rows, spec = found["run"], found["rows"], found["preprocess"]
    echo(f"[1/5] loading the model and the test split of {run}")
    _, data, model = load_run(run)  # the same reading of a finished run as eval --explain
    names = list(spec.get("class_names") or data.class_names)
    layers = check_layers(model, layers) if layers else default_layers(model)
    x, y, positions = pick_images(data, images, seed)
    paths = {}

    echo("[2/5] filters: the first convolution beside Sobel and Gabor filters")
    conv = first_conv(model)
    if conv is None:
        echo("      no Conv2D in the model: no filter picture")
    else:
        paths["filters"] = plot_filters(conv, out / "filters.png")

    echo(f"[3/5] feature maps of {', '.join(layers) or 'no layer'} from the .tflite files (one test image)")
    if layers:
        output_name = model.output_names[0] if len(model.outputs) == 1 else None
        float_file = run / rows["float32"]["file"]
        int8_file = run / rows["int8"]["file"] if "int8" in rows else None
        floats = tflite_layer_outputs(float_file, x[0], layers, output_name)
        missing = [name for name in layers if name not in floats]
        if missing:
            raise UserError(f"{float_file.name} holds no tensor for layer(s) {', '.join(missing)} (the converter "
                            "folded them away); choose another --layers")
        int8s = tflite_layer_outputs(int8_file, x[0], layers, output_name) if int8_file else {}
        maps = {name: {"float": floats[name], "int8": int8s.get(name), "error": None} for name in layers}
        for m in maps.values():
            if m["int8"] is not None and m["int8"]["map"].shape == m["float"]["map"].shape:
                m["error"] = map_error(m["float"]["map"], m["int8"]["map"], m["int8"]["scale"])
        note = "float32 over int8" if int8_file else "this run has no int8 file: float32 only"
        caption = f"input: test #{int(positions[0])}\ntrue: {_name(names, int(y[0]))}"
        paths["feature_maps"] = plot_feature_maps(x[0], spec, caption, maps, out / "feature_maps.png", note)
        for name, m in maps.items():
            if m["error"] and m["error"]["relative"] is not None:
                echo(f"      {name}: int8 RMSE {100 * m['error']['relative']:.1f}% of the float range"
                     + (f" ({m['error']['steps']:.2f} steps)" if m["error"]["steps"] else ""))

    echo(f"[4/5] Grad-CAM of the float model on {len(x)} test image(s)")
    cams, probs, cam_layer = grad_cam(model, x)
    paths["grad_cam"] = plot_grad_cam(x, spec, cams, probs, y, names, cam_layer, out / "grad_cam.png")

    echo("[5/5] confusion matrix of the float32 file")
    row = rows["float32"]
    confusion = row.get("confusion")
    if not confusion:
        from edgecnn.device.evaluate import evaluate_tflite

        echo("      not in metrics.json: evaluating the float32 file on the test split")
        confusion = evaluate_tflite(run / row["file"], data.normalized("test"), data.y["test"])["confusion"]
    acc = row.get("tflite_accuracy")
    title = (f"Confusion matrix: {row['file']} on the test split"
             + (f" (top-1 {100 * acc:.1f}%)" if isinstance(acc, (int, float)) else "") + "\nrows: true class; "
             "columns: predicted")
    paths["confusion"] = plot_confusion(confusion, names, title, out / "confusion.png")

    ordered = {stem: paths[stem] for stem in PICTURES if stem in paths}
    report = link_pictures(run, ordered)
    echo(f"pictures: {out}  (linked from {report})")
    return ordered
