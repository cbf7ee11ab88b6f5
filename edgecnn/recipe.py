"""Recipes: a whole pipeline as one YAML file, validated before any work starts.

A recipe is what a team checks into its repository to say "this is how we produce the
model we ship". It is read safely (``yaml.safe_load`` rules: no Python objects are ever
constructed), every key remembers its line, and the result is the same
:class:`~edgecnn.settings.run_config.RunConfig` that ``edgecnn optimize`` builds from its flags, run by
the same :func:`edgecnn.pipeline.optimize`. The shape follows sparseml's recipes (shared
variables and an ordered list of modifiers) and timm's config files (built-in defaults,
then the file, then the command line).

Format::

    vars:                       # reused below as ${name}
      size: 32
      seed: 0
    model: {name: lenet5}       # any model of ``edgecnn list``; ``args`` go to the builder
    data: {source: digits, image_size: "${size}", seed: "${seed}"}
    train: {epochs: 20, batch_size: 32, optimizer: adam, seed: "${seed}"}
    stages:                     # in the pipeline's order (edgecnn.stages.ORDER)
      - width: 0.5              # or {alpha: 0.5}: the model's width multiplier
      - convert: {precisions: [int8]}
      - evaluate
      - bench: {threads: 1, runs: 50}
    out: runs/lenet5_digits     # default runs/<recipe file name>

Every section of :class:`~edgecnn.settings.run_config.RunConfig` may also be written at the top level
(``convert: {int8: true}``); a stage's options are merged into its section. When
``stages`` is given, a stage left out of it is off (``bench``, ``distill``,
``channel_prune``, ``prune``, ``qat``); evaluation always runs. Precedence:
built-in defaults, then the recipe, then ``--set key.path=value`` (values parsed as YAML
scalars; ``--set vars.seed=1`` changes a variable).

Example:
    >>> r = parse_recipe("model: {name: mobilenet}\\nstages: [{width: 0.25}, evaluate]\\n", "r.yaml",
    ...                  overrides=["train.epochs=1"])
    >>> r.config.model.alpha, r.config.train.epochs, r.config.bench.enabled
    (0.25, 1, False)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from edgecnn.errors import UserError, close_matches, suggest
from edgecnn.settings.fields import coerce, dataclass_in, fields_of, is_mapping_type
from edgecnn.settings.recipe_text import (
    MAX_NODES,
    NAME,
    LineMap,
    Where,
    read_yaml,
    record_lines,
    resolve_vars,
    substitute,
)
from edgecnn.settings.sections import PRECISION_ALIASES, PRECISION_SWITCHES
from edgecnn.stages import ORDER, model_stages

# A recipe's precision names (each precision, then its other spellings) -> the convert switch
# each one turns on (float32 is always made); from the one declaration in settings.sections.
PRECISIONS = {
    spelling: switch
    for name, switch in PRECISION_SWITCHES.items()
    for spelling in (name, *(a for a, target in PRECISION_ALIASES.items() if target == name))
}
RECIPE_KEYS = ("vars", "stages", "name", "description")


# ----------------------------------------------------------------------------- result
@dataclass
class Recipe:
    """A validated recipe: the resolved :class:`~edgecnn.settings.run_config.RunConfig` and where it came from.

    Attributes:
        config: the resolved settings (defaults filled in, ranges checked).
        stages: the stage names in order (``["width", "convert", "evaluate", "bench"]``).
        name: the recipe's file name (or the ``name:`` it declares).
        path: the recipe file, ``None`` for text.
        text: the recipe's text as read.
        overrides: the ``--set`` arguments applied.
        where: key path -> where it was set (``"r.yaml line 12"``, ``"--set train.epochs=1"``).
    """

    config: object
    stages: list
    name: str
    path: Path | None = None
    text: str = ""
    overrides: list = field(default_factory=list)
    where: dict = field(default_factory=dict)

    def resolved_dict(self) -> dict:
        """The resolved recipe as plain data: ``stages`` plus every RunConfig section."""
        return {"name": self.name, "stages": list(self.stages), **self.config.to_dict()}

    def to_yaml(self) -> str:
        """The resolved recipe as YAML; loading it again gives the same configuration.

        Example:
            >>> r = parse_recipe("model: {name: mobilenet, alpha: 0.5}", "r.yaml")
            >>> parse_recipe(r.to_yaml(), "again.yaml").config == r.config
            True
        """
        from edgecnn import __version__
        from edgecnn._io import sha256_file

        head = [f"# Resolved by edgecnn {__version__}: defaults, then the recipe, then --set overrides."]
        if self.path is not None:
            head.append(f"# source: {self.path}  sha256 {sha256_file(self.path)}")
        if self.overrides:
            head.append("# overrides: " + " ".join(f"--set {o}" for o in self.overrides))
        body = yaml.safe_dump(self.resolved_dict(), sort_keys=False, default_flow_style=False)
        return "\n".join(head) + "\n" + body


# ----------------------------------------------------------------------------- schema
def _run_config_cls():
    from edgecnn.settings.run_config import RunConfig

    return RunConfig


# ----------------------------------------------------------------------------- overrides
def parse_override(text: str) -> tuple:
    """Split ``"train.epochs=3"`` into ``("train.epochs", 3)``; the value is read as YAML.

    Example:
        >>> parse_override("convert.int8=true"), parse_override("out=runs/x")
        (('convert.int8', True), ('out', 'runs/x'))
    """
    if "=" not in str(text):
        raise UserError(f"--set {text}: expected KEY.PATH=VALUE, e.g. --set train.epochs=5")
    key, raw = str(text).split("=", 1)
    key = key.strip()
    if not key or not all(NAME.match(p) for p in key.split(".")):
        raise UserError(f"--set {text}: {key!r} is not a key path like train.epochs")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key, value


def _set_path(tree: dict, path: str, value, where: Where, origin: str):
    parts = path.split(".")
    node = tree
    for part in parts[:-1]:
        nxt = node.get(part)
        if nxt is None:
            nxt = node[part] = LineMap()
        if not isinstance(nxt, dict):
            raise UserError(f"{origin}: {'.'.join(parts[: parts.index(part) + 1])} is not a section")
        node = nxt
    node[parts[-1]] = value
    where.set(path, origin)


# ----------------------------------------------------------------------------- stages
def _apply_stages(stages_raw, tree: dict, where: Where) -> list:
    """Merge each stage's options into its settings section; return the stage names.

    The names and their order are :data:`edgecnn.stages.ORDER`; a compression stage's
    options go to its section (``- prune: {sparsity: 0.5}`` -> ``prune.sparsity``), the
    others map as documented in the module docstring.
    """
    if stages_raw is None:
        return None
    if not isinstance(stages_raw, list):
        raise where.error("stages", "stages must be a list, e.g. [width: 0.5, convert: {int8: true}, evaluate]")
    names, lines = [], list(getattr(stages_raw, "lines", [])) + [0] * len(stages_raw)
    for i, item in enumerate(stages_raw):
        line = lines[i] or getattr(stages_raw, "line", 0)
        loc = f"{where.name} line {line}" if line else where.name
        name, options = _stage_item(item, names, loc)
        names.append(name)
        where.set(f"stages.{name}", loc)
        _apply_stage(name, options, tree, where, line, loc)
    return names


def _stage_item(item, listed: list, loc: str) -> tuple:
    """``(name, options)`` of one item of ``stages:``, checked against :data:`~edgecnn.stages.ORDER`
    and the names ``listed`` before it."""
    if isinstance(item, str):
        name, options = item, None
    elif isinstance(item, dict) and len(item) == 1:
        name, options = next(iter(item.items()))
    else:
        raise UserError(
            f"{loc}: each stage is a name, or one name with its options (e.g. '- prune: "
            f"{{sparsity: 0.5}}'), got {item!r}"[:300]
        )
    if name not in ORDER:
        raise UserError(f"{loc}: unknown stage {name!r}{suggest(name, ORDER)}; stages: {', '.join(ORDER)}")
    if name in listed:
        raise UserError(f"{loc}: stage {name!r} is listed twice")
    if listed and ORDER.index(name) < ORDER.index(listed[-1]):
        order = " -> ".join(ORDER)
        raise UserError(f"{loc}: stage {name!r} cannot come after {listed[-1]!r}; the pipeline runs {order}")
    return name, options


def _apply_stage(name: str, options, tree: dict, where: Where, line: int, loc: str) -> None:
    """Merge one listed stage's ``options`` into its section: a compression stage's through
    :meth:`~edgecnn.stages.Stage.recipe_options`; ``width`` is ``model.alpha``; ``bench`` is
    switched on; ``convert``'s ``precisions`` become its switches; ``evaluate`` takes none."""
    if name == "evaluate":
        if options not in (None, {}):
            raise UserError(f"{loc}: stage 'evaluate' takes no options (the test split is always evaluated)")
        return
    if name == "width":
        if isinstance(options, dict):
            extra = [k for k in options if k != "alpha"]
            if extra:
                raise UserError(f"{loc}: unknown key width.{extra[0]}{suggest(extra[0], ['alpha'])}")
            options = options.get("alpha")
        if options is not None:  # a bare "- width" keeps model.alpha as set
            _merge(tree, "model", {"alpha": options}, where, line)
        return
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise UserError(f"{loc}: the options of stage {name!r} must be a mapping, got {options!r}"[:300])
    key_lines = getattr(options, "lines", {})
    stage = next((s for s in model_stages() if s.name == name), None)
    if stage is not None:
        options = stage.recipe_options(options)
    elif name == "bench":
        options = {"enabled": True, **options}
    elif "precisions" in options:  # convert
        options = _precisions(options, loc)
    _merge(tree, name, options, where, line, key_lines)


def _precisions(options: dict, loc: str) -> dict:
    wanted = options["precisions"]
    if isinstance(wanted, str):
        wanted = [wanted]
    if not isinstance(wanted, list) or not all(isinstance(p, str) for p in wanted):
        raise UserError(f"{loc}: convert.precisions must be a list such as [int8, fp16], got {wanted!r}"[:300])
    out = {k: v for k, v in options.items() if k != "precisions"}
    for p in wanted:
        if p not in PRECISIONS:
            raise UserError(f"{loc}: unknown precision {p!r}{suggest(p, PRECISIONS)}; use {', '.join(PRECISIONS)}")
        if PRECISIONS[p]:
            out[PRECISIONS[p]] = True
    return out


def _merge(tree: dict, section: str, options: dict, where: Where, line: int, key_lines: dict | None = None):
    current = tree.get(section)
    if current is None:
        current = tree[section] = LineMap()
    if not isinstance(current, dict):
        raise where.error(section, f"{section} must be a mapping of settings")
    for key, value in options.items():
        current[key] = value
        where.line(f"{section}.{key}", (key_lines or {}).get(key) or line)
        record_lines(value, f"{section}.{key}", where)


# ----------------------------------------------------------------------------- checking
def _check_tree(cls, data, prefix: str, where: Where):
    """Unknown keys and wrong types, by key path and line, generic over the dataclasses."""
    if not isinstance(data, dict):
        raise where.error(prefix, f"{prefix} must be a mapping of settings, got {type(data).__name__} {data!r}"[:300])
    hints = {name: tp for name, (tp, _) in fields_of(cls).items()}
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if not isinstance(key, str) or key not in hints:
            known = list(hints) + (list(RECIPE_KEYS) if not prefix else [])
            hint = _did_you_mean(key, known)
            raise where.error(path, f"unknown key {path}{hint}")
        sub = dataclass_in(hints[key])
        if sub is not None and value is None and sub is hints[key]:
            data[key] = value = LineMap()  # an empty section ("train:") means its defaults
        if sub is not None and value is not None:
            _check_tree(sub, value, path, where)
            continue
        try:
            coerce(value, hints[key], path)
        except UserError as exc:
            raise where.error(path, str(exc)) from None
        if isinstance(value, list) and not all(isinstance(v, (str, int, float, bool)) for v in value):
            raise where.error(path, f"{path} must be a list of plain values")


def _did_you_mean(key, known) -> str:
    close = close_matches(key, known)[:1]
    return f" (did you mean {close[0]}?)" if close else ""


def _locate(message: str, where: Where) -> str:
    """Prefix a validation message with the place of the key it names."""
    best = "model.name" if "unknown model" in message and "model.name" in where.map else None
    for path in [] if best else sorted(where.map, key=len, reverse=True):
        if "." in path and re.search(rf"(?<![\w.]){re.escape(path)}(?![\w])", message):
            best = path
            break
    if best is None:
        for path in sorted(where.map, key=len, reverse=True):
            leaf = path.rsplit(".", 1)[-1]
            if "." in path and re.search(rf"(?<![\w.]){re.escape(leaf)}(?![\w])", message):
                best = path
                break
    return f"{where.of(best)}: {message}" if best else f"{where.name}: {message}"


# ----------------------------------------------------------------------------- public API
def parse_recipe(
    text: str,
    name: str = "recipe.yaml",
    overrides=(),
    *,
    path=None,
    allow_outside: bool = False,
    check_files: bool = True,
) -> Recipe:
    """Validate recipe ``text`` (+ ``--set`` ``overrides``) into a :class:`Recipe`.

    Every mistake raises :class:`~edgecnn.errors.UserError` whose one line names the key
    and where it was set (``"r.yaml line 12: unknown key train.epoch (did you mean epochs?)"``).
    ``allow_outside`` lets the recipe's ``out:`` leave the working directory; an ``out`` set
    in ``overrides`` (``--set out=...``, typed by the user) may anyway.

    Example:
        >>> parse_recipe("train: {epoch: 3}", "r.yaml")
        Traceback (most recent call last):
        ...
        edgecnn.errors.UserError: r.yaml line 1: unknown key train.epoch (did you mean epochs?)
    """
    where = Where(name)
    body, parsed = _read_body(text, name, overrides, where)
    recipe_name = body.get("name") or Path(name).stem
    tree = LineMap({k: v for k, v in body.items() if k not in RECIPE_KEYS})
    tree.lines = body.lines
    stages = _apply_stages(body.get("stages"), tree, where)
    if stages is not None:  # a stage left out of the list is off
        _switch_off_unlisted(tree, stages)
    for key, value in parsed:
        if key.startswith("vars."):
            continue
        origin = f"--set {key}={value if not isinstance(value, str) else value}"
        _check_override_path(key, origin)
        _set_path(tree, key, value, where, origin)
    # The guard is for an out: read from the file; --set out=... is typed by the user.
    typed_out = any(key == "out" for key, _ in parsed)
    resolved = _config(tree, where, path, allow_outside or typed_out, check_files)
    return Recipe(
        config=resolved,
        stages=_stages_of(resolved, stages or []),
        name=str(recipe_name),
        path=Path(path) if path else None,
        text=text,
        overrides=[str(o) for o in overrides],
        where=dict(where.map),
    )


def _read_body(text: str, name: str, overrides, where: Where) -> tuple:
    """``(body, parsed)``: the recipe's mapping without ``vars``, its variables (with ``--set
    vars.X=...``) put in, every key's line recorded in ``where``; and the ``--set`` overrides
    as ``(key, value)`` pairs."""
    raw = read_yaml(text, name)
    if raw is None or raw == {}:
        raise UserError(f"{name} is empty; a recipe names at least its model, e.g. 'model: {{name: lenet5}}'")
    if not isinstance(raw, dict):
        raise UserError(
            f"{name}: a recipe is a mapping of sections (model:, data:, train:, stages: ...), got {type(raw).__name__}"
        )
    record_lines(raw, "", where)
    parsed = [parse_override(o) for o in overrides]
    var_overrides = {}
    for key, value in parsed:
        if key.startswith("vars."):
            if key.count(".") != 1:
                raise UserError(f"--set {key}: variables are single names, e.g. --set vars.seed=1")
            var_overrides[key.split(".", 1)[1]] = value
    variables = resolve_vars(raw.get("vars"), where, var_overrides)
    body = substitute({k: v for k, v in raw.items() if k != "vars"}, variables, "", where, [MAX_NODES])
    for key in ("name", "description"):
        if key in body and not isinstance(body[key], str):
            raise where.error(key, f"{key} must be a string")
    return body, parsed


def _switch_off_unlisted(tree: dict, stages: list) -> None:
    """Turn off in ``tree`` every compression stage, and ``bench``, that ``stages:`` leaves out."""
    by_name = {stage.name: stage for stage in model_stages()}
    off = [name for name in by_name if name not in stages]
    for section in off + ([] if "bench" in stages else ["bench"]):
        value = tree.get(section)
        if value is None:
            value = tree[section] = LineMap()
        if not isinstance(value, dict):  # not a mapping: validation rejects it, with its line
            continue
        if section in by_name:
            by_name[section].switch_off(value)
        else:
            value["enabled"] = False


def _config(tree: dict, where: Where, path, allow_outside: bool, check_files: bool):
    """The resolved :class:`~edgecnn.settings.run_config.RunConfig` of the recipe's ``tree``;
    every error is prefixed with where its key was set."""
    from edgecnn.settings.run_config import RunConfig, check_paths, resolve

    _check_tree(RunConfig, tree, "", where)
    try:
        cfg = RunConfig.from_dict(_plain(tree))
    except UserError as exc:
        raise UserError(_locate(str(exc), where)) from None
    if cfg.out is None and path is not None:
        cfg.out = str(Path("runs") / Path(path).stem)
    try:
        cfg.validate()
    except UserError as exc:
        raise UserError(_locate(str(exc), where)) from None
    if check_files:
        check_paths(cfg, allow_outside, where.of)  # its errors name the place already
    try:
        return resolve(cfg)
    except UserError as exc:
        raise UserError(_locate(str(exc), where)) from None


def _stages_of(cfg, listed: list) -> list:
    """The steps the resolved ``cfg`` runs, in :data:`~edgecnn.stages.ORDER` (``width`` when
    listed or not 1.0)."""
    on = {stage.name for stage in model_stages() if stage.enabled(cfg)}
    on |= {"convert", "evaluate"} | ({"bench"} if cfg.bench.enabled else set())
    if "width" in listed or cfg.model.alpha != 1.0:
        on.add("width")
    return [name for name in ORDER if name in on]


def _check_override_path(key: str, origin: str):
    cls = _run_config_cls()
    parts = key.split(".")
    for i, part in enumerate(parts):
        hints = {name: tp for name, (tp, _) in fields_of(cls).items()}
        if part not in hints:
            path = ".".join(parts[: i + 1])
            hint = _did_you_mean(part, hints)
            raise UserError(f"{origin}: unknown key {path}{hint}")
        if is_mapping_type(hints[part]):
            return  # model.args.<anything>
        sub = dataclass_in(hints[part])
        if sub is None:
            if i != len(parts) - 1:
                raise UserError(f"{origin}: {'.'.join(parts[: i + 1])} is a value, not a section")
            return
        cls = sub


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def load_recipe(path, overrides=(), *, allow_outside: bool = False) -> Recipe:
    """Read and validate the recipe file ``path`` (see :func:`parse_recipe`).

    Example:
        >>> r = load_recipe("recipes/lenet5_digits.yaml", ["train.epochs=1"])  # doctest: +SKIP
        >>> r.config.model.name, r.stages                                       # doctest: +SKIP
        ('lenet5', ['convert', 'evaluate', 'bench'])
    """
    p = Path(path)
    if not p.is_file():
        raise UserError(f"recipe {path} not found" + (" (it is a folder)" if p.is_dir() else ""))
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{p.name}: not a text file (recipes are UTF-8 YAML)") from None
    except OSError as exc:
        raise UserError(f"cannot read recipe {path}: {exc.strerror or exc}") from None
    return parse_recipe(text, p.name, overrides, path=p, allow_outside=allow_outside)


def run_recipe(path, overrides=(), *, echo=print, allow_outside: bool = False, on_stage=None) -> dict:
    """Validate the recipe, then run it through :func:`edgecnn.pipeline.optimize`.

    ``path`` is a recipe file or an already validated :class:`Recipe`; ``on_stage`` is
    passed to :func:`~edgecnn.pipeline.optimize` (called as each step starts).

    The resolved recipe is saved as ``<run>/recipe.yaml`` before any work starts (with the
    run folder locked and an earlier run's outputs moved aside, as for every run), and
    ``<run>/manifest.json`` records the sha256 of every input (the recipe among them) and
    of every output.

    Example:
        >>> metrics = run_recipe("recipes/lenet5_digits.yaml", ["train.epochs=1"])  # doctest: +SKIP
        >>> metrics["rows"][0]["tflite_accuracy"]                                  # doctest: +SKIP
    """
    from edgecnn.pipeline import optimize

    recipe = path if isinstance(path, Recipe) else load_recipe(path, overrides, allow_outside=allow_outside)
    cfg = recipe.config
    echo(f"recipe {recipe.name}: stages {' -> '.join(['train'] + recipe.stages)}; run folder {cfg.out}")
    metrics = optimize(
        cfg,
        echo=echo,
        on_stage=on_stage,
        extra_outputs={"recipe.yaml": recipe.to_yaml()},
        extra_inputs={"recipe": recipe.path},
    )
    return metrics
