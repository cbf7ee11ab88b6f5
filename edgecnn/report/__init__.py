"""Reporting: what a finished run or sweep tells its user.

- :mod:`~edgecnn.report.tables`: the accuracy/latency/size tables (terminal, Markdown,
  CSV, JSON) and the Pareto plot.
- :mod:`~edgecnn.report.explain`: per-layer int8 error joined with per-op time.
- :mod:`~edgecnn.report.pictures`: ``edgecnn show``: filters, feature maps, Grad-CAM,
  confusion matrix.
- :mod:`~edgecnn.report.benchmark_log`: TFLite's ``benchmark_model`` logs read into rows.
"""
