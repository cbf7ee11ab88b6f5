"""The pipeline: data -> model -> train -> (compression stages) -> convert -> evaluate -> bench -> report.

:func:`optimize` is what ``edgecnn optimize`` and recipes both call. Each stage that
produces a Keras model stores its weights in ``<run>/<stage>/`` with a ``stage.json``
holding a key derived from its configuration and inputs; running again with the same
settings reuses the stage instead of training again, and a training stage killed
mid-way resumes from its last epoch (Keras' ``BackupAndRestore``).

Example:
    >>> from edgecnn.config import RunConfig
    >>> result = optimize(RunConfig.from_dict({"model": {"name": "mobilenet", "alpha": 0.5},
    ...                                        "convert": {"int8": True}}))  # doctest: +SKIP
    >>> [(r["variant"], r["tflite_accuracy"]) for r in result["rows"]]     # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import json
import platform
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from edgecnn import __version__
from edgecnn._io import sha256_file, write_json, write_text
from edgecnn.config import RunConfig, resolve, run_name
from edgecnn.errors import UserError
from edgecnn.report import VARIANT_COLUMNS, format_table, save_table, to_markdown


def config_key(*parts) -> str:
    """A short stable hash of JSON-able ``parts`` (stage cache keys)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclass
class Context:
    """What every stage sees: the resolved config, the data, the run folder, a printer."""

    cfg: RunConfig
    data: object
    out: Path
    echo: Callable
    entry: object
    steps: list = field(default_factory=list)
    strategy: object = None

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
        return create_model(
            entry.name,
            alpha=self.cfg.model.alpha if alpha is None else alpha,
            input_shape=(h, w, c),
            classes=self.data.num_classes,
            **args,
        )


@dataclass
class StageResult:
    """A Keras model a stage produced, and which TFLite precisions to export it as."""

    name: str
    model: object
    precisions: list
    info: dict = field(default_factory=dict)
    key: str = ""


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
        from edgecnn._io import atomic_path
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


def train_stage(ctx: Context) -> StageResult:
    """Build the model and train it from scratch (or reuse the stored weights)."""
    from edgecnn.models._profile import count_params
    from edgecnn.train import fit

    cfg = ctx.cfg
    key = config_key("train", cfg.model, cfg.data, cfg.train, ctx.data.fingerprint(), __version__)
    store = StageStore(ctx.out, "train", key)
    from edgecnn._tf import keras

    keras.utils.set_random_seed(cfg.train.seed)  # the initial weights too: same seed, same model
    model = ctx.build_model()
    meta = store.restore(model)
    if meta is not None:
        ctx.echo(f"      reusing trained weights from {store.dir}")
    else:
        n = len(ctx.data.y["train"])
        ctx.echo(
            f"      {model.name}: {count_params(model)['trainable']:,} parameters, "
            f"{n} training images, {cfg.train.epochs} epochs"
        )
        t0 = time.time()
        hist = fit(model, ctx.data, cfg.train, out_dir=store.dir)
        meta = store.save(model, {"fit": hist, "seconds": time.time() - t0})
    return StageResult(
        "trained",
        model,
        cfg.convert.precisions,
        {"train": {k: v for k, v in meta.items() if k != "fit"}, "history": meta.get("fit", {}).get("history")},
        key=key,
    )


# The model-producing stages, in the order of the design. Compression stages append
# themselves here: each takes the Context and the previous stage's result.
MODEL_STAGES: list = []

# ---------------------------------------------------------------------------
# Compression stages (issue 5): distill -> channel prune -> magnitude prune -> QAT.
# Each is a model -> model step from edgecnn.optimize, fine-tuned with the one fit loop,
# cached in <run>/<stage>/ by its settings and the previous stage's key. When a teacher
# is configured, every fine-tune after it is distilled from the teacher too.


def _copy_model(model):
    """A fresh copy of ``model`` (new layer objects): later stages never alter earlier rows."""
    from edgecnn._tf import keras
    from edgecnn.models._layers import CUSTOM_OBJECTS

    with keras.utils.custom_object_scope(CUSTOM_OBJECTS):
        copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def _teacher(ctx: Context):
    """The distillation teacher: a saved model, or a registered one trained (and cached) here."""
    from edgecnn.models import model_info
    from edgecnn.optimize.distill import load_teacher_file, parse_teacher
    from edgecnn.train import evaluate_keras, fit

    if getattr(ctx, "_teacher", None) is not None:
        return ctx._teacher
    cfg, d = ctx.cfg, ctx.cfg.distill
    spec = parse_teacher(d.teacher)
    if "path" in spec:
        teacher = load_teacher_file(spec["path"])
        key = config_key("teacher-file", sha256_file(Path(spec["path"])))
        info = {"teacher": spec["path"]}
    else:
        entry = model_info(spec["name"])
        epochs = d.teacher_epochs if d.teacher_epochs is not None else cfg.train.epochs
        lr = float(entry.train.get("learning_rate", cfg.train.learning_rate))
        data = _teacher_data(ctx)
        key = config_key(
            "teacher", spec, epochs, lr, cfg.data, d.teacher_data, cfg.train, data.fingerprint(), __version__
        )
        store = StageStore(ctx.out, "teacher", key)
        teacher = ctx.build_model(alpha=spec["alpha"], name=spec["name"])
        meta = store.load()
        if meta is not None:
            ctx.echo(f"      reusing the teacher {teacher.name} from {store.dir}")
            teacher.load_weights(store.weights)
        else:
            ctx.echo(f"      training the teacher {teacher.name}: {epochs} epochs, {len(data.y['train'])} images")
            t0 = time.time()
            hist = fit(teacher, data, cfg.train, out_dir=store.dir, epochs=epochs, learning_rate=lr)
            store.save(teacher, {"fit": hist, "seconds": time.time() - t0})
        info = {
            "teacher": f"{spec['name']}:{spec['alpha']}",
            "teacher_epochs": epochs,
            "teacher_train_images": len(data.y["train"]),
        }
    info["teacher_keras_accuracy"] = evaluate_keras(teacher, ctx.data)
    ctx.echo(f"      teacher {teacher.name}: test accuracy {100 * info['teacher_keras_accuracy']:.2f}%")
    ctx._teacher, ctx._teacher_key, ctx._teacher_info = teacher, key, info
    return teacher


def _teacher_data(ctx: Context):
    """The data a registered teacher trains on: the student's, or the whole training split."""
    cfg = ctx.cfg
    if cfg.distill.teacher_data != "full" or cfg.data.train_fraction in (None, 1.0):
        return ctx.data
    return load_run_data(cfg, ctx.entry, full_train=True)


def load_run_data(cfg: RunConfig, entry, full_train: bool = False):
    """The run's dataset as ``cfg.data`` describes it (``full_train``: ignore ``train_fraction``)."""
    from edgecnn.data import load_dataset

    return load_dataset(
        cfg.data.source,
        image_size=cfg.data.image_size,
        channels=entry.channels,
        val_split=cfg.data.val_split,
        test_split=cfg.data.test_split,
        seed=cfg.data.seed,
        train_fraction=None if full_train else cfg.data.train_fraction,
    )


def _fine_tune(ctx: Context, model, store: StageStore, epochs: int, lr: float, callbacks=(), keep_best=True) -> dict:
    """Fit ``model`` (distilled from the teacher when one is configured); returns fit's history."""
    from edgecnn.train import fit

    d = ctx.cfg.distill
    target = model
    if d.teacher:
        from edgecnn.optimize.distill import Distiller

        target = Distiller(model, _teacher(ctx), alpha=d.alpha, temperature=d.temperature, mixup=d.mixup)
    return fit(
        target,
        ctx.data,
        ctx.cfg.train,
        out_dir=store.dir,
        epochs=epochs,
        learning_rate=lr,
        extra_callbacks=callbacks,
        keep_best=keep_best,
    )


def _teacher_key(ctx: Context) -> str | None:
    if not ctx.cfg.distill.teacher:
        return None
    _teacher(ctx)
    return ctx._teacher_key


def distill_stage(ctx: Context, prev: StageResult) -> StageResult | None:
    """Train the same architecture from scratch, distilled from the teacher (row ``distilled``)."""
    cfg = ctx.cfg
    teacher = _teacher(ctx)
    from edgecnn._tf import keras
    from edgecnn.optimize.distill import check_compatible

    keras.utils.set_random_seed(cfg.train.seed)  # the same initial weights as the model trained alone
    student = ctx.build_model()
    check_compatible(student, teacher)
    d = cfg.distill
    key = config_key("distill", prev.key, _teacher_key(ctx), d, cfg.train, __version__)
    store = StageStore(ctx.out, "distilled", key)
    meta = store.load()
    if meta is not None:
        ctx.echo(f"      reusing the distilled student from {store.dir}")
        student.load_weights(store.weights)
    else:
        ctx.echo(
            f"      student {student.name} from teacher {teacher.name}: alpha {d.alpha}, T {d.temperature}, "
            f"mixup {d.mixup:g}, "
            f"{cfg.train.epochs} epochs"
        )
        t0 = time.time()
        hist = _fine_tune(ctx, student, store, cfg.train.epochs, cfg.train.learning_rate)
        meta = store.save(student, {"fit": hist, "seconds": time.time() - t0})
    info = {
        **ctx._teacher_info,
        "alpha": d.alpha,
        "temperature": d.temperature,
        "mixup": d.mixup,
        "seconds": meta.get("seconds"),
    }
    return StageResult("distilled", student, cfg.convert.precisions, info, key=key)


distill_stage.enabled = lambda cfg: bool(cfg.distill.teacher)


def channel_prune_stage(ctx: Context, prev: StageResult) -> StageResult | None:
    """Remove the lowest-importance filters, rebuild narrower, fine-tune (row ``channel_pruned``)."""
    from edgecnn.optimize.channel_prune import prune_channels

    cfg, p = ctx.cfg, ctx.cfg.prune
    narrow, report = prune_channels(prev.model, p.channels, p.criterion, skip=p.skip)
    ctx.echo(
        f"      {p.criterion} criterion, {100 * p.channels:.0f}% of the filters of {len(report['groups'])} "
        f"channel groups: {report['params_before']:,} -> {report['params_after']:,} parameters"
    )
    key = config_key(
        "channel_prune",
        prev.key,
        _teacher_key(ctx),
        p.channels,
        p.criterion,
        p.skip,
        p.epochs,
        p.learning_rate,
        cfg.train,
        __version__,
    )
    store = StageStore(ctx.out, "channel_pruned", key)
    meta = store.load()
    if meta is not None:
        ctx.echo(f"      reusing fine-tuned weights from {store.dir}")
        narrow.load_weights(store.weights)
    else:
        ctx.echo(f"      fine-tuning: {p.epochs} epochs at lr {p.learning_rate:g}")
        t0 = time.time()
        hist = _fine_tune(ctx, narrow, store, p.epochs, p.learning_rate)
        meta = store.save(narrow, {"fit": hist, "seconds": time.time() - t0})
    return StageResult(
        "channel_pruned", narrow, cfg.convert.precisions, {**report, "seconds": meta.get("seconds")}, key=key
    )


channel_prune_stage.enabled = lambda cfg: cfg.prune.channels is not None


def prune_stage(ctx: Context, prev: StageResult) -> StageResult | None:
    """Magnitude pruning to ``prune.sparsity`` (or 2:4) while fine-tuning, stripped (row ``pruned``)."""
    import math

    from edgecnn.optimize.prune import DEFAULT_SKIP, layer_sparsity, prune_model, pruning_callbacks, strip_pruning

    cfg, p = ctx.cfg, ctx.cfg.prune
    key = config_key(
        "prune",
        prev.key,
        _teacher_key(ctx),
        p.sparsity,
        p.structure,
        p.skip,
        p.epochs,
        p.learning_rate,
        cfg.train,
        __version__,
    )
    store = StageStore(ctx.out, "pruned", key)
    base = _copy_model(prev.model)
    skip = tuple(DEFAULT_SKIP) + tuple(p.skip)
    meta = store.load()
    if meta is not None:
        ctx.echo(f"      reusing pruned weights from {store.dir}")
        base.load_weights(store.weights)
        model = base
    else:
        steps = math.ceil(len(ctx.data.y["train"]) / cfg.train.batch_size)
        total = max(1, steps * p.epochs)
        # Reach the target sparsity after ~70% of the fine-tune; the rest recovers accuracy.
        end = max(1, int(0.7 * total))
        pruned = prune_model(
            base,
            sparsity=p.sparsity,
            end_step=end,
            frequency=max(1, min(steps, end // 10 or 1)),
            skip=skip,
            m_by_n=(2, 4) if p.structure == "2:4" else None,
        )
        what = "2:4 structured" if p.structure == "2:4" else f"{100 * p.sparsity:.0f}% magnitude"
        n_wrapped = sum(layer.__class__.__name__ == "PruneLowMagnitude" for layer in pruned.layers)
        ctx.echo(f"      {what} sparsity on {n_wrapped} layers; {p.epochs} epochs at lr {p.learning_rate:g}")
        t0 = time.time()
        # keep_best=False: an early epoch's weights would bring back an early, lower sparsity.
        hist = _fine_tune(ctx, pruned, store, p.epochs, p.learning_rate, pruning_callbacks(), keep_best=False)
        model = strip_pruning(pruned)
        meta = store.save(model, {"fit": hist, "seconds": time.time() - t0})
    per_layer = layer_sparsity(model)
    pruned_layers = {k: v for k, v in per_layer.items() if v > 0}
    info = {
        "target_sparsity": p.sparsity,
        "structure": p.structure,
        "layer_sparsity": per_layer,
        "pruned_layers": len(pruned_layers),
        "skip": list(skip),
        "seconds": meta.get("seconds"),
    }
    if pruned_layers:
        ctx.echo(
            f"      achieved sparsity: {100 * min(pruned_layers.values()):.1f}% to "
            f"{100 * max(pruned_layers.values()):.1f}% in {len(pruned_layers)} layers"
        )
    return StageResult("pruned", model, cfg.convert.precisions, info, key=key)


prune_stage.enabled = lambda cfg: cfg.prune.sparsity is not None


def _is_sparse(model) -> bool:
    from edgecnn.optimize.prune import layer_sparsity

    return any(v >= 0.2 for v in layer_sparsity(model).values())


def qat_stage(ctx: Context, prev: StageResult) -> StageResult | None:
    """Quantization-aware fine-tuning (keeping pruning's zeros), exported as int8 (row ``qat``)."""
    from edgecnn.optimize.qat import KeepSparsity, quantize_model, sparsity_masks

    cfg, q = ctx.cfg, ctx.cfg.qat
    preserve = _is_sparse(prev.model)
    callbacks = [KeepSparsity(sparsity_masks(prev.model))] if preserve else []
    scheme = None
    if preserve:
        from edgecnn._tf import tfmot

        scheme = tfmot().experimental.combine.Default8BitPrunePreserveQuantizeScheme()
    key = config_key("qat", prev.key, _teacher_key(ctx), q, preserve, cfg.train, __version__)
    store = StageStore(ctx.out, "qat", key)
    model = quantize_model(_copy_model(prev.model), scheme)
    meta = store.load()
    if meta is not None:
        ctx.echo(f"      reusing quantization-aware weights from {store.dir}")
        model.load_weights(store.weights)
    else:
        ctx.echo(
            f"      {'prune-preserving ' if preserve else ''}8-bit QAT: {q.epochs} epochs at lr {q.learning_rate:g}"
        )
        t0 = time.time()
        hist = _fine_tune(ctx, model, store, q.epochs, q.learning_rate, callbacks)
        meta = store.save(model, {"fit": hist, "seconds": time.time() - t0}, full_model=False)
    scheme_name = "prune-preserving 8-bit" if preserve else "8-bit"
    info = {"scheme": scheme_name, "from": prev.name, "seconds": meta.get("seconds")}
    return StageResult("qat", model, ["int8"], info, key=key)


qat_stage.enabled = lambda cfg: cfg.qat.enabled

MODEL_STAGES += [distill_stage, channel_prune_stage, prune_stage, qat_stage]


def stage_notes(stages: dict) -> list:
    """Markdown lines describing what each compression stage did (for ``report.md``).

    Example:
        >>> stage_notes({"pruned": {"structure": "unstructured", "target_sparsity": 0.5,
        ...                         "layer_sparsity": {"c3": 0.5, "c1": 0.0}, "skip": ["c1"]}})[-1]
        '- pruned: unstructured magnitude pruning to 50%; achieved 50.0% to 50.0% in 1 layers (dense: c1)'
    """
    lines = []
    for name, info in stages.items():
        if name == "distilled":
            lines.append(
                f"- distilled: from teacher {info.get('teacher')} (test accuracy "
                f"{100 * info.get('teacher_keras_accuracy', float('nan')):.2f}%), alpha {info.get('alpha')}, "
                f"T {info.get('temperature')}"
            )
        elif name == "channel_pruned":
            lines.append(
                f"- channel_pruned: {100 * info['fraction']:.0f}% of the filters of {len(info['groups'])} channel "
                f"groups removed ({info['criterion']} criterion), {info['params_before']:,} -> "
                f"{info['params_after']:,} trainable parameters"
            )
        elif name == "pruned":
            per = info.get("layer_sparsity", {})
            done = [v for v in per.values() if v > 0]
            dense = ", ".join(k for k, v in per.items() if v == 0) or "none"
            achieved = f"{100 * min(done):.1f}% to {100 * max(done):.1f}%" if done else "nothing"
            lines.append(
                f"- pruned: {info['structure']} magnitude pruning to {100 * info['target_sparsity']:.0f}%; "
                f"achieved {achieved} in {len(done)} layers (dense: {dense})"
            )
        elif name == "qat":
            lines.append(f"- qat: {info['scheme']} quantization-aware training from `{info['from']}`, exported int8")
    return ["", "## Compression stages", "", *lines] if lines else []


def check_compression(ctx: Context):
    """Fail early, before any training, on compression settings that cannot work.

    Raises :class:`~edgecnn.errors.UserError` for a teacher that cannot be loaded or has
    another number of classes or input shape, a model channel pruning cannot trace, or a
    model with a layer QAT cannot quantize.

    Example:
        >>> check_compression(ctx)  # doctest: +SKIP
    """
    cfg = ctx.cfg
    if not (cfg.distill.teacher or cfg.prune.channels or cfg.qat.enabled):
        return
    model = ctx.build_model()
    if cfg.distill.teacher:
        from edgecnn.optimize.distill import check_compatible, load_teacher_file, parse_teacher

        spec = parse_teacher(cfg.distill.teacher)  # unknown names and missing files fail here
        if "path" in spec:
            if cfg.distill.teacher_data == "full":
                raise UserError(
                    "distill.teacher_data 'full' trains a registered teacher; a saved teacher "
                    f"({spec['path']}) is used as it is: drop teacher_data or name a registered model"
                )
            check_compatible(model, load_teacher_file(spec["path"]))
    if cfg.prune.channels:
        from edgecnn.optimize.channel_prune import prune_channels

        model, _ = prune_channels(model, cfg.prune.channels, cfg.prune.criterion, skip=cfg.prune.skip)
    if cfg.qat.enabled:
        from edgecnn.optimize.qat import quantize_model

        quantize_model(model)


def _gzip_size(path: Path) -> int:
    return len(gzip.compress(path.read_bytes(), compresslevel=9))


def _versions() -> dict:
    from edgecnn.device.runtime import available_runtimes

    versions = {"edgecnn": __version__, "python": platform.python_version()}
    from importlib.metadata import PackageNotFoundError, version

    for dist in (
        "tensorflow",
        "tf-keras",
        "tensorflow-model-optimization",
        "ai-edge-litert",
        "tflite-runtime",
        "numpy",
    ):
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            pass
    versions["runtimes"] = available_runtimes()
    return versions


def export_and_measure(ctx: Context, result: StageResult, keras_accuracy: float) -> list:
    """Convert ``result.model`` to each precision, then evaluate and benchmark each file."""
    from edgecnn.convert import convert
    from edgecnn.device.bench import benchmark
    from edgecnn.device.evaluate import evaluate_tflite
    from edgecnn.models._profile import count_macs, count_params

    cfg = ctx.cfg
    counts = count_params(_stripped(result.model))
    macs = count_macs(result.model)
    rows = []
    prefix = "model" if result.name == "trained" else result.name
    x_test, y_test = ctx.data.normalized("test"), ctx.data.y["test"]
    for precision in result.precisions:
        path = ctx.out / f"{prefix}_{precision}.tflite"
        label = precision if result.name == "trained" else f"{result.name} {precision}"
        # Only a model with zeros has anything to store sparsely (the converter picks the tensors).
        sparse = cfg.convert.sparse_storage and precision == "float32" and counts["nonzero"] < counts["trainable"]
        ctx.echo(f"      {label}: converting" + (" (sparse storage)" if sparse else ""))
        t0 = time.time()
        rep = (
            ctx.data.representative(cfg.convert.calibration_samples, seed=cfg.data.seed)
            if precision == "int8"
            else None
        )
        convert(result.model, path, precision, representative=rep, sparse=sparse)
        convert_s = time.time() - t0
        metrics = evaluate_tflite(path, x_test, y_test, num_threads=cfg.bench.threads, runtime=cfg.bench.runtime)
        row = {
            "model": cfg.model.name,
            "variant": label,
            "stage": result.name,
            "precision": precision,
            "file": path.name,
            "sparse_storage": sparse,
            "size_bytes": path.stat().st_size,
            "size_gzip": _gzip_size(path),
            "params": counts["trainable"],
            "nonzero_params": counts["nonzero"],
            "sparsity": 1.0 - counts["nonzero"] / max(1, counts["trainable"]),
            "macs": macs,
            "keras_accuracy": keras_accuracy,
            "tflite_accuracy": metrics["accuracy"],
            "top5": metrics.get("top5"),
            "delta_points": 100 * (metrics["accuracy"] - keras_accuracy),
            "convert_seconds": convert_s,
            "confusion": metrics["confusion"],
            "sha256": sha256_file(path),
        }
        if cfg.bench.enabled:
            ctx.echo(f"      {label}: benchmarking ({cfg.bench.runs} runs, {cfg.bench.threads} thread(s))")
            bench = benchmark(
                path,
                threads=cfg.bench.threads,
                warmup=cfg.bench.warmup,
                runs=cfg.bench.runs,
                runtime=cfg.bench.runtime,
                timeout=cfg.bench.timeout,
            )
            row["bench"] = bench
            if bench.get("status") == "ok":
                row.update(
                    latency_median_ms=bench["median_ms"],
                    latency_p90_ms=bench["p90_ms"],
                    runtime=bench["runtime"],
                    runtime_version=bench["runtime_version"],
                )
            else:
                ctx.echo(f"      {label}: benchmark {bench.get('status')}: {bench.get('error')}")
        rows.append(row)
    return rows


def _stripped(model):
    if any(layer.__class__.__name__ == "PruneLowMagnitude" for layer in model.layers):
        from edgecnn.optimize.prune import strip_pruning

        return strip_pruning(model)
    return model


def optimize(config: RunConfig, echo: Callable = print) -> dict:
    """Run the whole pipeline for ``config``; returns the metrics written to ``metrics.json``.

    Outputs in the run folder (``runs/<model>-<settings>/`` unless ``config.out``):
    ``config.json`` (resolved settings), ``preprocess.json`` (how to prepare images on the
    device), ``train/`` (weights, ``model.keras``), one ``.tflite`` per variant,
    ``metrics.json``, ``report.md`` and ``table.{md,csv,json}``.

    With ``train.strategy`` ``multiworker`` every worker runs this with the same config;
    the model-producing stages run in the strategy's scope on all of them, then only the
    chief converts, evaluates, benchmarks and writes; the workers wait for it to finish.
    """
    from edgecnn.distribute import barrier, collective_errors, get_strategy
    from edgecnn.models import model_info

    # First thing: MultiWorkerMirroredStrategy must start before TensorFlow runs an operation.
    strategy = get_strategy(resolve(config, model_info(config.model.name)).train.strategy)
    trained = []
    try:
        return _optimize(config, echo, strategy, trained)
    finally:
        if trained:  # every worker got through training: release them together once the chief is done
            try:
                barrier(strategy)
            except collective_errors():
                pass  # a worker already gone: the chief's outputs are complete anyway


def _optimize(config: RunConfig, echo: Callable, strategy, trained: list) -> dict:
    from edgecnn.distribute import describe, is_chief, local_copy, weights_digest
    from edgecnn.models import batch_norm_defaults, model_info
    from edgecnn.train import evaluate_keras

    started = time.time()
    entry = model_info(config.model.name)
    cfg = resolve(config, entry)
    out = Path(cfg.out or Path("runs") / run_name(cfg))
    _check_out_dir(out)
    active = [s for s in MODEL_STAGES if getattr(s, "enabled", lambda _cfg: True)(cfg)]
    stages_total = 2 + len(active) + 1
    note = entry.resolution_note(cfg.data.image_size, **cfg.model.args)
    if note:
        echo(note)
    echo(f"[1/{stages_total}] data: loading {cfg.data.source}")
    data = load_run_data(cfg, entry)
    echo(f"      {data.summary()}")
    dist = describe(strategy)
    if dist["workers"] > 1 or dist["strategy"] != "default":
        role = "the chief: writes the run folder" if dist["chief"] else "not the chief: writes nothing"
        echo(f"      strategy {dist['strategy']}: {dist['workers']} worker(s), {dist['replicas']} replica(s); {role}")
    if is_chief(strategy):
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "config.json", cfg.to_dict())
        write_json(out / "preprocess.json", data.preprocess)
    ctx = Context(cfg=cfg, data=data, out=out, echo=echo, entry=entry, strategy=strategy)
    check_compression(ctx)  # bad compression settings fail before any training

    rows, stages = [], {}
    with batch_norm_defaults():
        with ctx.scope():  # build, tfmot wrapping, compile and fit of every stage are distributed
            echo(f"[2/{stages_total}] train: {entry.name} alpha {cfg.model.alpha} at {cfg.data.image_size}px")
            result = train_stage(ctx)
            results = [result]
            for i, stage in enumerate(active, start=3):
                echo(f"[{i}/{stages_total}] {stage.__name__.replace('_stage', '')}")
                result = stage(ctx, result)
                if result is not None:
                    results.append(result)
        trained.append(True)
        results = [dataclasses.replace(res, model=local_copy(res.model)) for res in results]
        dist["weights_digest"] = {res.name: weights_digest(res.model) for res in results}
        if not ctx.is_chief:
            echo(f"worker done: weights {json.dumps(dist['weights_digest'])}; the chief converts and benchmarks")
            return {"model": cfg.model.name, "run_dir": str(out), "rows": [], "distribute": dist}
        echo(f"[{stages_total}/{stages_total}] export: convert, evaluate and benchmark each .tflite")
        for res in results:
            keras_acc = evaluate_keras(res.model, data)
            stages[res.name] = {"keras_accuracy": keras_acc, **res.info}
            rows += export_and_measure(ctx, res, keras_acc)

    metrics = {
        "model": cfg.model.name,
        "run_dir": str(out),
        "dataset": data.summary(),
        "stages": stages,
        "rows": rows,
        "versions": _versions(),
        "seconds": time.time() - started,
        "config": cfg.to_dict(),
        "distribute": dist,
    }
    write_json(out / "metrics.json", metrics)
    table_rows = [{k: v for k, v in r.items() if k not in ("confusion", "bench")} for r in rows]
    save_table(table_rows, VARIANT_COLUMNS, out / "table", title=f"{cfg.model.name} on {data.name}")
    write_text(out / "report.md", _report_md(cfg, data, table_rows, metrics))
    from edgecnn.manifest import write_manifest

    write_manifest(out, cfg)  # sha256 of every input and output
    echo("")
    echo(format_table(table_rows, VARIANT_COLUMNS))
    echo(f"\nrun folder: {out}  ({metrics['seconds']:.0f} s)")
    return metrics


def _check_out_dir(out: Path):
    if out.exists() and not out.is_dir():
        raise UserError(f"output path {out} exists and is not a folder; choose another --out")


def _report_md(cfg, data, rows, metrics) -> str:
    lines = [
        f"# {cfg.model.name} (alpha {cfg.model.alpha}, {cfg.data.image_size}px) on {data.name}",
        "",
        f"- Data: {data.summary()}",
        f"- Training: {cfg.train.epochs} epochs, batch {cfg.train.batch_size}, {cfg.train.optimizer} "
        f"lr {cfg.train.learning_rate} ({cfg.train.schedule})",
        f"- Latency: {cfg.bench.threads} thread(s), {cfg.bench.runs} runs after {cfg.bench.warmup} warm-up, "
        f"runtime {next((r.get('runtime') for r in rows if r.get('runtime')), cfg.bench.runtime)}",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in metrics["versions"].items() if isinstance(v, str)),
        "",
        to_markdown(rows, VARIANT_COLUMNS),
        "",
        "Accuracy is top-1 on the test split; `delta pts` is the .tflite's accuracy minus the Keras model's, "
        "in points.",
        *stage_notes(metrics.get("stages", {})),
    ]
    return "\n".join(lines) + "\n"
