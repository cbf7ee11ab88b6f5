"""Stage ``distill``: train the model again from the same start, taught by a teacher (row ``distilled``).

Hinton et al. 2015, "Distilling the Knowledge in a Network" (arXiv:1503.02531); mixup
shared by teacher and student is Beyer et al. 2022's "function matching"
(arXiv:2106.05237). The step itself is :class:`edgecnn.optimize.distill.Distiller`.

The student starts from the same initial weights and sees the same batches as the model
trained alone, so the ``distilled`` row differs from the plain one only by the teacher.
Every later fine-tune (pruning, QAT) is distilled from the same teacher.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from edgecnn import __version__
from edgecnn.errors import UserError, suggest
from edgecnn.settings.fields import Section, setting
from edgecnn.stages._base import Context, Stage, StageResult, StageStore, config_key

TEACHER_DATA = ("same", "full")
#: The run sub-folder of a registered teacher trained here (cached by its own key).
TEACHER_FOLDER = "teacher"


@dataclass
class DistillConfig(Section):
    """Knowledge distillation (see :mod:`edgecnn.optimize.distill`).

    ``teacher_data``: what a registered teacher is trained on: ``"same"`` data as the
    student, or ``"full"``: the whole training split even when ``data.train_fraction``
    gives the student only part of it (a teacher that has seen more labelled data than the
    student, as a pretrained one would have).
    """

    key = "distill"

    teacher: str | None = setting(
        None,
        cli="--distill-from",
        metavar="TEACHER",
        help="Distill from a teacher: 'name[:alpha]' (trained first, cached) or a saved .keras file.",
        default_text="off",
    )
    alpha: float = setting(0.1, cli="--distill-alpha", low=0, high=1, help="Weight of the label loss.")
    temperature: float = setting(4.0, cli="--temperature", low=0, low_open=True, help="Distillation temperature.")
    teacher_epochs: int | None = setting(
        None, cli="--teacher-epochs", low=0, help="Epochs to train a registered teacher.", default_text="--epochs"
    )
    mixup: float = setting(
        0.0,
        cli="--distill-mixup",
        low=0,
        metavar="C",
        help="Mix pairs of images (Beta(C, C)) that teacher and student both see; 0 = off.",
    )
    teacher_data: str = setting(
        "same",
        cli="--teacher-data",
        choices=TEACHER_DATA,
        help="Train a registered teacher on the student's data (same) or the whole training split (full).",
    )
    teacher_weights: str | None = setting(
        None,
        cli="--teacher-weights",
        metavar="WEIGHTS",
        help="A registered teacher starts from these weights: 'imagenet', a weight file (.h5, .weights.h5, "
        ".keras) or a run folder; it is then trained on the student's data as usual.",
        default_text="random initialisation",
    )


def _check_teacher_convention(ctx: Context, name: str, weights: str) -> None:
    """Teacher and student see the same input tensors: the teacher's weights must expect
    the input convention the student's data has (``[-1, 1]`` for both MobileNets, say)."""
    from edgecnn.models import model_info
    from edgecnn.models._registry import pretrained_models
    from edgecnn.models._weights import input_convention

    entry = model_info(name)
    if str(weights).lower() == "imagenet" and not entry.pretrained:
        raise UserError(
            f"--teacher-weights imagenet: {entry.name} has no published ImageNet weights; "
            f"these have: {', '.join(pretrained_models())}"
        )
    keys = ("scale", "offset", "channel_order", "mean", "std")
    wanted = {"scale": 1.0 / 127.5, "offset": -1.0, **input_convention(entry, weights)}
    have = {k: ctx.data.preprocess.get(k) for k in keys if ctx.data.preprocess.get(k) is not None}
    wanted = {k: wanted[k] for k in keys if wanted.get(k) is not None}
    if wanted != have:
        raise UserError(
            f"the teacher {entry.name} with weights {weights!r} expects input {wanted}, the student's data is "
            f"prepared as {have}; pick a teacher of the same input convention (see docs/your-photos.md)"
        )


class Distill(Stage):
    name, row, Config, switch, title = "distill", "distilled", DistillConfig, "teacher", "knowledge distillation"

    def check_paths(self, cfg, where) -> None:
        from edgecnn.models import list_models

        teacher = cfg.distill.teacher
        if not teacher:
            return
        if teacher.endswith((".keras", ".h5")) or "/" in teacher or os.sep in teacher:
            if not Path(teacher).expanduser().is_file():
                raise UserError(f"{where('distill.teacher')}: distill.teacher {teacher!r}: file not found")
            return
        name = teacher.split(":", 1)[0]
        if name not in list_models():
            raise UserError(
                f"{where('distill.teacher')}: distill.teacher {teacher!r}: unknown model {name!r}"
                f"{suggest(name, list_models())} (give MODEL:ALPHA, e.g. mobilenet:1.0, or a .keras file)"
            )

    def input_files(self, cfg) -> dict:
        """A teacher given as a saved ``.keras``/``.h5`` file (a registered name is trained, not read)."""
        teacher = cfg.distill.teacher
        path = Path(str(teacher)).expanduser() if teacher else None
        return {"teacher": path} if path is not None and path.is_file() else {}

    def check(self, ctx: Context, model):
        from edgecnn.optimize.distill import check_compatible, load_teacher_file, parse_teacher

        d = ctx.cfg.distill
        spec = parse_teacher(d.teacher)  # unknown names and missing files fail here
        if d.teacher_weights and "path" in spec:
            raise UserError(
                f"distill.teacher_weights sets where a registered teacher starts; {spec['path']} is a saved "
                "teacher, used as it is: drop teacher_weights or name a registered model"
            )
        if d.teacher_weights:
            _check_teacher_convention(ctx, spec["name"], d.teacher_weights)
        if "path" in spec:
            if d.teacher_data == "full":
                raise UserError(
                    "distill.teacher_data 'full' trains a registered teacher; a saved teacher "
                    f"({spec['path']}) is used as it is: drop teacher_data or name a registered model"
                )
            check_compatible(model, load_teacher_file(spec["path"]))
        return model

    def run(self, ctx: Context, prev: StageResult) -> StageResult:
        from edgecnn._tf import keras
        from edgecnn.optimize.distill import Distiller, check_compatible

        cfg, d = ctx.cfg, ctx.cfg.distill
        teacher, teacher_key, teacher_info = self._teacher(ctx)
        ctx.teacher_key = teacher_key
        ctx.wrap_student = lambda model: Distiller(
            model, teacher, alpha=d.alpha, temperature=d.temperature, mixup=d.mixup
        )
        keras.utils.set_random_seed(cfg.train.seed)  # the same initial weights as the model trained alone
        student = ctx.build_model()
        check_compatible(student, teacher)
        store = ctx.store_for(self, prev, d)

        def train():
            ctx.echo(
                f"      student {student.name} from teacher {teacher.name}: alpha {d.alpha}, T {d.temperature}, "
                f"mixup {d.mixup:g}, {cfg.train.epochs} epochs"
            )
            return ctx.fine_tune(student, store, cfg.train.epochs, cfg.train.learning_rate)

        meta = ctx.train_or_reuse(student, store, "the distilled student", train)
        info = {
            **teacher_info,
            "alpha": d.alpha,
            "temperature": d.temperature,
            "mixup": d.mixup,
            "seconds": meta.get("seconds"),
        }
        return StageResult(self.row, student, cfg.convert.precisions, info, key=store.key)

    def _teacher(self, ctx: Context):
        """The teacher: a saved model, or a registered one trained (and cached) here."""
        from edgecnn._io import sha256_file
        from edgecnn.data.loader import load_run_data
        from edgecnn.models import model_info
        from edgecnn.optimize.distill import load_teacher_file, parse_teacher
        from edgecnn.train import evaluate_keras, fit

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
            full = d.teacher_data == "full" and cfg.data.train_fraction not in (None, 1.0)
            teacher_dir = ctx.out / "teacher_data"
            data = load_run_data(cfg, ctx.entry, full_train=True, run_dir=teacher_dir) if full else ctx.data
            key = config_key(
                "teacher",
                spec,
                epochs,
                lr,
                cfg.data,
                d.teacher_data,
                cfg.train,
                data.fingerprint(),
                __version__,
                *([d.teacher_weights] if d.teacher_weights else []),
            )
            store = StageStore(ctx.out, TEACHER_FOLDER, key)
            extra = {"weights": d.teacher_weights} if d.teacher_weights else {}
            teacher = ctx.build_model(alpha=spec["alpha"], name=spec["name"], **extra)
            if store.load() is not None:
                ctx.echo(f"      reusing the teacher {teacher.name} from {store.dir}")
                teacher.load_weights(store.weights)
            else:
                ctx.echo(f"      training the teacher {teacher.name}: {epochs} epochs, {len(data.y['train'])} images")
                t0 = time.time()
                hist = fit(teacher, data, cfg.train, out_dir=store.dir, epochs=epochs, learning_rate=lr)
                store.save(teacher, {"fit": hist, "seconds": time.time() - t0})
            info = {
                "teacher": f"{spec['name']}:{spec['alpha']}",
                **({"teacher_weights": getattr(teacher, "_edgecnn_weights", None)} if d.teacher_weights else {}),
                "teacher_epochs": epochs,
                "teacher_train_images": len(data.y["train"]),
            }
        info["teacher_keras_accuracy"] = evaluate_keras(teacher, ctx.data)
        ctx.echo(f"      teacher {teacher.name}: test accuracy {100 * info['teacher_keras_accuracy']:.2f}%")
        return teacher, key, info

    def folders(self) -> list:
        """Its result's folder and the registered teacher's (``teacher/``, cached by its own key)."""
        return [self.row, TEACHER_FOLDER]

    def notes(self, info: dict) -> str:
        return (
            f"- distilled: from teacher {info.get('teacher')} (test accuracy "
            f"{100 * info.get('teacher_keras_accuracy', float('nan')):.2f}%), alpha {info.get('alpha')}, "
            f"T {info.get('temperature')}"
        )


STAGE = Distill()
