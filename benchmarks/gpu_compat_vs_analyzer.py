"""edgecnn's port of gpu_compatibility.cc vs an older TensorFlow's analyzer, model by model.

TensorFlow 2.18+'s analyzer checks nothing for the GPU delegate (tensorflow/tensorflow#77042),
so ``edgecnn.tflite.gpu_compatibility`` ports the rules. This script checks the port against an analyzer
that still applies them: it builds a few small models with this environment's TensorFlow,
runs ``tf.lite.experimental.Analyzer.analyze(..., gpu_compatibility=True)`` in another
Python that has TensorFlow <= 2.17 (a throwaway venv), and compares the flagged nodes and
reasons with :func:`edgecnn.tflite.gpu_compatibility.check_model`.

    python -m venv /tmp/tf217 && /tmp/tf217/bin/pip install "tensorflow-cpu==2.17.*"
    python benchmarks/gpu_compat_vs_analyzer.py --python /tmp/tf217/bin/python [--out /tmp/gpucmp]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _results import update_section  # noqa: E402

ANALYZE = """
import contextlib, io, json, sys
from pathlib import Path
import tensorflow as tf
res = {"tf": tf.__version__}
for p in sorted(Path(sys.argv[1]).glob("*.tflite")):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        tf.lite.experimental.Analyzer.analyze(model_path=str(p), gpu_compatibility=True)
    res[p.name] = buf.getvalue()
print(json.dumps(res))
"""


def build_models(folder: Path) -> None:
    """Small models covering supported ops, unsupported ops and per-op rules."""
    from _tiny_tflite import build_tiny_models

    from edgecnn._tf import keras, tf
    from edgecnn.tflite.convert import convert

    build_tiny_models(folder)  # CONV_2D, DEPTHWISE_CONV_2D, MEAN, FULLY_CONNECTED, SOFTMAX; 3 precisions
    L = keras.layers

    def save(name, inp, out):
        convert(keras.Model(inp, out), folder / f"{name}.tflite", "float32")

    i = keras.Input((8,))
    save("topk", i, L.Dense(2, activation="softmax")(L.Lambda(lambda x: tf.math.top_k(x, k=3).values)(i)))
    for c in (1, 3):
        i = keras.Input((8, 8, c))
        save(f"dm2_c{c}", i, L.DepthwiseConv2D(3, depth_multiplier=2)(i))
    i = keras.Input((8, 8, 4))
    x = L.Conv2D(4, 3, padding="same")(i)
    a = L.Add()([x, i])
    c = L.Concatenate()([a, L.Multiply()([a, i])])
    p = L.ZeroPadding2D(1)(L.UpSampling2D(interpolation="bilinear")(c))
    x = L.AveragePooling2D()(L.MaxPooling2D()(p))
    save("mixed", i, L.Activation("sigmoid")(L.Lambda(lambda x: x * tf.nn.relu6(x + 3.0) / 6.0)(x)))
    i = keras.Input((8, 8, 4))
    save("argmax", i, L.Lambda(lambda x: tf.cast(tf.argmax(x, axis=-1), tf.float32))(i))
    i = keras.Input((8, 8, 4))
    save("shrink_slice", i, L.Lambda(lambda x: x[:, 1, :, :])(i))
    i = keras.Input((8, 8, 4))
    save("conv3d", i, L.Conv3D(2, 2)(L.Reshape((8, 8, 4, 1))(i)))
    i = keras.Input((8, 8, 4))
    save("reduce_max_tanh", i, L.Lambda(lambda x: tf.tanh(tf.reduce_max(x, axis=[1, 2])))(i))
    i = keras.Input((8, 8, 4))
    save("transpose_conv_leaky", i, L.LeakyReLU()(L.Conv2DTranspose(2, 3, strides=2)(i)))
    i = keras.Input((4,))
    save("gather", i, L.Lambda(lambda x: tf.gather(x, [0, 2], axis=1))(i))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--python", required=True, help="a Python with TensorFlow <= 2.17 (its analyzer still checks)")
    ap.add_argument("--out", type=Path, default=None, help="folder for the models (default: a temporary one)")
    args = ap.parse_args()

    from edgecnn.device.flatbuffer import read_model
    from edgecnn.tflite.gpu_compatibility import check_model, parse_analyzer_output

    folder = args.out or Path(tempfile.mkdtemp(prefix="gpucmp-"))
    folder.mkdir(parents=True, exist_ok=True)
    build_models(folder)
    out = subprocess.run([args.python, "-c", ANALYZE, str(folder)], capture_output=True, text=True, check=True)
    texts = json.loads(out.stdout.strip().splitlines()[-1])
    rows, same = [], 0
    for name, text in sorted(texts.items()):
        if name == "tf":
            continue
        theirs = [(f["node"], f["op"], f["reason"]) for f in parse_analyzer_output(text)]
        ours = [(f["node"], f["op"], f["reason"]) for f in check_model(folder / name)]
        same += theirs == ours
        ops = ", ".join(sorted({op for op, _ in read_model(folder / name).op_counts()}))
        shown = "; ".join(f"node {n} {op}: {r}" for n, op, r in ours) or "nothing flagged"
        rows.append(f"| {name} | {ops} | {shown} | {'same' if theirs == ours else f'DIFFERENT: {theirs}'} |")
    import tensorflow as tf

    body = (
        f"Models built with TensorFlow {tf.__version__}; analyzer of TensorFlow {texts['tf']}. "
        f"**{same} of {len(rows)} models: the same flagged nodes and reasons.**\n\n"
        "| model | ops | edgecnn's port flags | TF analyzer |\n|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )
    print(body)
    update_section("gpu_compat_vs_analyzer", "GPU-delegate check: edgecnn's port vs TensorFlow's analyzer", body)


if __name__ == "__main__":
    main()
