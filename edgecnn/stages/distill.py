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
from edgecnn.settings import Section, setting
from edgecnn.stages._base import Context, Stage, StageResult, StageStore, config_key

TEACHER_DATA = ("same", "full")


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

    def check(self, ctx: Context, model):
        from edgecnn.optimize.distill import check_compatible, load_teacher_file, parse_teacher

        d = ctx.cfg.distill
        spec = parse_teacher(d.teacher)  # unknown names and missing files fail here
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
        from edgecnn.models import model_info
        from edgecnn.optimize.distill import load_teacher_file, parse_teacher
        from edgecnn.sources import load_run_data
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
                "teacher", spec, epochs, lr, cfg.data, d.teacher_data, cfg.train, data.fingerprint(), __version__
            )
            store = StageStore(ctx.out, "teacher", key)
            teacher = ctx.build_model(alpha=spec["alpha"], name=spec["name"])
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
                "teacher_epochs": epochs,
                "teacher_train_images": len(data.y["train"]),
            }
        info["teacher_keras_accuracy"] = evaluate_keras(teacher, ctx.data)
        ctx.echo(f"      teacher {teacher.name}: test accuracy {100 * info['teacher_keras_accuracy']:.2f}%")
        return teacher, key, info

    def notes(self, info: dict) -> str:
        return (
            f"- distilled: from teacher {info.get('teacher')} (test accuracy "
            f"{100 * info.get('teacher_keras_accuracy', float('nan')):.2f}%), alpha {info.get('alpha')}, "
            f"T {info.get('temperature')}"
        )


STAGE = Distill()
