"""``feature_maps.png``: the outputs of chosen layers for one test image, from the run's
own ``.tflite`` files (float32 over int8).

The files are read with TFLite's ``experimental_preserve_all_tensors``; a Keras layer is
found by the converter's tensor names (:func:`edgecnn.tflite.debugger.short_layer_name`).
Each int8 map carries its error: the RMSE against the float map in percent of the float
map's range, and in int8 steps.

Example:
    >>> tensor_for_layer(["m/c1/BiasAdd;m/c1/Conv2D"], "c1")
    (0, 'c1')
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgecnn.errors import UserError, suggest
from edgecnn.report.draw._common import blank, draw_image, output_shape, pyplot, save_png

#: Channels shown per layer in the feature-map picture (the most active ones).
MAP_CHANNELS = 8


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


def spatial_layers(model) -> list:
    """The names of ``model``'s layers with a map output (4-D, more than 1x1), in order."""
    names = []
    for layer in model.layers:
        shape = output_shape(layer)
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
            shape = output_shape(model.get_layer(name))
            raise UserError(f"layer {name!r} has no feature maps (output {shape}); choose one with a map output"
                            + (suggest(name, spatial) or f", e.g. {', '.join(spatial[:4])}"))
    return list(names)


def plot_feature_maps(image: np.ndarray, spec: dict, caption: str, maps: dict, path: Path, int8_note: str) -> Path:
    """``feature_maps.png``: for each layer, its most active channels from the float32 file
    over the same channels from the int8 file (same colour scale per channel), the int8
    error in the row's label. ``maps``: ``{layer: {"float": outputs, "int8": outputs or None,
    "error": map_error(...) or None}}`` (outputs as :func:`tflite_layer_outputs` returns them)."""
    plt = pyplot()
    cols = 1 + MAP_CHANNELS
    rows = sum(2 if m["int8"] is not None else 1 for m in maps.values())
    fig = plt.figure(figsize=(cols * 1.45, rows * 1.6 + 0.8), layout="constrained")
    grid = fig.add_gridspec(rows, cols)
    draw_image(fig.add_subplot(grid[0 : min(2, rows), 0]), image, spec).set_title(caption, fontsize=8)
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
            ax = blank(fig.add_subplot(grid[r, 1 + j]))
            ax.imshow(f[..., ch], cmap="viridis", vmin=lo, vmax=hi, interpolation="nearest")
            ax.set_title(f"ch {ch}", fontsize=7)
            if j == 0:
                ax.set_ylabel(f"{label}\nfloat32\n{f.shape[0]}x{f.shape[1]}x{f.shape[2]}", fontsize=7)
            if q is None:
                continue
            ax = blank(fig.add_subplot(grid[r + 1, 1 + j]))
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
    return save_png(fig, path)


def _error_text(err: dict | None) -> str:
    if err is None:
        return "(shapes differ)"
    text = f"RMSE {100 * err['relative']:.1f}% of range" if err["relative"] else f"RMSE {err['rmse']:.3g}"
    return text + (f"\n= {err['steps']:.2f} steps" if err["steps"] else "")
