"""Classify image files with a ``.tflite`` on the device: top-k labels and the time each step takes.

numpy, Pillow and a TFLite runtime only. The preprocessing is the model's own
(``preprocess.json`` beside it, else its TFLite Metadata, see
:func:`edgecnn.device.preprocess.read_spec`) and the same code as ``edgecnn-device eval``
(:func:`edgecnn.device.preprocess.load_image`: convert to the model's colour mode, then a
bilinear resize), so a photo is classified exactly as the evaluation images were. Each
image is timed in three parts: decode (open, read and colour-convert the file), resize
(resize, normalise, quantise) and invoke (set the input, run, read the output).

Example:
    >>> result = predict_images("model_int8.tflite", ["shot.jpg"], top_k=3)  # doctest: +SKIP
    >>> result["images"][0]["top_k"][0]                                   # doctest: +SKIP
    {'index': 7, 'label': '7', 'score': 0.98}
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np

from edgecnn.device.preprocess import IMAGE_EXTENSIONS, ImageError
from edgecnn.errors import UserError

STDIN = "-"
# Leading bytes of the formats Pillow reads that a camera or a shell pipe would send.
IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM", b"GIF87a", b"GIF89a", b"RIFF")


def collect_images(args, stdin=None) -> list:
    """Image sources from the command line: files, folders (their images, sorted, recursively)
    and ``-``: stdin holding either one image's bytes (``rpicam-still -o -``) or paths, one a line.

    Returns paths, and ``(name, bytes)`` for an image read from stdin. A path that does not
    exist, or a folder without images, is a :class:`UserError`.
    """
    sources = []
    for arg in args:
        if arg == STDIN:
            data = (stdin.read() if stdin is not None else b"") or b""
            if isinstance(data, str):
                data = data.encode()
            if data.startswith(IMAGE_MAGIC):
                sources.append(("<stdin>", data))
                continue
            try:
                lines = data.decode("utf-8").splitlines()
            except UnicodeDecodeError:
                raise UserError("stdin is neither an image (JPEG, PNG, BMP, GIF, WebP) nor a list of paths") from None
            sources += collect_images([line.strip() for line in lines if line.strip() and line.strip() != STDIN])
            continue
        path = Path(arg)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                raise UserError(f"folder {path} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
            sources += found
        elif path.is_file():
            sources.append(path)
        else:
            raise UserError(f"image {arg} does not exist")
    if not sources:
        raise UserError("no images given (files, folders, or - for stdin)")
    return sources


def _decode(source, channels: int):
    from PIL import Image, UnidentifiedImageError

    name, opened = (source[0], io.BytesIO(source[1])) if isinstance(source, tuple) else (str(source), source)
    try:
        with Image.open(opened) as img:
            img.load()
            return img.convert("L" if channels == 1 else "RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageError(f"cannot read image {name}: {exc.__class__.__name__}: {exc}") from None


def predict_images(
    model_path,
    sources,
    top_k: int = 5,
    preprocess_path=None,
    threads: int = 1,
    runtime: str = "auto",
    progress=None,
    spec: dict | None = None,
) -> dict:
    """Top-``top_k`` labels and scores, and per-step timing, for each image in ``sources``.

    ``spec`` is the preprocessing to use (see :func:`edgecnn.device.preprocess.override_spec`
    for one built from flags); without it, :func:`~edgecnn.device.preprocess.read_spec`
    reads ``preprocess_path``, the ``preprocess.json`` beside the model or its metadata.
    With ``"background_class"`` in the spec, output 0 is left out and ``index`` counts the
    labels (output ``index + 1``).

    Raises :class:`UserError` for a model that is not an image classifier with 1 or 3
    input channels, a model without preprocessing (no ``preprocess.json``, no metadata),
    preprocessing that does not fit the model (:func:`~edgecnn.device.preprocess.fit_to_model`)
    and an image that cannot be read; nothing is returned half done.
    """
    from edgecnn.device.preprocess import fit_to_model, read_spec
    from edgecnn.device.runtime import load_interpreter

    interpreter, runtime_name, runtime_version = load_interpreter(model_path, num_threads=threads, runtime=runtime)
    shape = _image_input(interpreter, model_path)
    if spec is None:
        try:
            spec = read_spec(model_path, preprocess_path, required=True)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    out = interpreter.get_output_details()[0]
    outputs = int(np.prod(out["shape"][1:]))
    names, skip = fit_to_model(spec, shape[3], outputs, model_path)
    names = names or [str(i) for i in range(outputs - skip)]
    k = min(int(top_k), outputs - skip)
    results = []
    for i, source in enumerate(sources):
        results.append(_predict_one(interpreter, source, shape, spec, names, skip, k))
        if progress:
            progress(i, len(sources), results[-1])
    timing = {
        step: {"median": float(np.median(v)), "mean": float(np.mean(v)), "min": float(np.min(v))}
        for step in ("decode_ms", "resize_ms", "invoke_ms")
        for v in [[r[step] for r in results]]
    }
    return {
        "kind": "predict",
        "runtime": runtime_name,
        "runtime_version": runtime_version,
        "threads": int(threads),
        "input_shape": shape,
        "preprocess": {
            k2: v for k2, v in spec.items() if k2 in ("scale", "offset", "mean", "std", "from", "background_class")
        },
        "images": results,
        "timing_ms": timing,
    }


def _image_input(interpreter, model_path) -> list:
    """The model's input shape ``[N, H, W, C]``, the batch made 1 when it was not; a
    :class:`UserError` for a model that does not take 1- or 3-channel images."""
    inp = interpreter.get_input_details()[0]
    shape = [int(d) for d in inp["shape"]]
    if len(shape) != 4 or shape[3] not in (1, 3):
        raise UserError(
            f"{model_path} takes input of shape {shape}; predict needs an image model (N, H, W, C) "
            "with 1 (grayscale) or 3 (RGB) channels"
        )
    if shape[0] != 1:
        interpreter.resize_tensor_input(inp["index"], [1, *shape[1:]])
        interpreter.allocate_tensors()
    return shape


def _predict_one(interpreter, source, shape: list, spec: dict, names: list, skip: int, k: int) -> dict:
    """One image: decoded, resized and normalised as ``spec`` says, run, its top ``k`` labels
    (the first ``skip`` outputs, a background class, left out) and the time of each step."""
    from edgecnn.device.evaluate import dequantize_output, quantize_input
    from edgecnn.device.preprocess import normalize, resize_image, resize_method

    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    h, w, c = shape[1:]
    t0 = time.perf_counter()
    img = _decode(source, c)
    t1 = time.perf_counter()
    arr = np.asarray(img, dtype=np.uint8)
    arr = resize_image(arr.reshape(*arr.shape[:2], -1), (h, w), resize_method(spec))
    x = quantize_input(normalize(arr[None], spec), inp)
    t2 = time.perf_counter()
    interpreter.set_tensor(inp["index"], x)
    interpreter.invoke()
    scores = interpreter.get_tensor(out["index"]).copy()
    t3 = time.perf_counter()
    scores = dequantize_output(scores, out).reshape(-1)[skip:]
    order = np.argsort(-scores, kind="stable")[:k]
    return {
        "image": source[0] if isinstance(source, tuple) else str(source),
        "top_k": [{"index": int(j), "label": names[j], "score": float(scores[j])} for j in order],
        "decode_ms": 1000 * (t1 - t0),
        "resize_ms": 1000 * (t2 - t1),
        "invoke_ms": 1000 * (t3 - t2),
    }
