"""Settings declared once: a dataclass field carries its help, CLI spelling, choices and range.

Every setting of a run is one field of a section dataclass (:mod:`edgecnn.settings.sections` for the
model, data, training, conversion and benchmark sections; each stage module of
:mod:`edgecnn.stages` for its own section), declared with :func:`setting`. Everything else
is derived from that one declaration:

- type checks and coercion from YAML/JSON (:func:`from_dict`), with the key path in errors;
- range and choice checks, NaN/inf refused for every number (:func:`check_section`);
- the command-line options of ``edgecnn optimize`` and ``edgecnn sweep``, their choices
  and their default text (:mod:`edgecnn.cli.options`);
- recipe validation and ``--set KEY.PATH=VALUE`` (:mod:`edgecnn.recipe`).

This module imports nothing heavy: ``import edgecnn.settings.run_config`` stays free of TensorFlow.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Toy(Section):
    ...     rate: float = setting(0.5, help="A rate.", low=0, high=1)
    >>> Toy(rate=2.0).validate("toy")
    Traceback (most recent call last):
    ...
    edgecnn.errors.UserError: toy.rate must be in [0, 1], got 2.0
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import MISSING, field

from edgecnn.errors import UserError, suggest

_UNION_TYPES = (typing.Union, getattr(types, "UnionType", typing.Union))  # X | Y from Python 3.10


def setting(
    default=MISSING,
    *,
    help: str = "",
    cli: str | None = None,
    choices: tuple | None = None,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    default_text: str | None = None,
    flag_value=None,
    metavar: str | None = None,
    factory=None,
):
    """A dataclass field that knows its help text, CLI flag, choices and range.

    Args:
        default: the built-in default (``None`` = filled later from the model family's
            defaults, see :func:`edgecnn.settings.run_config.resolve`).
        help: one line for ``--help`` and the docs; the default is appended to it.
        cli: the flag that sets it (``"--prune-epochs"``); several fields may share one flag,
            which then sets them all. ``None``: recipes and ``--set`` only.
        choices: the allowed values (the CLI offers exactly these).
        low, high, low_open, high_open: the allowed range of a number (closed by default).
        default_text: how ``--help`` describes a ``None`` default (``"per family"``).
        flag_value: for a boolean switched by a flag to something other than ``True``
            (``--no-bench`` sets ``bench.enabled`` to ``False``).
        metavar: the value's name in ``--help``.
        factory: a default factory (lists, dicts).
    """
    meta = {
        "help": help,
        "cli": cli,
        "choices": tuple(choices) if choices is not None else None,
        "low": low,
        "high": high,
        "low_open": low_open,
        "high_open": high_open,
        "default_text": default_text,
        "flag_value": flag_value,
        "metavar": metavar,
    }
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def off_or_fraction(*, cli: str, metavar: str, help: str):
    """A fraction in (0, 1) that switches a stage on: ``None``, the default, is off.

    Example:
        >>> off_or_fraction(cli="--prune", metavar="SPARSITY", help="Sparsity.").metadata["high_open"]
        True
    """
    return setting(
        None, cli=cli, metavar=metavar, help=help, low=0, high=1, low_open=True, high_open=True, default_text="off"
    )


class Section:
    """Base of every settings section: :meth:`validate` checks the declared ranges and
    choices of each field, then the section's own :meth:`check` (rules between fields).

    ``key`` is the section's name in :class:`~edgecnn.settings.run_config.RunConfig` (``"train"``).
    """

    key = ""

    def validate(self, path: str | None = None):
        """Raise :class:`~edgecnn.errors.UserError` naming ``path.key`` for a bad value."""
        path = self.key if path is None else path
        check_section(self, path)
        self.check(path)
        return self

    def check(self, path: str) -> None:
        """Rules between fields; override in a section that has any."""


def range_text(meta: dict) -> str:
    """``"in [0, 1)"``, ``"between 0 and 1 (exclusive)"``, ``">= 1"``... for a field's metadata.

    Example:
        >>> range_text({"low": 0, "high": 1, "low_open": True, "high_open": True})
        'between 0 and 1 (exclusive)'
    """
    lo, hi = meta.get("low"), meta.get("high")
    if lo is not None and hi is not None:
        if meta.get("low_open") and meta.get("high_open"):
            return f"between {lo:g} and {hi:g} (exclusive)"
        return f"in {'(' if meta.get('low_open') else '['}{lo:g}, {hi:g}{')' if meta.get('high_open') else ']'}"
    if lo is not None:
        return f"{'>' if meta.get('low_open') else '>='} {lo:g}"
    if hi is not None:
        return f"{'<' if meta.get('high_open') else '<='} {hi:g}"
    return ""


def check_value(value, meta: dict, path: str) -> None:
    """Check one value against its field's declared choices and range (``None`` passes)."""
    if value is None:
        return
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise UserError(f"{path} must be one of {', '.join(map(str, choices))}, got {value!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        lo, hi = meta.get("low"), meta.get("high")
        bad = (lo is not None and (value < lo or (meta.get("low_open") and value == lo))) or (
            hi is not None and (value > hi or (meta.get("high_open") and value == hi))
        )
        if bad:
            raise UserError(f"{path} must be {range_text(meta)}, got {value!r}")


def check_section(section, path: str) -> None:
    """Check every field of ``section`` against its declared choices and range."""
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if dataclasses.is_dataclass(value):
            continue
        check_value(value, f.metadata, f"{path}.{f.name}" if path else f.name)


def fields_of(cls) -> dict:
    """``{name: (type, dataclasses.Field)}`` of a settings dataclass, types resolved."""
    hints = typing.get_type_hints(cls)
    return {f.name: (hints[f.name], f) for f in dataclasses.fields(cls)}


def dataclass_in(tp):
    """The dataclass inside ``tp`` (``X`` or ``X | None``), else ``None``."""
    if dataclasses.is_dataclass(tp):
        return tp
    for arg in typing.get_args(tp):
        if dataclasses.is_dataclass(arg):
            return arg
    return None


def is_mapping_type(tp) -> bool:
    """Whether ``tp`` is ``dict`` (free-form: ``model.args``)."""
    return tp is dict or typing.get_origin(tp) is dict


def coerce(value, tp, path: str):
    """``value`` (from YAML, JSON or a flag) as type ``tp``, or a one-line error naming ``path``.

    Numbers must be finite: NaN and infinity are refused for every numeric setting.

    Example:
        >>> coerce(3, float, "distill.temperature")
        3.0
        >>> coerce(float("nan"), float, "distill.temperature")
        Traceback (most recent call last):
        ...
        edgecnn.errors.UserError: distill.temperature must be a finite number, got nan
    """
    origin = typing.get_origin(tp)
    if origin in _UNION_TYPES:
        return _coerce_union(value, typing.get_args(tp), path)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise UserError(f"{path} must be a mapping of settings, got {type(value).__name__} {value!r}"[:300])
        return from_dict(tp, value, path)
    scalar = _SCALARS.get(tp)
    if scalar is not None:
        return scalar(value, path)
    if is_mapping_type(tp):
        if not isinstance(value, dict):
            raise UserError(f"{path} must be a mapping, got {value!r}")
        return dict(value)
    if tp is list or origin is list:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{path} must be a list, got {value!r}")
        return list(value)
    return value


def _coerce_union(value, args: tuple, path: str):
    """``value`` as the first of ``args`` that takes it (``None`` where the union allows it);
    else the first member's error."""
    if value is None and type(None) in args:
        return None
    errors = []
    for arg in args:
        if arg is type(None):
            continue
        try:
            return coerce(value, arg, path)
        except UserError as exc:
            errors.append(exc)
    raise errors[0]


def _as_bool(value, path: str) -> bool:
    if isinstance(value, bool):
        return value
    raise UserError(f"{path} must be true or false, got {value!r}")


def _as_int(value, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise UserError(f"{path} must be an integer, got {value!r}")
    return value


def _as_float(value, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{path} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise UserError(f"{path} must be a finite number, got {value!r}")
    return float(value)


def _as_str(value, path: str) -> str:
    if not isinstance(value, str):
        raise UserError(f"{path} must be a string, got {value!r}")
    return value


# The plain types a setting may have, and how a value from YAML, JSON or a flag becomes one
# (a bool is never taken for a number, a whole float is taken for an int).
_SCALARS = {bool: _as_bool, int: _as_int, float: _as_float, str: _as_str}


def from_dict(cls, data: dict, where: str = ""):
    """Build dataclass ``cls`` from nested dicts, rejecting unknown keys and wrong types by key path."""
    if not isinstance(data, dict):
        raise UserError(f"{where or 'the settings'} must be a mapping of settings, got {type(data).__name__}")
    fields = fields_of(cls)
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in fields:
            raise UserError(f"unknown setting {path!r}{suggest(key, fields)}")
        kwargs[key] = coerce(value, fields[key][0], path)
    return cls(**kwargs)


def walk(cls, prefix: str = ""):
    """Yield ``(key path, type, Field)`` for every leaf setting under dataclass ``cls``.

    Example:
        >>> from edgecnn.settings.run_config import RunConfig
        >>> ("train.epochs" in [path for path, _, _ in walk(RunConfig)])
        True
    """
    for name, (tp, f) in fields_of(cls).items():
        path = f"{prefix}.{name}" if prefix else name
        sub = dataclass_in(tp)
        if sub is not None:
            yield from walk(sub, path)
        else:
            yield path, tp, f
