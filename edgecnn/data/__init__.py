"""Data: every source a run reads, as one contract the trainer, pipeline and debugger use.

- :mod:`~edgecnn.data.loader`: the one door (``load_run_data``); picks the source's loader.
- :mod:`~edgecnn.data.dataset`: the built-in digits and ``.npz``/folders decoded into memory.
- :mod:`~edgecnn.data.stream`: image folders and large ``.npz`` files streamed from disk.
- :mod:`~edgecnn.data.tfrecord`: TFRecord shards.
- :mod:`~edgecnn.data.decode`: the device's image preprocessing in TensorFlow kernels.

Layer: above ``settings`` and ``device`` (for the device's own preprocessing), below
``models``' users: nothing here imports ``tflite``, ``stages``, the pipeline or the CLI.
"""
