"""One worker of the two-process tests in ``test_distribute.py`` (run as a script, not collected).

Usage: ``TF_CONFIG=... python tests/_distributed_worker.py RESULT.json [EXPORT_DIR]``. Trains
LeNet-5 on a slice of digits for one epoch, prunes and fine-tunes it, then fine-tunes it
quantization-aware, all under ``MultiWorkerMirroredStrategy``; writes the weight digest of
every stage to RESULT.json. The chief also exports the QAT model to int8 in EXPORT_DIR.
"""

import json
import sys

from edgecnn import distribute

strategy = distribute.get_strategy("multiworker")  # first: before TensorFlow runs anything

from edgecnn.data.dataset import load_dataset  # noqa: E402
from edgecnn.models import batch_norm_defaults, create_model  # noqa: E402
from edgecnn.optimize.prune import prune_model, pruning_callbacks, strip_pruning  # noqa: E402
from edgecnn.optimize.qat import quantize_model  # noqa: E402
from edgecnn.train import TrainConfig, evaluate_keras, fit  # noqa: E402

data = load_dataset("digits", image_size=32, channels=1, train_fraction=0.3)
config = TrainConfig(epochs=1, batch_size=32, strategy="multiworker", verbose=2, learning_rate=2e-3)
steps = -(-len(data.y["train"]) // config.batch_size)
result = {"chief": distribute.is_chief(strategy), "workers": distribute.describe(strategy)["workers"]}
with batch_norm_defaults(), strategy.scope():
    model = create_model("lenet5", input_shape=data.input_shape, classes=data.num_classes)
    fit(model, data, config)
    result["trained"] = distribute.weights_digest(model)
    pruned = prune_model(model, sparsity=0.5, end_step=steps, frequency=1, skip=())
    fit(pruned, data, config, extra_callbacks=pruning_callbacks())
    result["pruned"] = distribute.weights_digest(pruned)
    stripped = strip_pruning(pruned)
    kernels = [w for layer in stripped.layers for w in layer.get_weights()[:1] if w.ndim > 1]
    result["sparsity"] = float(sum((k == 0).sum() for k in kernels) / sum(k.size for k in kernels))
    qat = quantize_model(stripped)
    fit(qat, data, config)
    result["qat"] = distribute.weights_digest(qat)

qat = distribute.local_copy(qat)  # every worker, outside the scope; then the chief works alone
result["qat_accuracy"] = evaluate_keras(qat, data)

if result["chief"] and len(sys.argv) > 2:
    from pathlib import Path

    from edgecnn.device.evaluate import evaluate_tflite
    from edgecnn.tflite.convert import convert

    path = Path(sys.argv[2]) / "qat_int8.tflite"
    convert(qat, path, "int8", representative=data.representative(50))
    result["tflite_accuracy"] = evaluate_tflite(path, data.normalized("test"), data.y["test"])["accuracy"]
distribute.barrier(strategy)
with open(sys.argv[1], "w") as f:
    json.dump(result, f)
