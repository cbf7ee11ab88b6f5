"""The run configuration: one tree of dataclasses behind both doors into the pipeline.

``edgecnn optimize`` builds a :class:`RunConfig` from its flags, a recipe builds one from
YAML (:mod:`edgecnn.recipe`); both then call :func:`edgecnn.pipeline.optimize`. Values
left ``None`` are filled by :func:`resolve` from the model family's defaults, so the
precedence is: built-in defaults, then the recipe, then command-line flags.

Example:
    >>> cfg = RunConfig.from_dict({"model": {"name": "mobilenet", "alpha": 0.5}, "convert": {"int8": True}})
    >>> cfg.model.alpha, cfg.convert.int8
    (0.5, True)
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field

from edgecnn.errors import UserError, suggest
from edgecnn.train import TrainConfig


@dataclass
class ModelConfig:
    """Which architecture to build. ``args`` go to the builder (e.g. ``{"groups": 3}``)."""

    name: str = "mobilenet"
    alpha: float | None = None
    args: dict = field(default_factory=dict)


@dataclass
class DataConfig:
    """Where the images come from and how they are split (see :func:`edgecnn.data.load_dataset`)."""

    source: str = "digits"
    image_size: int | None = None
    val_split: float = 0.1
    test_split: float = 0.2
    seed: int = 0
    train_fraction: float | None = None


@dataclass
class ConvertConfig:
    """Which TFLite files to produce. float32 is always produced, as the baseline.

    ``sparse_storage`` stores the float32 files' sparse weight tensors (after pruning) in
    TFLite's sparse format, see :mod:`edgecnn.convert`.
    """

    int8: bool = False
    fp16: bool = False
    dynamic: bool = False
    sparse_storage: bool = False
    calibration_samples: int = 200

    @property
    def precisions(self) -> list:
        wanted = ["float32"] + [
            p for p, on in (("float16", self.fp16), ("dynamic", self.dynamic), ("int8", self.int8)) if on
        ]
        return wanted


@dataclass
class BenchConfig:
    """How each ``.tflite`` is timed (see :func:`edgecnn.device.bench.benchmark`)."""

    enabled: bool = True
    threads: int = 1
    warmup: int = 5
    runs: int = 50
    runtime: str = "auto"
    timeout: float = 300.0


@dataclass
class PruneConfig:
    """Pruning (see :mod:`edgecnn.optimize.prune` and :mod:`edgecnn.optimize.channel_prune`).

    Attributes:
        sparsity: magnitude pruning to this fraction of zero weights, in (0, 1); ``None`` = off.
        structure: ``unstructured`` or ``2:4`` (two zeros in every four input weights).
        epochs: fine-tuning epochs of each pruning stage (default: half of training's).
        learning_rate: fine-tuning peak learning rate (default: 0.5x training's).
        skip: extra glob patterns of layer names to leave dense.
        channels: channel pruning: fraction of filters to remove, in (0, 1); ``None`` = off.
        criterion: filter importance for channel pruning: ``l1`` (kernel L1 norm) or ``bn``
            (absolute BatchNorm scale).
    """

    sparsity: float | None = None
    structure: str = "unstructured"
    epochs: int | None = None
    learning_rate: float | None = None
    skip: list = field(default_factory=list)
    channels: float | None = None
    criterion: str = "l1"


@dataclass
class DistillConfig:
    """Knowledge distillation (see :mod:`edgecnn.optimize.distill`).

    Attributes:
        teacher: ``name[:alpha]`` of a registered model (trained first, cached), or the
            path of a saved ``.keras`` model; ``None`` = off.
        alpha: weight of the cross-entropy on the labels; ``1 - alpha`` goes to the
            teacher's softened outputs.
        temperature: the softmax temperature ``T``.
        teacher_epochs: epochs to train a registered teacher (default: the student's).
        mixup: Beta(c, c) concentration of mixup applied to the images both teacher and
            student see ("function matching"); ``0`` = off.
        teacher_data: what a registered teacher is trained on: ``"same"`` data as the
            student, or ``"full"``: the whole training split even when
            ``data.train_fraction`` gives the student only part of it (a teacher that has
            seen more labelled data than the student, as a pretrained one would have).
    """

    teacher: str | None = None
    alpha: float = 0.1
    temperature: float = 4.0
    teacher_epochs: int | None = None
    mixup: float = 0.0
    teacher_data: str = "same"


@dataclass
class QATConfig:
    """Quantization-aware training (see :mod:`edgecnn.optimize.qat`); implies an int8 export."""

    enabled: bool = False
    epochs: int | None = None
    learning_rate: float | None = None


@dataclass
class RunConfig:
    """Everything one run of the pipeline needs."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    convert: ConvertConfig = field(default_factory=ConvertConfig)
    bench: BenchConfig = field(default_factory=BenchConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    qat: QATConfig = field(default_factory=QATConfig)
    out: str | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, where: str = "") -> RunConfig:
        """Build from nested dicts, rejecting unknown keys and wrong types by key path."""
        return _from_dict(cls, data or {}, where)


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp)).replace("typing.", "")


def _coerce(value, tp, path: str):
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, path)
            except UserError as exc:
                errors.append(exc)
        raise errors[0]
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise UserError(f"{path} must be a mapping of settings, got {type(value).__name__} {value!r}")
        return _from_dict(tp, value, path)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise UserError(f"{path} must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise UserError(f"{path} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"{path} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise UserError(f"{path} must be a string, got {value!r}")
        return value
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise UserError(f"{path} must be a mapping, got {value!r}")
        return dict(value)
    if tp is list or origin is list:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{path} must be a list, got {value!r}")
        return list(value)
    return value


def _from_dict(cls, data: dict, where: str):
    if not isinstance(data, dict):
        raise UserError(f"{where} must be a mapping of settings, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in fields:
            raise UserError(f"unknown setting {path!r}{suggest(key, fields)}")
        kwargs[key] = _coerce(value, hints[key], path)
    return cls(**kwargs)


def resolve(config: RunConfig, entry=None) -> RunConfig:
    """Fill the ``None`` settings from the model family's defaults; check ranges.

    Returns a new :class:`RunConfig`; the argument is not changed.
    """
    from edgecnn.models import model_info
    from edgecnn.models._layers import check_alpha

    cfg = RunConfig.from_dict(config.to_dict())
    entry = entry or model_info(cfg.model.name)
    cfg.model.name = entry.name
    cfg.model.alpha = check_alpha(1.0 if cfg.model.alpha is None else cfg.model.alpha)
    _check_model_args(cfg.model.args, entry)
    if cfg.data.image_size is None:
        cfg.data.image_size = (
            entry.small_size if cfg.data.source == "digits" else entry.preferred_resolution(**cfg.model.args)
        )
    if cfg.data.image_size < entry.min_size:
        raise UserError(
            f"{entry.name} needs images of at least {entry.min_size}x{entry.min_size}, "
            f"got --image-size {cfg.data.image_size}"
        )
    if cfg.train.epochs is None:
        cfg.train.epochs = int(entry.train.get("epochs", 20))
    if cfg.train.learning_rate is None:
        cfg.train.learning_rate = float(entry.train.get("learning_rate", 1e-3))
    cfg.train.validate()
    b = cfg.bench
    if b.threads < 1 or b.runs < 1 or b.warmup < 0 or b.timeout <= 0:
        raise UserError("bench.threads and bench.runs must be >= 1, bench.warmup >= 0, bench.timeout > 0")
    if cfg.convert.calibration_samples < 1:
        raise UserError(f"convert.calibration_samples must be >= 1, got {cfg.convert.calibration_samples}")
    _resolve_compression(cfg)
    return cfg


def _resolve_compression(cfg: RunConfig):
    """Check the prune/distill/qat sections and fill their defaults from training's."""
    p, d, q, t = cfg.prune, cfg.distill, cfg.qat, cfg.train
    for key, value in (("sparsity", p.sparsity), ("channels", p.channels)):
        if value is not None and not 0.0 < value < 1.0:
            raise UserError(f"prune.{key} must be between 0 and 1 (exclusive), got {value}")
    if p.structure not in ("unstructured", "2:4"):
        raise UserError(f"prune.structure must be 'unstructured' or '2:4', got {p.structure!r}")
    if p.structure == "2:4":
        if p.sparsity not in (None, 0.5):
            raise UserError(f"2:4 structured sparsity is always 50%; got prune.sparsity {p.sparsity}")
        p.sparsity = 0.5
    if p.criterion not in ("l1", "bn"):
        raise UserError(f"prune.criterion must be 'l1' or 'bn', got {p.criterion!r}")
    if not 0.0 <= d.alpha <= 1.0:
        raise UserError(f"distill.alpha must be in [0, 1], got {d.alpha}")
    if d.temperature <= 0:
        raise UserError(f"distill.temperature must be > 0, got {d.temperature}")
    if d.mixup < 0:
        raise UserError(f"distill.mixup must be >= 0 (0 turns it off), got {d.mixup}")
    if d.teacher_data not in ("same", "full"):
        raise UserError(f"distill.teacher_data must be 'same' or 'full', got {d.teacher_data!r}")
    epochs = (("prune.epochs", p.epochs), ("qat.epochs", q.epochs), ("distill.teacher_epochs", d.teacher_epochs))
    for key, value in epochs:
        if value is not None and value < 0:
            raise UserError(f"{key} must be >= 0, got {value}")
    for key, value in (("prune.learning_rate", p.learning_rate), ("qat.learning_rate", q.learning_rate)):
        if value is not None and not 0 < value < 10:
            raise UserError(f"{key} must be in (0, 10), got {value}")
    # Models trained from scratch on small data are far from converged: pruning fine-tunes
    # recover best with a fair share of the training budget and half its peak rate.
    if p.epochs is None:
        p.epochs = max(1, t.epochs // 2)
    if p.learning_rate is None:
        p.learning_rate = 0.5 * t.learning_rate
    if q.epochs is None:
        q.epochs = max(1, t.epochs // 5)
    if q.learning_rate is None:
        q.learning_rate = 0.1 * t.learning_rate
    if p.sparsity is not None and p.epochs < 1:
        raise UserError("magnitude pruning happens while fine-tuning: prune.epochs must be >= 1")
    if q.enabled and q.epochs < 1:
        raise UserError("quantization-aware training needs qat.epochs >= 1 (its ranges are learned)")
    if q.enabled:
        cfg.convert.int8 = True  # post-training int8 of the same model, to compare against


# Builder arguments the pipeline sets itself, and the flag or setting that sets each.
_PIPELINE_ARGS = {
    "input_shape": "--image-size (data.image_size)",
    "input_tensor": "the data",
    "classes": "the data's classes",
    "alpha": "--alpha (model.alpha)",
    "include_top": "the pipeline (always true)",
    "weights": "the pipeline (training from scratch)",
    "pooling": "the pipeline (the classifier head is always built)",
}


def _check_model_args(args: dict, entry) -> None:
    """``model.args`` must name arguments of the builder that the pipeline does not set."""
    from edgecnn.models._registry import unknown_arguments_message

    for key in args:
        if not isinstance(key, str):
            raise UserError(f"model.args keys must be argument names, got {key!r}")
        if key in _PIPELINE_ARGS:
            raise UserError(f"model.args.{key} cannot be set: it comes from {_PIPELINE_ARGS[key]}")
    unknown = sorted(set(args) - entry.arguments)
    if unknown:
        raise UserError(f"model.args.{unknown[0]}: {unknown_arguments_message(entry, unknown, _PIPELINE_ARGS)}")


def run_name(cfg: RunConfig) -> str:
    """The default run folder name, recording the settings: ``mobilenet-a0.50-32px``
    (builder arguments too: ``efficientnet-phi1.5-a1.00-32px``)."""
    import re

    args = (re.sub(r"[^\w.]+", "_", f"{k}{v}") for k, v in sorted(cfg.model.args.items()))
    parts = [cfg.model.name, *args, f"a{cfg.model.alpha:.2f}", f"{cfg.data.image_size}px"]
    if cfg.data.source != "digits":
        from pathlib import Path

        parts.append(Path(cfg.data.source).stem or "data")
    return "-".join(parts)
