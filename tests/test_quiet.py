"""Quiet by default: no TensorFlow or absl log line reaches the terminal unless ``--verbose``.

TensorFlow's C++ logger prints lines such as ``E0000 ... NodeDef mentions attribute
use_unbounded_threadpool`` during Keras evaluation; they read as errors and are not.
``edgecnn/__init__.py`` sets ``TF_CPP_MIN_LOG_LEVEL=3`` unless ``EDGECNN_VERBOSE`` is set,
and ``edgecnn --verbose`` sets it (before TensorFlow loads).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

# absl's C++ format (I0000 00:00:...), its start-up notice, TensorFlow source paths, the
# converter's and LiteRT's own prints.
LOG_LINE = re.compile(
    r"^[IWEF]\d{4} |absl|tensorflow/|node_def_util|^INFO: |fully_quantize|oneDNN|cuda", re.MULTILINE | re.IGNORECASE
)


def _edgecnn(*args):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "EDGECNN_VERBOSE")}
    env["PYTHONUNBUFFERED"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "edgecnn", *args], capture_output=True, text=True, timeout=600, env=env
    )


@pytest.mark.slow  # two runs (~45 s): in CI's representative slow set (tests/conftest.py)
def test_a_run_prints_no_tensorflow_log_lines_unless_verbose(tmp_path):
    # Training, Keras evaluation, float32 and int8 conversion, LiteRT evaluation: every
    # place that has printed such lines. The smallest run that goes through them all.
    job = ("optimize", "lenet5", "--epochs", "1", "--train-fraction", "0.2", "--int8", "--no-bench")
    job += ("--allow-outside", "--out", str(tmp_path / "run"))
    quiet = _edgecnn(*job)
    assert quiet.returncode == 0, quiet.stderr
    assert (tmp_path / "run" / "model_int8.tflite").is_file()
    assert not LOG_LINE.search(quiet.stderr), quiet.stderr
    assert not LOG_LINE.search(quiet.stdout), quiet.stdout

    verbose = _edgecnn("--verbose", *job)  # reuses the trained weights: export only
    assert verbose.returncode == 0, verbose.stderr
    assert LOG_LINE.search(verbose.stderr), "--verbose should let TensorFlow's log lines through"
