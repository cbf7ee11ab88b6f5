"""Knowledge distillation for tf_keras (Hinton, Vinyals & Dean, "Distilling the Knowledge
in a Neural Network", 2015, https://arxiv.org/abs/1503.02531).

A :class:`Distiller` wraps a student and a frozen teacher into one Keras model whose
training step minimises::

    alpha * CE(labels, student) + (1 - alpha) * T^2 * KL(softmax(teacher / T) || softmax(student / T))

The zoo's models end in a softmax, so their log-probabilities stand in for the logits:
they differ from the logits by a constant per image, which the softmax at any temperature
ignores. They are clipped only at 1e-30, far below the 1e-7 of the cross-entropy: a teacher
trained to near-zero loss gives its wrong classes probabilities around 1e-10, and a 1e-7
floor would flatten exactly that "dark knowledge" into uniform label smoothing.

With ``mixup > 0`` teacher and student see the same mixed pairs of images ("function
matching", Beyer et al., 2022, https://arxiv.org/abs/2106.05237): the teacher's outputs
on images between the training points carry more than its near one-hot outputs on the
points it was trained on. The student may be wrapped by tfmot (pruning, QAT):
distillation then drives its fine-tuning. ``fit`` the distiller like any model, keep the
student.

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
from edgecnn.models._safe_config import unsafe_config_entry  # noqa: F401  (re-exported)

_EPS = 1e-7
_LOG_EPS = 1e-30  # float32 holds down to ~1e-38; see the module docstring


def soft_logits(probabilities):
    """Log-probabilities (clipped away from 0) used as logits for the softened softmax."""
    return tf.math.log(tf.clip_by_value(probabilities, _LOG_EPS, 1.0))


def distillation_loss(y_true, student_probs, teacher_probs, alpha: float = 0.1, temperature: float = 4.0):
    """``alpha * CE + (1 - alpha) * T^2 * KL(teacher_T || student_T)``, averaged over the batch.

    Example:
        >>> import numpy as np
        >>> p = np.array([[0.7, 0.2, 0.1]], "float32")
        >>> round(float(distillation_loss(np.array([0]), p, p, alpha=0.0)), 6)  # identical outputs: no KL
        0.0
    """
    ce = _ce(y_true, student_probs)
    t = float(temperature)
    log_p_teacher = tf.nn.log_softmax(soft_logits(teacher_probs) / t)
    p_teacher = tf.exp(log_p_teacher)
    log_p_student = tf.nn.log_softmax(soft_logits(student_probs) / t)
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

    def __init__(self, student, teacher, alpha: float = 0.1, temperature: float = 4.0, mixup: float = 0.0, **kwargs):
        super().__init__(name=kwargs.pop("name", "distiller"), **kwargs)
        check_compatible(student, teacher)
        if not 0.0 <= float(alpha) <= 1.0:
            raise UserError(f"distillation alpha must be in [0, 1], got {alpha}")
        if float(temperature) <= 0:
            raise UserError(f"distillation temperature must be > 0, got {temperature}")
        if float(mixup) < 0:
            raise UserError(f"distillation mixup must be >= 0 (0 = off), got {mixup}")
        self.student = student
        self.teacher = teacher
        self.teacher.trainable = False
        self.alpha = float(alpha)
        self.temperature = float(temperature)
        self.mixup = float(mixup)
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
        y_other, lam = y, 1.0
        if self.mixup > 0:  # function matching: teacher and student see the same mixed image
            x, y_other, lam = _mix(x, y, self.mixup)
        teacher_probs = self.teacher(x, training=False)
        with tf.GradientTape() as tape:
            student_probs = self.student(x, training=True)
            loss = distillation_loss(y, student_probs, teacher_probs, self.alpha, self.temperature)
            if self.mixup > 0:  # the label term follows the mix: lam * CE(y) + (1 - lam) * CE(y_other)
                label_shift = tf.reduce_mean(_ce(y_other, student_probs) - _ce(y, student_probs))
                loss += self.alpha * (1.0 - lam) * label_shift
            if self.student.losses:
                loss += tf.add_n(self.student.losses)
        variables = self.student.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return self._update(loss, y, student_probs)

    def test_step(self, data):
        x, y = data[0], data[1]
        probs = self.student(x, training=False)
        return self._update(tf.reduce_mean(_ce(y, probs)), y, probs)

    def _update(self, loss, y, probs):
        self.loss_tracker.update_state(loss)
        self.compiled_metrics.update_state(y, probs)
        return {m.name: m.result() for m in self.metrics}


def _ce(y_true, probs):
    """Per-image cross-entropy of integer labels against probabilities clipped at ``_EPS``."""
    y = tf.cast(tf.reshape(y_true, [-1]), tf.int32)
    return keras.losses.sparse_categorical_crossentropy(y, tf.clip_by_value(probs, _EPS, 1.0))


def _mix(x, y, concentration: float):
    """Mixup (Zhang et al., 2018) of a batch with a shuffled copy of itself, one ``lam ~ Beta(c, c)`` per batch."""
    g1 = tf.random.gamma([], concentration)
    g2 = tf.random.gamma([], concentration)
    lam = g1 / (g1 + g2)
    order = tf.random.shuffle(tf.range(tf.shape(x)[0]))
    mixed = lam * x + (1.0 - lam) * tf.gather(x, order)
    return mixed, tf.gather(y, order), lam


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


def _teacher_config(path: Path):
    """The model config of a teacher file, read without building anything (``UserError`` if none)."""
    import json
    import zipfile

    import h5py

    where = f"cannot load the teacher model {path}"
    if zipfile.is_zipfile(path):
        if path.suffix != ".keras":
            raise UserError(f"{where}: a zip file must be a Keras v3 model named .keras")
        try:
            with zipfile.ZipFile(path) as archive:
                text = archive.read("config.json")
        except (KeyError, OSError, zipfile.BadZipFile) as exc:
            raise UserError(f"{where}: not a Keras v3 model (no readable config.json: {exc})") from None
        kind = "Keras v3"
    elif path.suffix == ".keras":
        raise UserError(f"{where}: not a Keras v3 zip (a .keras file must be one; an HDF5 model is named .h5)")
    elif h5py.is_hdf5(path):
        try:
            with h5py.File(path, "r") as f:
                text = f.attrs.get("model_config")
        except OSError as exc:
            raise UserError(f"{where}: unreadable HDF5 file ({exc})") from None
        if text is None:
            raise UserError(f"{where}: the HDF5 file holds no model config (only weights?); save the whole model")
        kind = "HDF5"
    else:
        raise UserError(f"{where}: not a Keras model file (a .keras zip or an .h5 HDF5 model)")
    try:
        config = json.loads(text.decode() if isinstance(text, bytes) else str(text))
    except (ValueError, RecursionError) as exc:
        raise UserError(f"{where}: the {kind} model config is not valid JSON ({str(exc)[:80]})") from None
    if isinstance(config, dict):
        config.pop("compile_config", None)  # never deserialised: loaded with compile=False
    return config


def load_teacher_file(path: str):
    """Load a saved Keras teacher without running code from the file; ``UserError`` if refused or unreadable.

    A ``.keras`` file must be a Keras v3 zip, an ``.h5`` file an HDF5 full model. Its model
    config is checked with :func:`unsafe_config_entry` before anything is built: a teacher
    with a ``Lambda`` layer, a class outside tf_keras and edgecnn, or a module to import is
    refused, since the legacy HDF5 loader runs a Lambda's bytecode whatever ``safe_mode``
    says. The model then loads with ``safe_mode=True`` and our custom layers known.

    Example:
        >>> teacher = load_teacher_file("runs/resnet18/model.keras")  # doctest: +SKIP
        >>> load_teacher_file("lambda_teacher.h5")  # doctest: +SKIP
        Traceback (most recent call last):
        edgecnn.errors.UserError: refusing the teacher model lambda_teacher.h5: layer 'evil' is a Lambda layer, ...
    """
    from edgecnn.models._layers import CUSTOM_OBJECTS

    path = Path(path)
    if not path.is_file():
        raise UserError(f"teacher model file {str(path)!r} not found")
    reason = unsafe_config_entry(_teacher_config(path))
    if reason:
        raise UserError(f"refusing the teacher model {path}: {reason}")
    try:
        with keras.utils.custom_object_scope(CUSTOM_OBJECTS):
            return keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # corrupt file, unknown layer...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise UserError(f"cannot load the teacher model {path}: {first}") from None
