"""Accuracy of a ``.tflite`` model on labelled images, quantized inputs and outputs handled.

numpy and a TFLite runtime only. Inputs are the model's float input (see
:mod:`edgecnn.device.preprocess`); for an int8/uint8 model they are quantized with the
input tensor's scale and zero point, and outputs are dequantized before ranking.
"""

from __future__ import annotations

import numpy as np

from edgecnn.device.runtime import load_interpreter


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
    model_path, x: np.ndarray, y: np.ndarray, num_threads: int = 1, runtime: str = "auto", batch_size: int = 64
) -> dict:
    """Accuracy of the ``.tflite`` at ``model_path`` on float inputs ``x`` and labels ``y``.

    Example:
        >>> evaluate_tflite("model_int8.tflite", ds.normalized("test"), ds.y["test"])["accuracy"]  # doctest: +SKIP
        0.9722
    """
    interpreter, name, version = load_interpreter(model_path, num_threads=num_threads, runtime=runtime)
    if hasattr(x, "batches"):  # a streamed split (edgecnn.stream.LazySplit): a few hundred images at a time
        parts, labels = [], []
        for xb, yb in x.batches(max(batch_size, 256)):
            parts.append(predict(interpreter, xb, batch_size=batch_size))
            labels.append(yb)
        scores, y = np.concatenate(parts), np.concatenate(labels)
    else:
        scores = predict(interpreter, np.asarray(x, dtype=np.float32), batch_size=batch_size)
    metrics = classification_metrics(scores, y)
    metrics.update(runtime=name, runtime_version=version)
    return metrics


def load_labelled(source, image_size, channels: int) -> tuple:
    """Labelled ``uint8`` images from an image folder or an ``.npz``, sized for the model.

    A folder has one subfolder per class (or a ``test/`` subfolder laid out that way,
    which is then used); an ``.npz`` holds ``x``/``y`` (or ``x_test``/``y_test``) and
    optionally ``class_names``. Returns ``(images, labels, class_names)``. numpy and
    Pillow only, so it runs on the device; raises ``ValueError`` naming what is wrong.

    Example:
        >>> x, y, names = load_labelled("photos/", (96, 96), 3)  # doctest: +SKIP
    """
    from pathlib import Path

    from edgecnn.device.preprocess import list_image_folder, load_image, resize_batch

    path = Path(source)
    if path.is_dir():
        if (path / "test").is_dir():
            path = path / "test"
        files, labels, classes = list_image_folder(path)
        x = np.stack([load_image(f, image_size, channels) for f in files])
        return x, np.asarray(labels, dtype=np.int64), classes
    if path.suffix.lower() == ".npz":
        if not path.is_file():
            raise ValueError(f"data file {path} does not exist")
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read {path}: {exc}") from None
        for xk, yk in (("x_test", "y_test"), ("x", "y")):
            if xk in arrays and yk in arrays:
                x, y = arrays[xk], arrays[yk]
                break
        else:
            have = ", ".join(arrays) or "none"
            raise ValueError(f"{path} needs arrays x and y (or x_test and y_test); it has {have}")
        if len(x) != len(y):
            raise ValueError(f"{path}: {len(x)} images but {len(y)} labels")
        if np.issubdtype(x.dtype, np.floating):
            x = np.clip(np.round(x * 255.0 if x.max(initial=0) <= 1.0 else x), 0, 255)
        x = resize_batch(x.astype(np.uint8), image_size, channels)
        y = y.astype(np.int64).reshape(-1)
        n = int(y.max(initial=-1)) + 1
        names = [str(c) for c in arrays["class_names"]] if "class_names" in arrays else [str(i) for i in range(n)]
        return x, y, names
    raise ValueError(f"data {source!r} is neither an image folder nor an .npz file")
