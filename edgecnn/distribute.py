"""Training on several GPUs or machines with TensorFlow's own engine, ``tf.distribute``.

edgecnn does not ship a distribution scheme of its own: it picks one of TensorFlow's
strategies and makes every training stage build its model, optimizer and metrics inside
that strategy's scope (see the TensorFlow guide, https://www.tensorflow.org/guide/distributed_training,
and Goyal et al., "Accurate, Large Minibatch SGD", 2017, https://arxiv.org/abs/1706.02677,
for why synchronous data parallelism with a fixed global batch keeps results comparable).

Strategies (``--strategy`` / ``train.strategy``):
    ``auto``         ``mirrored`` when this machine has several GPUs, ``default`` otherwise.
    ``default``      no distribution: one device (TensorFlow's default strategy).
    ``mirrored``     ``tf.distribute.MirroredStrategy`` over every local GPU (or the CPU).
    ``multiworker``  ``tf.distribute.MultiWorkerMirroredStrategy`` across machines (or
                     processes), configured by the standard ``TF_CONFIG`` environment
                     variable, as Kubernetes' TFJob, Slurm scripts or plain ssh set it.

The batch size a user gives is the *global* batch: each step, the batch is split over the
replicas; in-memory data is auto-sharded by element (``AutoShardPolicy.DATA``, set in
:func:`edgecnn.train.make_datasets`); streamed data is sharded by file, so that each worker
reads only its own files (see :func:`edgecnn.train.make_datasets`). Every worker learns the
epoch when a pass over the data starts (:class:`edgecnn.train.EpochCounter`), so the order
and augmentation of each epoch derive from ``(seed, epoch, worker)``, as in one process.
The chief (task ``chief``, or ``worker`` 0 when the
cluster has no chief) is the only process that writes the run folder, converts and
benchmarks; the other workers write what they must into a temporary folder that is removed
(the same scheme Keras' own callbacks use), and checkpoints go through Keras'
``BackupAndRestore``, so a job whose worker was lost resumes from the last finished epoch.

Example:
    >>> strategy = get_strategy("default")
    >>> with strategy.scope():                                   # doctest: +SKIP
    ...     model = create_model("lenet5", classes=10)
    >>> describe(strategy)["replicas"]
    1
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgecnn.errors import UserError

STRATEGIES = ("auto", "default", "mirrored", "multiworker")

_CACHE: dict = {}
_KINDS = {
    "_DefaultDistributionStrategy": "default",
    "MirroredStrategy": "mirrored",
    "MultiWorkerMirroredStrategy": "multiworker",
    "CollectiveAllReduceStrategy": "multiworker",
}


@dataclass(frozen=True)
class ClusterTask:
    """This process's place in the cluster described by ``TF_CONFIG``.

    Attributes:
        cluster: job name -> list of ``host:port`` addresses.
        task_type: ``chief`` or ``worker``.
        task_index: index within its job.
    """

    cluster: dict
    task_type: str
    task_index: int

    @property
    def num_workers(self) -> int:
        """Processes that train (``chief`` + ``worker`` tasks)."""
        return len(self.cluster.get("chief", [])) + len(self.cluster.get("worker", []))

    @property
    def is_chief(self) -> bool:
        """The ``chief`` task, or ``worker`` 0 when the cluster has no chief (TensorFlow's rule)."""
        if "chief" in self.cluster:
            return self.task_type == "chief"
        return self.task_type == "worker" and self.task_index == 0

    @property
    def name(self) -> str:
        return f"{self.task_type} {self.task_index}"


def cluster_from_env(environ=None) -> ClusterTask | None:
    """Parse and check ``TF_CONFIG``; ``None`` when it is not set.

    Example:
        >>> env = {"TF_CONFIG": '{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}'}
        >>> task = cluster_from_env(env)
        >>> task.num_workers, task.is_chief
        (2, False)
    """
    environ = os.environ if environ is None else environ
    raw = environ.get("TF_CONFIG", "").strip()
    if not raw:
        return None
    try:
        config = json.loads(raw)
    except ValueError as exc:
        message = f"TF_CONFIG is not valid JSON ({exc}); see docs/distributed.md"
        raise UserError(message) from None
    if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict):
        raise UserError('TF_CONFIG must be a JSON object with a "cluster" mapping and a "task" mapping')
    cluster = config["cluster"]
    task = config.get("task")
    if not isinstance(task, dict) or "type" not in task:
        raise UserError('TF_CONFIG has no "task" ({"type": "worker", "index": N}): each process needs its own')
    unsupported = sorted(set(cluster) - {"chief", "worker"})
    if unsupported:
        raise UserError(
            f"TF_CONFIG cluster has {', '.join(unsupported)} jobs; multiworker training uses only "
            "'chief' and 'worker' (parameter servers and evaluators are not supported)"
        )
    for job, addresses in cluster.items():
        if not isinstance(addresses, list) or not all(isinstance(a, str) and ":" in a for a in addresses):
            raise UserError(f'TF_CONFIG cluster "{job}" must be a list of "host:port" strings, got {addresses!r}')
    if len(cluster.get("chief", [])) > 1:
        raise UserError("TF_CONFIG cluster may have at most one chief")
    task_type, index = task.get("type"), task.get("index", 0)
    if task_type not in cluster:
        raise UserError(f"TF_CONFIG task type {task_type!r} is not a job of the cluster ({', '.join(cluster)})")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(cluster[task_type]):
        raise UserError(
            f"TF_CONFIG task index {index!r} is out of range: job {task_type!r} has {len(cluster[task_type])} task(s)"
        )
    return ClusterTask(cluster={k: list(v) for k, v in cluster.items()}, task_type=task_type, task_index=index)


def resolve_name(name: str = "auto", num_gpus: int | None = None) -> str:
    """The strategy ``name`` stands for on this machine (``auto`` -> ``mirrored`` or ``default``).

    Example:
        >>> resolve_name("auto", num_gpus=4), resolve_name("auto", num_gpus=1)
        ('mirrored', 'default')
    """
    if name not in STRATEGIES:
        from edgecnn.errors import suggest

        raise UserError(f"strategy must be one of {', '.join(STRATEGIES)}, got {name!r}{suggest(name, STRATEGIES)}")
    if name != "auto":
        return name
    if num_gpus is None:
        from edgecnn._tf import tf

        num_gpus = len(tf.config.list_physical_devices("GPU"))
    return "mirrored" if num_gpus > 1 else "default"


def strategy_for_environment(name: str = "auto", environ=None) -> tuple:
    """The strategy to use for ``name`` given ``TF_CONFIG``, and a line to print (or ``None``).

    A process that ``TF_CONFIG`` places in a cluster must not act as a second chief:

    * ``auto`` with a valid ``TF_CONFIG`` selects ``multiworker`` (the line says so);
    * ``default`` or ``mirrored`` on the cluster's chief runs alone, with a warning line
      that ``TF_CONFIG`` is ignored;
    * ``default`` or ``mirrored`` on any other task is a :class:`UserError`: it would
      write the shared run folder as a second chief.

    A ``TF_CONFIG`` that is not valid is a :class:`UserError` whatever the strategy.

    Example:
        >>> env = {"TF_CONFIG": '{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 0}}'}
        >>> strategy_for_environment("auto", env)[0]
        'multiworker'
        >>> strategy_for_environment("auto", {})
        ('auto', None)
    """
    task = cluster_from_env(environ)
    if task is None or name == "multiworker":
        return name, None
    if name == "auto":
        return "multiworker", (
            f"TF_CONFIG found ({task.name} of {task.num_workers} worker(s)): using --strategy multiworker"
        )
    if not task.is_chief:
        raise UserError(
            f"TF_CONFIG makes this process {task.name}, not the chief, but the strategy is {name!r}: it would write "
            "the run folder as a second chief; use --strategy multiworker, or unset TF_CONFIG"
        )
    return name, f"warning: TF_CONFIG is set but the strategy is {name!r}: ignoring it, this process trains alone"


def get_strategy(name: str = "auto"):
    """The ``tf.distribute.Strategy`` for ``name``, created once per process.

    ``multiworker`` must be created before TensorFlow runs its first operation (a
    TensorFlow rule); :func:`edgecnn.pipeline.optimize` does so first thing. In your own
    script, call ``get_strategy("multiworker")`` before building anything.

    Example:
        >>> get_strategy("default").num_replicas_in_sync
        1
    """
    resolved = resolve_name(name)
    if resolved in _CACHE:
        return _CACHE[resolved]
    from edgecnn._tf import tf

    if resolved == "default":
        strategy = _default_strategy()
    elif resolved == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
    else:
        task = cluster_from_env()
        if task is None:
            raise UserError(
                "--strategy multiworker needs the TF_CONFIG environment variable (the cluster's addresses and "
                "this process's task); see docs/distributed.md"
            )
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.AUTO  # RING on CPU, NCCL on GPU
        )
        try:
            strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
        except RuntimeError as exc:
            if "startup" in str(exc):
                raise UserError(
                    "the multiworker strategy must be created before TensorFlow runs anything: call "
                    "edgecnn.distribute.get_strategy('multiworker') at the top of your script"
                ) from None
            raise
        except ValueError as exc:
            raise UserError(f"TF_CONFIG was rejected by TensorFlow: {str(exc).splitlines()[0]}") from None
    _CACHE[resolved] = strategy
    return strategy


def _default_strategy():
    """TensorFlow's default (no-distribution) strategy, even from inside another scope."""
    from tensorflow.python.distribute import distribute_lib

    return distribute_lib._get_default_strategy()


def kind(strategy) -> str:
    """``default``, ``mirrored`` or ``multiworker`` for a strategy object.

    Example:
        >>> kind(get_strategy("default"))
        'default'
    """
    name = type(strategy).__name__
    return _KINDS.get(name, name)


def current_strategy():
    """The strategy whose scope is entered (TensorFlow's default strategy outside any scope)."""
    from edgecnn._tf import tf

    return tf.distribute.get_strategy()


def is_multi_worker(strategy=None) -> bool:
    """Whether ``strategy`` (default: the current one) spans several processes."""
    strategy = strategy or current_strategy()
    extended = strategy.extended
    return bool(getattr(extended, "_in_multi_worker_mode", lambda: False)())


def is_chief(strategy=None) -> bool:
    """Whether this process writes outputs: always, except on non-chief multiworker tasks.

    Example:
        >>> is_chief(get_strategy("default"))
        True
    """
    strategy = strategy or current_strategy()
    if not is_multi_worker(strategy):
        return True
    return bool(strategy.extended.should_checkpoint)


def describe(strategy=None) -> dict:
    """What ``strategy`` is, as recorded in ``metrics.json``.

    Example:
        >>> describe(get_strategy("default"))["workers"]
        1
    """
    strategy = strategy or current_strategy()
    info = {
        "strategy": kind(strategy),
        "replicas": int(strategy.num_replicas_in_sync),
        "workers": 1,
        "chief": True,
    }
    if is_multi_worker(strategy):
        task = cluster_from_env()
        info.update(
            workers=int(strategy.extended._num_workers),
            chief=is_chief(strategy),
            task=task.name if task else None,
        )
    return info


def input_shard(strategy=None) -> tuple:
    """``(workers, index)``: how many input pipelines read the data and which one this process is.

    TensorFlow's numbering (``multi_worker_util.id_in_cluster``): the chief is 0 and the
    workers follow; ``(1, 0)`` outside a multi-worker strategy.

    Example:
        >>> input_shard(get_strategy("default"))
        (1, 0)
    """
    strategy = strategy or current_strategy()
    if not is_multi_worker(strategy):
        return 1, 0
    task = cluster_from_env()
    if task is None:
        return 1, 0
    index = task.task_index + (1 if task.task_type == "worker" and "chief" in task.cluster else 0)
    return task.num_workers, (0 if task.task_type == "chief" else index)


def all_agree(flag: bool, strategy=None) -> bool:
    """``True`` only if ``flag`` is true on every worker (one all-reduce; local otherwise).

    Used so that every worker takes the same branch (e.g. reuse a cached stage, or train
    it), which synchronous training needs: a worker skipping a step the others take
    would leave them waiting forever. A worker lost meanwhile is :class:`WorkerLost` (the
    one-line message of :func:`lost_worker_error`), raised once TensorFlow's health check
    of the peers (on by default for ``multiworker``) aborts the collective.

    Example:
        >>> all_agree(True, get_strategy("default"))
        True
    """
    strategy = strategy or current_strategy()
    if not is_multi_worker(strategy):
        return bool(flag)
    from edgecnn._tf import tf

    value = 1.0 if flag else 0.0
    try:
        total = strategy.reduce("SUM", strategy.run(lambda: tf.constant(value)), axis=None)
        return float(total) >= strategy.num_replicas_in_sync - 0.5
    except collective_errors() as exc:  # a peer gone: TensorFlow's health check aborts the collective
        raise lost_worker_error(exc) from None


def same_everywhere(text: str, strategy=None) -> bool:
    """``True`` when ``text`` (e.g. a digest of the data split) is the same on every worker.

    Two all-reduces of the sha256 bytes of ``text`` (their sum and sum of squares): every
    worker gets the same answer, so all of them stop, or none.

    Example:
        >>> same_everywhere("abc", get_strategy("default"))
        True
    """
    strategy = strategy or current_strategy()
    if not is_multi_worker(strategy):
        return True
    import numpy as np

    from edgecnn._tf import tf

    mine = np.frombuffer(hashlib.sha256(text.encode()).digest(), np.uint8).astype(np.float32)
    both = np.concatenate([mine, mine * mine])
    try:
        total = strategy.reduce("SUM", strategy.run(lambda: tf.constant(both)), axis=None).numpy()
    except collective_errors() as exc:
        raise lost_worker_error(exc) from None
    replicas = strategy.num_replicas_in_sync
    sums, squares = total[: len(mine)], total[len(mine) :]
    return bool(np.all(sums * sums == replicas * squares))  # zero variance: all equal


def barrier(strategy=None):
    """Wait until every worker reaches this point (no-op without several workers).

    Example:
        >>> barrier(get_strategy("default"))
    """
    strategy = strategy or current_strategy()
    if is_multi_worker(strategy):
        all_agree(True, strategy)


@contextlib.contextmanager
def write_dir(path, strategy=None):
    """Yield where this process should write what belongs in ``path``.

    The chief gets ``path`` itself; another worker gets a fresh temporary folder that is
    removed afterwards, so every worker runs the same code (saving may involve collective
    operations) but only the chief's files remain.

    Example:
        >>> with write_dir("runs/x/train", get_strategy("default")) as d:
        ...     str(d)
        'runs/x/train'
    """
    strategy = strategy or current_strategy()
    if is_chief(strategy):
        yield Path(path)
        return
    tmp = tempfile.mkdtemp(prefix="edgecnn-worker-")
    try:
        yield Path(tmp) / Path(path).name
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def local_copy(model):
    """A copy of a ``multiworker`` model that lives on this process alone (other models: unchanged).

    Reading a model trained under ``MultiWorkerMirroredStrategy`` can be a collective
    operation (variables synchronized on read, such as BatchNorm statistics or tfmot's
    quantization ranges, are all-reduced when read), so the chief could not convert or
    evaluate it alone. Every worker calls this, outside the strategy's scope, after the
    last training stage; then the chief works on its copy while the others stop.

    Example:
        >>> plain = local_copy(model)  # doctest: +SKIP
    """
    strategy = getattr(model, "_distribution_strategy", None)
    if strategy is None or not is_multi_worker(strategy):
        return model
    from edgecnn._tf import keras, tfmot
    from edgecnn.optimize.qat import custom_objects

    try:
        weights = model.get_weights()  # on every worker, in the same order: the collective reads
    except collective_errors() as exc:
        raise lost_worker_error(exc) from None
    api = tfmot()
    with api.sparsity.keras.prune_scope(), api.quantization.keras.quantize_scope(custom_objects()):
        copy = keras.models.clone_model(model)
    copy.set_weights(weights)
    return copy


def weights_digest(model) -> str:
    """A short hash of a model's weight values (to check that workers agree).

    Example:
        >>> weights_digest(model)  # doctest: +SKIP
        '3f1c9a0b2d4e5f60'
    """
    h = hashlib.sha256()
    for w in model.get_weights():
        h.update(str(w.dtype).encode() + str(w.shape).encode())
        h.update(w.tobytes())
    return h.hexdigest()[:16]


class WorkerLost(UserError):
    """Another worker stopped answering during multiworker training."""


def lost_worker_error(exc, backup_dir=None) -> WorkerLost:
    """The one-line message for a collective operation that failed because a peer went away."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    telling = ("unhealthy", "heartbeat", "is down", "aborted", "unavailable", "deadline", "connect")
    first = next((line for line in lines if any(t in line.lower() for t in telling)), lines[0] if lines else "")
    first = first or type(exc).__name__
    where = f" (checkpoint in {backup_dir})" if backup_dir else ""
    return WorkerLost(
        f"lost contact with another worker ({first[:200]}); restart every worker with the same command: "
        f"training resumes from the last finished epoch{where}"
    )


def collective_errors() -> tuple:
    """The TensorFlow errors that mean a peer died or the collective was aborted."""
    from edgecnn._tf import tf

    return (
        tf.errors.UnavailableError,
        tf.errors.CancelledError,
        tf.errors.DeadlineExceededError,
        tf.errors.AbortedError,
        tf.errors.FailedPreconditionError,
        tf.errors.InternalError,
    )
