"""Which ops of a ``.tflite`` the mobile GPU delegate would not run, before trying on a phone.

TFLite's model analyzer (``tf.lite.experimental.Analyzer.analyze(..., gpu_compatibility=True)``)
checks each operator against the GPU delegate's rules and prints, after an op it rejects,
``GPU COMPATIBILITY WARNING: <reason>``, then per subgraph ``GPU COMPATIBILITY WARNING:
Subgraph#0 has GPU delegate compatibility issues at nodes 3, 7 with TFLite runtime version
...`` (``tensorflow/lite/python/analyzer_wrapper/model_analyzer.cc``). It prints to
stdout, so the text is captured and parsed here. Needs TensorFlow: this is the
workstation's check (``edgecnn bench``); the device side has no analyzer.

The analyzer's verdict is static and needs confirming on the phone (``benchmark_model
--use_gpu=true`` reports how many nodes the delegate took, and ``edgecnn report`` shows it).

**TensorFlow 2.19 and later do not check.** The GPU rules were taken out of the analyzer
(tensorflow/tensorflow PR #74830, October 2024; the request to bring them back is issue
#77042): ``gpu_compatibility=True`` still prints "Your model looks compatible with GPU
delegate" for every model, with no check behind it. With TensorFlow 2.21 a model with
TOPK_V2 or CONV_3D, which the GPU delegate does not run, gets that line. So from 2.19 on
(:data:`ANALYZER_CHECKS_UNTIL`) the result is ``compatible: None``, "not checked", and says
why, never "compatible"; before 2.19 the analyzer's warnings are parsed as below.

Example:
    >>> gpu_compatibility("model_int8.tflite")  # doctest: +SKIP
    {'compatible': None, 'checked': False, 'unsupported': [], 'tf_version': '2.21.0', 'note': 'not checked: ...'}
"""

from __future__ import annotations

import contextlib
import io
import re

OP_LINE = re.compile(r"^\s*Op#(?P<node>\d+) (?P<op>[A-Z0-9_]+)\(")
SUBGRAPH_LINE = re.compile(r"^Subgraph#(?P<sg>\d+)")
WARNING = "GPU COMPATIBILITY WARNING: "
#: The last TensorFlow (major, minor) whose analyzer checks ops against the GPU delegate.
ANALYZER_CHECKS_UNTIL = (2, 18)
NOT_CHECKED = (
    "not checked: TensorFlow {version}'s analyzer no longer checks ops for the GPU delegate "
    "(removed in 2.19, tensorflow/tensorflow#77042); run benchmark_model --use_gpu=true on the phone "
    "and edgecnn report shows how many nodes the GPU delegate took"
)


def analyzer_checks_gpu(tf_version: str) -> bool:
    """Whether TensorFlow ``tf_version``'s analyzer still checks GPU compatibility.

    Example:
        >>> analyzer_checks_gpu("2.18.1"), analyzer_checks_gpu("2.21.0"), analyzer_checks_gpu("2.19.0rc0")
        (True, False, False)
    """
    m = re.match(r"(\d+)\.(\d+)", tf_version)
    return bool(m) and (int(m[1]), int(m[2])) <= ANALYZER_CHECKS_UNTIL


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
    """Run TFLite's analyzer with ``gpu_compatibility=True`` on ``model_path`` and parse it;
    with TensorFlow 2.19+, whose analyzer checks nothing, say "not checked" instead.

    ``compatible``: True (nothing flagged), False (ops flagged, in ``unsupported``), or None
    (not checked, ``checked`` False); ``note``: one line for the bench output.
    """
    from edgecnn._io import quiet_native_stderr
    from edgecnn._tf import tf

    if not analyzer_checks_gpu(tf.__version__):
        note = NOT_CHECKED.format(version=tf.__version__)
        return {"compatible": None, "checked": False, "unsupported": [], "tf_version": tf.__version__, "note": note}
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), quiet_native_stderr():
        tf.lite.experimental.Analyzer.analyze(model_path=str(model_path), gpu_compatibility=True)
    flagged = parse_analyzer_output(buf.getvalue())
    return {
        "compatible": not flagged,
        "checked": True,
        "unsupported": flagged,
        "tf_version": tf.__version__,
        "note": describe(flagged),
    }
