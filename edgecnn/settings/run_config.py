"""The run configuration: one tree of dataclasses behind both doors into the pipeline.

``edgecnn optimize`` builds a :class:`RunConfig` from its flags, a recipe builds one from
YAML (:mod:`edgecnn.recipe`); both then call :func:`edgecnn.pipeline.optimize`. Values
left ``None`` are filled by :func:`resolve` from the model family's defaults, so the
precedence is: built-in defaults, then the recipe, then command-line flags.

Each setting is declared once, here or in its stage's module (:mod:`edgecnn.stages`), with
:func:`edgecnn.settings.fields.setting`; the CLI flags, recipe validation and ``--set`` are
derived from these declarations. ``RunConfig`` holds the sections below plus one section
per registered stage, in the stages' order. Importing this module does not import
TensorFlow.

Example:
    >>> cfg = RunConfig.from_dict({"model": {"name": "mobilenet", "alpha": 0.5}, "convert": {"int8": True}})
    >>> cfg.model.alpha, cfg.convert.int8
    (0.5, True)
"""

from __future__ import annotations

import dataclasses
import os
import re
import typing
from pathlib import Path

from edgecnn import stages
from edgecnn.errors import UserError
from edgecnn.settings.fields import Section, from_dict
from edgecnn.settings.sections import (  # noqa: F401 - the sections are part of this module's API
    AUGMENTATIONS,
    OPTIMIZERS,
    PRECISION_ALIASES,
    PRECISION_SWITCHES,
    PRECISIONS,
    SCHEDULES,
    BenchConfig,
    ConvertConfig,
    DataConfig,
    ModelConfig,
    TrainConfig,
)


class _RunConfigMethods:
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, where: str = ""):
        """Build from nested dicts, rejecting unknown keys and wrong types by key path."""
        return from_dict(cls, data or {}, where)

    def validate(self):
        """Check every section's declared ranges and choices, and the rules between fields."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Section):
                value.validate(f.name)
        return self


def _section(name: str, cls) -> tuple:
    return name, cls, dataclasses.field(default_factory=cls)


# Everything one run of the pipeline needs: the core sections, one section per stage (in
# the stages' order, see edgecnn.stages.STAGE_MODULES), and the run folder.
RunConfig = dataclasses.make_dataclass(
    "RunConfig",
    [
        _section("model", ModelConfig),
        _section("data", DataConfig),
        _section("train", TrainConfig),
        _section("convert", ConvertConfig),
        _section("bench", BenchConfig),
        *(_section(stage.name, stage.Config) for stage in stages.model_stages()),
        ("out", typing.Optional[str], dataclasses.field(default=None)),  # noqa: UP045 - a runtime type
    ],
    bases=(_RunConfigMethods,),
    namespace={"__module__": __name__, "__doc__": "Everything one run of the pipeline needs."},
)


# Fine-tuning from --weights, unless the family says otherwise (its registry entry's ``train``):
# chosen on real photos (benchmarks/transfer_photos.py), not on digits.
FINE_TUNE_LR = 4e-4  # the whole network, after the head phase (Adam, warm-up and cosine decay)
FINE_TUNE_EPOCHS = 10  # the whole network's epochs when --epochs is not given
HEAD_EPOCHS = 30  # the head phase's most epochs; it stops when validation loss stops improving


def resolve(config, entry=None):
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
    if str(cfg.model.weights or "").lower() == "imagenet" and not entry.pretrained:
        from edgecnn.models._registry import pretrained_models

        raise UserError(
            f"--weights imagenet: {entry.name} has no published ImageNet weights; "
            f"these have: {', '.join(pretrained_models())}"
        )
    if cfg.data.image_size is None:
        cfg.data.image_size = (
            entry.small_size if cfg.data.source == "digits" else entry.preferred_resolution(**cfg.model.args)
        )
    if cfg.data.image_size < entry.min_size:
        raise UserError(
            f"{entry.name} needs images of at least {entry.min_size}x{entry.min_size}, "
            f"got --image-size {cfg.data.image_size}"
        )
    pretrained = str(cfg.model.weights or "none").lower() != "none"
    if cfg.train.epochs is None:  # from weights: the fine-tuning phase's epochs
        cfg.train.epochs = int(entry.train.get("fine_tune_epochs", FINE_TUNE_EPOCHS) if pretrained
                               else entry.train.get("epochs", 20))
    if cfg.train.learning_rate is None:
        cfg.train.learning_rate = float(entry.train.get("learning_rate", 1e-3))
    if cfg.train.freeze_epochs is None:  # at most; the head phase stops when validation loss does
        cfg.train.freeze_epochs = int(entry.train.get("freeze_epochs", HEAD_EPOCHS)) if pretrained else 0
    if cfg.train.fine_tune_lr is None:
        # Low, per family: on real photos a fine-tuning rate of --lr (2e-3) wrecked the ImageNet
        # features of MobileNet v1 (28% test where 1e-4 gave 79%); of 1e-4, 2e-4 and 4e-4, 4e-4
        # scored best on two photo sets (benchmarks/RESULTS.md, "Transfer learning on real photos").
        cfg.train.fine_tune_lr = float(entry.train.get("fine_tune_lr", FINE_TUNE_LR))
    cfg.validate()
    for stage in stages.model_stages():
        stage.resolve(cfg)
    return cfg


# Builder arguments the pipeline sets itself, and the flag or setting that sets each.
_PIPELINE_ARGS = {
    "input_shape": "--image-size (data.image_size)",
    "input_tensor": "the data",
    "classes": "the data's classes",
    "alpha": "--alpha (model.alpha)",
    "include_top": "the pipeline (always true)",
    "weights": "--weights (model.weights)",
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


def check_paths(cfg, allow_outside: bool = False, where=lambda path: path) -> None:
    """The files a run reads must exist, and its folder must be one that can be written
    (and, unless ``allow_outside``, stay under the working directory: see :func:`check_out_path`).

    Both doors into the pipeline call this before any work: ``edgecnn optimize`` (its
    ``--out`` typed by the user, so ``allow_outside=True``) and a recipe (its ``out:`` from a
    file). ``where(path)`` prefixes errors with the place a setting came from (a recipe's
    line). Each stage checks the files of its own section (a teacher file, for instance).
    """
    source = cfg.data.source
    shards = str(source).lower().endswith((".tfrecord", ".tfrec", ".tfrecords"))  # a pattern of shards

    if source != "digits" and not shards:
        src = Path(source).expanduser()
        if not src.exists():
            raise UserError(
                f"{where('data.source')}: data.source {source!r} not found (give digits, a folder or an .npz)"
            )
        if src.is_file() and src.suffix.lower() != ".npz":
            raise UserError(f"{where('data.source')}: data.source {source!r} is neither a folder nor an .npz file")
    for stage in stages.model_stages():
        stage.check_paths(cfg, where)
    if cfg.out is not None:
        check_out_path(cfg.out, allow_outside, where("out"))


def check_out_path(out, allow_outside: bool = False, where: str = "") -> Path:
    """An output folder that can be written, refused in one line when it exists as a file or
    cannot be created; and, unless ``allow_outside``, when it escapes the working directory
    (``..``, an absolute path elsewhere, a symbolic link out of it).

    A folder typed on the command line (``--out``) goes wherever the user says
    (``allow_outside=True``); the guard is for a path read from a recipe file, which may come
    from someone else. ``where`` names the place: ``--out``, or a recipe's line.

    Example:
        >>> check_out_path("runs/x")
        PosixPath('runs/x')
        >>> check_out_path("../../etc")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        edgecnn.errors.UserError: out '../../etc' contains '..'; ...
        >>> check_out_path("/tmp/edgecnn-run", allow_outside=True, where="--out")
        PosixPath('/tmp/edgecnn-run')
    """
    p = Path(str(out)).expanduser()
    flag = where.startswith("--") and "=" not in where  # "--out", not "--set out=..." or "r.yaml line 2"
    label = "out" if not where or where == "out" else where if flag else f"{where}: out"
    if allow_outside:
        _check_writable_folder(p, f"{label} {str(out)!r}")
        return p
    hint = "; keep a recipe's out under the working directory, or pass --allow-outside if you mean it"
    if ".." in p.parts:
        raise UserError(f"{label} {str(out)!r} contains '..'{hint}")
    cwd = Path.cwd().resolve()
    full = Path(os.path.normpath(os.path.join(str(cwd), str(p))))
    if full != cwd and cwd not in full.parents:
        raise UserError(f"{label} {str(out)!r} is outside the working directory {cwd}{hint}")
    if full == cwd:
        raise UserError(f"{label}: the output folder cannot be the working directory itself{hint}")
    # A symbolic link inside the tree that leads out of it is an escape too.
    real = Path(os.path.realpath(full))
    if real != full and cwd not in real.parents and Path(os.path.realpath(cwd)) not in real.parents:
        raise UserError(f"{label} {str(out)!r} leads to {real} through a symbolic link{hint}")
    _check_writable_folder(p, f"{label} {str(out)!r}")
    return p


def _check_writable_folder(path: Path, label: str) -> None:
    """``path`` is a folder this process can write in, or can be made one (its nearest
    existing parent is a folder it can write in); else one :class:`UserError` line."""
    full = Path(os.path.abspath(path))
    if full.is_dir():
        if not os.access(full, os.W_OK | os.X_OK):
            raise UserError(f"{label} cannot be written: no permission to write in {full}")
        return
    if os.path.lexists(full):
        what = "a file" if full.is_file() else "a link to nothing" if full.is_symlink() else "not a folder"
        raise UserError(f"{label} is {what}; give a folder (it is created if missing)")
    parent = full.parent
    while not os.path.lexists(parent):
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"{label} cannot be created: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{label} cannot be created: no permission to write in {parent}")


def run_name(model: str, alpha, image_size, args: dict | None = None, source: str = "digits", sparsity=None) -> str:
    """The one name of a run, recording its settings: ``mobilenet-a0.50-32px``.

    Builder arguments come after the model (``efficientnet-phi1.5-a1.00-32px``), the data
    set's name last when it is not digits; ``None`` settings read ``default``, a sparsity
    adds ``sp0.5``. Run folders, sweep points and report labels all use it.

    Example:
        >>> run_name("mobilenet", 0.5, 32), run_name("lenet5", None, None, sparsity=0.5)
        ('mobilenet-a0.50-32px', 'lenet5-adefault-default-sp0.5')
    """
    parts = [model, *(re.sub(r"[^\w.]+", "_", f"{k}{v}") for k, v in sorted((args or {}).items()))]
    parts.append("adefault" if alpha is None else f"a{alpha:.2f}")
    parts.append("default" if image_size is None else f"{image_size}px")
    if sparsity:
        parts.append(f"sp{sparsity:g}")
    if source != "digits":
        stem = Path(source).parent.name if "*" in source or "?" in source else Path(source).stem
        parts.append(re.sub(r"[^\w.-]+", "_", stem) or "data")
    return "-".join(parts)


def run_folder(cfg) -> Path:
    """The run folder of a resolved config: ``cfg.out``, else ``runs/<run_name>``."""
    if cfg.out:
        return Path(cfg.out)
    c = cfg
    return Path("runs") / run_name(c.model.name, c.model.alpha, c.data.image_size, c.model.args, c.data.source)
