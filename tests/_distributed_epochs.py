"""One worker of ``test_distribute.py``'s per-epoch test (run as a script, not collected).

Usage: ``TF_CONFIG=... python tests/_distributed_epochs.py OUT FOLDER SHARDS_GLOB``. Trains
the MLP for 3 epochs at 8x8 under ``MultiWorkerMirroredStrategy``, first on the image folder,
then on the TFRecord shards, each twice with the same seed (``first``, ``again``). The
reads of each run are traced to ``OUT/<source><worker>_<run>.txt`` (``EDGECNN_TRACE_READS``:
split, file or shard, augmentation counter ``k``, in the order read); the final weight
digest of each run and the source's epoch span (``k // span`` is the epoch) go to
``OUT/result<worker>.json``.
"""

import json
import os
import sys
from pathlib import Path

from edgecnn import distribute

strategy = distribute.get_strategy("multiworker")  # first: before TensorFlow runs anything

from edgecnn._tf import keras  # noqa: E402
from edgecnn.data.contract import LoadSpec  # noqa: E402
from edgecnn.data.stream import TRACE_ENV, load_stream  # noqa: E402
from edgecnn.data.tfrecord import load_tfrecords  # noqa: E402
from edgecnn.models import create_model  # noqa: E402
from edgecnn.train import TrainConfig, fit  # noqa: E402

out, folder, shards = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
worker = distribute.input_shard(strategy)[1]
sources = {
    "folder": lambda: load_stream(folder, LoadSpec((8, 8), 1, cache="none", val_split=0.1, test_split=0.1)),
    "shards": lambda: load_tfrecords(shards, LoadSpec((8, 8), 1, val_split=0.1, test_split=0.1)),
}
result = {}
for name, load in sources.items():
    data = load()
    config = TrainConfig(epochs=3, batch_size=64, strategy="multiworker", verbose=0, augment="shift_flip")
    for run in ("first", "again"):  # the same seed twice: the same weights
        os.environ[TRACE_ENV] = str(out / f"{name}{worker}_{run}.txt")  # read when the pipelines are built
        keras.utils.set_random_seed(config.seed)
        with strategy.scope():
            model = create_model("mlp", input_shape=data.input_shape, classes=data.num_classes)
            fit(model, data, config)
        result.setdefault(name, {})[run] = distribute.weights_digest(model)
    result[name]["span"] = int(data.counts.sum()) if name == "shards" else len(data.y["train"])
distribute.barrier(strategy)
(out / f"result{worker}.json").write_text(json.dumps(result))
