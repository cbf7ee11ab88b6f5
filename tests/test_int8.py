"""int8 users can trust: the CPU named above every latency, the "int8 not faster" line and
its reason, int16x8, the per-layer quantization error and the selective float fallback."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

AVX2 = ["avx2"]
VNNI = ["avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8"]


def _pair(f32_ms, i8_ms, features, fallback=None, stage="trained", device="ws"):
    common = {"stage": stage, "device": device, "threads": 1, "cpu": "Some CPU", "cpu_features": features}
    return [
        {**common, "precision": "float32", "variant": "float32", "latency_median_ms": f32_ms},
        {**common, "precision": "int8", "variant": "int8", "latency_median_ms": i8_ms,
         "xnnpack_fallback": fallback or {}},
    ]


# --- Speed explained by the CPU ----------------------------------------------------------------


def test_cpu_features_use_the_names_linux_prints():
    from edgecnn.device.bench import cpu_features, cpu_line, has_int8_dot

    x86 = "processor : 0\nflags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw avx512_vnni amx_tile amx_int8\n"
    assert cpu_features(x86) == ["avx2", "avx512f", "avx512_vnni", "amx_int8"]
    epyc = "flags : fpu sse2 avx avx2 fma sha_ni\n"
    assert cpu_features(epyc) == ["avx2"] and has_int8_dot(cpu_features(epyc)) is False
    pi5 = "processor : 0\nFeatures : fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp asimddp\n"
    assert cpu_features(pi5) == ["asimd", "asimddp", "fphp"] and has_int8_dot(cpu_features(pi5))
    pi4 = "Features : fp asimd evtstrm crc32 cpuid\n"
    assert cpu_features(pi4) == ["asimd"] and not has_int8_dot(["asimd"])
    assert cpu_features("no flags here\n") is None
    assert "no int8 dot product" in cpu_line({"cpu": "AMD EPYC", "cpu_features": ["avx2"]})
    assert cpu_line({"cpu": "x"}).endswith("(features unknown)")


@pytest.mark.parametrize(
    "f32, i8, features, fallback, reason",
    [
        (14.21, 14.96, AVX2, None, "no int8 dot-product instructions on this CPU (none of avx512_vnni"),  # EPYC v1
        (8.72, 10.17, AVX2, None, "no int8 dot-product"),  # EPYC MobileNetV2
        (1.00, 0.95, ["asimd"], None, "(none of asimddp, i8mm)"),  # Raspberry Pi 4: slower by under 10%
        (1.00, 0.95, VNNI, {"MEAN": 1, "SOFTMAX": 1}, "ops outside XNNPACK run on reference kernels (MEAN x1"),
        (1.00, 1.00, VNNI, None, "neither usual cause"),
        (1.00, 0.95, None, None, "CPU features unknown"),
    ],
)
def test_int8_not_faster_line_when_the_ratio_says_so(f32, i8, features, fallback, reason):
    from edgecnn.report.tables import int8_speed_notes

    notes = int8_speed_notes(_pair(f32, i8, features, fallback))
    assert len(notes) == 1 and notes[0].startswith("int8 is not faster than float32 here")
    assert reason in notes[0] and f"{f32 / i8:.2f}x" in notes[0]


@pytest.mark.parametrize(
    "f32, i8",
    [(15.11, 6.14), (9.87, 7.47), (1.0, 1.0 / 1.10)],  # Xeon VNNI/AMX: 2.5x and 1.3x; exactly 10% faster counts
)
def test_no_line_when_int8_is_at_least_10_percent_faster(f32, i8):
    from edgecnn.report.tables import int8_speed_notes

    assert int8_speed_notes(_pair(f32, i8, VNNI)) == []


def test_int8_lines_pair_rows_of_the_same_stage_and_device():
    from edgecnn.report.tables import int8_speed_notes

    rows = _pair(1.0, 0.5, VNNI) + _pair(1.0, 1.2, AVX2, stage="pruned", device="epyc")
    rows[-1]["variant"] = "pruned int8"
    notes = int8_speed_notes(rows)
    assert len(notes) == 1 and "pruned int8 1.200 ms" in notes[0]
    # an int8 row without a float32 row to compare with says nothing
    assert int8_speed_notes(rows[1:2]) == []


def _run_folder(path, f32_ms, i8_ms, features):
    rows = []
    for r, sha in zip(_pair(f32_ms, i8_ms, features), ("aa", "bb")):
        bench = {"status": "ok", "device": "ws", "threads": 1, "runtime": "litert", "runtime_version": "2.3.0",
                 "median_ms": r["latency_median_ms"], "p90_ms": r["latency_median_ms"], "cpu": "AMD EPYC 7B13",
                 "cpu_features": features, "cores": 2, "arch": "x86_64",
                 "delegation": {"fallback_ops": {}, "total": 5, "delegated": 5, "partitions": 1}}
        rows.append({**{k: v for k, v in r.items() if k not in ("cpu", "cpu_features", "xnnpack_fallback")},
                     "model": "lenet5", "file": f"model_{r['precision']}.tflite", "size_bytes": 1000,
                     "tflite_accuracy": 0.9, "latency_p90_ms": r["latency_median_ms"], "sha256": sha,
                     "bench": bench})
    path.mkdir(parents=True)
    metrics = {"model": "lenet5", "run_dir": str(path), "rows": rows,
               "config": {"model": {"name": "lenet5", "alpha": None}, "data": {"image_size": 32}}}
    (path / "metrics.json").write_text(json.dumps(metrics))
    return path


def test_edgecnn_report_names_the_cpu_above_and_explains_below(tmp_path):
    from edgecnn.cli import main

    run = _run_folder(tmp_path / "run", 1.00, 1.02, AVX2)
    out = tmp_path / "report"
    res = CliRunner().invoke(main, ["report", str(run), "--out", str(out)])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0] == "CPU: AMD EPYC 7B13, 2 cores, x86_64 (avx2; no int8 dot product)"
    assert lines[1].startswith("variant")
    assert "int8 is not faster than float32 here" in res.output and "no int8 dot-product" in res.output
    md = (out / "report.md").read_text()
    assert md.index("CPU: AMD EPYC 7B13") < md.index("| variant") < md.index("int8 is not faster")
    assert json.loads((out / "report.json").read_text())[0]["cpu_features"] == ["avx2"]

    fast = _run_folder(tmp_path / "fast", 1.00, 0.40, VNNI)
    res = CliRunner().invoke(main, ["report", str(fast), "--out", str(tmp_path / "r2")])
    assert res.exit_code == 0 and "avx512_vnni" in res.output.splitlines()[0]
    assert "not faster" not in res.output


# --- int16x8 -----------------------------------------------------------------------------------


def test_int16x8_is_a_precision_everywhere():
    from edgecnn.cli import main
    from edgecnn.recipe import PRECISIONS as RECIPE_PRECISIONS
    from edgecnn.settings.run_config import RunConfig
    from edgecnn.settings.sections import PRECISIONS, ConvertConfig

    assert "int16x8" in PRECISIONS and RECIPE_PRECISIONS["int16x8"] == "int16x8"
    assert ConvertConfig(int8=True, int16x8=True).precisions == ["float32", "int8", "int16x8"]
    assert RunConfig.from_dict({"convert": {"int16x8": True}}).convert.precisions == ["float32", "int16x8"]
    help_text = CliRunner().invoke(main, ["optimize", "--help"]).output
    assert "--int16x8" in help_text


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    """A tiny Keras model, its inputs, and its int8 and int16x8 files."""
    import numpy as np

    from edgecnn._tf import keras
    from edgecnn.tflite.convert import convert

    folder = tmp_path_factory.mktemp("int16x8")
    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, keras.layers.Dense(4, activation="softmax")(x))
    data = np.random.default_rng(0).uniform(-1, 1, (16, 16, 16, 3)).astype(np.float32)
    rep = lambda: ([row[None]] for row in data)  # noqa: E731
    paths = {p: convert(model, folder / f"m_{p}.tflite", p, representative=rep) for p in ("int8", "int16x8")}
    return model, data, paths


def test_int16x8_file_runs_outside_xnnpack_and_tracks_float(tiny_files):
    import numpy as np

    from edgecnn.device.evaluate import load_interpreter, predict

    model, data, paths = tiny_files
    it, _, _ = load_interpreter(paths["int16x8"])
    assert it.get_input_details()[0]["dtype"] == np.float32  # float boundary, int16 inside
    assert any(t["dtype"] == np.int16 for t in it.get_tensor_details())
    want = model.predict(data, verbose=0)
    err = {}
    for p, path in paths.items():
        it, _, _ = load_interpreter(path)
        err[p] = float(np.abs(predict(it, data) - want).max())
    assert err["int16x8"] < err["int8"] and err["int16x8"] < 2e-3


def test_a_real_bench_records_the_cpu_and_what_xnnpack_leaves_out(tiny_files):
    from edgecnn.device.bench import benchmark, cpu_features
    from edgecnn.report.tables import bench_fields

    _, _, paths = tiny_files
    r8, r16 = (benchmark(paths[p], runs=5, warmup=1) for p in ("int8", "int16x8"))
    assert r8["status"] == r16["status"] == "ok" and r8["cpu_features"] == cpu_features()
    assert r8["delegation"]["delegated"] >= 3  # XNNPACK runs int8
    assert r16["delegation"]["delegated"] == 0  # and none of 16x8: every op on the reference kernels
    assert bench_fields(r16)["xnnpack_fallback"]["CONV_2D"] == 1


def test_a_runtime_that_cannot_run_int16x8_is_one_line(tmp_path, monkeypatch):
    import edgecnn.device.evaluate as evaluate
    from edgecnn.errors import UserError
    from edgecnn.stages.export import evaluate_or_explain

    def refuse(*a, **k):
        raise RuntimeError("Didn't find op for builtin opcode 'CONV_2D' version '4'\nRegistration failed.")

    monkeypatch.setattr(evaluate, "evaluate_tflite", refuse)
    with pytest.raises(UserError, match=r"^the tflite_runtime runtime cannot run m_int16x8.tflite .*version '4'; "
                                        r"leave out the int16x8 precision or use the litert runtime$"):
        evaluate_or_explain(tmp_path / "m_int16x8.tflite", "int16x8", None, None, 1, "tflite_runtime")
    with pytest.raises(RuntimeError):  # other precisions: a real failure, not a user's choice
        evaluate_or_explain(tmp_path / "m_int8.tflite", "int8", None, None, 1, "tflite_runtime")


# --- per-layer error and float fallback ---------------------------------------------------------


class _FakeDebug:
    """The part of Int8Debug that float_fallback uses: ranked layers and mixed models."""

    def __init__(self, n):
        self.layers = [{"layer": f"l{i}", "op": "CONV_2D", "tensor": f"t{i}"} for i in range(n)]

    def mixed_model(self, tensors):
        return len(tensors).to_bytes(2, "little")


@pytest.mark.parametrize("n, needed", [(13, 4), (30, 1), (30, 30), (30, 17), (1, 1)])
def test_float_fallback_keeps_the_fewest_worst_layers(n, needed):
    from edgecnn.tflite.debugger import float_fallback

    calls = []

    def accuracy(model):  # each layer in float wins back 1 point until `needed` are
        k = int.from_bytes(model, "little")
        calls.append(k)
        return 0.90 - 0.01 * max(0, needed - k)

    out = float_fallback(_FakeDebug(n), accuracy, float_accuracy=0.90, budget_points=0.5)
    assert out["within_budget"] and out["float_layers"] == [f"l{i}" for i in range(needed)]
    assert out["float_tensors"] == [f"t{i}" for i in range(needed)] and out["accuracy"] == pytest.approx(0.90)
    assert len(calls) == len(set(calls)) <= 2 * max(1, n).bit_length()  # each k tried once, ~2 log2 n tries


def test_float_fallback_out_of_reach_keeps_the_best_tried():
    from edgecnn.tflite.debugger import float_fallback

    acc = {1: 0.80, 2: 0.85, 4: 0.84, 5: 0.83}
    out = float_fallback(_FakeDebug(5), lambda m: acc[int.from_bytes(m, "little")], 0.90, 0.5)
    assert not out["within_budget"] and out["float_layers"] == ["l0", "l1"] and out["accuracy"] == 0.85
    assert [k for k, _ in out["tried"]] == [1, 2, 4, 5]


def test_float_fallback_ranks_by_measured_output_error():
    """A layer that is noisy by rmse/scale but harmless is not kept in float; the one that
    matters, ranked low by rmse/scale, is tried first (the 56-of-65-layers case)."""
    from edgecnn.tflite.debugger import float_fallback

    class Debug(_FakeDebug):
        def mixed_model(self, tensors):
            return ",".join(tensors).encode()

    def output_error(model):  # only t7 (8th by rmse/scale) matters; t0..t3 make no difference
        return 0.0 if b"t7" in model.split(b",") else 1.0

    def accuracy(model):
        return 0.90 if b"t7" in model.split(b",") else 0.88

    plain = float_fallback(Debug(10), accuracy, 0.90, 0.5)
    assert plain["float_layers"] == [f"l{i}" for i in range(8)] and plain["ranking"] == "rmse/scale"
    out = float_fallback(Debug(10), accuracy, 0.90, 0.5, output_error=output_error)
    assert out["within_budget"] and out["float_layers"] == ["l7"] and out["accuracy"] == 0.90
    assert out["gains"]["l7"] == 1.0 and out["gains"]["l0"] == 0.0 and out["ranking"].startswith("output error")
    few = float_fallback(Debug(10), accuracy, 0.90, 0.5, output_error=output_error, rank_top=4)
    assert few["float_layers"] == [f"l{i}" for i in range(8)] and set(few["gains"]) == {"l0", "l1", "l2", "l3"}


def test_a_layer_the_converter_cannot_keep_in_float_is_a_note_in_the_ranking():
    from edgecnn.tflite.debugger import float_fallback

    class Debug(_FakeDebug):
        def mixed_model(self, tensors):
            if tensors == ["t1"]:
                raise RuntimeError("the converter failed with l1 in float: unsupported op")
            return ",".join(tensors).encode()

    def output_error(model):
        return 0.0 if b"t2" in model.split(b",") else 1.0

    out = float_fallback(Debug(4), lambda m: 0.90 if b"t2" in m.split(b",") else 0.80, 0.90, 0.5,
                         output_error=output_error)
    assert out["float_layers"] == ["l2"] and "l1" not in out["gains"]
    assert out["notes"] == ["layer l1: effect not measured (the converter failed with l1 in float: unsupported op)"]


def test_a_fallback_the_converter_cannot_build_is_a_row_note(tiny_debug, monkeypatch):
    """A denylist the converter refuses is one RuntimeError line (the export step's row note), not a traceback."""
    _, debug, _ = tiny_debug

    def broken():
        raise ValueError("Failed to quantize\nlong detail")

    monkeypatch.setattr(debug._debugger, "get_nondebug_quantized_model", broken)
    with pytest.raises(RuntimeError, match=r"^the converter failed with [\w/]+ in float: Failed to quantize$"):
        debug.mixed_model([debug.layers[0]["tensor"]])


@pytest.fixture(scope="module")
def tiny_debug():
    import numpy as np

    from edgecnn._tf import keras
    from edgecnn.tflite.debugger import Int8Debug

    keras.utils.set_random_seed(0)
    inp = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv_a")(inp)
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv_b")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    model = keras.Model(inp, keras.layers.Dense(4, name="head")(x), name="tiny_debug")
    data = np.random.default_rng(0).uniform(-1, 1, (12, 12, 12, 3)).astype(np.float32)
    return model, Int8Debug(model, lambda: ([row[None]] for row in data), data[:6]), data


def test_the_debugger_names_each_layer_with_its_op_and_error(tiny_debug):
    import math

    _, debug, _ = tiny_debug
    by_layer = {layer["layer"]: layer for layer in debug.layers}
    assert {"conv_a", "conv_b", "pool", "head"} <= set(by_layer), sorted(by_layer)
    assert by_layer["conv_a"]["op"] == "CONV_2D" and by_layer["head"]["op"] == "FULLY_CONNECTED"
    assert by_layer["pool"]["op"] == "MEAN"
    errors = [layer["rmse_scale"] for layer in debug.layers]
    assert errors == sorted(errors, reverse=True) and all(math.isfinite(e) and e > 0.05 for e in errors)
    summary = debug.summary(top=2)
    assert summary["layers_measured"] == len(debug.layers) and len(summary["worst_layers"]) == 2
    assert summary["samples"] == 6 and summary["notes"] == []
    assert set(summary["worst_layers"][0]) == {"layer", "op", "rmse_scale", "mean_error", "max_abs_error"}


def test_the_mixed_model_keeps_exactly_the_denylisted_layers_in_float(tiny_debug, tmp_path):
    import numpy as np

    from edgecnn.device.evaluate import load_interpreter, predict

    model, debug, data = tiny_debug
    worst = debug.layers[0]
    path = tmp_path / "mixed.tflite"
    path.write_bytes(debug.mixed_model([worst["tensor"]]))
    it, _, _ = load_interpreter(path)
    tensors = {t["index"]: t for t in it.get_tensor_details()}
    float_ops = [op["op_name"] for op in it._get_ops_details()
                 if op["op_name"] not in ("QUANTIZE", "DEQUANTIZE", "DELEGATE")
                 and tensors[op["outputs"][0]]["dtype"] == np.float32]
    assert float_ops == [worst["op"]]
    assert np.abs(predict(it, data) - model.predict(data, verbose=0)).max() < 0.1


def test_a_layer_the_debugger_cannot_measure_is_a_note(tiny_debug, monkeypatch):
    _, debug, _ = tiny_debug
    real = debug._debugger._get_operand_name_and_index
    victim = next(iter(debug._debugger.layer_statistics))

    def flaky(name):
        if name == victim:
            raise KeyError("no quantization parameters")
        return real(name)

    monkeypatch.setattr(debug._debugger, "_get_operand_name_and_index", flaky)
    layers = debug._collect()
    assert len(layers) == len(debug.layers) - 1
    missing = ({layer["layer"] for layer in debug.layers} - {layer["layer"] for layer in layers}).pop()
    assert debug.notes == [f"layer {missing}: not measured ('no quantization parameters')"]


def test_a_model_the_debugger_cannot_debug_is_one_line(monkeypatch):
    import numpy as np

    from edgecnn._tf import keras, tf
    from edgecnn.tflite.debugger import Int8Debug

    def broken(**kwargs):
        raise ValueError("Please check if the quantized model is in debug mode\nmore detail")

    monkeypatch.setattr(tf.lite.experimental, "QuantizationDebugger", broken)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)], name="seq")
    data = np.zeros((2, 4), np.float32)
    with pytest.raises(RuntimeError, match=r"^the int8 debugger failed on seq: Please check .* debug mode$"):
        Int8Debug(model, lambda: ([row[None]] for row in data), data)


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "abc"])
def test_max_int8_drop_refuses_bad_budgets_in_one_line(value):
    from edgecnn.cli import main

    res = CliRunner().invoke(main, ["optimize", "lenet5", "--max-int8-drop", value, "--no-bench"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert res.output.startswith("error: ") and res.output.count("\n") == 1, res.output
    assert "max-int8-drop" in res.output or "max_int8_drop" in res.output, res.output


def test_max_int8_drop_implies_int8_and_reads_from_recipes():
    from edgecnn.errors import UserError
    from edgecnn.settings.run_config import RunConfig

    cfg = RunConfig.from_dict({"convert": {"max_int8_drop": 0.5}})
    assert cfg.convert.precisions == ["float32", "int8"] and cfg.convert.max_int8_drop == 0.5
    with pytest.raises(UserError, match="max_int8_drop"):
        RunConfig.from_dict({"convert": {"max_int8_drop": -0.1}}).validate()


def test_int8_debug_on_something_that_is_not_a_run_is_one_line(tmp_path):
    from edgecnn.cli import main

    res = CliRunner().invoke(main, ["eval", str(tmp_path), "--int8-debug"])
    assert res.exit_code == 2 and res.output.startswith("error: ") and "config.json" in res.output
    (tmp_path / "m.tflite").write_bytes(b"x")
    res = CliRunner().invoke(main, ["eval", str(tmp_path / "m.tflite"), "--int8-debug"])
    assert res.exit_code == 2 and "run folder or a model.keras" in res.output


@pytest.mark.slow
def test_max_int8_drop_adds_an_int8_mixed_row(tmp_path):
    """The whole pipeline: per-layer report in metrics.json and report.md, int8_mixed after int8."""
    from edgecnn.pipeline import optimize
    from edgecnn.settings.run_config import RunConfig

    out = tmp_path / "lenet"
    cfg = RunConfig.from_dict({"model": {"name": "lenet5"}, "train": {"epochs": 1, "verbose": 0},
                               "convert": {"max_int8_drop": 0.0}, "bench": {"runs": 3, "warmup": 1},
                               "out": str(out)})
    lines = []
    metrics = optimize(cfg, echo=lines.append)
    rows = {r["variant"]: r for r in metrics["rows"]}
    layers = rows["int8"]["int8_layers"]
    assert layers["layers_measured"] >= 10 and layers["worst_layers"][0]["op"] in ("CONV_2D", "FULLY_CONNECTED",
                                                                                     "TANH", "SOFTMAX")
    report = (out / "report.md").read_text()
    assert "## int8 error per layer: int8" in report and f"| {layers['worst_layers'][0]['layer']} |" in report
    assert report.index("CPU: ") < report.index("| variant")
    drop = layers["val_drop_points"]
    assert ("int8_mixed" in rows) == (drop > 0)
    if drop > 0:  # seed 0, 1 epoch: 0.56 points on this machine
        assert list(rows) == ["float32", "int8", "int8_mixed"]
        mixed = rows["int8_mixed"]["int8_mixed"]
        assert mixed["within_budget"] and mixed["val_drop_points"] <= 0
        assert mixed["ranking"].startswith("output error") and mixed["output_error_gains"]
        assert "validation images" in mixed["resolution_note"]  # a budget of 0 is below one image
        assert "by chance" in rows["int8_mixed"]["note"]
        gains = mixed["output_error_gains"]  # the layers that most lower the output error come first
        helped = [g for g in (gains.get(name) for name in mixed["float_layers"]) if g is not None and g > 0]
        assert helped == sorted(helped, reverse=True)
        assert rows["int8_mixed"]["latency_median_ms"] > 0 and (out / "model_int8_mixed.tflite").is_file()
        assert "## int8_mixed: float fallback" in report


@pytest.mark.slow
@pytest.mark.parametrize("family", ["mobilenet_v2", "shufflenet_v2", "efficientnet_b0", "resnet18"])
def test_the_denylist_works_on_zoo_families(family, tmp_path):
    """Each family's worst layers can be kept in float: exactly those ops stay float."""
    import numpy as np

    from edgecnn.device.evaluate import load_interpreter
    from edgecnn.models import create_model
    from edgecnn.tflite.debugger import Int8Debug

    model = create_model(family, input_shape=(32, 32, 3), classes=10, alpha=0.25)
    data = np.random.default_rng(0).uniform(-1, 1, (8, 32, 32, 3)).astype(np.float32)
    debug = Int8Debug(model, lambda: ([row[None]] for row in data), data)
    assert len(debug.layers) > 20 and not debug.notes
    path = tmp_path / "mixed.tflite"
    path.write_bytes(debug.mixed_model([layer["tensor"] for layer in debug.layers[:2]]))
    it, _, _ = load_interpreter(path)
    tensors = {t["index"]: t for t in it.get_tensor_details()}
    float_ops = [op["op_name"] for op in it._get_ops_details()
                 if op["op_name"] not in ("QUANTIZE", "DEQUANTIZE", "DELEGATE")
                 and tensors[op["outputs"][0]]["dtype"] == np.float32]
    assert sorted(float_ops) == sorted(layer["op"] for layer in debug.layers[:2])


@pytest.mark.parametrize("drop, budget, n, expect", [
    (0.5556, 0.5, 180, "1 of 180 validation images (one image = 0.56 points"),
    (1.1111, 0.5, 180, "2 of 180 validation images"),
    (0.6, 0.5, 1000, None),  # one image is 0.1 points: the budget is measurable
    (2.0, 1.0, 100, None),
])
def test_a_budget_below_one_validation_image_is_said(drop, budget, n, expect):
    from edgecnn.tflite.debugger import budget_resolution

    line = budget_resolution(drop, budget, n)
    assert (line is None) if expect is None else (expect in line and "by chance" in line and "\n" not in line)


def test_an_op_the_converter_cannot_quantize_to_16x8_is_one_line(tmp_path):
    """MobileNetV3's HARD_SWISH has no 16x8 quantization in the converter: the run says which op, not a traceback."""
    import numpy as np

    from edgecnn._tf import keras
    from edgecnn.errors import UserError
    from edgecnn.models._layers import activation
    from edgecnn.tflite.convert import convert

    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 3))
    x = activation("hard_swish", name="hs")(keras.layers.Conv2D(4, 3)(inp))
    model = keras.Model(inp, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x)), name="hs_net")
    data = np.random.default_rng(0).uniform(-1, 1, (4, 8, 8, 3)).astype(np.float32)
    rep = lambda: ([row[None]] for row in data)  # noqa: E731
    with pytest.raises(UserError, match=r"^int16x8: the TFLite converter cannot quantize HARD_SWISH \(in hs_net\) "
                                        r"to 16-bit activations; leave out the int16x8 precision for this model$"):
        convert(model, tmp_path / "m.tflite", "int16x8", representative=rep)
    assert not (tmp_path / "m.tflite").exists()
