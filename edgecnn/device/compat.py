"""Runtime compatibility: which TFLite runtime a model's operator versions need.

Every TFLite operator carries a version; a runtime only runs the versions it was built
with. A Raspberry Pi with ``tflite_runtime`` 2.14 cannot run a dynamic-range model from
TensorFlow 2.21 (``FULLY_CONNECTED`` version 12 arrived in 2.17), and finds out only
when the interpreter refuses to load it. :func:`compatibility` reads the operators
straight from the file (:mod:`edgecnn.device.flatbuffer`, no TensorFlow) and says, for a
target runtime version, which operators need something newer.

The table gives, for each operator, the first runtime release that runs each of its
versions (index 0 = version 1), following TFLite's ``runtime_version.cc``.

Example:
    >>> report = compatibility("model_dynamic.tflite", "2.14")  # doctest: +SKIP
    >>> report["compatible"], report["needs_newer"][0]["op"]    # doctest: +SKIP
    (False, 'FULLY_CONNECTED')
"""

from __future__ import annotations

from edgecnn.device.flatbuffer import read_model

# op -> first runtime release for op versions 1, 2, 3, ...
_FIRST_RELEASE = {
    "ADD": "1.5 1.14 2.4 2.6 2.13",
    "ARG_MAX": "1.9 1.14 2.9",
    "AVERAGE_POOL_2D": "1.5 1.14 2.3",
    "BATCH_MATMUL": "2.3 2.3 2.4 2.5",
    "CAST": "1.5 2.7 2.8 2.9 2.12 2.15",
    "CONCATENATION": "1.5 1.14 2.3 2.14",
    "CONV_2D": "1.5 1.14 1.14 2.3 2.4 2.9 2.11 2.15",
    "DEPTHWISE_CONV_2D": "1.5 1.12 1.14 2.2 2.3 2.3 2.11",
    "DENSIFY": "2.2",
    "DEQUANTIZE": "1.13.1 1.14 1.15 2.2 2.7 2.17",
    "DIV": "1.6 2.3",
    "EXPAND_DIMS": "1.10",
    "FULLY_CONNECTED": "1.5 1.10 1.14 1.14 2.0 2.1 2.3 2.3 2.3 2.11 2.15 2.17",
    "GATHER": "1.6 1.14 1.15 2.4 2.5 2.13 2.15",
    "HARD_SWISH": "1.15",
    "L2_NORMALIZATION": "1.5 1.14",
    "LEAKY_RELU": "1.13.1 2.3",
    "LOCAL_RESPONSE_NORMALIZATION": "1.5",
    "LOGISTIC": "1.14 1.14 2.3",
    "MAX_POOL_2D": "1.5 1.14 2.3",
    "MAXIMUM": "1.14 1.14 2.3 2.3",
    "MEAN": "1.6 1.14 2.4",
    "MINIMUM": "1.14 1.14 2.3 2.3",
    "MUL": "1.5 1.14 1.15 2.3 2.6 2.11 2.13",
    "PACK": "1.11 1.14 2.3 2.13",
    "PAD": "1.5 1.14 2.4 2.6",
    "PADV2": "1.9 1.14 2.4 2.6",
    "PRELU": "1.8",
    "QUANTIZE": "1.14 1.15 2.7",
    "REDUCE_MAX": "1.11 1.14 2.5",
    "RELU": "1.5 2.1 2.5",
    "RELU6": "1.5 1.14 2.5",
    "RESHAPE": "1.5",
    "RESIZE_BILINEAR": "1.7 1.14 2.2 2.5",
    "RESIZE_NEAREST_NEIGHBOR": "1.13.1 1.14 2.3 2.4",
    "RSQRT": "1.10 2.5 2.15",
    "SHAPE": "1.10",
    "SLICE": "1.14 1.14 1.14 2.4 2.5 2.14",
    "SOFTMAX": "1.5 1.14 2.3",
    "SPLIT": "1.5 1.14 1.14 2.3",
    "SPLIT_V": "1.13.1 2.3",
    "SQUEEZE": "1.6 2.5",
    "STRIDED_SLICE": "1.6 1.14 2.1 2.2 2.5 2.6 2.14 2.14",
    "SUB": "1.6 1.14 2.3 2.4 2.4",
    "SUM": "1.10 1.15",
    "TANH": "1.14 1.14 2.3",
    "TRANSPOSE": "1.6 1.14 1.15 2.3 2.4 2.12",
    "TRANSPOSE_CONV": "1.9 2.2 2.3 2.13 2.15",
}
FIRST_RELEASE = {op: tuple(v.split()) for op, v in _FIRST_RELEASE.items()}


def parse_version(text) -> tuple:
    """``'2.14.0' -> (2, 14, 0)``; non-numeric parts are ignored (``'2.16.0rc1' -> (2, 16, 0)``).

    Example:
        >>> parse_version("2.14.0")
        (2, 14, 0)
    """
    parts = []
    for piece in str(text).split(".")[:3]:
        digits = ""
        for ch in piece:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts + [0] * (3 - len(parts)))


def first_release(op: str, version: int) -> str | None:
    """The first runtime release that runs ``op`` at ``version`` (``None`` when unknown).

    Example:
        >>> first_release("FULLY_CONNECTED", 12)
        '2.17'
    """
    releases = FIRST_RELEASE.get(op)
    if not releases or not 1 <= version <= len(releases):
        return None
    return releases[version - 1]


def compatibility(model, runtime_version: str = "2.14") -> dict:
    """Which of ``model``'s operators a runtime of ``runtime_version`` cannot run.

    Returns ``{"runtime_version", "compatible", "model_min_runtime" (from the file's
    metadata), "required" (newest release any op needs), "ops": [{"op", "version", "count",
    "first_release"}], "needs_newer": [...], "unknown": [...]}``. ``compatible`` is
    ``False`` when some op needs a newer runtime, ``None`` when only unknown ops are in
    doubt (a custom op, or an op version newer than this table).

    Example:
        >>> compatibility("model_int8.tflite", "2.14")["compatible"]  # doctest: +SKIP
        True
    """
    info = read_model(model)
    target = parse_version(runtime_version)
    ops, needs_newer, unknown = [], [], []
    required = (0, 0, 0)
    for (op, version), count in sorted(info.op_counts().items()):
        release = first_release(op, version)
        entry = {"op": op, "version": version, "count": count, "first_release": release}
        ops.append(entry)
        if release is None:
            if op in FIRST_RELEASE and version > len(FIRST_RELEASE[op]):
                unknown.append({**entry, "reason": f"version {version} is newer than this table knows"})
            elif op.startswith("CUSTOM:"):
                unknown.append({**entry, "reason": "custom op: the runtime needs it registered"})
            continue
        required = max(required, parse_version(release))
        if parse_version(release) > target:
            needs_newer.append(entry)
    model_min = info.min_runtime_version
    if model_min and parse_version(model_min) > target and not needs_newer:
        needs_newer.append({"op": "(model)", "version": 0, "count": 1, "first_release": model_min})
    compatible = False if needs_newer else (None if unknown else True)
    return {
        "runtime_version": str(runtime_version),
        "compatible": compatible,
        "model_min_runtime": model_min,
        "required": ".".join(map(str, required)) if required != (0, 0, 0) else model_min,
        "ops": ops,
        "needs_newer": needs_newer,
        "unknown": unknown,
    }


def describe(report: dict) -> str:
    """One line for humans about a :func:`compatibility` report.

    Example:
        >>> describe(compatibility("model_dynamic.tflite", "2.14"))  # doctest: +SKIP
        'needs a runtime newer than 2.14: FULLY_CONNECTED v12 (needs 2.17)'
    """
    target = report["runtime_version"]
    if report["needs_newer"]:
        items = ", ".join(
            f"{e['op']} v{e['version']} (needs {e['first_release']})" if e["version"] else f"needs {e['first_release']}"
            for e in report["needs_newer"]
        )
        return f"needs a runtime newer than {target}: {items}"
    if report["unknown"]:
        items = ", ".join(f"{e['op']} v{e['version']}" for e in report["unknown"])
        return f"runs on {target} as far as known; not in the table: {items}"
    return f"runs on runtime {target} (needs {report['required'] or 'any'})"
