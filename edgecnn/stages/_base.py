"""What every stage is and sees: :class:`Stage`, :class:`Context`, :class:`StageResult`, :class:`StageStore`.

A stage is one object, as a sparseml Modifier is: its settings section (a dataclass of
:func:`edgecnn.settings.fields.setting` fields), when it is on, how its defaults follow from the
training settings, what it checks before any training, what it runs (a Keras model in, a
Keras model out, cached under ``<run>/<row>/`` by a key of its settings and inputs), and
the line it adds to ``report.md``. The pipeline (:mod:`edgecnn.pipeline`) only iterates
over the registered stages (:mod:`edgecnn.stages`).

Nothing here imports TensorFlow at import time: ``import edgecnn.settings.run_config`` must stay light.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from edgecnn import __version__
from edgecnn.settings.fields import Section, setting


def config_key(*parts) -> str:
    """A short stable hash of JSON-able ``parts`` (stage cache keys).

    Example:
        >>> config_key("prune", 0.5) == config_key("prune", 0.5) != config_key("prune", 0.6)
        True
    """
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclass
class StageResult:
    """A Keras model a stage produced, and which TFLite precisions to export it as."""

    name: str
    model: object
    precisions: list
    info: dict = field(default_factory=dict)
    key: str = ""


@dataclass
class Context:
    """What every stage sees: the resolved config, the data, the run folder, a printer.

    ``teacher_key`` and ``wrap_student`` are set by the distillation stage: every later
    fine-tune is then distilled from the same teacher, and its cache key names it.
    """

    cfg: object
    data: object
    out: Path
    echo: Callable
    entry: object
    strategy: object = None
    teacher_key: str | None = None
    wrap_student: Callable | None = None
    warnings: list = field(default_factory=list)  # lines for metrics.json's "warnings" and the table's footer
    calibration: Callable | None = None  # the int8 calibration images, decoded once (stages/export.py)

    def scope(self):
        """The ``tf.distribute`` scope every model-producing stage builds, wraps, compiles and fits in.

        Example:
            >>> with ctx.scope():            # doctest: +SKIP
            ...     model = ctx.build_model()
        """
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    @property
    def is_chief(self) -> bool:
        """Whether this process writes the run folder, converts and benchmarks."""
        from edgecnn.distribute import is_chief

        return self.strategy is None or is_chief(self.strategy)

    def build_model(self, alpha: float | None = None, name: str | None = None, **overrides):
        """Build the configured architecture (or ``name``/``alpha`` variants of it) for this data."""
        from edgecnn.models import create_model, model_info

        entry = model_info(name) if name else self.entry
        args = dict(self.cfg.model.args) if name is None else {}
        args.update(overrides)
        h, w, c = self.data.input_shape
        if name is None and alpha is None and "weights" not in args:
            args["weights"] = self.cfg.model.weights  # the configured model starts from them
        return create_model(
            entry.name,
            alpha=self.cfg.model.alpha if alpha is None else alpha,
            input_shape=(h, w, c),
            classes=self.data.num_classes,
            **args,
        )

    def store_for(self, stage: Stage, prev: StageResult, *settings) -> StageStore:
        """Where ``stage`` keeps its result: under ``<run>/<row>/``, keyed by the previous
        result, the teacher, the stage's ``settings``, training's settings and edgecnn's version."""
        key = config_key(stage.name, prev.key, self.teacher_key, *settings, self.cfg.train, __version__)
        return StageStore(self.out, stage.row, key)

    def fine_tune(self, model, store: StageStore, epochs: int, lr: float, callbacks=(), keep_best=True) -> dict:
        """Fit ``model`` (distilled from the teacher when one is configured); returns fit's history."""
        from edgecnn.train import fit

        target = self.wrap_student(model) if self.wrap_student is not None else model
        return fit(
            target,
            self.data,
            self.cfg.train,
            out_dir=store.dir,
            epochs=epochs,
            learning_rate=lr,
            extra_callbacks=callbacks,
            keep_best=keep_best,
        )

    def train_or_reuse(self, model, store: StageStore, what: str, train: Callable, full_model: bool = True) -> dict:
        """Load ``store``'s weights into ``model`` if its key matches, else run ``train()``
        (which returns fit's history) and store the result; returns the stage metadata."""
        meta = store.load()
        if meta is not None:
            self.echo(f"      reusing {what} from {store.dir}")
            model.load_weights(store.weights)
            return meta
        t0 = time.time()
        hist = train()
        return store.save(model, {"fit": hist, "seconds": time.time() - t0}, full_model=full_model)


class StageStore:
    """``<run>/<stage>/stage.json`` + weights: skip a stage whose key is unchanged."""

    def __init__(self, out: Path, name: str, key: str):
        self.dir = Path(out) / name
        self.key = key
        self.meta_path = self.dir / "stage.json"
        # Legacy HDF5 weights: the atomic temporary file (".tmp.h5") and the final name
        # must select the same Keras format, which ".weights.h5" (Keras 3 format) does not.
        self.weights = self.dir / "weights.h5"

    def load(self) -> dict | None:
        """The stored stage's metadata if its key matches, else ``None`` (the caller trains).

        On ``None`` a killed run's epoch checkpoint for other settings is dropped first,
        so the training that follows never resumes it (see ``_forget_other_progress``).

        Under ``multiworker`` it is ``None`` unless every worker found the stage: they must
        all take the same branch (reuse or train), or synchronous training would hang.
        """
        from edgecnn.distribute import all_agree

        meta = self._read()
        found = all_agree(meta is not None)
        if not found:
            self._forget_other_progress()
        return meta if found else None

    def _forget_other_progress(self):
        """Before (re)training: drop a killed run's epoch checkpoint if it was for other settings.

        ``fit`` resumes from ``<stage>/_backup``; without this, changing a setting after a
        kill would silently resume the old settings' training. ``pending.key`` names the
        settings the checkpoint belongs to.
        """
        from edgecnn._io import write_text
        from edgecnn.distribute import is_chief

        pending = self.dir / "pending.key"
        try:
            old = pending.read_text().strip()
        except OSError:
            old = None
        if old == self.key or not is_chief():
            return
        for sub in ("_backup", "_best"):
            shutil.rmtree(self.dir / sub, ignore_errors=True)
        self.dir.mkdir(parents=True, exist_ok=True)
        write_text(pending, self.key)

    def _read(self) -> dict | None:
        from edgecnn._io import sha256_file

        try:
            meta = json.loads(self.meta_path.read_text())
        except (OSError, ValueError):
            return None
        if meta.get("key") != self.key or not self.weights.exists():
            return None
        if meta.get("weights_sha256") != sha256_file(self.weights):
            return None  # changed or damaged since it was stored: redo the stage
        return meta

    def restore(self, model) -> dict | None:
        """Load the stored weights into ``model``; ``None`` (redo the stage) if they don't fit."""
        meta = self.load()
        if meta is None:
            return None
        try:
            model.load_weights(self.weights)
        except (ValueError, KeyError, OSError):
            return None
        return meta

    def save(self, model, meta: dict, full_model: bool = True):
        from edgecnn._io import atomic_path, sha256_file, write_json
        from edgecnn.distribute import weights_digest, write_dir

        # Every worker saves (the same code path everywhere); only the chief's files stay.
        with write_dir(self.dir) as folder:
            folder.mkdir(parents=True, exist_ok=True)
            weights = folder / self.weights.name
            with atomic_path(weights) as tmp:
                model.save_weights(tmp)
            if full_model:
                try:
                    with atomic_path(folder / "model.keras") as tmp:
                        model.save(tmp)
                except Exception as exc:  # a model tfmot wrapped may not serialize whole
                    meta["model_file_error"] = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
            meta = {"key": self.key, **meta, "weights_sha256": sha256_file(weights)}
            meta["weights_digest"] = weights_digest(model)
            write_json(folder / self.meta_path.name, meta)
        (self.dir / "pending.key").unlink(missing_ok=True)  # the stage is stored: nothing is in progress
        return meta


@dataclass
class PruningFineTune(Section):
    """The fine-tune settings both pruning stages share (and their flags)."""

    epochs: int | None = setting(
        None,
        cli="--prune-epochs",
        low=0,
        help="Fine-tuning epochs of each pruning stage.",
        default_text="half of --epochs",
    )
    learning_rate: float | None = setting(
        None,
        low=0,
        high=10,
        low_open=True,
        high_open=True,
        help="Fine-tuning peak learning rate.",
        default_text="half of training's",
    )
    skip: list = setting(
        factory=list, cli="--prune-skip", metavar="PATTERN", help="Layer-name glob to leave unpruned (repeatable)."
    )

    def fill_defaults(self, train) -> None:
        """Default to half of training's epochs (at least one) at half its peak rate.

        Models trained from scratch on small data are far from converged: pruning fine-tunes
        recover best with a fair share of the training budget and half its peak rate.
        """
        if self.epochs is None:
            self.epochs = max(1, train.epochs // 2)
        if self.learning_rate is None:
            self.learning_rate = 0.5 * train.learning_rate


def copy_model(model):
    """A fresh copy of ``model`` (new layer objects): later stages never alter earlier rows."""
    from edgecnn._tf import keras
    from edgecnn.models._layers import CUSTOM_OBJECTS

    with keras.utils.custom_object_scope(CUSTOM_OBJECTS):
        copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


class Stage:
    """One compression stage: a settings section and a ``model -> model`` step.

    Subclasses set the class attributes and override what they need; one instance is
    registered as ``STAGE`` in the stage's module (see :mod:`edgecnn.stages`).

    Attributes:
        name: the recipe's stage name and the settings section (``prune``).
        row: the table row and run sub-folder of its result (``pruned``).
        Config: the section's dataclass.
        switch: the setting that turns the stage on: a boolean (``enabled``), or a value
            that is ``None`` when the stage is off (``sparsity``).
        title: what progress lines and listings call it.
        axis: the run property the switch's value is, named in run folders, sweep grids and
            report rows (``"sparsity"`` for ``prune``); empty when it names none.
        precision: the name a sweep's precision list gives this stage, when its result is a
            precision of its own (``"qat"``: the int8 file of quantization-aware training).
    """

    name: str = ""
    row: str = ""
    Config: type = None
    switch: str = "enabled"
    title: str = ""
    axis: str = ""
    precision: str = ""

    def _switch_is_bool(self) -> bool:
        return isinstance(getattr(self.Config(), self.switch), bool)

    def enabled(self, cfg) -> bool:
        """Whether ``cfg`` asks for this stage."""
        value = getattr(getattr(cfg, self.name), self.switch)
        return bool(value) if self._switch_is_bool() else value is not None

    def switch_off(self, section: dict) -> None:
        """Turn the stage off in a recipe's raw ``section`` (a recipe whose ``stages:`` omits it)."""
        section[self.switch] = False if self._switch_is_bool() else None

    def switch_on(self, value=True) -> dict:
        """The raw section settings that turn the stage on: a boolean switch ``True``, a value
        switch ``value`` (a sweep's sparsity, or its ``qat`` precision).

        Example:
            >>> from edgecnn.stages import model_stages
            >>> [s.switch_on(0.5) for s in model_stages() if s.axis or s.precision]
            [{'sparsity': 0.5}, {'enabled': True}]
        """
        return {self.switch: True if self._switch_is_bool() else value}

    def recipe_options(self, options: dict) -> dict:
        """The section settings a recipe's ``- name: {options}`` stands for: a boolean switch is
        turned on unless the options set it; a value switch is one of the options."""
        if self._switch_is_bool() and self.switch not in options:
            return {**options, self.switch: True}
        return dict(options)

    def resolve(self, cfg) -> None:
        """Fill the section's ``None`` settings (from training's) and check rules across sections."""

    def check_paths(self, cfg, where: Callable) -> None:
        """Check the files the section names exist (``where(path)`` locates a setting for errors)."""

    def input_files(self, cfg) -> dict:
        """The files the section names that the run reads, ``{role: path}`` (the distillation
        teacher's ``.keras``): the manifest records each one's SHA-256 as ``<role>:<file name>``."""
        return {}

    def check(self, ctx: Context, model):
        """Fail before any training on settings that cannot work with this model; returns the
        model the next stage's check starts from."""
        return model

    def run(self, ctx: Context, prev: StageResult) -> StageResult | None:
        """Produce this stage's model from the previous stage's result."""
        raise NotImplementedError

    def folders(self) -> list:
        """The run sub-folders the stage writes or reuses (listed in ``manifest.json``)."""
        return [self.row]

    def notes(self, info: dict) -> str:
        """One Markdown line for ``report.md`` describing what the stage did."""
        return f"- {self.row}"
