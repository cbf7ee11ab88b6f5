"""Accuracy of a ``.tflite`` model on labelled images, quantized inputs and outputs handled.

numpy and a TFLite runtime only. Inputs are the model's float input (see
:mod:`edgecnn.device.preprocess`); for an int8/uint8 model they are quantized with the
input tensor's scale and zero point, and outputs are dequantized before ranking.
"""

from __future__ import annotations

import numpy as np

from edgecnn.device.preprocess import DataError
from edgecnn.device.runtime import load_interpreter

#: Tensor types the evaluator can feed and read (int8/uint8 with a quantization scale).
EVAL_DTYPES = ("float32", "float16", "int8", "uint8")


class NotEvaluable(DataError):
    """A model the evaluator cannot judge (several inputs, not NHWC images, an odd type or
    an output that is not ``(1, K)`` scores): refused rather than given an accuracy."""


def _check_type(model_path, what: str, detail: dict) -> None:
    dtype = np.dtype(detail["dtype"])
    if dtype.name not in EVAL_DTYPES:
        raise NotEvaluable(
            f"{model_path}: its {what} is {dtype.name}; eval handles {', '.join(EVAL_DTYPES)} tensors only"
        )
    if dtype.kind in "iu" and not detail.get("quantization", (0.0, 0))[0]:
        raise NotEvaluable(f"{model_path}: its {what} is {dtype.name} without a quantization scale; eval cannot map it")


def check_classifier(interpreter, model_path, channels: int | None = None) -> tuple:
    """``(H, W, C, K)`` of a model with one NHWC image input and one ``(1, K)`` output.

    Anything else raises :class:`NotEvaluable` on one line: several inputs or outputs, an
    input that is not rank 4, channels first (NCHW), channels other than ``channels``
    (from ``preprocess.json``) or 1/3, a type other than float32/float16/int8/uint8.

    Example:
        >>> it, _, _ = load_interpreter("model_int8.tflite")  # doctest: +SKIP
        >>> check_classifier(it, "model_int8.tflite")         # doctest: +SKIP
        (32, 32, 3, 10)
    """
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    if len(inputs) != 1:
        raise NotEvaluable(f"{model_path} has {len(inputs)} inputs; eval handles models with one image input")
    if len(outputs) != 1:
        raise NotEvaluable(f"{model_path} has {len(outputs)} outputs; eval handles one output of class scores")
    shape = [int(d) for d in inputs[0]["shape"]]
    if len(shape) != 4:
        raise NotEvaluable(f"{model_path} takes input of shape {shape}; eval needs an image model (N, H, W, C)")
    want = (channels,) if channels else (1, 3)
    if shape[3] not in want:
        if shape[1] in want:
            raise NotEvaluable(
                f"{model_path} takes input of shape {shape}, channels first (NCHW); eval feeds images channels "
                "last (N, H, W, C): export the model channels last"
            )
        raise NotEvaluable(
            f"{model_path} takes {shape[3]}-channel input (shape {shape}); eval feeds "
            + (f"{channels} channel(s), as its preprocess.json says" if channels else "1 (grey) or 3 (RGB) channels")
        )
    _check_type(model_path, "input", inputs[0])
    out = [int(d) for d in outputs[0]["shape"]]
    if len(out) != 2 or out[0] != shape[0] or out[1] < 2:
        raise NotEvaluable(
            f"{model_path} has output of shape {out}; eval needs class scores of shape (1, K) with K >= 2"
        )
    _check_type(model_path, "output", outputs[0])
    return shape[1], shape[2], shape[3], out[1]


def quantize_input(x: np.ndarray, detail: dict) -> np.ndarray:
    """Float input -> the tensor's dtype (int8/uint8 via its scale and zero point).

    Example:
        >>> quantize_input(np.array([0.5]), {"dtype": np.int8, "quantization": (0.5, -1)})
        array([0], dtype=int8)
    """
    dtype = detail["dtype"]
    if np.issubdtype(dtype, np.floating):
        return x.astype(dtype)
    scale, zero = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)


def dequantize_output(y: np.ndarray, detail: dict) -> np.ndarray:
    """The output tensor as float (dequantized when it is an integer tensor).

    Example:
        >>> dequantize_output(np.array([3], np.int8), {"quantization": (0.25, -1)})
        array([1.], dtype=float32)
    """
    if np.issubdtype(y.dtype, np.floating):
        return y.astype(np.float32)
    scale, zero = detail["quantization"]
    return (y.astype(np.float32) - zero) * scale


def predict(interpreter, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Run ``x`` (float, NHWC) through an allocated interpreter; returns float outputs.

    The batch dimension is resized to ``batch_size`` when the model allows it, else
    images go one at a time.

    Example:
        >>> it, _, _ = load_interpreter("model_int8.tflite")  # doctest: +SKIP
        >>> predict(it, x_float).argmax(-1)[:3]            # doctest: +SKIP
        array([3, 1, 4])
    """
    inp = interpreter.get_input_details()[0]
    out_index = interpreter.get_output_details()[0]["index"]
    batch = batch_size
    try:
        interpreter.resize_tensor_input(inp["index"], [batch, *inp["shape"][1:]])
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError):
        batch = 1
        interpreter.resize_tensor_input(inp["index"], [1, *inp["shape"][1:]])
        interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    out_detail = interpreter.get_output_details()[0]
    outputs = []
    for start in range(0, len(x), batch):
        chunk = x[start : start + batch]
        n = len(chunk)
        if n < batch:
            chunk = np.concatenate([chunk, np.zeros((batch - n, *chunk.shape[1:]), chunk.dtype)])
        interpreter.set_tensor(inp["index"], quantize_input(chunk, inp))
        interpreter.invoke()
        outputs.append(dequantize_output(interpreter.get_tensor(out_index), out_detail)[:n])
    return np.concatenate(outputs) if outputs else np.zeros((0,), np.float32)


def classification_metrics(scores: np.ndarray, y: np.ndarray, num_classes: int | None = None) -> dict:
    """Top-1 (and top-5 with more than 5 classes) accuracy and the confusion matrix.

    Example:
        >>> classification_metrics(np.eye(3), np.array([0, 1, 1]))["accuracy"]
        0.6666666666666666
    """
    y = np.asarray(y).astype(np.int64)
    num_classes = int(num_classes or max(scores.shape[-1], int(y.max(initial=-1)) + 1))
    pred = scores.argmax(axis=-1)
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (y, pred), 1)
    metrics = {"accuracy": float((pred == y).mean()) if len(y) else float("nan"), "samples": int(len(y))}
    if scores.shape[-1] > 5:
        top5 = np.argsort(-scores, axis=-1)[:, :5]
        metrics["top5"] = float((top5 == y[:, None]).any(axis=1).mean())
    metrics["confusion"] = confusion.tolist()
    return metrics


def evaluate_tflite(
    model_path,
    x: np.ndarray,
    y: np.ndarray,
    num_threads: int = 1,
    runtime: str = "auto",
    batch_size: int = 64,
    background_class: bool = False,
) -> dict:
    """Accuracy of the ``.tflite`` at ``model_path`` on float inputs ``x`` and labels ``y``.

    ``background_class``: output 0 is a class without a label (the TF-slim ImageNet models'
    1001 outputs); it is dropped before ranking, and ``y`` counts the other outputs.

    Example:
        >>> evaluate_tflite("model_int8.tflite", ds.normalized("test"), ds.y["test"])["accuracy"]  # doctest: +SKIP
        0.9722
    """
    interpreter, name, version = load_interpreter(model_path, num_threads=num_threads, runtime=runtime)
    h, w, c, k = check_classifier(interpreter, model_path)
    if hasattr(x, "batches"):  # a streamed split (edgecnn.data.stream.LazySplit): a few hundred images at a time
        parts, labels = [], []
        for xb, yb in x.batches(max(batch_size, 256)):
            parts.append(predict(interpreter, np.asarray(xb, dtype=np.float32), batch_size=batch_size))
            labels.append(yb)
        if not parts:
            raise DataError(f"none of the {len(x)} images to evaluate {model_path} on could be read (all skipped)")
        scores, y = np.concatenate(parts), np.concatenate(labels)
    else:
        x = np.asarray(x, dtype=np.float32)
        if x.shape[1:] != (h, w, c):
            raise DataError(f"inputs of shape {x.shape[1:]} do not fit {model_path}, which takes {(h, w, c)}")
        y = np.asarray(y)
        if len(y) != len(x):
            raise DataError(f"{len(x)} inputs but {len(y)} labels")
        scores = predict(interpreter, x, batch_size=batch_size)
    if background_class:
        scores, k = scores[:, 1:], k - 1
    if y.size and (y.min() < 0 or y.max() >= k):
        raise DataError(f"labels go up to {int(y.max())}, but {model_path} scores {k} classes (0..{k - 1})")
    metrics = classification_metrics(scores, y, num_classes=k)
    metrics.update(runtime=name, runtime_version=version)
    return metrics


def load_labelled(source, image_size, channels: int, resize: str = "antialias") -> tuple:
    """Labelled ``uint8`` images from an image folder or an ``.npz``, sized for the model.

    A folder has one subfolder per class (or a ``test/`` subfolder laid out that way,
    which is then used); an ``.npz`` holds ``x``/``y`` (or ``x_test``/``y_test``) and
    optionally ``class_names``. Returns ``(images, labels, class_names)``; ``class_names``
    is ``None`` for an ``.npz`` without them (its labels are then class indices). numpy
    and Pillow only, so it runs on the device; raises :class:`DataError` (a ``ValueError``)
    naming what is wrong. Sizes and value ranges follow :mod:`edgecnn.device.arrays`.

    Example:
        >>> x, y, names = load_labelled("photos/", (96, 96), 3)  # doctest: +SKIP
    """
    from pathlib import Path

    from edgecnn.device.arrays import check_class_names, check_labels, images_to_uint8, read_npz
    from edgecnn.device.preprocess import list_image_folder, load_image, resize_batch

    path = Path(source)
    if path.is_dir():
        folder = path / "test" if (path / "test").is_dir() else path
        files, labels, classes = list_image_folder(folder, data_root=path)
        x = np.stack([load_image(f, image_size, channels, resize) for f in files])
        return x, np.asarray(labels, dtype=np.int64), classes
    if path.suffix.lower() == ".npz":
        arrays = read_npz(path)
        for xk, yk in (("x_test", "y_test"), ("x", "y")):
            if xk in arrays and yk in arrays:
                x = images_to_uint8(arrays[xk], f"{path}:{xk}")
                y = check_labels(arrays[yk], f"{path}:{yk}", n=len(x))
                break
        else:
            have = ", ".join(arrays) or "none"
            raise DataError(f"{path} needs arrays x and y (or x_test and y_test); it has {have}")
        x = resize_batch(x, image_size, channels, resize)
        return x, y, check_class_names(arrays.get("class_names"), str(path))
    if not path.exists():
        raise DataError(f"data {source!r} does not exist: give an image folder or an .npz file")
    raise DataError(f"data {source!r} is neither an image folder nor an .npz file")


def class_key(name) -> str:
    """A class name as folders and labels files both spell it: case and ``_``/space runs ignored.

    Example:
        >>> class_key("Great_White  shark") == class_key("great white shark")
        True
    """
    return " ".join(str(name).replace("_", " ").casefold().split())


def labels_by_name(y, data_names, model_names, num_classes: int, data, model_path) -> tuple:
    """The labels ``y`` (indices into ``data_names``) as indices of the model's classes.

    Folder names are matched to the model's class names (``preprocess.json``, metadata or a
    labels file), so a class missing from the data keeps its index: the same name first,
    else the same ignoring case and with ``_`` for a space (folder ``great_white_shark`` is
    label ``great white shark``; the first of equal names wins). A data class the model does
    not know is refused on one line. ``data_names=None`` (an ``.npz`` without ``class_names``) or
    ``model_names=None`` (no ``preprocess.json``): labels are used as class indices.
    Returns ``(labels, class names to show)``.

    Example:
        >>> labels_by_name(np.array([0, 1]), ["2", "4"], ["0", "1", "2", "3", "4"], 5, "d/", "m.tflite")[0]
        array([2, 4])
    """
    y = np.asarray(y, dtype=np.int64)
    if model_names is not None:
        model_names = [str(c) for c in model_names]
        if len(model_names) != num_classes:
            raise DataError(
                f"{model_path} scores {num_classes} classes but its preprocess.json names {len(model_names)}; "
                "give the preprocess.json of this model (--preprocess)"
            )
    if data_names is not None and model_names is not None:
        exact, loose = {}, {}
        for i, name in enumerate(model_names):
            exact.setdefault(name, i)
            loose.setdefault(class_key(name), i)
        found = [exact.get(str(n), loose.get(class_key(n))) for n in data_names]
        unknown = [n for n, i in zip(data_names, found) if i is None]
        if unknown:
            shown = ", ".join(repr(n) for n in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
            known = ", ".join(model_names[:12]) + (" ..." if len(model_names) > 12 else "")
            raise DataError(f"{data} has class(es) {shown} that {model_path} does not know (its classes: {known})")
        index = np.asarray(found, dtype=np.int64)
        return (index[y] if y.size else y), model_names
    if y.size and y.max() >= num_classes:
        raise DataError(f"{data} has labels up to {int(y.max())}, but {model_path} scores {num_classes} classes")
    names = model_names or list(data_names or [])
    if len(names) != num_classes:
        names = [str(i) for i in range(num_classes)] if len(names) > num_classes else names
    return y, names
