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
    """Which TFLite files to produce. float32 is always produced, as the baseline."""

    int8: bool = False
    fp16: bool = False
    dynamic: bool = False
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
class RunConfig:
    """Everything one run of the pipeline needs."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    convert: ConvertConfig = field(default_factory=ConvertConfig)
    bench: BenchConfig = field(default_factory=BenchConfig)
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
    return cfg


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
