"""``edgecnn eval RUN --explain``: one row per layer joining the quantization debugger's int8
error with LiteRT's per-op profile of the float32 and int8 files, the ranking of the worst
layers kept in float, the saved tables, and one ``error:`` line for what it cannot use."""

import json
import shutil

import pytest
from click.testing import CliRunner

from edgecnn.cli import main
from edgecnn.device.profile import XNNPACK, why_no_profiler
from edgecnn.report.explain import float_layer_ms, join_layers

needs_profiler = pytest.mark.skipif(why_no_profiler("litert") is not None, reason="no LiteRT C API profiler here")


@pytest.fixture(scope="module")
def explained(lenet_run, tmp_path_factory):
    """A copy of the session's LeNet-5 run explained once, with the profiler's and the
    debugger's own results recorded as they were returned to ``--explain``."""
    import edgecnn.device.profile as profile_module
    import edgecnn.tflite.debugger as quant_debug

    run = tmp_path_factory.mktemp("explain") / "lenet5"
    shutil.copytree(lenet_run[0], run)
    profiles, debuggers = {}, []
    real_profile, real_debugger = profile_module.profile, quant_debug.run_debugger

    def spy_profile(path, **kw):
        profiles[str(path)] = result = real_profile(path, **kw)
        return result

    def spy_debugger(*args):
        debuggers.append(real_debugger(*args))
        return debuggers[-1]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(profile_module, "profile", spy_profile)
        mp.setattr(quant_debug, "run_debugger", spy_debugger)
        res = CliRunner().invoke(main, ["eval", str(run), "--explain", "--explain-top", "2"])
    assert res.exit_code == 0, res.output
    return run, res.output, profiles, debuggers


def _node_of_layer(path, layer, output_name="predictions"):
    """The node index of the op writing ``layer``'s output, read with TensorFlow's own interpreter."""
    from edgecnn._tf import tf
    from edgecnn.tflite.debugger import short_layer_name

    interpreter = tf.lite.Interpreter(model_path=str(path), experimental_preserve_all_tensors=True)
    names = {d["index"]: d["name"] for d in interpreter.get_tensor_details()}
    (node,) = [op["index"] for op in interpreter._get_ops_details()
               if short_layer_name(names[op["outputs"][0]], output_name) == layer]
    return node


@needs_profiler
def test_a_row_is_the_debuggers_and_the_profilers_own_figures(explained):
    run, _, profiles, debuggers = explained
    rows = {r["layer"]: r for r in json.loads((run / "explain.json").read_text())}
    row = rows["c1"]
    (debug,) = debuggers
    assert row["rmse_scale"] == next(d["rmse_scale"] for d in debug.layers if d["layer"] == "c1")
    assert row["mean_error"] == next(d["mean_error"] for d in debug.layers if d["layer"] == "c1")
    for precision in ("float32", "int8"):
        path = run / f"model_{precision}.tflite"
        node = _node_of_layer(path, "c1")
        (timed,) = [n for n in profiles[str(path)]["nodes"] if n["node"] == node]
        assert row[f"{precision}_nodes"] == [node]
        assert row[f"{precision}_ms"] == timed["ms"]
        assert row[f"{precision}_xnnpack"] == ("yes" if timed["kernel"] == XNNPACK else "no")
    assert row["saved_ms"] == row["float32_ms"] - row["int8_ms"]


@needs_profiler
def test_every_layer_has_one_row_and_xnnpack_as_profiled(explained):
    run, _, profiles, debuggers = explained
    rows = json.loads((run / "explain.json").read_text())
    assert [r["layer"] for r in rows] == ["c1", "c1_tanh", "s2", "c3", "c3_tanh", "s4", "c5", "c5_tanh", "flatten",
                                          "f6", "f6_tanh", "classifier", "predictions"]
    assert {d["layer"] for d in debuggers[0].layers} <= {r["layer"] for r in rows}
    for precision in ("float32", "int8"):
        kernels = {n["node"]: n["kernel"] for n in profiles[str(run / f"model_{precision}.tflite")]["nodes"]}
        for r in rows:
            (node,) = r[f"{precision}_nodes"]
            assert r[f"{precision}_xnnpack"] == ("yes" if kernels[node] == XNNPACK else "no"), (precision, r)


@needs_profiler
def test_ranking_keeps_the_worst_layers_in_float_and_says_what_it_costs(explained):
    run, output, _, debuggers = explained
    full = json.loads((run / "explain_full.json").read_text())
    worst = [d["layer"] for d in debuggers[0].layers[:2]]
    assert sorted(e["layer"] for e in full["ranking"]) == sorted(worst)
    base = full["validation"]["int8_accuracy"]
    rows = {r["layer"]: r for r in full["rows"]}
    for e in full["ranking"]:
        assert e["points"] == pytest.approx(100 * (e["accuracy"] - base))
        assert e["float_layer_ms"] >= 0
        assert e["keep_float_ms"] == pytest.approx(e["float_layer_ms"] - rows[e["layer"]]["int8_ms"])
        assert rows[e["layer"]]["keep_float_points"] == e["points"]
        assert f"layer {e['layer']} " in output
    ranked = [line for line in output.splitlines() if line.startswith("layer ") and "in int8" in line]
    assert len(ranked) >= 2 and all(("costs" in line and "points" in line) or "leave it in int8" in line
                                    for line in ranked[:2])
    assert "[4/4] keeping each of the 2 worst layers in float alone" in output


@needs_profiler
def test_tables_are_saved_in_the_run_folder(explained):
    run, output, _, _ = explained
    md = (run / "explain.md").read_text()
    assert md.startswith("# Accuracy and speed per layer") and "| c1 | CONV_2D |" in md and "CPU:" in md
    header = (run / "explain.csv").read_text().splitlines()[0].split(",")
    assert {"layer", "rmse_scale", "float32_ms", "int8_ms", "int8_xnnpack", "saved_ms"} <= set(header)
    assert not list(run.glob("*.tmp*")), "no temporary files left behind"
    assert "int8 rmse/scale" in output and "XNNPACK int8" in output and "saved: " in output


@needs_profiler
def test_the_int8_file_names_its_run_and_json_goes_to_stdout(explained, tmp_path):
    run = explained[0]
    out = tmp_path / "explain.json"
    res = CliRunner().invoke(main, ["eval", str(run / "model_int8.tflite"), "--explain", "--explain-top", "0",
                                    "--json", "-o", str(out)])
    assert res.exit_code == 0, res.output
    printed = json.loads(res.stdout)
    assert printed["run"] == str(run) and printed["ranking"] == [] and len(printed["rows"]) == 13
    assert json.loads(out.read_text())["rows"] == printed["rows"]


def _one_error_line(res, *words):
    assert res.exit_code == 2, res.output
    assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1, res.stderr
    assert "Traceback" not in res.output
    for word in words:
        assert word in res.stderr, res.stderr


def test_what_explain_cannot_use_is_one_error_line(lenet_run, tmp_path):
    def explain(path):
        return CliRunner().invoke(main, ["eval", str(path), "--explain"])

    _one_error_line(explain(tmp_path / "nope"), "does not exist")
    _one_error_line(explain(tmp_path), "no config.json", "run folder")
    run = tmp_path / "float_only"
    shutil.copytree(lenet_run[0], run, ignore=shutil.ignore_patterns("model_int8.tflite"))
    _one_error_line(explain(run), "no model_int8.tflite", "--int8")
    _one_error_line(explain(run / "train" / "model.keras"), "run folder or the int8 .tflite")
    res = CliRunner().invoke(main, ["eval", str(run), "--explain", "--int8-debug"])
    assert res.exit_code == 2 and "choose one" in res.output


def test_join_orders_rows_and_leaves_untimed_ops_blank():
    float_ops = [{"node": 0, "op": "CONV_2D", "layer": "c1"}, {"node": 1, "op": "RESHAPE", "layer": "flat"},
                 {"node": 2, "op": "FULLY_CONNECTED", "layer": "fc"}]
    int8_ops = [{"node": 0, "op": "CONV_2D", "layer": "c1"}, {"node": 1, "op": "FULLY_CONNECTED", "layer": "fc"}]
    rows = join_layers([{"layer": "fc", "rmse_scale": 1.5, "mean_error": 0.0}],
                       float_ops, {0: {"ms": 0.2, "kernel": XNNPACK}, 2: {"ms": 0.1, "kernel": XNNPACK}},
                       int8_ops, {0: {"ms": 0.05, "kernel": XNNPACK}})
    assert [r["layer"] for r in rows] == ["c1", "flat", "fc"]
    c1, flat, fc = rows
    assert c1["saved_ms"] == pytest.approx(0.15) and c1["rmse_scale"] is None
    assert flat["int8_ms"] is None and flat["float32_ms"] is None and "saved_ms" not in flat
    assert fc["rmse_scale"] == 1.5 and fc["int8_ms"] is None and fc["int8_xnnpack"] is None


def test_float_layer_time_counts_its_own_quantize_ops_only():
    ops = [{"node": 0, "op": "QUANTIZE", "layer": "quantize (node 0)", "inputs": [0], "outputs": [1]},
           {"node": 1, "op": "DEQUANTIZE", "layer": "dequantize (node 1)", "inputs": [1], "outputs": [2]},
           {"node": 2, "op": "CONV_2D", "layer": "c1", "inputs": [2, 9], "outputs": [3]},
           {"node": 3, "op": "QUANTIZE", "layer": "quantize (node 3)", "inputs": [3], "outputs": [4]},
           {"node": 4, "op": "DEQUANTIZE", "layer": "dequantize (node 4)", "inputs": [4], "outputs": [5]}]
    times = {i: {"ms": 10.0 ** -i} for i in range(5)}
    assert float_layer_ms(ops, times, "c1") == pytest.approx(0.1 + 0.01 + 0.001)
    assert float_layer_ms(ops, times, "c9") is None
    assert float_layer_ms(ops, {2: {"ms": 1.0}}, "c1") is None
