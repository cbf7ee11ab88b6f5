"""Delegation report: which operators the XNNPACK delegate runs, which stay on reference kernels.

LiteRT (and ``tflite_runtime``, TensorFlow's interpreter) apply XNNPACK by default; each
partition of operators it takes over becomes one ``DELEGATE`` node appended to the graph,
while the operators it declines keep running on TFLite's built-in kernels. The Python API
has no "execution plan" call, but ``Interpreter._get_ops_details()`` lists every node:
the model's original operators first, then the delegate nodes with the tensors each
partition reads and writes. Walking back from a partition's outputs to its inputs
through the original operators recovers exactly the operators inside it; the rest are
the fallbacks. XNNPACK paper: https://arxiv.org/abs/2104.05158 (the delegate's design is
in TFLite's ``delegates/xnnpack/README.md``).

Example:
    >>> r = delegation_report("model_dynamic.tflite")  # doctest: +SKIP
    >>> r["delegated"], r["total"], r["fallback_ops"]  # doctest: +SKIP
    (13, 30, {'CONV_2D': 14, 'MEAN': 1, 'FULLY_CONNECTED': 1, 'SOFTMAX': 1})
"""

from __future__ import annotations

from collections import Counter


def partition_nodes(ops: list) -> tuple[list, list]:
    """Split ``_get_ops_details()`` into the original operators and, per delegate node,
    the indices of the original operators it runs.

    Example:
        >>> ops = [{"index": 0, "op_name": "CONV_2D", "inputs": [0, 1], "outputs": [2]},
        ...        {"index": 1, "op_name": "SOFTMAX", "inputs": [2], "outputs": [3]},
        ...        {"index": 2, "op_name": "DELEGATE", "inputs": [0, 1], "outputs": [2]}]
        >>> partition_nodes(ops)
        ([0, 1], [[0]])
    """
    original = [op for op in ops if op["op_name"] != "DELEGATE"]
    delegates = [op for op in ops if op["op_name"] == "DELEGATE"]
    # Delegate nodes are appended after the model's own operators.
    first_delegate = min((op["index"] for op in delegates), default=len(ops))
    original = [op for op in original if op["index"] < first_delegate]
    producer = {}
    for op in original:
        for t in op["outputs"]:
            producer[int(t)] = op
    partitions = []
    for node in delegates:
        inputs = {int(t) for t in node["inputs"]}
        members, stack, seen = set(), [int(t) for t in node["outputs"]], set()
        while stack:
            t = stack.pop()
            if t in seen or t in inputs or t < 0:
                continue
            seen.add(t)
            op = producer.get(t)
            if op is None or op["index"] in members:
                continue
            members.add(op["index"])
            stack.extend(int(x) for x in op["inputs"])
        partitions.append(sorted(members))
    return [op["index"] for op in original], partitions


def report_from_ops(ops: list) -> dict:
    """The delegation summary of an interpreter's ``_get_ops_details()`` list.

    Example:
        >>> report_from_ops([{"index": 0, "op_name": "SOFTMAX", "inputs": [0], "outputs": [1]}])["fallback_ops"]
        {'SOFTMAX': 1}
    """
    original, partitions = partition_nodes(ops)
    by_index = {op["index"]: op["op_name"] for op in ops}
    delegated = {i for part in partitions for i in part}
    fallback = [i for i in original if i not in delegated]
    return {
        "total": len(original),
        "delegated": len(delegated),
        "partitions": len(partitions),
        "delegated_ops": dict(Counter(by_index[i] for i in sorted(delegated))),
        "fallback_ops": dict(Counter(by_index[i] for i in fallback)),
    }


def interpreter_delegation(interpreter) -> dict:
    """Delegation summary of an allocated interpreter (``{"error": ...}`` if the runtime
    does not expose its nodes).

    Example:
        >>> it, _, _ = load_interpreter("model.tflite")  # doctest: +SKIP
        >>> interpreter_delegation(it)["delegated"]   # doctest: +SKIP
        30
    """
    get_ops = getattr(interpreter, "_get_ops_details", None)
    if get_ops is None:
        return {"error": "this runtime does not list its nodes (no _get_ops_details)"}
    try:
        ops = get_ops()
    except Exception as exc:  # a private API: report, never fail the benchmark
        return {"error": f"_get_ops_details failed: {exc}"}
    return report_from_ops(ops)


def delegation_report(model_path, num_threads: int = 1, runtime: str = "auto") -> dict:
    """Load ``model_path`` and say how many operators XNNPACK runs and which fall back.

    Returns ``{"total", "delegated", "partitions", "delegated_ops", "fallback_ops"}``
    (op name -> count). Prefer :func:`edgecnn.device.bench.benchmark`, which computes
    this in its child process.

    Example:
        >>> delegation_report("model_int8.tflite")["fallback_ops"]  # doctest: +SKIP
        {'SOFTMAX': 1}
    """
    from edgecnn.device.runtime import load_interpreter

    interpreter, _, _ = load_interpreter(model_path, num_threads=num_threads, runtime=runtime)
    return interpreter_delegation(interpreter)


def describe(report: dict) -> str:
    """``'XNNPACK runs 13/30 ops in 8 partitions; reference kernels: CONV_2D x14, ...'``

    Example:
        >>> describe({"delegated": 2, "total": 3, "partitions": 1, "fallback_ops": {"SOFTMAX": 1}})
        'XNNPACK runs 2/3 ops in 1 partition(s); reference kernels: SOFTMAX x1'
    """
    if "error" in report:
        return f"delegation unknown: {report['error']}"
    line = f"XNNPACK runs {report['delegated']}/{report['total']} ops in {report['partitions']} partition(s)"
    if report["fallback_ops"]:
        line += "; reference kernels: " + ", ".join(f"{k} x{v}" for k, v in report["fallback_ops"].items())
    return line
