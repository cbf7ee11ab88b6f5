"""Data: every source a run reads, as one contract the trainer, pipeline and debugger use.

- :mod:`~edgecnn.data.contract`: the contract: :class:`~edgecnn.data.contract.RunData` (what
  every source gives), :class:`~edgecnn.data.contract.LoadSpec` (what every loader takes) and
  :func:`~edgecnn.data.contract.preprocess_spec` (the one writer of ``preprocess.json``).
- :mod:`~edgecnn.data.splits`: the one seeded, stratified cut, and ``splits.json`` (its key).
- :mod:`~edgecnn.data.loader`: the one door (``load_run_data``); picks the source's loader.
- :mod:`~edgecnn.data.dataset`: the built-in digits and ``.npz``/folders decoded into memory.
- :mod:`~edgecnn.data.stream`: image folders streamed from disk (and the streamed sources' base).
- :mod:`~edgecnn.data.npz`: ``.npz`` files over the memory budget, memory-mapped.
- :mod:`~edgecnn.data.tfrecord`: TFRecord shards.
- :mod:`~edgecnn.data.decode`: the device's image preprocessing in TensorFlow kernels, per image;
  :mod:`~edgecnn.data.tf_read`: the ``tf.data`` readers built on it.

Layer: above ``settings`` and ``device`` (for the device's own preprocessing), below
``models``' users: nothing here imports ``tflite``, ``stages``, the pipeline or the CLI.
"""
