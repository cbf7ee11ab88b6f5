"""Knowledge distillation for tf_keras (Hinton, Vinyals & Dean, "Distilling the Knowledge
in a Neural Network", 2015, https://arxiv.org/abs/1503.02531).

A :class:`Distiller` wraps a student and a frozen teacher into one Keras model whose
training step minimises::

    alpha * CE(labels, student) + (1 - alpha) * T^2 * KL(softmax(teacher / T) || softmax(student / T))

The zoo's models end in a softmax, so their log-probabilities (clipped) stand in for the
logits: they differ from the logits by a constant per image, which the softmax at any
temperature ignores. The student may be wrapped by tfmot (pruning, QAT): distillation
then drives its fine-tuning. ``fit`` the distiller like any model, keep the student.

Example:
    >>> teacher = load_teacher("mobilenet:1.0", ...)                              # doctest: +SKIP
    >>> d = Distiller(student, teacher, alpha=0.1, temperature=4.0)               # doctest: +SKIP
    >>> fit(d, data, TrainConfig(epochs=20))                                      # doctest: +SKIP
    >>> student = d.student                                                       # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from edgecnn._tf import keras, tf
from edgecnn.errors import UserError

_EPS = 1e-7


def soft_logits(probabilities):
    """Log-probabilities (clipped away from 0) used as logits for the softened softmax."""
    return tf.math.log(tf.clip_by_value(probabilities, _EPS, 1.0))


def distillation_loss(y_true, student_probs, teacher_probs, alpha: float = 0.1, temperature: float = 4.0):
    """``alpha * CE + (1 - alpha) * T^2 * KL(teacher_T || student_T)``, averaged over the batch.

    Example:
        >>> import numpy as np
        >>> p = np.array([[0.7, 0.2, 0.1]], "float32")
        >>> round(float(distillation_loss(np.array([0]), p, p, alpha=0.0)), 6)  # identical outputs: no KL
        0.0
    """
    y = tf.cast(tf.reshape(y_true, [-1]), tf.int32)
    ce = keras.losses.sparse_categorical_crossentropy(y, tf.clip_by_value(student_probs, _EPS, 1.0))
    t = float(temperature)
    p_teacher = tf.nn.softmax(soft_logits(teacher_probs) / t)
    log_p_student = tf.nn.log_softmax(soft_logits(student_probs) / t)
    log_p_teacher = tf.math.log(tf.clip_by_value(p_teacher, _EPS, 1.0))
    kl = tf.reduce_sum(p_teacher * (log_p_teacher - log_p_student), axis=-1)
    return tf.reduce_mean(alpha * ce + (1.0 - alpha) * (t * t) * kl)


class Distiller(keras.Model):
    """Student + frozen teacher; ``fit`` trains the student with :func:`distillation_loss`.

    Calling the distiller runs the student, so validation, ``evaluate`` and accuracy
    metrics measure the student alone.

    Example:
        >>> d = Distiller(student, teacher, alpha=0.1, temperature=4.0)   # doctest: +SKIP
        >>> d.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])  # doctest: +SKIP
        >>> d.fit(x, y, epochs=5)                                          # doctest: +SKIP
    """

    def __init__(self, student, teacher, alpha: float = 0.1, temperature: float = 4.0, **kwargs):
        super().__init__(name=kwargs.pop("name", "distiller"), **kwargs)
        check_compatible(student, teacher)
        if not 0.0 <= float(alpha) <= 1.0:
            raise UserError(f"distillation alpha must be in [0, 1], got {alpha}")
        if float(temperature) <= 0:
            raise UserError(f"distillation temperature must be > 0, got {temperature}")
        self.student = student
        self.teacher = teacher
        self.teacher.trainable = False
        self.alpha = float(alpha)
        self.temperature = float(temperature)
        self.loss_tracker = keras.metrics.Mean(name="loss")

    def call(self, inputs, training=None):
        return self.student(inputs, training=training)

    @property
    def metrics(self):
        # Our loss tracker replaces the compiled loss's, so epoch logs show the distillation loss.
        compiled = self.compiled_metrics.metrics if getattr(self, "compiled_metrics", None) is not None else []
        return [self.loss_tracker, *compiled]

    def train_step(self, data):
        x, y = data[0], data[1]
        teacher_probs = self.teacher(x, training=False)
        with tf.GradientTape() as tape:
            student_probs = self.student(x, training=True)
            loss = distillation_loss(y, student_probs, teacher_probs, self.alpha, self.temperature)
            if self.student.losses:
                loss += tf.add_n(self.student.losses)
        variables = self.student.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return self._update(loss, y, student_probs)

    def test_step(self, data):
        x, y = data[0], data[1]
        probs = self.student(x, training=False)
        y_int = tf.cast(tf.reshape(y, [-1]), tf.int32)
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y_int, tf.clip_by_value(probs, _EPS, 1.0)))
        return self._update(loss, y, probs)

    def _update(self, loss, y, probs):
        self.loss_tracker.update_state(loss)
        self.compiled_metrics.update_state(y, probs)
        return {m.name: m.result() for m in self.metrics}


def check_compatible(student, teacher):
    """Raise a one-line ``UserError`` if the teacher cannot teach this student."""
    s_out, t_out = student.outputs[0].shape[-1], teacher.outputs[0].shape[-1]
    if s_out != t_out:
        raise UserError(
            f"cannot distill: the teacher {teacher.name!r} has {t_out} classes but the student {student.name!r} "
            f"has {s_out}; train the teacher on the same data"
        )
    s_in, t_in = tuple(student.inputs[0].shape[1:]), tuple(teacher.inputs[0].shape[1:])
    if s_in != t_in:
        raise UserError(f"cannot distill: the teacher takes inputs of shape {t_in}, the student {s_in}")


def parse_teacher(spec: str) -> dict:
    """``"mobilenet:1.0"`` -> ``{"name": "mobilenet", "alpha": 1.0}``; a file path -> ``{"path": ...}``.

    Example:
        >>> parse_teacher("mobilenet:1.0")
        {'name': 'mobilenet', 'alpha': 1.0}
        >>> parse_teacher("resnet18")
        {'name': 'resnet18', 'alpha': 1.0}
    """
    spec = str(spec).strip()
    if spec.endswith((".keras", ".h5")) or Path(spec).expanduser().is_file():
        path = Path(spec).expanduser()
        if not path.is_file():
            raise UserError(f"teacher model file {spec!r} not found")
        return {"path": str(path)}
    from edgecnn.models import model_info
    from edgecnn.models._layers import check_alpha

    name, _, alpha = spec.partition(":")
    entry = model_info(name)  # unknown names raise a UserError with suggestions
    try:
        value = check_alpha(alpha) if alpha else 1.0
    except UserError as exc:
        raise UserError(f"teacher {spec!r}: {exc}") from None
    return {"name": entry.name, "alpha": value}


def load_teacher_file(path: str):
    """Load a saved Keras teacher (our custom layers known), raising ``UserError`` if unreadable."""
    from edgecnn.models._layers import CUSTOM_OBJECTS

    try:
        with keras.utils.custom_object_scope(CUSTOM_OBJECTS):
            return keras.models.load_model(path, compile=False)
    except Exception as exc:  # corrupt file, unknown layer...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise UserError(f"cannot load the teacher model {path}: {first}") from None
