"""The four pictures of ``edgecnn show`` (:mod:`edgecnn.report.pictures`), one module each.

- :mod:`~edgecnn.report.draw.filters`: ``filters.png``, first-layer kernels beside Sobel and Gabor filters;
- :mod:`~edgecnn.report.draw.feature_maps`: ``feature_maps.png``, layer outputs of the float32 and int8 files;
- :mod:`~edgecnn.report.draw.grad_cam`: ``grad_cam.png``, Grad-CAM of the float model;
- :mod:`~edgecnn.report.draw.confusion`: ``confusion.png``, the float32 file's confusion matrix;
- :mod:`~edgecnn.report.draw._common`: matplotlib, atomic PNG writes, images drawn as pixels.

Each module computes what its picture shows and draws it; :func:`edgecnn.report.pictures.show_run`
loads the run, calls them in order and links the PNGs from ``report.md``.
"""
