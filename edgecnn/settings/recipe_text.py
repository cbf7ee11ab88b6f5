"""Reading a recipe's text: YAML that remembers lines, bounded in size, with ``${name}`` variables.

The reader is ``yaml.SafeLoader``'s (no Python object is ever constructed) with three
additions: every mapping and list remembers the line of each key and item
(:class:`LineMap`, :class:`LineList`), so an error names ``file line N``
(:class:`Where`); a key given twice is refused; and a document over
:data:`MAX_RECIPE_BYTES`, or whose values with every alias expanded number over
:data:`MAX_NODES`, is refused before anything walks it. Variables defined under ``vars:``
may use each other; :func:`resolve_vars` expands them, :func:`substitute` puts them in.
What the settings mean is :mod:`edgecnn.recipe`'s.

Example:
    >>> tree = read_yaml("train:\\n  epochs: 3\\n", "r.yaml")
    >>> tree["train"]["epochs"], tree["train"].lines["epochs"]
    (3, 2)
"""

from __future__ import annotations

import copy
import re

import yaml

from edgecnn.errors import UserError, close_matches

MAX_RECIPE_BYTES = 1 << 20
MAX_NODES = 100_000
_VAR = re.compile(r"\$\{([^}]*)\}")
#: A variable's name, and each part of a ``--set`` key path.
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class LineMap(dict):
    """A mapping that remembers the line of each key (``lines``) and its own (``line``)."""

    line: int = 0

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.lines: dict = {}


class LineList(list):
    """A list that remembers the line of each item."""

    line: int = 0

    def __init__(self, *a):
        super().__init__(*a)
        self.lines: list = []


class _LineLoader(yaml.SafeLoader):
    """``SafeLoader`` that records line numbers and refuses duplicate keys."""


def _construct_map(loader, node):
    loader.flatten_mapping(node)
    out = LineMap()
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
    out = LineList()
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


def read_yaml(text: str, name: str):
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


class Where:
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


def record_lines(value, prefix: str, where: Where):
    """Record the line of every key under ``value`` (a ``LineMap`` tree)."""
    if isinstance(value, LineMap):
        for key, sub in value.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            where.line(path, value.lines.get(key))
            record_lines(sub, path, where)



# --- variables: ${name}, defined under vars: ---------------------------------------


def substitute(value, variables: dict, path: str, where: Where, budget: list, depth: int = 0):
    budget[0] -= 1
    if budget[0] < 0:
        raise UserError(f"{where.name}: too many values (over {MAX_NODES:,}; aliases nested too deeply?)")
    if depth > 50:
        raise where.error(path, "nested too deeply (a recursive alias?)")
    if isinstance(value, dict):
        out = LineMap()
        out.line = getattr(value, "line", 0)
        for key, sub in value.items():
            out[key] = substitute(sub, variables, f"{path}.{key}" if path else str(key), where, budget, depth + 1)
        out.lines = dict(getattr(value, "lines", {}))
        return out
    if isinstance(value, list):
        out = LineList(substitute(v, variables, f"{path}[{i}]", where, budget, depth + 1) for i, v in enumerate(value))
        out.line, out.lines = getattr(value, "line", 0), list(getattr(value, "lines", []))
        return out
    if isinstance(value, str) and "${" in value:
        return _expand(value, variables, path, where)
    return value


def _expand(text: str, variables: dict, path: str, where: Where):
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


def resolve_vars(raw_vars, where: Where, overrides: dict) -> dict:
    if raw_vars is None:
        raw_vars = LineMap()
    if not isinstance(raw_vars, dict):
        raise where.error("vars", f"vars must be a mapping of name: value, got {type(raw_vars).__name__}")
    variables = dict(raw_vars)
    variables.update(overrides)
    for key in variables:
        if not isinstance(key, str) or not NAME.match(key):
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
            variables[key] = substitute(variables[key], variables, f"vars.{key}", where, budget)
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
