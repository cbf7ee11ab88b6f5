"""Which ops of a ``.tflite`` the mobile GPU delegate would not run, before trying on a phone.

TFLite's model analyzer (``tf.lite.experimental.Analyzer.analyze(..., gpu_compatibility=True)``)
checks each operator against the GPU delegate's rules and prints, after an op it rejects,
``GPU COMPATIBILITY WARNING: <reason>``, then per subgraph ``GPU COMPATIBILITY WARNING:
Subgraph#0 has GPU delegate compatibility issues at nodes 3, 7 with TFLite runtime version
...`` (``tensorflow/lite/python/analyzer_wrapper/model_analyzer.cc``). It prints to
stdout, so the text is captured and parsed here. Needs TensorFlow: this is the
workstation's check (``edgecnn bench``); the device side has no analyzer.

The analyzer's verdict is static and needs confirming on the phone (``benchmark_model
--use_gpu=true`` reports how many nodes the delegate took). Seen with TensorFlow 2.21:
its pip build flagged none of CONV_3D, TOPK_V2 or REVERSE_V2, which the GPU delegate's
documented op list lacks, so "no op flagged" is reported as that, not as a guarantee.

Example:
    >>> gpu_compatibility("model_int8.tflite")  # doctest: +SKIP
    {'compatible': True, 'unsupported': [], 'tf_version': '2.21.0', 'note': 'the analyzer flags no op ...'}
"""

from __future__ import annotations

import contextlib
import io
import re

OP_LINE = re.compile(r"^\s*Op#(?P<node>\d+) (?P<op>[A-Z0-9_]+)\(")
SUBGRAPH_LINE = re.compile(r"^Subgraph#(?P<sg>\d+)")
WARNING = "GPU COMPATIBILITY WARNING: "


def parse_analyzer_output(text: str) -> list:
    """``[{"subgraph", "node", "op", "reason"}]`` for each op the analyzer's text flags."""
    flagged, subgraph, last_op = [], 0, None
    for line in text.splitlines():
        if m := SUBGRAPH_LINE.match(line):
            subgraph, last_op = int(m["sg"]), None
        elif m := OP_LINE.match(line):
            last_op = (int(m["node"]), m["op"])
        elif line.startswith(WARNING) and last_op is not None:
            reason = line[len(WARNING) :].strip()
            if reason.startswith("Subgraph#"):  # the per-subgraph summary, not an op
                last_op = None
                continue
            flagged.append({"subgraph": subgraph, "node": last_op[0], "op": last_op[1], "reason": reason})
            last_op = None
    return flagged


def describe(flagged: list) -> str:
    """One line for the bench output.

    Example:
        >>> describe([{"subgraph": 0, "node": 2, "op": "CONV_3D", "reason": "Not supported op CONV_3D"}])
        'the GPU delegate would not run 1 op(s): CONV_3D (node 2: Not supported op CONV_3D)'
    """
    if not flagged:
        return "the analyzer flags no op for the GPU delegate (confirm with benchmark_model --use_gpu=true)"
    ops = ", ".join(f"{f['op']} (node {f['node']}: {f['reason']})" for f in flagged)
    return f"the GPU delegate would not run {len(flagged)} op(s): {ops}"


def gpu_compatibility(model_path) -> dict:
    """Run TFLite's analyzer with ``gpu_compatibility=True`` on ``model_path`` and parse it."""
    from edgecnn._io import quiet_native_stderr
    from edgecnn._tf import tf

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), quiet_native_stderr():
        tf.lite.experimental.Analyzer.analyze(model_path=str(model_path), gpu_compatibility=True)
    flagged = parse_analyzer_output(buf.getvalue())
    return {"compatible": not flagged, "unsupported": flagged, "tf_version": tf.__version__, "note": describe(flagged)}
