"""Settings, declared once: what a run can be told, and the run configuration built from it.

- :mod:`~edgecnn.settings.fields`: ``setting()`` and ``Section``, the one declaration a
  field's help, CLI flag, choices and range come from.
- :mod:`~edgecnn.settings.sections`: the core sections (model, data, train, convert, bench)
  and the TFLite precision names (``PRECISION_SWITCHES``), declared once.
- :mod:`~edgecnn.settings.recipe_text`: a recipe's text read: line-aware YAML, bounded in
  size, with ``${name}`` variables (what it means is :mod:`edgecnn.recipe`'s).
- :mod:`~edgecnn.settings.run_config`: ``RunConfig`` (core sections + one per stage),
  resolving defaults and checking paths.

Nothing here imports TensorFlow.
"""
