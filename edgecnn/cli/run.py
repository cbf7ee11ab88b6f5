"""``edgecnn run RECIPE.yaml``: run a whole pipeline from a recipe (see :mod:`edgecnn.recipe`)."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

import click

from edgecnn.cli._main import main


@main.command("run")
@click.argument("recipe", metavar="RECIPE.yaml")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY.PATH=VALUE",
    help="Override a setting after the recipe (repeatable): --set train.epochs=5 --set vars.seed=1.",
)
@click.option("--check", is_flag=True, help="Validate the recipe, print the resolved settings, run nothing.")
@click.option(
    "--allow-outside",
    is_flag=True,
    help="Allow the recipe's out: folder outside the working directory (--set out=... may be anywhere).",
)
def run(recipe, overrides, check, allow_outside):
    """Run RECIPE.yaml: defaults, then the recipe, then --set overrides.

    \b
    Examples:
      edgecnn run recipes/lenet5_digits.yaml
      edgecnn run recipes/mobilenet_v1_050_int8.yaml --set train.epochs=1 --set out=runs/try
      edgecnn run my_recipe.yaml --check
    """
    from edgecnn.recipe import load_recipe, run_recipe

    r = load_recipe(recipe, overrides, allow_outside=allow_outside)
    if check:
        click.echo(r.to_yaml(), nl=False)
        c = r.config
        click.echo(
            f"ok: {recipe} is valid: {c.model.name} alpha {c.model.alpha} at {c.data.image_size}px on "
            f"{c.data.source}, stages {' -> '.join(['train'] + r.stages)}, run folder {c.out}",
            err=True,
        )
        return
    out = Path(r.config.out)
    stage = {"name": "validation"}

    def on_stage(name, index, total):
        stage["name"] = name

    try:
        run_recipe(r, echo=click.echo, on_stage=on_stage)
    except (click.exceptions.Exit, click.Abort, KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # noqa: BLE001 - a user error or a bug: either way say which stage
        from edgecnn.errors import UserError

        kept = f"; finished stages are kept in {out}" if out.is_dir() else ""
        if isinstance(exc, UserError):
            if stage["name"] == "validation":
                raise
            raise UserError(f"stage {stage['name']} failed: {exc}{kept}") from None
        log = ""
        if out.is_dir():
            from edgecnn._io import write_text

            path = out / "error.log"
            write_text(path, traceback.format_exc())
            log = f" (traceback in {path})"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        click.echo(f"error: stage {stage['name']} failed: {exc.__class__.__name__}: {first}{log}{kept}", err=True)
        sys.exit(1)
