"""The core settings sections of a run: model, data, training, conversion, benchmark.

Each setting is declared once, with :func:`edgecnn.settings.fields.setting`; the compression
stages declare their own sections in their modules (:mod:`edgecnn.stages`), and
:class:`edgecnn.settings.run_config.RunConfig` puts them all together. Nothing here imports TensorFlow.

Example:
    >>> ConvertConfig(int8=True, fp16=True).precisions
    ['float32', 'float16', 'int8']
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgecnn.device.bench import DEFAULT_RUNS, DEFAULT_WARMUP
from edgecnn.device.preprocess import DEFAULT_RESIZE, RESIZE_METHODS
from edgecnn.device.runtime import AUTO_ORDER, RUNTIMES
from edgecnn.distribute import STRATEGIES
from edgecnn.errors import UserError
from edgecnn.settings.fields import Section, setting

AUGMENTATIONS = ("auto", "none", "shift", "shift_flip")
OPTIMIZERS = ("adam", "sgd", "rmsprop")
SCHEDULES = ("cosine", "constant", "step")
#: The one declaration of the TFLite precisions: each name, in export order, and the
#: :class:`ConvertConfig` switch that turns it on (``None``: float32, always made). The
#: converter, ``convert.precisions``, a recipe's ``convert: {precisions: [...]}`` and the
#: sweep's ``--precisions`` all read it.
PRECISION_SWITCHES = {"float32": None, "float16": "fp16", "dynamic": "dynamic", "int8": "int8", "int16x8": "int16x8"}
PRECISIONS = tuple(PRECISION_SWITCHES)
#: Other spellings of a precision a recipe accepts: spelling -> precision.
PRECISION_ALIASES = {"fp16": "float16"}


@dataclass
class ModelConfig(Section):
    """Which architecture to build. ``args`` go to the builder (e.g. ``{"groups": 3}``)."""

    key = "model"

    name: str = setting("mobilenet", help="Any model of 'edgecnn list'.")
    alpha: float | None = setting(
        None, help="Width multiplier (e.g. 0.25, 0.5, 1.0).", cli="--alpha", low=0, low_open=True, default_text="1.0"
    )
    args: dict = setting(factory=dict, help="Further builder arguments (--arg KEY=VALUE, --phi).")
    weights: str | None = setting(
        None,
        cli="--weights",
        metavar="WEIGHTS",
        help="Start from these weights: 'imagenet' (Keras Applications' published weights), a weight file "
        "(.h5, .weights.h5 or .keras, told from its content) or an edgecnn run folder of the same family.",
        default_text="random initialisation",
    )

    def check(self, path: str) -> None:
        w = self.weights
        if w is None or str(w).lower() in ("none", "imagenet"):
            return
        if not Path(w).expanduser().exists():
            raise UserError(
                f"{path}.weights {w!r}: no such file; give 'imagenet', 'none', "
                "a weight file (.h5, .weights.h5, .keras) or a run folder"
            )


@dataclass
class DataConfig(Section):
    """Where the images come from and how they are split (see :func:`edgecnn.data.dataset.load_dataset`)."""

    key = "data"

    source: str = setting(
        "digits",
        cli="--data",
        metavar="SOURCE",
        help="'digits' (built in), an image folder (one subfolder per class) or an .npz file.",
    )
    image_size: int | None = setting(
        None,
        cli="--image-size",
        low=8,
        high=2048,
        help="Input resolution.",
        default_text="32 for digits, the model's canonical size otherwise",
    )
    val_split: float = setting(0.1, help="Fraction of the images kept for validation.", low=0, high=1, high_open=True)
    test_split: float = setting(0.2, help="Fraction of the images kept for the test.", low=0, high=1, high_open=True)
    seed: int = setting(0, cli="--seed", help="Seed for splits, shuffling and initialisation.")
    train_fraction: float | None = setting(
        None,
        cli="--train-fraction",
        low=0,
        high=1,
        low_open=True,
        help="Use only this fraction of the training split.",
        default_text="all of it",
    )

    cache: str = setting(
        "auto",
        cli="--cache",
        choices=("auto", "memory", "disk", "none"),
        help="Decoded images of a streamed image folder: in memory, on disk under the run folder, or not kept "
        "(auto: memory when they fit a quarter of the RAM, else disk).",
    )
    resize: str = setting(
        DEFAULT_RESIZE,
        cli="--resize",
        choices=RESIZE_METHODS,
        help="How images are resized to the input size, in training and on the device alike: antialias "
        "(Pillow's bilinear filter, sharp on large downscales) or bilinear (2 taps, no antialiasing, as Keras' "
        "image_dataset_from_directory; about 4x cheaper, for images at most about twice the input size).",
    )

    def check(self, path: str) -> None:
        if self.val_split + self.test_split >= 1:
            raise UserError(f"{path}.val_split + {path}.test_split must leave images for training")


@dataclass
class TrainConfig(Section):
    """How a model is fitted (see :func:`edgecnn.train.fit`). ``None`` means "the model family's default".

    ``strategy``: ``auto``, ``default``, ``mirrored`` or ``multiworker`` (see
    :mod:`edgecnn.distribute`); the model must be built inside that strategy's scope.
    ``verbose``: Keras' progress display (1 bar, 2 a line per epoch, 0 silent; ``None`` = a
    bar on a terminal, lines otherwise).
    """

    key = "train"

    epochs: int | None = setting(None, cli="--epochs", low=0, help="Training epochs (from --weights: of the whole "
                                 "network, after the head phase).", default_text="per family; 10 from --weights")
    batch_size: int = setting(32, cli="--batch-size", low=1, help="Images per step (across replicas).")
    optimizer: str = setting(
        "adam", cli="--optimizer", choices=OPTIMIZERS, help="adam, sgd (Nesterov momentum 0.9) or rmsprop."
    )
    learning_rate: float | None = setting(
        None,
        cli="--lr",
        low=0,
        high=10,
        low_open=True,
        high_open=True,
        help="Peak learning rate.",
        default_text="per family",
    )
    schedule: str = setting("cosine", choices=SCHEDULES, help="cosine (to 1% of the peak), step or constant.")
    warmup_epochs: float = setting(1.0, low=0, help="Linear warm-up from 10% of the peak.")
    weight_decay: float = setting(0.0, low=0, help="Decoupled weight decay.")
    label_smoothing: float = setting(0.0, low=0, high=1, high_open=True, help="Label smoothing of the loss.")
    augment: str = setting(
        "auto",
        cli="--augment",
        choices=AUGMENTATIONS,
        help="Training augmentation (auto: shifts for digits, shifts and flips for photos).",
    )
    patience: int | None = setting(None, low=1, help="Stop when validation accuracy stalls this many epochs.")
    freeze_epochs: int | None = setting(
        None,
        cli="--freeze-epochs",
        low=0,
        help="Fine-tuning from --weights: first train only the new head, at most this many epochs (it stops "
        "when validation loss stops improving; on the frozen backbone's features, computed once), then the "
        "whole network for --epochs. 0: no head phase.",
        default_text="30 with --weights, 0 without",
    )
    fine_tune_lr: float | None = setting(
        None,
        cli="--fine-tune-lr",
        low=0,
        high=10,
        low_open=True,
        high_open=True,
        help="Learning rate of the whole network after the head phase (the head phase uses --lr; "
        "BatchNorm stays in inference mode). Low, so that the pretrained features survive.",
        default_text="4e-4 (per family)",
    )
    tensorboard: bool = setting(False, cli="--tensorboard", help="Write TensorBoard logs into the run folder.")
    seed: int = setting(0, cli="--seed", help="Seed for splits, shuffling and initialisation.")
    verbose: int | None = setting(None, choices=(0, 1, 2), help="Keras progress display.")
    strategy: str = setting(
        "auto",
        cli="--strategy",
        choices=STRATEGIES,
        help="tf.distribute strategy: auto (mirrored with several GPUs, else default), default, mirrored "
        "(every local GPU), multiworker (machines listed in TF_CONFIG; run the same command on each).",
    )


@dataclass
class ConvertConfig(Section):
    """Which TFLite files to produce. float32 is always produced, as the baseline.

    ``sparse_storage`` stores the float32 files' sparse weight tensors (after pruning) in
    TFLite's sparse format, see :mod:`edgecnn.tflite.convert`. ``metadata`` writes TFLite Metadata
    (labels, normalisation, colour space) into every file, see :mod:`edgecnn.tflite.metadata`.
    Every int8 export gets a per-layer error report unless ``int8_debug`` is off;
    ``max_int8_drop`` adds the ``int8_mixed`` row (see :mod:`edgecnn.tflite.debugger`).
    """

    key = "convert"

    int8: bool = setting(False, cli="--int8", help="Also export full-integer int8 (int8 input/output).")
    fp16: bool = setting(False, cli="--fp16", help="Also export float16 weights.")
    dynamic: bool = setting(False, cli="--dynamic", help="Also export dynamic-range (int8 weights, float activations).")
    sparse_storage: bool = setting(
        False,
        cli="--sparse-storage",
        help="With --prune: keep the pruned float32 weights in TFLite's sparse format (smaller, same outputs).",
    )
    int16x8: bool = setting(
        False,
        cli="--int16x8",
        help="Also export int16 activations with int8 weights (float input/output; more accurate than int8, "
        "but XNNPACK runs none of it: reference kernels).",
    )
    calibration_samples: int = setting(200, low=1, help="Training images that calibrate int8 ranges.")
    metadata: bool = setting(
        True,
        cli="--no-metadata",
        flag_value=False,
        help="Leave out the TFLite Metadata (labels, normalisation) that Android tooling reads.",
    )
    int8_debug: bool = setting(
        True,
        cli="--no-int8-debug",
        flag_value=False,
        help="Skip the per-layer int8 error report (TFLite's quantization debugger on validation images).",
    )
    max_int8_drop: float | None = setting(
        None,
        cli="--max-int8-drop",
        low=0,
        metavar="POINTS",
        help="When int8 loses more validation accuracy than this vs float32 (in points), also export "
        "int8_mixed: the fewest worst layers kept in float to stay within it (implies --int8).",
        default_text="off",
    )

    @property
    def precisions(self) -> list:
        """``float32`` and the precisions switched on, in :data:`PRECISIONS` order
        (``max_int8_drop`` implies int8: the mixed file is measured against it)."""
        on = {switch: bool(getattr(self, switch)) for switch in PRECISION_SWITCHES.values() if switch}
        on["int8"] = on["int8"] or self.max_int8_drop is not None
        return [p for p, switch in PRECISION_SWITCHES.items() if switch is None or on[switch]]


@dataclass
class BenchConfig(Section):
    """How each ``.tflite`` is timed (see :func:`edgecnn.device.bench.benchmark`)."""

    key = "bench"

    enabled: bool = setting(True, cli="--no-bench", flag_value=False, help="Skip latency measurement.")
    threads: int = setting(1, cli="--threads", low=1, high=256, help="Interpreter threads.")
    warmup: int = setting(DEFAULT_WARMUP, low=0, help="Untimed runs first.")
    runs: int = setting(DEFAULT_RUNS, cli="--runs", low=1, help="Timed runs per benchmark.")
    runtime: str = setting(
        "auto",
        cli="--runtime",
        choices=("auto", *RUNTIMES),
        help=f"TFLite runtime; auto tries {', then '.join(AUTO_ORDER)}.",
    )
    timeout: float = setting(300.0, low=0, low_open=True, help="Seconds before a benchmark is given up.")
