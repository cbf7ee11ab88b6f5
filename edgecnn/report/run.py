"""Reading a finished run back: its settings, its data and its trained model, for the reports.

``edgecnn show``, ``edgecnn eval --explain`` and ``edgecnn eval --int8-debug`` look at a run that
the pipeline already finished. Reading one needs the resolved run configuration
(:mod:`edgecnn.settings.run_config`) and the run's own data splits (:mod:`edgecnn.data.loader`),
both layers above the TFLite tools, so the reading lives here in the reporting layer and hands
plain objects down (:func:`edgecnn.tflite.debugger.run_debugger` takes ``cfg, data, model``).

Example:
    >>> cfg, data, model = load_run("runs/mobilenet-a0.50-32px")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from edgecnn.errors import UserError
from edgecnn.tflite import debugger
from edgecnn.tflite.debugger import first_line


def debug_run(path) -> dict:
    """:meth:`Int8Debug.summary` for an existing run: ``path`` is its folder (the trained
    model, ``train/model.keras``) or a ``model.keras`` inside it; the data, calibration and
    validation split are the run's own (its ``config.json``).

    Example:
        >>> from edgecnn.tflite.debugger import format_layers
        >>> print(format_layers(debug_run("runs/mobilenet-a0.50-32px")))  # doctest: +SKIP
    """
    path = Path(path)
    if path.is_dir():
        run, model_file = path, path / "train" / "model.keras"
    elif path.suffix == ".keras" and path.is_file():
        run = next((p for p in (path.parent, path.parent.parent) if (p / "config.json").is_file()), path.parent)
        model_file = path
    else:
        raise UserError(f"{path}: the int8 debugger takes a run folder or a model.keras inside one")
    cfg, data, model = load_run(run, model_file)
    debug = debugger.run_debugger(cfg, data, model)  # looked up on the module: tests spy on it
    return {"run": str(run), "model_file": str(model_file), **debug.summary()}


def load_run(run, model_file=None) -> tuple:
    """``(cfg, data, model)`` of the run folder ``run``: its resolved :class:`edgecnn.settings.run_config.RunConfig`,
    its data (:func:`edgecnn.data.loader.load_run_data`, the run's own splits) and its trained
    Keras model (:func:`load_run_model`). Anything missing or unreadable is a
    :class:`UserError` (one line). ``debug_run``, ``eval --explain`` and ``edgecnn show`` all
    read a finished run through here.

    Example:
        >>> cfg, data, model = load_run("runs/mobilenet-a0.50-32px")  # doctest: +SKIP
    """
    import json

    from edgecnn.data.loader import load_run_data
    from edgecnn.models import model_info
    from edgecnn.settings.run_config import RunConfig, resolve

    run = Path(run)
    if not (run / "config.json").is_file():
        raise UserError(f"{run} holds no config.json: not a run folder")
    if model_file is not None and not Path(model_file).is_file():
        raise UserError(f"{model_file} not found (the run saved no full Keras model)")
    try:
        raw = json.loads((run / "config.json").read_text())
        cfg = resolve(RunConfig.from_dict(raw), model_info(raw["model"]["name"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{run / 'config.json'}: cannot be read back ({first_line(exc)})") from None
    data = load_run_data(cfg, model_info(cfg.model.name), run_dir=run, chief=False)
    return cfg, data, load_run_model(run, cfg, data, model_file)


def load_run_model(run, cfg, data, model_file=None):
    """The run's trained float Keras model: ``model_file`` when given; else
    ``train/model.keras``, or, where that is missing or does not load, the architecture
    rebuilt from ``cfg`` with ``train/weights.h5``. :class:`UserError` when none loads."""
    from edgecnn._tf import keras
    from edgecnn.models import create_model
    from edgecnn.models._layers import CUSTOM_OBJECTS

    run = Path(run)
    weights = None if model_file is not None else run / "train" / "weights.h5"
    model_file = Path(model_file) if model_file is not None else run / "train" / "model.keras"
    if model_file.is_file():
        try:
            with keras.utils.custom_object_scope(CUSTOM_OBJECTS):
                return keras.models.load_model(model_file, compile=False, safe_mode=True)
        except Exception as exc:  # corrupt file, unknown layer...
            if weights is None or not weights.is_file():
                raise UserError(f"cannot load {model_file}: {first_line(exc)}") from None
    if weights is None or not weights.is_file():
        raise UserError(f"{run / 'train'} holds neither model.keras nor weights.h5: no trained model")
    args = {k: v for k, v in cfg.model.args.items() if k != "weights"}
    try:
        return create_model(cfg.model.name, alpha=cfg.model.alpha, input_shape=tuple(data.input_shape),
                            classes=data.num_classes, weights=str(weights), **args)
    except (ValueError, OSError) as exc:
        raise UserError(f"cannot rebuild {cfg.model.name} from {weights}: {first_line(exc)}") from None
