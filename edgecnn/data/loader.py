"""Which loader reads a run's data: the one door the pipeline and the stages go through.

- ``digits`` and an ``.npz`` that fits the memory budget: decoded into memory
  (:func:`edgecnn.data.dataset.load_dataset`), the fastest for small data;
- an ``.npz`` over the budget: memory-mapped (:func:`edgecnn.data.stream.load_npz_stream`),
  or refused with one line when it is compressed;
- an image folder: streamed (:func:`edgecnn.data.stream.load_stream`), or decoded into memory
  when ``data.cache`` says ``memory`` (or ``auto`` and it fits);
- TFRecord shards (``'shards/*.tfrecord'``): streamed (:func:`edgecnn.data.tfrecord.load_tfrecords`).
"""

from __future__ import annotations

from pathlib import Path

from edgecnn.data.dataset import load_run_data as load_in_memory
from edgecnn.data.dataset import run_convention


def load_run_data(cfg, entry, full_train: bool = False, run_dir=None, chief: bool = True):
    """The run's dataset as ``cfg.data`` describes it (``full_train``: ignore ``train_fraction``).

    ``cfg`` is a resolved :class:`~edgecnn.settings.run_config.RunConfig`, ``entry`` the model's registry
    entry (for its number of channels), ``run_dir`` the run folder (where a streamed
    source records its split, ``splits.json``, and keeps its disk cache). ``chief``
    ``False`` (another worker of a multi-worker run): the recorded split is read but not
    written, and a disk cache goes into a temporary folder removed at exit.
    """
    from edgecnn.data.tfrecord import is_pattern, load_tfrecords
    from edgecnn.device.preprocess import DEFAULT_OFFSET, DEFAULT_SCALE

    d = cfg.data
    # The input convention of the weights the model starts from, and the resize (as data.load_run_data's).
    convention = run_convention(cfg, entry)
    norm = {
        "scale": convention.pop("scale", DEFAULT_SCALE),
        "offset": convention.pop("offset", DEFAULT_OFFSET),
        "convention": convention,
    }
    source = str(d.source)
    size = (d.image_size, d.image_size)
    fraction = None if full_train else d.train_fraction
    split = {"val_split": d.val_split, "test_split": d.test_split, "seed": d.seed, "train_fraction": fraction}
    if is_pattern(source):
        return load_tfrecords(source, size, entry.channels, run_dir=run_dir, record=chief, **split, **norm)
    path = Path(source).expanduser()
    if source != "digits" and path.is_dir():
        from edgecnn.data.stream import load_stream

        cache_dir = None if chief else _worker_temp()
        where = {"run_dir": run_dir, "record": chief, "cache_dir": cache_dir}
        return load_stream(source, size, entry.channels, cache=d.cache, **where, **split, **norm)
    if path.suffix.lower() == ".npz" and path.is_file():
        from edgecnn.data.stream import load_npz_stream, npz_decision

        how, members = npz_decision(path)
        if how == "mmap":
            return load_npz_stream(
                source, members, size, entry.channels, d.val_split, d.test_split, d.seed, fraction, **norm
            )
    return load_in_memory(cfg, entry, full_train=full_train)


def _worker_temp() -> Path:
    """A temporary folder for a non-chief worker's disk cache, removed when the process exits."""
    import atexit
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="edgecnn-worker-cache-"))
    atexit.register(shutil.rmtree, path, True)
    return path
