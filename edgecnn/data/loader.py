"""Which loader reads a run's data: the one door the pipeline, the stages and the debugger go through.

- ``digits`` and an ``.npz`` that fits the memory budget: decoded into memory
  (:func:`edgecnn.data.dataset.load_dataset`), the fastest for small data;
- an ``.npz`` over the budget: memory-mapped (:func:`edgecnn.data.npz.load_npz_stream`),
  or refused with one line when it is compressed;
- an image folder: streamed (:func:`edgecnn.data.stream.load_stream`), or decoded into memory
  when ``data.cache`` says ``memory`` (or ``auto`` and it fits);
- TFRecord shards (``'shards/*.tfrecord'``): streamed (:func:`edgecnn.data.tfrecord.load_tfrecords`).

Every loader takes the source, a :class:`~edgecnn.data.contract.LoadSpec` and, for the
streamed ones, where the run lives; every one returns a :class:`~edgecnn.data.contract.RunData`.
"""

from __future__ import annotations

from pathlib import Path

from edgecnn.data.contract import LoadSpec, RunData
from edgecnn.data.dataset import load_dataset


def load_run_data(cfg, entry, full_train: bool = False, run_dir=None, chief: bool = True) -> RunData:
    """The run's dataset as ``cfg.data`` describes it (``full_train``: ignore ``train_fraction``).

    ``cfg`` is a resolved :class:`~edgecnn.settings.run_config.RunConfig`, ``entry`` the model's registry
    entry (for its number of channels and the input convention of ``cfg.model.weights``),
    ``run_dir`` the run folder (where a streamed source records its split, ``splits.json``,
    and keeps its disk cache). ``chief`` ``False`` (another worker of a multi-worker run): the
    recorded split is read but not written, and a disk cache goes into a temporary folder
    removed at exit.
    """
    return load_source(str(cfg.data.source), LoadSpec.for_run(cfg, entry, full_train), run_dir, chief)


def load_source(source: str, spec: LoadSpec, run_dir=None, chief: bool = True) -> RunData:
    """``source`` read by the loader of its kind (see the module), with ``spec``."""
    from edgecnn.data.tfrecord import is_pattern, load_tfrecords

    if is_pattern(source):
        return load_tfrecords(source, spec, run_dir=run_dir, record=chief)
    path = Path(source).expanduser()
    if source != "digits" and path.is_dir():
        from edgecnn.data.stream import load_stream

        cache_dir = None if chief else _worker_temp()
        return load_stream(source, spec, run_dir=run_dir, record=chief, cache_dir=cache_dir)
    if path.suffix.lower() == ".npz" and path.is_file():
        from edgecnn.data.npz import load_npz_stream, npz_decision

        how, members = npz_decision(path)
        if how == "mmap":
            return load_npz_stream(source, members, spec)
    return load_dataset(source, spec)


def _worker_temp() -> Path:
    """A temporary folder for a non-chief worker's disk cache, removed when the process exits."""
    import atexit
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="edgecnn-worker-cache-"))
    atexit.register(shutil.rmtree, path, True)
    return path
