"""``edgecnn optimize``: train a zoo model on your data, convert, evaluate and benchmark it.

Its flags are derived from the settings declarations (:mod:`edgecnn.cli.options`); only
``--arg``/``--phi`` (builder arguments), ``--out`` and ``--allow-outside`` are its own.
``--out`` goes wherever it says (the working-directory guard is for a recipe's ``out:``).
"""

from __future__ import annotations

import click

from edgecnn.cli._main import main
from edgecnn.cli.options import declared_flags, setting_options, settings_from_flags


def config_from_flags(model: str, flags: dict):
    """Turn ``optimize``'s flags into a :class:`~edgecnn.settings.run_config.RunConfig` (flags not given = default)."""
    from edgecnn.settings.run_config import RunConfig

    tree = settings_from_flags(flags)
    tree.setdefault("model", {})["name"] = model
    args = model_args(flags)
    if args:
        tree["model"]["args"] = args
    if flags.get("out") is not None:
        tree["out"] = flags["out"]
    return RunConfig.from_dict(tree)


def parse_arg(text: str) -> tuple:
    """``"KEY=VALUE"`` -> ``(key, value)``, the value read as YAML (numbers, booleans, lists).

    Example:
        >>> parse_arg("phi=1.5"), parse_arg("minimalistic=true"), parse_arg("name=b0")
        (('phi', 1.5), ('minimalistic', True), ('name', 'b0'))
    """
    import yaml

    from edgecnn.errors import UserError

    key, sep, value = str(text).partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise UserError(f"--arg expects KEY=VALUE with KEY a builder argument name, got {text!r}")
    try:
        return key, yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
        raise UserError(f"--arg {key}: cannot read the value {value!r}") from None


def model_args(flags: dict) -> dict:
    """Builder arguments from ``--arg KEY=VALUE`` (repeatable) and ``--phi``.

    Example:
        >>> model_args({"arg": ("groups=8",), "phi": 1.5})
        {'groups': 8, 'phi': 1.5}
    """
    args = dict(parse_arg(a) for a in flags.get("arg") or ())
    if flags.get("phi") is not None:
        args["phi"] = flags["phi"]
    return args


def model_arg_options() -> list:
    """``--arg`` and ``--phi``: builder arguments beyond the common flags."""
    return [
        click.option(
            "--arg",
            "arg",
            multiple=True,
            metavar="KEY=VALUE",
            help="Builder argument (repeatable; value read as YAML), e.g. --arg groups=8 --arg minimalistic=true.",
        ),
        click.option(
            "--phi",
            type=float,
            default=None,
            help="EfficientNet compound-scaling coefficient (same as --arg phi=...), e.g. 'efficientnet --phi 1.5'.",
        ),
    ]


def out_options(f):
    """``--out`` and ``--allow-outside``: where the run folder goes."""
    f = click.option(
        "--allow-outside",
        is_flag=True,
        expose_value=False,
        help="Kept for compatibility: --out may be anywhere; only a recipe's out (edgecnn run) needs it.",
    )(f)
    return click.option(
        "--out", type=click.Path(file_okay=False), default=None, help="Run folder (default runs/<model>-<settings>/)."
    )(f)


@main.command()
@click.argument("model")
@setting_options()
@out_options
@model_arg_options()[1]
@model_arg_options()[0]
def optimize(model, **flags):
    """Train MODEL on the data, export it to TFLite, and measure every variant.

    \b
    Examples:
      edgecnn optimize mobilenet --alpha 0.5 --int8
      edgecnn optimize lenet5 --int8 --fp16 --dynamic
      edgecnn optimize resnet18 --alpha 0.25 --data photos/ --image-size 96 --int8
      edgecnn optimize mobilenet --alpha 0.5 --prune 0.5 --distill-from mobilenet:1.0 --qat --int8
      edgecnn optimize mobilenet --prune-channels 0.5 --prune-criterion bn --int8
      edgecnn optimize efficientnet --phi 1.5 --int8
      edgecnn optimize shufflenet_v1 --arg groups=8 --alpha 0.5 --int8
    """
    from edgecnn.pipeline import optimize as run
    from edgecnn.settings.run_config import check_paths

    config = config_from_flags(model, flags)
    flag_of = {path: flag.flag for flag in declared_flags().values() for path in flag.paths}
    # --out is typed by the user: it goes where they say (the guard is for a recipe's out).
    check_paths(config, allow_outside=True, where=lambda path: flag_of.get(path, f"--{path}"))
    run(config, echo=click.echo)
