"""Reporting: what a finished run or sweep tells its user.

- :mod:`~edgecnn.report.results`: rows gathered from run folders, bench/eval JSON and
  ``benchmark_model`` logs, device results merged with the run rows of the same file.
- :mod:`~edgecnn.report.tables`: the accuracy/latency/size tables (terminal, Markdown,
  CSV, JSON) and a run's ``report.md``.
- :mod:`~edgecnn.report.pareto`: the accuracy-vs-latency plot and its Pareto front.
- :mod:`~edgecnn.report.explain`: per-layer int8 error joined with per-op time.
- :mod:`~edgecnn.report.pictures`: ``edgecnn show``: filters, feature maps, Grad-CAM,
  confusion matrix, each drawn by its module in :mod:`edgecnn.report.draw`.
- :mod:`~edgecnn.report.benchmark_log`: TFLite's ``benchmark_model`` logs read into rows.
"""
