"""Command-line options derived from the settings declarations (:mod:`edgecnn.settings.fields`).

Every field of :class:`~edgecnn.settings.run_config.RunConfig` declared with ``cli="--flag"`` becomes
one click option: its type, choices, range and ``(default: ...)`` text come from the
declaration, so the flags of ``edgecnn optimize`` and ``edgecnn sweep`` cannot drift from
the recipe keys. Fields that share a flag (``--seed``: ``data.seed`` and ``train.seed``)
are all set by it.

Example:
    >>> flags = declared_flags()
    >>> flags["--prune-epochs"].paths
    ['channel_prune.epochs', 'prune.epochs']
"""

from __future__ import annotations

import typing
from dataclasses import MISSING, dataclass

import click

from edgecnn.settings.fields import walk


@dataclass
class Flag:
    """One command-line flag and the settings it sets."""

    flag: str
    paths: list
    tp: object
    meta: dict
    default: object

    @property
    def param(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    def help_text(self) -> str:
        meta, text = self.meta, self.meta.get("help", "")
        if meta.get("flag_value") is not None or self.base is bool:
            return text
        shown = meta.get("default_text")
        if shown is None and self.default not in (None, MISSING, [], ()):
            shown = f"{self.default:g}" if isinstance(self.default, float) else str(self.default)
        return f"{text} (default: {shown})" if shown else text

    @property
    def base(self):
        """The field's type without ``None`` (``int | None`` -> ``int``)."""
        args = [a for a in typing.get_args(self.tp) if a is not type(None)]
        return args[0] if args and typing.get_origin(self.tp) is not list else self.tp

    def option(self):
        meta, base = self.meta, self.base
        kwargs = {"default": None, "help": self.help_text()}
        if meta.get("metavar"):
            kwargs["metavar"] = meta["metavar"]
        if base is bool:
            return click.option(self.flag, self.param, is_flag=True, default=False, help=kwargs["help"])
        if base is list or typing.get_origin(base) is list:
            return click.option(self.flag, self.param, multiple=True, **kwargs)
        if meta.get("choices") is not None:
            kwargs["type"] = click.Choice([str(c) for c in meta["choices"]])
        elif base is int and meta.get("low") is not None and not meta.get("low_open"):
            kwargs["type"] = click.IntRange(meta["low"], meta.get("high"))
        elif base in (int, float):
            kwargs["type"] = base  # ranges are checked with the setting's name (see Section.validate)
        return click.option(self.flag, self.param, **kwargs)

    def value(self, raw):
        """The setting's value for the flag's raw value, ``None`` when the flag was not given."""
        if raw is None or raw is False or raw == ():
            return None
        if self.base is bool:
            return self.meta["flag_value"] if self.meta.get("flag_value") is not None else True
        if isinstance(raw, tuple):
            return list(raw)
        return raw


def declared_flags() -> dict:
    """``{flag: Flag}`` for every setting of :class:`~edgecnn.settings.run_config.RunConfig` that has one."""
    from edgecnn.settings.run_config import RunConfig

    flags: dict = {}
    for path, tp, f in walk(RunConfig):
        name = f.metadata.get("cli")
        if not name:
            continue
        if name in flags:
            flags[name].paths.append(path)
            flags[name].paths.sort()
        else:
            default = f.default if f.default is not MISSING else None
            flags[name] = Flag(name, [path], tp, dict(f.metadata), default)
    return flags


def setting_options(only=None, exclude=()):
    """A decorator adding the declared flags (all, or ``only`` these) as click options."""

    def decorate(fn):
        flags = declared_flags()
        chosen = [flags[name] for name in (only or flags) if name not in exclude]
        for flag in reversed(sorted(chosen, key=lambda f: list(flags).index(f.flag))):
            fn = flag.option()(fn)
        return fn

    return decorate


def settings_from_flags(values: dict, only=None) -> dict:
    """Nested settings (``{"train": {"epochs": 3}}``) from the click parameters of the declared flags."""
    tree: dict = {}
    for flag in declared_flags().values():
        if only is not None and flag.flag not in only:
            continue
        value = flag.value(values.get(flag.param))
        if value is None:
            continue
        for path in flag.paths:
            node = tree
            *parents, leaf = path.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
    return tree
