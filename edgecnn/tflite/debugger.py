"""Why int8 loses accuracy, layer by layer, and the way out: keep the worst layers in float.

:class:`Int8Debug` runs TFLite's ``QuantizationDebugger`` (``tf.lite.experimental``; the
method of TensorFlow's "Inspecting quantization errors with the quantization debugger"
guide) on the int8 conversion of a Keras model: the converter calibrates once, then each
quantized op's output is compared with its float result on validation images
(``NumericVerify``). A layer's error is reported as ``rmse/scale``, the root-mean-square
difference in units of the layer's quantization step (about 0.29, i.e. 1/sqrt(12), for
pure rounding error; several steps means the int8 range does not suit the layer), and
the mean error (a bias that accumulates through the network). Why the TFLite debugger and
not ai-edge-quantizer: it ships with TensorFlow 2.21 (nothing to install), it debugs the
same converter that writes edgecnn's int8 files, and its ``denylisted_nodes`` option
produces the mixed file from the same calibration.

:func:`float_fallback` keeps the fewest of the worst layers in float
(``QuantizationDebugOptions(denylisted_nodes=...)``) until the validation accuracy is
within a budget of float32's. The mixed file has float input and output (the debugger's
quantizer does not quantize the model boundary) and int8 everywhere else but the
denylisted layers, with QUANTIZE/DEQUANTIZE around them.

Example:
    >>> debug = Int8Debug(model, ds.representative(200), ds.normalized("val")[:100])  # doctest: +SKIP
    >>> [(l["layer"], l["op"], round(l["rmse_scale"], 2)) for l in debug.layers[:2]]     # doctest: +SKIP
    [('conv_pw_13_relu', 'CONV_2D', 3.1), ('conv_preds', 'FULLY_CONNECTED', 1.2)]
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from edgecnn._io import quiet_native_stderr
from edgecnn.data.contract import LazySplit
from edgecnn.device.tables import Column, dash_format, format_table
from edgecnn.errors import UserError

# Layers kept in metrics.json and shown in report.md, worst first.
TOP_LAYERS = 10
# Validation images the debugger compares on (at most).
DEBUG_SAMPLES = 100


def short_layer_name(tensor_name: str, output_name: str | None = None) -> str:
    """The Keras layer a converted tensor comes from: ``'model/conv1_relu/Relu6;...'`` -> ``'conv1_relu'``.

    The model's output tensor is named after the graph (``StatefulPartitionedCall:0``), not
    the layer: ``output_name`` (the Keras output layer's name) replaces it.

    Example:
        >>> short_layer_name("mobilenet_0.25_32/conv_dw_1_relu/Relu6;mobilenet_0.25_32/conv_dw_1/depthwise1")
        'conv_dw_1_relu'
        >>> short_layer_name("StatefulPartitionedCall:0", "predictions")
        'predictions'
    """
    first = tensor_name.split(";")[0]
    parts = first.split("/")
    if len(parts) > 2:
        return "/".join(parts[1:-1])
    return output_name if output_name and len(parts) == 1 else first


class Int8Debug:
    """The per-layer int8 error of ``model`` (see the module docstring).

    Args:
        model: a Keras model (pruning wrappers and auxiliary outputs are dropped as in
            :func:`edgecnn.tflite.convert.convert`).
        representative: the calibration data, as for :func:`edgecnn.tflite.convert.convert`.
        images: float validation images (normalized), compared one at a time.

    Attributes:
        layers: one dict per quantized op, worst ``rmse_scale`` first: ``layer`` (Keras
            name), ``op`` (TFLite op type), ``tensor`` (the output tensor name the
            converter's denylist takes), ``rmse_scale``, ``mean_error``, ``max_abs_error``,
            ``scale``.
        notes: one line per layer the debugger could not measure (the layer is left out).

    Raises ``RuntimeError`` (one line) when the debugger cannot work on the model at all.
    """

    def __init__(self, model, representative, images: np.ndarray):
        from edgecnn._tf import tf
        from edgecnn.optimize.prune import strip_pruning_if_wrapped
        from edgecnn.tflite.convert import configure_int8, inference_model, tflite_converter

        images = np.asarray(images, dtype=np.float32)
        if not len(images):
            raise UserError("the int8 debugger needs validation images; this run has none (data.val_split 0)")
        prepared = inference_model(strip_pruning_if_wrapped(model))
        converter = tflite_converter(model, prepared)  # the shared export inside convert.exported_once
        model = prepared
        configure_int8(converter, representative)
        self._images = images
        self._output_name = model.output_names[0] if len(model.outputs) == 1 else None
        self.notes: list = []
        try:
            with quiet_native_stderr():
                self._debugger = tf.lite.experimental.QuantizationDebugger(
                    converter=converter, debug_dataset=self._dataset
                )
                self._debugger.run()
        except Exception as exc:  # ConverterError, ValueError ('not in debug mode'), RuntimeError...
            raise RuntimeError(f"the int8 debugger failed on {model.name}: {first_line(exc)}") from None
        self.layers = self._collect()

    def _dataset(self):
        return ([self._images[i : i + 1]] for i in range(len(self._images)))

    def _collect(self) -> list:
        d = self._debugger
        layers = []
        for name, stats in (d.layer_statistics or {}).items():
            try:  # the same look-ups as QuantizationDebugger.layer_statistics_dump, one layer at a time
                tensor, _ = d._get_operand_name_and_index(name)
                idx = d._numeric_verify_op_details[name]["inputs"][0]
                op = d._quant_interpreter._get_op_details(d._defining_op[idx])["op_name"]
                detail = d._quant_interpreter._get_tensor_details(idx, subgraph_index=0)
                scale = float(detail["quantization_parameters"]["scales"][0])
                rmse_scale = math.sqrt(float(stats["mean_squared_error"])) / scale
                if not math.isfinite(rmse_scale):
                    raise ValueError(f"rmse/scale is {rmse_scale} (scale {scale})")
            except Exception as exc:  # one layer the debugger cannot describe: a note, not a failure
                layer = short_layer_name(str(name).removeprefix("NumericVerify/"), self._output_name)
                self.notes.append(f"layer {layer}: not measured ({first_line(exc)})")
                continue
            layers.append(
                {
                    "layer": short_layer_name(tensor, self._output_name),
                    "op": op,
                    "tensor": tensor,
                    "rmse_scale": rmse_scale,
                    "mean_error": float(stats["mean_error"]),
                    "max_abs_error": float(stats["max_abs_error"]),
                    "scale": scale,
                }
            )
        layers.sort(key=lambda r: -r["rmse_scale"])
        return layers

    def summary(self, top: int = TOP_LAYERS) -> dict:
        """What a table row keeps: the ``top`` worst layers, how many were measured, the notes."""
        keep = ("layer", "op", "rmse_scale", "mean_error", "max_abs_error")
        return {
            "layers_measured": len(self.layers),
            "worst_layers": [{k: layer[k] for k in keep} for layer in self.layers[:top]],
            "notes": list(self.notes),
            "samples": len(self._images),
        }

    def mixed_model(self, float_tensors: list) -> bytes:
        """The int8 model with the ops writing ``float_tensors`` kept in float (the converter's denylist)."""
        from edgecnn._tf import tf

        d = self._debugger
        # The public ``options`` setter would rebuild the debug model and drop the statistics;
        # the quantizer reads the denylist from these options alone, so swap them for one call.
        kept = d._debug_options
        d._debug_options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=list(float_tensors))
        try:
            with quiet_native_stderr():
                return d.get_nondebug_quantized_model()
        except Exception as exc:  # ConverterError on one denylist: one line, the caller decides
            names = ", ".join(short_layer_name(t, self._output_name) for t in float_tensors) or "no layer"
            raise RuntimeError(f"the converter failed with {names} in float: {first_line(exc)}") from None
        finally:
            d._debug_options = kept


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else exc.__class__.__name__


# Layers whose effect on the model's output is measured one at a time before the search.
RANK_TOP = 16


def rank_by_effect(debug: Int8Debug, output_error: Callable[[bytes], float], top: int = RANK_TOP) -> tuple:
    """The debugger's layers reordered by what keeping each one alone in float does to the output.

    ``rmse/scale`` says how far a layer's own int8 output is from its float output; it does
    not say how much of that reaches the prediction (a layer before a wide pooling, or a
    residual branch, can be noisy and harmless). For the ``top`` worst layers by
    ``rmse/scale``, the model with that one layer in float is built and
    ``output_error(model_bytes)`` measured (a continuous figure, e.g. the mean squared
    difference from the float32 file's probabilities, so that it is not limited to one
    image's worth of accuracy); the layers that lower the error come first, largest gain
    first, then the rest in the debugger's order.

    Returns ``(layers, gains, notes)``: the reordered layer dicts, ``{layer: gain}`` for
    those measured (int8 error minus the error with that layer in float), and one line per
    layer whose single-layer model the converter could not build (it keeps its place after
    the helpful ones, as unmeasured).
    """
    layers = list(debug.layers)
    base = output_error(debug.mixed_model([]))
    gains, notes = {}, []
    for layer in layers[:top]:
        try:
            gains[layer["tensor"]] = base - output_error(debug.mixed_model([layer["tensor"]]))
        except RuntimeError as exc:
            notes.append(f"layer {layer['layer']}: effect not measured ({first_line(exc)})")
    helpful = sorted((lay for lay in layers if gains.get(lay["tensor"], 0) > 0), key=lambda lay: -gains[lay["tensor"]])
    rest = [lay for lay in layers if lay not in helpful]
    return helpful + rest, {lay["layer"]: gains[lay["tensor"]] for lay in layers[:top] if lay["tensor"] in gains}, notes


def float_fallback(debug: Int8Debug, accuracy: Callable[[bytes], float], float_accuracy: float,
                   budget_points: float, output_error: Callable[[bytes], float] | None = None,
                   rank_top: int = RANK_TOP) -> dict:
    """Keep the fewest of the worst layers in float until accuracy is within ``budget_points``.

    The candidates are prefixes of a ranking of ``debug.layers``: the debugger's (worst
    ``rmse_scale`` first) or, with ``output_error``, :func:`rank_by_effect`'s (the layers
    whose float version most lowers the output error first). ``k`` (the first ``k``
    layers in float) doubles (1, 2, 4, ...) until the validation accuracy
    (``accuracy(model_bytes)``) is within the budget of ``float_accuracy``, then a binary
    search between the last failing and the first passing ``k`` finds the smallest
    passing prefix, so a model with ``n`` layers costs about ``2 log2 n`` evaluations
    (this assumes more float layers do not lose accuracy; each tried ``k`` is recorded).

    Returns ``{"model": bytes, "float_layers": [...], "float_tensors": [...], "accuracy",
    "within_budget", "tried": [[k, accuracy], ...], "layers_measured", "ranking",
    "gains", "notes"}``; with no prefix within the budget, the best one tried,
    ``within_budget`` false. A prefix the converter cannot build raises ``RuntimeError``
    (one line; the export step turns it into the row's note).

    Example:
        >>> out = float_fallback(debug, lambda b: evaluate(b, "val"), 0.981, 0.5)  # doctest: +SKIP
        >>> out["float_layers"], out["within_budget"]                            # doctest: +SKIP
        (['conv_pw_13_relu'], True)
    """
    n = len(debug.layers)
    if n == 0:
        raise RuntimeError("the int8 debugger measured no layer: nothing to keep in float")
    if output_error is not None:
        order, gains, notes = rank_by_effect(debug, output_error, rank_top)
    else:
        order, gains, notes = list(debug.layers), {}, []
    cache: dict = {}

    def trial(k: int):
        if k not in cache:
            model = debug.mixed_model([layer["tensor"] for layer in order[:k]])
            cache[k] = (accuracy(model), model)
        return cache[k]

    def ok(k: int) -> bool:
        return 100 * (float_accuracy - trial(k)[0]) <= budget_points + 1e-9

    bad, k = 0, 1
    while not ok(k):
        bad = k
        if k >= n:
            break
        k = min(2 * k, n)
    if ok(k):
        good = k
        while good - bad > 1:
            mid = (good + bad) // 2
            if ok(mid):
                good = mid
            else:
                bad = mid
    else:  # even every measured layer in float misses the budget: the best tried
        good = max(cache, key=lambda j: (cache[j][0], -j))
    acc, model = trial(good)
    chosen = order[:good]
    return {
        "model": model,
        "float_layers": [layer["layer"] for layer in chosen],
        "float_ops": [layer["op"] for layer in chosen],
        "float_tensors": [layer["tensor"] for layer in chosen],
        "accuracy": acc,
        "within_budget": ok(good),
        "tried": [[j, cache[j][0]] for j in sorted(cache)],
        "layers_measured": n,
        "ranking": "output error, one layer in float at a time" if output_error is not None else "rmse/scale",
        "gains": gains,
        "notes": notes,
    }


def budget_resolution(drop_points: float, budget_points: float, n_images: int) -> str | None:
    """A line when the validation split is too small to tell the budget from one image, else ``None``.

    With ``n_images`` validation images one image is ``100 / n_images`` points: a budget
    below that asks for no image lost, and a drop of one image is within the noise of a
    retrained float model, so the float layers the search then keeps may buy back one image
    by chance rather than fix a layer.

    Example:
        >>> budget_resolution(0.56, 0.5, 180).split(":")[0]
        'the int8 drop is 1 of 180 validation images (one image = 0.56 points, more than the budget of 0.5)'
        >>> budget_resolution(2.0, 0.5, 1000) is None
        True
    """
    if n_images <= 0:
        return None
    one = 100.0 / n_images
    if budget_points >= one:
        return None
    lost = round(drop_points / one)
    return (
        f"the int8 drop is {lost} of {n_images} validation images (one image = {one:.2f} points, more than the "
        f"budget of {budget_points:g}): the float layers kept may win back {'one image' if lost == 1 else 'images'} "
        "by chance; a larger validation split (data.val_split) measures the budget"
    )


LAYER_COLUMNS = [
    Column("layer", "layer", str, "<"),
    Column("op", "op", str, "<"),
    Column("rmse_scale", "rmse/scale", dash_format(".2f")),
    Column("mean_error", "mean error", dash_format("+.2e")),
]


def format_layers(summary: dict) -> str:
    """The worst layers as a terminal table (``edgecnn eval --int8-debug``, the pipeline's output).

    Example:
        >>> print(format_layers({"layers_measured": 3, "samples": 10, "notes": [], "worst_layers": [
        ...     {"layer": "conv1_relu", "op": "CONV_2D", "rmse_scale": 2.5, "mean_error": 0.01}]}))
        int8 error per layer (worst 1 of 3, on 10 validation images; rmse/scale ~0.29 is rounding alone)
        layer       op       rmse/scale  mean error
        ----------  -------  ----------  ----------
        conv1_relu  CONV_2D        2.50   +1.00e-02
    """
    rows = summary["worst_layers"]
    cols = LAYER_COLUMNS
    head = (
        f"int8 error per layer (worst {len(rows)} of {summary['layers_measured']}, on {summary['samples']} "
        "validation images; rmse/scale ~0.29 is rounding alone)"
    )
    lines = [head, format_table(rows, cols)]
    lines += [f"note: {n}" for n in summary.get("notes", [])]
    return "\n".join(lines)


def tflite_scores(model_bytes: bytes, x: np.ndarray, threads: int = 1, runtime: str = "auto") -> np.ndarray:
    """The outputs of a ``.tflite`` held in memory on float inputs ``x``."""
    from edgecnn.device.evaluate import predict
    from edgecnn.device.runtime import load_interpreter

    with tempfile.TemporaryDirectory(prefix="edgecnn-int8-") as tmp:
        path = Path(tmp) / "candidate.tflite"
        path.write_bytes(model_bytes)
        interpreter, _, _ = load_interpreter(path, num_threads=threads, runtime=runtime)
        if isinstance(x, LazySplit):  # a streamed split, read in batches
            return np.concatenate([predict(interpreter, np.asarray(xb, dtype=np.float32)) for xb, _ in x.batches(256)])
        return predict(interpreter, np.asarray(x, dtype=np.float32))


def tflite_accuracy(model_bytes: bytes, x: np.ndarray, y: np.ndarray, threads: int = 1, runtime: str = "auto") -> float:
    """Top-1 accuracy of a ``.tflite`` held in memory (written to a temporary file for the runtime)."""
    from edgecnn.device.evaluate import evaluate_tflite

    with tempfile.TemporaryDirectory(prefix="edgecnn-int8-") as tmp:
        path = Path(tmp) / "candidate.tflite"
        path.write_bytes(model_bytes)
        return float(evaluate_tflite(path, x, y, num_threads=threads, runtime=runtime)["accuracy"])


def run_debugger(cfg, data, model) -> Int8Debug:
    """:class:`Int8Debug` of a loaded run (:func:`edgecnn.report.run.load_run`) with the run's calibration and up to
    :data:`DEBUG_SAMPLES` validation images, as the export step computes it; a debugger
    that cannot work on the model is a :class:`UserError`."""
    try:
        return Int8Debug(model, data.representative(cfg.convert.calibration_samples, seed=cfg.data.seed),
                         data.normalized("val")[:DEBUG_SAMPLES])
    except RuntimeError as exc:
        raise UserError(str(exc)) from None
