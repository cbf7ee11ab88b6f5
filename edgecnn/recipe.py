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

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from edgecnn.errors import UserError, close_matches, suggest
from edgecnn.settings.fields import coerce, dataclass_in, fields_of, is_mapping_type
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
MAX_RECIPE_BYTES = 1 << 20
MAX_NODES = 100_000
_VAR = re.compile(r"\$\{([^}]*)\}")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# ----------------------------------------------------------------------------- reading
class _Map(dict):
    """A mapping that remembers the line of each key (``lines``) and its own (``line``)."""

    line: int = 0

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.lines: dict = {}


class _Seq(list):
    """A list that remembers the line of each item."""

    line: int = 0

    def __init__(self, *a):
        super().__init__(*a)
        self.lines: list = []


class _LineLoader(yaml.SafeLoader):
    """``SafeLoader`` that records line numbers and refuses duplicate keys."""


def _construct_map(loader, node):
    loader.flatten_mapping(node)
    out = _Map()
    out.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        try:
            hash(key)
        except TypeError:
            raise _LocatedYAMLError(line, "a key must be a plain name, not a list or mapping") from None
        if key in out:
            raise _LocatedYAMLError(line, f"key {key!r} appears twice (first on line {out.lines[key]})")
        out[key] = loader.construct_object(value_node, deep=True)
        out.lines[key] = line
    return out


def _construct_seq(loader, node):
    out = _Seq()
    out.line = node.start_mark.line + 1
    for item in node.value:
        out.append(loader.construct_object(item, deep=True))
        out.lines.append(item.start_mark.line + 1)
    return out


_LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_LineLoader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


class _LocatedYAMLError(Exception):
    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line, self.message = line, message


def _read_yaml(text: str, name: str):
    if len(text.encode("utf-8", "replace")) > MAX_RECIPE_BYTES:
        raise UserError(f"{name} is larger than {MAX_RECIPE_BYTES // 1024} KiB; a recipe is a short settings file")
    loader = None
    try:
        loader = _LineLoader(text)  # the reader refuses control characters here
        node = loader.get_single_node()
        if node is None:
            return None
        _check_size(node, name)  # before anything walks the tree: aliases can multiply it
        return loader.construct_document(node)
    except _LocatedYAMLError as exc:
        raise UserError(f"{name} line {exc.line}: {exc.message}") from None
    except yaml.constructor.ConstructorError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else "?"
        raise UserError(
            f"{name} line {line}: {exc.problem} (recipes hold plain values only; tags such as !!python are refused)"
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" line {mark.line + 1}" if mark else ""
        raise UserError(f"{name}{where}: not valid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{name}: not valid YAML: {str(exc).splitlines()[0] if str(exc) else exc}") from None
    except RecursionError:
        raise UserError(f"{name}: nested too deeply to be a recipe") from None
    finally:
        if loader is not None:
            loader.dispose()


def _check_size(root, name: str) -> None:
    """Refuse a document whose values, with every alias expanded, number over :data:`MAX_NODES`.

    Counted on the parsed node graph, each node once (aliases share nodes), so a "billion
    laughs" of nested aliases is refused in time linear in the file's size.
    """
    sizes: dict = {}

    def size(node) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = node.value
        else:
            children = []
        sizes[id(node)] = 0  # a recursive alias counts once, then refuses below
        total = 1 + sum(size(child) for child in children)
        if total > MAX_NODES:
            raise UserError(f"{name}: too many values (over {MAX_NODES:,}; aliases nested too deeply?)")
        sizes[id(node)] = total
        return total

    size(root)


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


class _Where:
    """Where each key path was set, to prefix errors with ``file line N``."""

    def __init__(self, name: str):
        self.name = name
        self.map: dict = {}

    def set(self, path: str, where: str):
        self.map[path] = where

    def line(self, path: str, line: int | None):
        if line:
            self.map[path] = f"{self.name} line {line}"

    def of(self, path: str) -> str:
        parts = path.split(".")
        while parts:
            found = self.map.get(".".join(parts))
            if found:
                return found
            parts.pop()
        return self.name

    def error(self, path: str, message: str) -> UserError:
        # Keys and values come from the file: escape line breaks so the error stays one line.
        text = f"{self.of(path)}: {message}"
        return UserError(text.replace("\r", "\\r").replace("\n", "\\n"))


def _lines_of(value, prefix: str, where: _Where):
    """Record the line of every key under ``value`` (a ``_Map`` tree)."""
    if isinstance(value, _Map):
        for key, sub in value.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            where.line(path, value.lines.get(key))
            _lines_of(sub, path, where)


# ----------------------------------------------------------------------------- variables
def _substitute(value, variables: dict, path: str, where: _Where, budget: list, depth: int = 0):
    budget[0] -= 1
    if budget[0] < 0:
        raise UserError(f"{where.name}: too many values (over {MAX_NODES:,}; aliases nested too deeply?)")
    if depth > 50:
        raise where.error(path, "nested too deeply (a recursive alias?)")
    if isinstance(value, dict):
        out = _Map()
        out.line = getattr(value, "line", 0)
        for key, sub in value.items():
            out[key] = _substitute(sub, variables, f"{path}.{key}" if path else str(key), where, budget, depth + 1)
        out.lines = dict(getattr(value, "lines", {}))
        return out
    if isinstance(value, list):
        out = _Seq(_substitute(v, variables, f"{path}[{i}]", where, budget, depth + 1) for i, v in enumerate(value))
        out.line, out.lines = getattr(value, "line", 0), list(getattr(value, "lines", []))
        return out
    if isinstance(value, str) and "${" in value:
        return _expand(value, variables, path, where)
    return value


def _expand(text: str, variables: dict, path: str, where: _Where):
    def lookup(name):
        name = name.strip()
        if name not in variables:
            close = close_matches(name, variables)
            defined = ", ".join(sorted(variables)) or "none"
            known = f" (did you mean {', '.join(close)}?)" if close else f"; defined: {defined}"
            raise where.error(path, f"{path} uses ${{{name}}}, which is not defined under vars{known}")
        return variables[name]

    whole = _VAR.fullmatch(text.strip())
    if whole:
        return copy.deepcopy(lookup(whole.group(1)))

    def repl(m):
        value = lookup(m.group(1))
        if isinstance(value, (dict, list)):
            raise where.error(path, f"{path}: ${{{m.group(1)}}} is a list or mapping and cannot be part of a string")
        return str(value)

    return _VAR.sub(repl, text)


def _resolve_vars(raw_vars, where: _Where, overrides: dict) -> dict:
    if raw_vars is None:
        raw_vars = _Map()
    if not isinstance(raw_vars, dict):
        raise where.error("vars", f"vars must be a mapping of name: value, got {type(raw_vars).__name__}")
    variables = dict(raw_vars)
    variables.update(overrides)
    for key in variables:
        if not isinstance(key, str) or not _NAME.match(key):
            raise where.error(f"vars.{key}", f"variable name {key!r} must be letters, digits and _")
    # Variables may use other variables: expand those whose references are plain first.
    budget = [MAX_NODES]
    pending = {k for k, v in variables.items() if _has_var(v)}
    while pending:
        progress = False
        for key in sorted(pending):
            refs = _refs(variables[key])
            if refs & pending and not refs - variables.keys():
                continue
            variables[key] = _substitute(variables[key], variables, f"vars.{key}", where, budget)
            pending.discard(key)
            progress = True
        if not progress:
            bad = sorted(pending)[0]
            raise where.error(f"vars.{bad}", f"vars.{bad} refers to itself through other variables")
    return variables


def _refs(value, depth: int = 0) -> set:
    if depth > 50:
        return set()
    if isinstance(value, str):
        return {m.strip() for m in _VAR.findall(value)}
    if isinstance(value, dict):
        return set().union(*(_refs(v, depth + 1) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_refs(v, depth + 1) for v in value)) if value else set()
    return set()


def _has_var(value, depth: int = 0) -> bool:
    if depth > 50:
        return False
    if isinstance(value, str):
        return bool(_VAR.search(value))
    if isinstance(value, dict):
        return any(_has_var(v, depth + 1) for v in value.values())
    if isinstance(value, list):
        return any(_has_var(v, depth + 1) for v in value)
    return False


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
    if not key or not all(_NAME.match(p) for p in key.split(".")):
        raise UserError(f"--set {text}: {key!r} is not a key path like train.epochs")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key, value


def _set_path(tree: dict, path: str, value, where: _Where, origin: str):
    parts = path.split(".")
    node = tree
    for part in parts[:-1]:
        nxt = node.get(part)
        if nxt is None:
            nxt = node[part] = _Map()
        if not isinstance(nxt, dict):
            raise UserError(f"{origin}: {'.'.join(parts[: parts.index(part) + 1])} is not a section")
        node = nxt
    node[parts[-1]] = value
    where.set(path, origin)


# ----------------------------------------------------------------------------- stages
def _apply_stages(stages_raw, tree: dict, where: _Where) -> list:
    """Merge each stage's options into its settings section; return the stage names.

    The names and their order are :data:`edgecnn.stages.ORDER`; a compression stage's
    options go to its section (``- prune: {sparsity: 0.5}`` -> ``prune.sparsity``), the
    others map as documented in the module docstring.
    """
    if stages_raw is None:
        return None
    if not isinstance(stages_raw, list):
        raise where.error("stages", "stages must be a list, e.g. [width: 0.5, convert: {int8: true}, evaluate]")
    by_name = {stage.name: stage for stage in model_stages()}
    names, lines = [], list(getattr(stages_raw, "lines", [])) + [0] * len(stages_raw)
    for i, item in enumerate(stages_raw):
        line = lines[i] or getattr(stages_raw, "line", 0)
        loc = f"{where.name} line {line}" if line else where.name
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
        if name in names:
            raise UserError(f"{loc}: stage {name!r} is listed twice")
        if names and ORDER.index(name) < ORDER.index(names[-1]):
            raise UserError(
                f"{loc}: stage {name!r} cannot come after {names[-1]!r}; the pipeline runs {' -> '.join(ORDER)}"
            )
        names.append(name)
        where.set(f"stages.{name}", loc)
        if name == "evaluate":
            if options not in (None, {}):
                raise UserError(f"{loc}: stage 'evaluate' takes no options (the test split is always evaluated)")
            continue
        if name == "width":
            if isinstance(options, dict):
                extra = [k for k in options if k != "alpha"]
                if extra:
                    raise UserError(f"{loc}: unknown key width.{extra[0]}{suggest(extra[0], ['alpha'])}")
                options = options.get("alpha")
            if options is not None:  # a bare "- width" keeps model.alpha as set
                _merge(tree, "model", {"alpha": options}, where, line)
            continue
        if options is None:
            options = {}
        if not isinstance(options, dict):
            raise UserError(f"{loc}: the options of stage {name!r} must be a mapping, got {options!r}"[:300])
        key_lines = getattr(options, "lines", {})
        if name in by_name:
            options = by_name[name].recipe_options(options)
        elif name == "bench":
            options = {"enabled": True, **options}
        elif "precisions" in options:  # convert
            options = _precisions(options, loc)
        _merge(tree, name, options, where, line, key_lines)
    return names


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


def _merge(tree: dict, section: str, options: dict, where: _Where, line: int, key_lines: dict | None = None):
    current = tree.get(section)
    if current is None:
        current = tree[section] = _Map()
    if not isinstance(current, dict):
        raise where.error(section, f"{section} must be a mapping of settings")
    for key, value in options.items():
        current[key] = value
        where.line(f"{section}.{key}", (key_lines or {}).get(key) or line)
        _lines_of(value, f"{section}.{key}", where)


# ----------------------------------------------------------------------------- checking
def _check_tree(cls, data, prefix: str, where: _Where):
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
            data[key] = value = _Map()  # an empty section ("train:") means its defaults
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


def _locate(message: str, where: _Where) -> str:
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
    from edgecnn.settings.run_config import RunConfig, check_paths, resolve

    where = _Where(name)
    raw = _read_yaml(text, name)
    if raw is None or raw == {}:
        raise UserError(f"{name} is empty; a recipe names at least its model, e.g. 'model: {{name: lenet5}}'")
    if not isinstance(raw, dict):
        raise UserError(
            f"{name}: a recipe is a mapping of sections (model:, data:, train:, stages: ...), got {type(raw).__name__}"
        )
    _lines_of(raw, "", where)
    parsed = [parse_override(o) for o in overrides]
    var_overrides = {}
    for key, value in parsed:
        if key.startswith("vars."):
            if key.count(".") != 1:
                raise UserError(f"--set {key}: variables are single names, e.g. --set vars.seed=1")
            var_overrides[key.split(".", 1)[1]] = value
    variables = _resolve_vars(raw.get("vars"), where, var_overrides)
    body = _substitute({k: v for k, v in raw.items() if k != "vars"}, variables, "", where, [MAX_NODES])
    for key in ("name", "description"):
        if key in body and not isinstance(body[key], str):
            raise where.error(key, f"{key} must be a string")
    recipe_name = body.get("name") or Path(name).stem
    tree = _Map({k: v for k, v in body.items() if k not in RECIPE_KEYS})
    tree.lines = body.lines
    stages = _apply_stages(body.get("stages"), tree, where)
    if stages is not None:  # a stage left out of the list is off
        off = [stage.name for stage in model_stages() if stage.name not in stages]
        for section in off + ([] if "bench" in stages else ["bench"]):
            value = tree.get(section)
            if value is None:
                value = tree[section] = _Map()
            if isinstance(value, dict):  # not a mapping: validation rejects it below, with its line
                stage = next((s for s in model_stages() if s.name == section), None)
                if stage is not None:
                    stage.switch_off(value)
                else:
                    value["enabled"] = False
    for key, value in parsed:
        if key.startswith("vars."):
            continue
        origin = f"--set {key}={value if not isinstance(value, str) else value}"
        _check_override_path(key, origin)
        _set_path(tree, key, value, where, origin)
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
        # The guard is for an out: read from the file; --set out=... is typed by the user.
        typed_out = any(key == "out" for key, _ in parsed)
        check_paths(cfg, allow_outside or typed_out, where.of)  # its errors name the place already
    try:
        resolved = resolve(cfg)
    except UserError as exc:
        raise UserError(_locate(str(exc), where)) from None
    order = _stages_of(resolved, stages or [])
    return Recipe(
        config=resolved,
        stages=order,
        name=str(recipe_name),
        path=Path(path) if path else None,
        text=text,
        overrides=[str(o) for o in overrides],
        where=dict(where.map),
    )


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
