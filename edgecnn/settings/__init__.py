"""Settings, declared once: what a run can be told, and the run configuration built from it.

- :mod:`~edgecnn.settings.fields`: ``setting()`` and ``Section``, the one declaration a
  field's help, CLI flag, choices and range come from.
- :mod:`~edgecnn.settings.sections`: the core sections (model, data, train, convert, bench).
- :mod:`~edgecnn.settings.run_config`: ``RunConfig`` (core sections + one per stage),
  resolving defaults and checking paths.

Nothing here imports TensorFlow.
"""
