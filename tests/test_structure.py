"""The shape of the code: the stage order declared once, settings declared once, no import circles.

See ARCHITECTURE.md. These checks are static or cheap: they keep the structure from
drifting as stages and settings are added.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from edgecnn.errors import UserError
from edgecnn.stages import ORDER, STAGE_MODULES, model_stages

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "edgecnn"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict:
    """``{module: {imported edgecnn modules}}``, function-local imports included."""
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        deps = set()
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(
                        package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                    )
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base for alias in node.names]
            else:
                continue
            deps |= {t for t in targets if t in files and t != name}
        graph[name] = deps
    return graph


def _cycles(graph: dict) -> list:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_circles():
    # Package __init__ files that only re-export are part of the graph like any module.
    assert _cycles(_import_graph()) == []


def test_config_does_not_import_tensorflow():
    code = ("import edgecnn.settings.run_config, edgecnn.recipe, edgecnn.stages, sys; "
            "assert 'tensorflow' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_the_stage_order_is_declared_once_and_the_docs_follow_it():
    order = " -> ".join(ORDER)
    assert [s.name for s in model_stages()] == list(STAGE_MODULES)
    assert ORDER[0] == "width" and ORDER[-3:] == ("convert", "evaluate", "bench")
    assert order in (ROOT / "docs" / "recipes.md").read_text()
    from edgecnn.recipe import parse_recipe

    with pytest.raises(UserError) as info:
        parse_recipe("model: {name: lenet5}\nstages: [qat, prune]\n", "r.yaml")
    assert info.value.args[0].endswith(f"the pipeline runs {order}")


def test_every_stage_is_one_unit():
    from edgecnn.settings.run_config import RunConfig

    sections = list(RunConfig.__dataclass_fields__)
    for stage in model_stages():
        assert stage.name in sections, stage.name  # its settings section, registered with it
        assert stage.Config.__module__ == f"edgecnn.stages.{stage.name}"
        assert type(stage).run is not type(stage).__mro__[1].run  # it runs something


def test_every_declared_flag_is_an_option_of_optimize():
    from click.testing import CliRunner

    from edgecnn.cli import main
    from edgecnn.cli.options import declared_flags

    help_text = CliRunner().invoke(main, ["optimize", "--help"], terminal_width=200).output
    flags = declared_flags()
    assert {"--prune", "--prune-channels", "--distill-from", "--qat", "--int8", "--seed"} <= set(flags)
    for flag in flags:
        assert flag in help_text, flag
    assert flags["--seed"].paths == ["data.seed", "train.seed"]


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_numbers_must_be_finite(value):
    from edgecnn.settings.run_config import RunConfig, resolve

    with pytest.raises(UserError, match="must be a finite number"):
        resolve(RunConfig.from_dict({"model": {"name": "lenet5"}, "distill": {"temperature": float(value)}}))


@pytest.mark.slow  # a training run (~25 s): in CI's representative slow set (tests/conftest.py)
def test_adding_a_stage_is_one_module_and_one_line(tmp_path):
    """The worked example of ARCHITECTURE.md, run as written: a new stage module and its
    place in STAGE_MODULES give a flag, a recipe stage, a row and a report line."""
    script = tmp_path / "add_stage.py"
    script.write_text(
        f"""
import json, pathlib, re
arch = pathlib.Path({str(ROOT / "ARCHITECTURE.md")!r}).read_text()
blocks = re.findall(r"```python\\n(.*?)```", arch, re.S)
module = next(b for b in blocks if b.startswith("# edgecnn/stages/cluster.py"))
line = next(b for b in blocks if "STAGE_MODULES = " in b)
folder = pathlib.Path("extra"); folder.mkdir()
(folder / "cluster.py").write_text(module)
import edgecnn.stages as stages
stages.__path__.append(str(folder.resolve()))  # as if the module were in edgecnn/stages/
stages.STAGE_MODULES = eval(line.split("=", 1)[1])  # the one registration line
stages.ORDER = ("width", *stages.STAGE_MODULES, "convert", "evaluate", "bench")
from click.testing import CliRunner
from edgecnn.cli import main
from edgecnn.errors import UserError
from edgecnn.recipe import parse_recipe
stages_text = "[{{prune: {{sparsity: 0.5}}}}, {{cluster: {{clusters: 4}}}}, qat]"
r = parse_recipe("model: {{name: lenet5}}\\nstages: " + stages_text, "r.yaml")
assert r.stages == ["prune", "cluster", "qat", "convert", "evaluate"] and r.config.cluster.clusters == 4
try:
    parse_recipe("model: {{name: lenet5}}\\nstages: [qat, cluster]", "r.yaml")
    raise SystemExit("cluster after qat was accepted")
except UserError as exc:
    assert "prune -> cluster -> qat" in str(exc)
assert "--cluster-epochs" in CliRunner().invoke(main, ["optimize", "--help"]).output
res = CliRunner().invoke(main, ["optimize", "lenet5", "--epochs", "1", "--cluster", "8", "--cluster-epochs", "1",
                                "--no-bench", "--out", "runs/c"], catch_exceptions=False)
assert res.exit_code == 0, res.output
metrics = json.loads(pathlib.Path("runs/c/metrics.json").read_text())
assert [row["variant"] for row in metrics["rows"]] == ["float32", "clustered float32"]
assert "- clustered: 8 clusters per layer" in pathlib.Path("runs/c/report.md").read_text()
"""
    )
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]


# --- device/ is sealed: what runs on the Pi imports itself, errors and _io, and nothing else ---

DEVICE = PACKAGE / "device"
# The edgecnn modules that edgecnn/device/*.py may import, at module level or inside a function.
DEVICE_MAY_IMPORT = ("edgecnn.device", "edgecnn.errors", "edgecnn._io")
# Beside the standard library, the third-party packages device/ may import, and in which files
# ("*": any). The TFLite runtimes themselves (ai_edge_litert, tflite_runtime) are imported by
# name through importlib in runtime.py (see test_the_device_runtimes_are_the_tflite_ones).
DEVICE_THIRD_PARTY = {
    "numpy": "*",
    "PIL": "*",  # Pillow: image decoding (preprocess.py, predict.py)
    "click": {"cli.py", "bench_run.py"},  # the edgecnn-device command line
    # The one exception, stated here: TensorFlow's tf.lite.Interpreter, and only when a user
    # names it (--runtime tensorflow; `auto` never picks it), imported inside a function of
    # runtime.py, never at module level.
    "tensorflow": {"runtime.py"},
    # LiteRT's generated schema.fbs, the one .tflite reader's backend where LiteRT is installed
    # (the hand reader is the fallback): flatbuffer.py alone.
    "ai_edge_litert": {"flatbuffer.py"},
}
# Imported inside a function only: a module-level import would load it on every device import.
DEVICE_FUNCTION_LOCAL_ONLY = {"tensorflow", "ai_edge_litert"}


def _imports(path: Path) -> list:
    """``[(line, module, module_level)]`` for every import in ``path``, anywhere in its tree
    (functions, try blocks, ``if`` branches), relative imports resolved. ``from a import b``
    gives ``a.b`` when that is an edgecnn module file, else ``a``."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text(), filename=str(path))
    module_level = set()  # run on import: outside any function body (if/try/class bodies included)

    def run_on_import(node):
        module_level.add(id(node))
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                run_on_import(child)

    run_on_import(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.module == "__future__":
                continue
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            targets = []
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                is_module = (ROOT / Path(*sub.split("."))).with_suffix(".py").is_file() or (
                    ROOT / Path(*sub.split(".")) / "__init__.py"
                ).is_file()
                targets.append(sub if is_module else base)
        else:
            continue
        found += [(node.lineno, t, id(node) in module_level) for t in targets]
    return found


def _is_edgecnn(module: str) -> bool:
    return module == "edgecnn" or module.startswith("edgecnn.")


def _allowed(module: str, allowed) -> bool:
    return any(module == a or module.startswith(a + ".") for a in allowed)


def test_device_imports_only_itself_errors_and_io():
    """edgecnn/device/ is what runs on a Raspberry Pi: it imports edgecnn.device.*, edgecnn.errors
    and edgecnn._io, nothing else of edgecnn, function-local imports included (ARCHITECTURE.md)."""
    files = sorted(DEVICE.glob("*.py"))
    assert len(files) > 10
    leaks = [
        f"{path.relative_to(ROOT)}:{line}: imports {module}"
        for path in files
        for line, module, _ in _imports(path)
        if _is_edgecnn(module) and not _allowed(module, DEVICE_MAY_IMPORT)
    ]
    assert leaks == [], "device/ imports outside itself, edgecnn.errors and edgecnn._io:\n" + "\n".join(leaks)


def test_device_third_party_imports_are_listed():
    stdlib = getattr(sys, "stdlib_module_names", None)
    if stdlib is None:  # pragma: no cover - Python 3.9
        pytest.skip("Python < 3.10 has no sys.stdlib_module_names to tell the standard library by")
    leaks = []
    for path in sorted(DEVICE.glob("*.py")):
        for line, module, module_level in _imports(path):
            top = module.split(".")[0]
            if top == "edgecnn" or top in stdlib:
                continue
            where = DEVICE_THIRD_PARTY.get(top)
            if where is None or (where != "*" and path.name not in where):
                leaks.append(f"{path.relative_to(ROOT)}:{line}: imports {module}")
            elif module_level and top in DEVICE_FUNCTION_LOCAL_ONLY:
                leaks.append(f"{path.relative_to(ROOT)}:{line}: imports {module} at module level")
    # The leaves device/ imports use what device/ has: numpy (_io.py), click (errors.usage_line).
    for name in ("errors.py", "_io.py"):
        for line, module, _ in _imports(PACKAGE / name):
            top = module.split(".")[0]
            if top not in stdlib and top not in ("edgecnn", "numpy", "click"):
                leaks.append(f"edgecnn/{name}:{line}: imports {module}")
    assert leaks == [], "device/ imports a package it may not:\n" + "\n".join(leaks)


def test_the_device_runtimes_are_the_tflite_ones():
    from edgecnn.device.runtime import _MODULES, AUTO_ORDER, RUNTIMES

    # The modules runtime.py imports by name (importlib): the two TFLite runtimes and, only
    # when named, TensorFlow's tf.lite (allowed in DEVICE_THIRD_PARTY for runtime.py alone).
    assert {m.split(".")[0] for m, _dist in _MODULES.values()} == {"ai_edge_litert", "tflite_runtime", "tensorflow"}
    assert set(_MODULES) == set(RUNTIMES)
    # `auto`: LiteRT, tflite_runtime, then TensorFlow (the project's decision), explicitly last
    assert AUTO_ORDER == ("litert", "tflite_runtime", "tensorflow")


def test_errors_and_io_are_leaves():
    """edgecnn.errors imports nothing of edgecnn, edgecnn._io only edgecnn.errors, and the
    package root (run by every ``import edgecnn.device...``) nothing at import time."""
    may = {"errors.py": (), "_io.py": ("edgecnn.errors",)}
    leaks = [
        f"edgecnn/{name}:{line}: imports {module}"
        for name, allowed in may.items()
        for line, module, _ in _imports(PACKAGE / name)
        if _is_edgecnn(module) and not _allowed(module, allowed)
    ]
    # edgecnn/__init__.py re-exports lazily: its imports sit inside __getattr__.
    leaks += [
        f"edgecnn/__init__.py:{line}: imports {module} at import time"
        for line, module, module_level in _imports(PACKAGE / "__init__.py")
        if module_level and module != "os"
    ]
    assert leaks == [], "\n".join(leaks)


# The layers, lowest first (ARCHITECTURE.md, "The layers"): a module may import its own
# layer and the layers below it, never one above. Prefixes; the longest that matches wins.
LAYERS = (
    ("base", ("edgecnn", "edgecnn.errors", "edgecnn._io", "edgecnn._tf")),
    ("device", ("edgecnn.device",)),
    ("models", ("edgecnn.models",)),
    ("techniques", ("edgecnn.optimize", "edgecnn.distribute")),
    ("declarations", ("edgecnn.settings.fields", "edgecnn.settings.sections", "edgecnn.settings")),
    ("data", ("edgecnn.data",)),
    ("training", ("edgecnn.train",)),
    ("tflite", ("edgecnn.tflite",)),
    ("stages", ("edgecnn.stages",)),
    ("run config", ("edgecnn.settings.run_config",)),
    ("reporting", ("edgecnn.report",)),
    ("engine", ("edgecnn.pipeline", "edgecnn.manifest", "edgecnn.recipe", "edgecnn.sweep", "edgecnn.search")),
    ("cli", ("edgecnn.cli", "edgecnn.__main__")),
)


def _layer_of(module: str) -> int:
    best = None
    for level, (_name, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if _allowed(module, (prefix,)) and (best is None or len(prefix) > best[1]):
                best = (level, len(prefix))
    assert best is not None, f"{module} is in no layer of tests/test_structure.py LAYERS"
    return best[0]


def test_no_module_imports_a_higher_layer():
    """The package's layering (ARCHITECTURE.md), every import walked, function-local ones included."""
    upward = []
    for module, deps in sorted(_import_graph().items()):
        for dep in sorted(deps):
            if _layer_of(dep) > _layer_of(module):
                upward.append(f"{module} ({LAYERS[_layer_of(module)][0]}) imports {dep} ({LAYERS[_layer_of(dep)][0]})")
    assert upward == [], "imports of a higher layer:\n" + "\n".join(upward)


MAX_FUNCTION_LINES, MAX_MODULE_LINES = 80, 600


def test_no_function_over_80_lines_and_no_module_over_600():
    """The size rules ruff has no rule for (ruff checks complexity, branches, statements and
    arguments: pyproject.toml); docstrings and comments count, as a reader sees them."""
    too_long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        lines = text.count("\n")
        if lines > MAX_MODULE_LINES:
            too_long.append(f"{path.relative_to(ROOT)}: {lines} lines (max {MAX_MODULE_LINES})")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.name} is {length} lines")
    assert too_long == [], "\n".join(too_long)


def test_the_top_level_is_the_engine_only():
    """What sits at edgecnn/ itself: the engine and the leaves; everything else is in a package by role."""
    engine = {"__init__.py", "__main__.py", "_io.py", "_tf.py", "distribute.py", "errors.py",
              "manifest.py", "pipeline.py", "recipe.py", "search.py", "sweep.py", "train.py"}
    top = {p.name for p in PACKAGE.glob("*.py")}
    assert top <= engine, f"new top-level modules {sorted(top - engine)}: put them in the package of their role"


def test_pretrained_facts_sit_beside_their_family_and_no_module_imports_tf_keras_src():
    """Pretrained weights are declared where the family is (timm's ``pretrained_cfg``): every
    registered variant with published weights carries a declaration of its own family
    module's ``PRETRAINED`` table. tf_keras' private ``tf_keras.src`` is imported nowhere
    (its values are copied and compared in tests/test_weights.py), nor named in a string."""
    import importlib

    from edgecnn.models import list_models, model_info
    from edgecnn.models._pretrained import KerasWeights

    private = []
    for path in sorted(PACKAGE.rglob("*.py")):
        private += [
            f"{path.relative_to(ROOT)}:{line} imports {mod}"
            for line, mod, _ in _imports(path)
            if mod == "tf_keras.src" or mod.startswith("tf_keras.src.")
        ]
        if "tf_keras.src" in path.read_text():
            private.append(f"{path.relative_to(ROOT)} names tf_keras.src")
    assert private == [], "\n".join(private)
    misplaced, with_weights = [], 0
    for name in list_models():
        entry = model_info(name)
        if entry.pretrained is None:
            continue
        with_weights += 1
        family = importlib.import_module(entry.builder.__module__)
        table = getattr(family, "PRETRAINED", {})
        cfg = entry.pretrained_cfg
        if not isinstance(cfg, KerasWeights) or table.get(entry.pretrained) is not cfg:
            misplaced.append(f"{name}: {entry.pretrained} is not in {family.__name__}.PRETRAINED")
    assert misplaced == [], "\n".join(misplaced)
    # MobileNet v1 and V2, V3 Small and Large, EfficientNet B0-B7, ResNet-50/101/152, VGG-16/19, DenseNet x3.
    assert with_weights == 20
