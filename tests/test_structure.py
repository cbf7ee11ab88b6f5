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
    code = "import edgecnn.config, edgecnn.recipe, edgecnn.stages, sys; assert 'tensorflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_the_stage_order_is_declared_once_and_the_docs_follow_it():
    order = " -> ".join(ORDER)
    assert [s.name for s in model_stages()] == list(STAGE_MODULES)
    assert ORDER[0] == "width" and ORDER[-3:] == ("convert", "evaluate", "bench")
    assert order in (ROOT / "README.md").read_text()
    from edgecnn.recipe import parse_recipe

    with pytest.raises(UserError) as info:
        parse_recipe("model: {name: lenet5}\nstages: [qat, prune]\n", "r.yaml")
    assert info.value.args[0].endswith(f"the pipeline runs {order}")


def test_every_stage_is_one_unit():
    from edgecnn.config import RunConfig

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
    from edgecnn.config import RunConfig, resolve

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
