"""``edgecnn search``: pruning before training, successive halving, resume, latency sources, user mistakes.

Digits with lenet5 and mlp (tiny, 1 epoch); the latency sources other than this machine
are faked: a device command that is a small Python script, and a latency table object
monkeypatched in for :class:`edgecnn.device.latency_model.LatencyTable`.
"""

from __future__ import annotations

import json
import sys
import textwrap
import types
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgecnn.search import SearchSpec, run_search
from edgecnn.search import train as search_train
from edgecnn.search.engine import STATE_FILE, State

TINY = {"train": {"batch_size": 64}, "data": {"train_fraction": 0.3}}


def _spec(tmp_path, **kw) -> SearchSpec:
    base = {"families": ["lenet5", "mlp"], "budget_ms": 100.0, "sizes": [32], "precisions": ["float32", "int8"],
            "epochs": 1, "eta": 2, "rungs": 2, "base": TINY, "out": str(tmp_path / "search"), "final": False}
    return SearchSpec(**{**base, **kw})


SIZES_KB = {"lenet5": 60, "mlp": 650}  # roughly their 32 px files


def _fake_latency(monkeypatch, ms_by_group: dict, calls: list | None = None):
    """Latency by family (the file's name starts with it), without converting or benchmarking:
    each candidate's "file" is that many KB of zeros."""
    from edgecnn.search import latency
    from edgecnn.search.latency import Timer

    def fake_build(cand, data, path, model=None):
        Path(path).write_bytes(bytes(1024 * SIZES_KB[cand.model]))
        return path

    def fake_time(self, path):
        if calls is not None:
            calls.append(Path(path).name)
        group = next(g for g in ms_by_group if Path(path).name.startswith(g))
        return {"latency_ms": ms_by_group[group], "latency_source": "local", "estimate": False}

    monkeypatch.setattr(latency, "untrained_model", lambda cand, data: None)
    monkeypatch.setattr(latency, "build_tflite", fake_build)
    monkeypatch.setattr(Timer, "time", fake_time)


def _fake_training(monkeypatch, val_by_group: dict, calls: list, seconds_per_epoch: float = 0.05):
    """Training that records its calls and returns the given validation accuracy; each run
    says it took ``seconds_per_epoch`` per epoch (the search's time budget counts it)."""

    def fake(spec, group, rung, echo, epochs=None, before=0):
        calls.append((group["name"], rung))
        val = val_by_group.get(group["name"], 0.5) + rung / 100
        results = {p: {"val": val, "test": 0.5, "file": f"model_{p}.tflite"} for p in group["precisions"]}
        point = search_train.run_point(spec, group, rung, epochs)
        # a rung names its epochs; the final run takes the pipeline's (resolving a rung would
        # look for the previous rung's run folder, which the fake does not write)
        ran = point.config["train"].get("epochs") or int(search_train.resolved_config(point)["train"]["epochs"])
        return {"kind": "trained", "group": group["name"], "rung": rung, "epochs": before + ran, "epochs_run": ran,
                "status": "ok", "run": str(point.out), "config": point.config, "results": results,
                "seconds": seconds_per_epoch * ran, "final": rung >= spec.rungs}

    monkeypatch.setattr(search_train, "train_group", fake)


def test_over_budget_candidates_are_pruned_untrained(tmp_path, monkeypatch):
    trained, timed = [], []
    _fake_latency(monkeypatch, {"lenet5": 0.5, "mlp": 9.0}, timed)
    _fake_training(monkeypatch, {"lenet5-a1.00-32px": 0.8}, trained)
    spec = _spec(tmp_path, families=["lenet5", "mlp"], widths=[1.0], sizes=[32, 48], budget_ms=1.0)
    result = run_search(spec, echo=lambda *_: None)
    assert {g for g, _ in trained} == {"lenet5-a1.00-32px", "lenet5-a1.00-48px"}  # mlp was never trained
    status = {r["name"]: r["status"] for r in result["rows"]}
    assert status["mlp-a1.00-32px-int8"].startswith("pruned untrained: 9.00 ms > 1 ms")
    # mlp at 48 px is no faster than at 32 px, already over: not even built or timed
    assert not any(name.startswith("mlp-a1.00-48px") for name in timed)
    assert status["mlp-a1.00-48px-int8"] == "pruned untrained: no faster than mlp-a1.00-32px-int8 (over budget)"
    assert result["winner"]["name"] == "lenet5-a1.00-32px-float32"
    assert result["choice"].startswith("chose lenet5 a1 32px float32: 81.0% val")
    assert "<= 1 ms budget" in result["choice"]
    assert Path(result["paths"]["markdown"]).is_file() and Path(result["paths"]["csv"]).is_file()


def test_size_limit_prunes_too(tmp_path, monkeypatch):
    trained = []
    _fake_latency(monkeypatch, {"lenet5": 0.5, "mlp": 0.5})
    _fake_training(monkeypatch, {"lenet5-a1.00-32px": 0.8, "mlp-a1.00-32px": 0.9}, trained)
    spec = _spec(tmp_path, widths=[1.0], max_size_kb=300)
    result = run_search(spec, echo=lambda *_: None)
    assert all(g.startswith("lenet5") for g, _ in trained)
    assert any("KB >" in r["status"] for r in result["rows"] if r["model"] == "mlp")


def test_successive_halving_promotes_the_best(tmp_path, monkeypatch):
    trained = []
    groups = {"lenet5-a0.50-32px": 0.6, "lenet5-a1.00-32px": 0.9, "mlp-a0.50-32px": 0.7, "mlp-a1.00-32px": 0.5}
    _fake_latency(monkeypatch, {"lenet5": 0.5, "mlp": 0.5})
    _fake_training(monkeypatch, groups, trained)
    spec = _spec(tmp_path, widths=[0.5, 1.0], precisions=["float32"], eta=2, rungs=3)
    result = run_search(spec, echo=lambda *_: None)
    rung = {r: sorted(g for g, k in trained if k == r) for r in range(3)}
    assert rung[0] == sorted(groups)
    assert rung[1] == ["lenet5-a1.00-32px", "mlp-a0.50-32px"]  # the top half
    assert rung[2] == ["lenet5-a1.00-32px"]
    assert result["winner"]["name"] == "lenet5-a1.00-32px-float32" and result["winner"]["epochs"] == 4


@pytest.mark.parametrize("budget_s, rung1", [(1000, {"lenet5-a1.00-32px": 2, "mlp-a1.00-32px": 2}),
                                             (75, {"lenet5-a1.00-32px": 2}), (30, {"lenet5-a1.00-32px": 1})])
def test_a_later_rung_trains_the_leaders_that_fit_the_time_left(tmp_path, monkeypatch, budget_s, rung1):
    """Each run says it took 25 s an epoch (fake: the clock hardly moves, so the whole budget
    is left after rung 0); rung 1 wants 2 more epochs (50 s) for each promoted group, best first."""
    _fake_latency(monkeypatch, {"lenet5": 0.5, "mlp": 0.5})
    trained = []
    _fake_training(monkeypatch, {"lenet5-a1.00-32px": 0.9, "mlp-a1.00-32px": 0.8}, trained, seconds_per_epoch=25)
    spec = _spec(tmp_path, widths=[0.5, 1.0], precisions=["float32"], epochs=2, eta=2, rungs=2,
                 time_budget_s=budget_s)  # 4 groups, the best 2 promoted
    result = run_search(spec, echo=lambda *_: None)
    state = State(Path(spec.out) / STATE_FILE)
    assert state.plan(1) == rung1
    assert [g for g, r in trained if r == 1] == list(rung1)
    best = rung1["lenet5-a1.00-32px"]
    assert result["winner"]["epochs"] == 2 + best  # two at rung 0, then what fitted


@pytest.mark.parametrize("budget_s, final", [(1000, True), (100, False)])
def test_the_best_group_is_trained_once_more_in_full(tmp_path, monkeypatch, budget_s, final):
    """After the rungs, the best group trains again from its first weights with the
    pipeline's own schedule (lenet5 from scratch: its default epochs, at 5 s each here),
    when that fits the time left."""
    _fake_latency(monkeypatch, {"lenet5": 0.5, "mlp": 0.5})
    trained, lines = [], []
    _fake_training(monkeypatch, {"lenet5-a1.00-32px": 0.9, "mlp-a1.00-32px": 0.8}, trained, seconds_per_epoch=5)
    spec = _spec(tmp_path, widths=[1.0], precisions=["float32"], rungs=2, final=True, time_budget_s=budget_s)
    result = run_search(spec, echo=lines.append)
    point = search_train.run_point(spec, {"name": "lenet5-a1.00-32px", "model": "lenet5", "alpha": 1.0, "size": 32,
                                          "precisions": ["float32"], "weights": None}, spec.rungs)
    assert point.out == Path(spec.out) / "final" / "lenet5-a1.00-32px"
    assert "epochs" not in point.config["train"] and point.config["model"].get("weights") is None
    epochs = int(search_train.resolved_config(point)["train"]["epochs"])
    assert 5 * epochs > 100  # so the 100 s budget cannot hold it, and the 1000 s one can
    if final:
        assert trained[-1] == ("lenet5-a1.00-32px", 2)
        assert result["winner"]["status"] == "trained in full (final)" and result["winner"]["run"] == str(point.out)
    else:  # lenet5's default epochs at 5 s do not fit the 100 s budget: the rung runs stand
        assert all(r < 2 for _, r in trained) and result["winner"]["status"] == "trained, rung 1"
        assert any(line.startswith(f"final: not enough time left to train lenet5-a1.00-32px in full ({epochs} epochs")
                   for line in lines)


def test_a_rung_plan_is_kept_for_a_resume_and_made_again_for_more_time(tmp_path, monkeypatch):
    """A shortened rung-1 plan: the same search again trains nothing new; with a larger
    --time-budget the rung is planned again, in full."""
    _fake_latency(monkeypatch, {"lenet5": 0.5, "mlp": 0.5})
    trained = []
    _fake_training(monkeypatch, {"lenet5-a1.00-32px": 0.9, "mlp-a1.00-32px": 0.8}, trained, seconds_per_epoch=25)
    spec = _spec(tmp_path, widths=[0.5, 1.0], precisions=["float32"], epochs=2, eta=2, rungs=2, time_budget_s=30)
    run_search(spec, echo=lambda *_: None)
    assert [(g, r) for g, r in trained if r == 1] == [("lenet5-a1.00-32px", 1)]
    state_file = Path(spec.out) / STATE_FILE
    assert State(state_file).trained("lenet5-a1.00-32px", 1)["epochs"] == 3  # 2, then the 1 that fitted
    del trained[:]
    run_search(spec, echo=lambda *_: None)
    assert trained == []  # planned and trained: nothing redone
    spec.time_budget_s = 10_000
    run_search(spec, echo=lambda *_: None)
    assert sorted(trained) == [("lenet5-a1.00-32px", 1), ("mlp-a1.00-32px", 1)]
    assert State(state_file).trained("lenet5-a1.00-32px", 1)["epochs"] == 4


def test_a_rung_continues_from_the_previous_runs_weights(tmp_path):
    spec = _spec(tmp_path, epochs=2, eta=3)
    group = {"name": "mlp-a1.00-32px", "model": "mlp", "alpha": 1.0, "size": 32, "precisions": ["float32"],
             "weights": None}
    first, second = search_train.run_point(spec, group, 0), search_train.run_point(spec, group, 1)
    assert first.config["train"]["epochs"] == 2 and first.config["model"].get("weights") is None
    assert second.config["train"]["epochs"] == 4  # 6 in all, 2 of them done
    assert second.config["model"]["weights"] == str(first.out)
    assert second.config["bench"]["enabled"] is False


def test_a_killed_search_resumes_without_redoing_work(tmp_path, monkeypatch):
    """Killed during the second training: the same search again measures nothing and trains
    only what was not trained."""
    measured, trained = [], []
    _fake_latency(monkeypatch, {"lenet5": 0.5, "mlp": 0.6}, measured)
    _fake_training(monkeypatch, {"lenet5-a1.00-32px": 0.7, "mlp-a1.00-32px": 0.9}, trained)
    fake = search_train.train_group
    spec = _spec(tmp_path, widths=[1.0], precisions=["float32"], rungs=2)

    def killed_at_the_second(spec, group, rung, echo, **kw):
        if trained:
            raise KeyboardInterrupt
        return fake(spec, group, rung, echo, **kw)

    monkeypatch.setattr(search_train, "train_group", killed_at_the_second)
    with pytest.raises(KeyboardInterrupt):
        run_search(spec, echo=lambda *_: None)
    state = State(Path(spec.out) / STATE_FILE)
    assert [r["kind"] for r in state.records] == ["latency", "latency", "trained"]
    assert len(measured) == 2 and trained == [("lenet5-a1.00-32px", 0)]

    monkeypatch.setattr(search_train, "train_group", fake)
    result = run_search(spec, echo=lambda *_: None)
    assert len(measured) == 2  # nothing timed twice
    assert trained == [("lenet5-a1.00-32px", 0), ("mlp-a1.00-32px", 0), ("mlp-a1.00-32px", 1)]
    assert result["winner"]["name"] == "mlp-a1.00-32px-float32"


@pytest.mark.slow
def test_a_killed_search_resumes_with_real_training(tmp_path, monkeypatch):
    """Real training (mlp and lenet5, 1 epoch): killed after the first run, then the same
    search again measures nothing and trains only what was not trained."""
    measured = []
    _fake_latency(monkeypatch, {"lenet5": 0.5, "mlp": 0.6}, measured)
    spec = _spec(tmp_path, widths=[1.0], precisions=["float32"], rungs=1)
    real, runs = search_train.train_group, []

    def killed_after_one(spec, group, rung, echo, **kw):
        if runs:
            raise KeyboardInterrupt
        runs.append(group["name"])
        return real(spec, group, rung, echo, **kw)

    monkeypatch.setattr(search_train, "train_group", killed_after_one)
    with pytest.raises(KeyboardInterrupt):
        run_search(spec, echo=lambda *_: None)
    assert len(measured) == 2 and len(runs) == 1
    state = State(Path(spec.out) / STATE_FILE)
    assert [r["kind"] for r in state.records] == ["latency", "latency", "trained"]

    again = []
    monkeypatch.setattr(search_train, "train_group",
                        lambda s, g, r, e, **kw: again.append(g["name"]) or real(s, g, r, e, **kw))
    result = run_search(spec, echo=lambda *_: None)
    assert len(measured) == 2  # nothing measured twice
    assert again and runs[0] not in again  # the trained group was skipped
    winner = result["winner"]
    assert 0.0 <= winner["val_accuracy"] <= 1.0 and Path(winner["file"]).is_file()
    assert (Path(winner["run"]) / "metrics.json").is_file()  # a normal run folder


class _FakeTable:
    """What :class:`edgecnn.device.latency_model.LatencyTable` offers the search."""

    @classmethod
    def load(cls, path):
        return cls()

    def predict(self, path):
        ms = 0.002 * Path(path).stat().st_size / 1024
        return types.SimpleNamespace(ms=ms, note="from 3 ops in the table")

    def describe(self):
        return "fake table, pi4"


@pytest.fixture
def fake_table(monkeypatch, tmp_path):
    module = types.ModuleType("edgecnn.device.latency_model")
    module.LatencyTable = _FakeTable
    monkeypatch.setitem(sys.modules, "edgecnn.device.latency_model", module)
    path = tmp_path / "pi4_table.json"
    path.write_text("{}")
    return path


def test_a_latency_table_alone_gives_estimates_labelled_as_such(tmp_path, fake_table):
    lines = []
    spec = _spec(tmp_path, families=["lenet5"], widths=[1.0], precisions=["int8"], latency_table=str(fake_table))
    result = run_search(spec, echo=lines.append, plan_only=True)
    assert all(r["latency_source"] == "table (estimate)" and r["estimate"] for r in result["rows"])
    assert any("ESTIMATED from the latency table" in line and "fake table, pi4" in line for line in lines)
    assert any("(estimate)" in line for line in lines)


FAKE_DEVICE = """
import json, sys
model = sys.stdin.buffer.read()
if sys.argv[1:] != ["--json", "-"] or not model[4:8] == b"TFL3":
    sys.exit("bad call")
print(json.dumps({"status": "ok", "kind": "bench", "threads": 1, "device": "fakepi",
                  "median_ms": len(model) / 10000, "p90_ms": len(model) / 9000}))
"""


def test_the_device_command_times_each_file_and_the_table_is_compared(tmp_path, fake_table):
    script = tmp_path / "fake_device.py"
    script.write_text(textwrap.dedent(FAKE_DEVICE))
    spec = _spec(tmp_path, families=["lenet5"], widths=[1.0], precisions=["float32"], latency_table=str(fake_table),
                 device_command=f"{sys.executable} {script} --json -")
    result = run_search(spec, echo=lambda *_: None, plan_only=True)
    rows = result["rows"]
    assert all(r["latency_source"] == "command" and not r["estimate"] and r["device"] == "fakepi" for r in rows)
    sizes = {r["name"]: r["size_bytes"] for r in rows}
    assert all(abs(r["latency_ms"] - sizes[r["name"]] / 10000) < 1e-9 for r in rows)
    errors = result["prediction_errors"]
    assert errors["count"] == len(rows) and set(errors["per_candidate"]) == set(sizes)
    assert errors["median_abs_pct"] >= 0 and errors["worst"] in sizes


def _cli(args, tmp_path):
    from edgecnn.cli import main

    return CliRunner().invoke(main, ["search", *args, "--out", str(tmp_path / "s")])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--families", "mobilenett", "--budget-ms", "5"], "unknown family 'mobilenett'"),
        (["--families", "lenet5", "--budget-ms", "0"], "--budget-ms must be a positive"),
        (["--families", "lenet5", "--budget-ms", "5", "--data", "/no/such/photos"], "--data /no/such/photos: no such"),
        (["--families", "lenet5", "--budget-ms", "5", "--sizes", "32", "--device-command", "false"],
         "--device-command 'false' failed (exit 1)"),
    ],
)
def test_user_mistakes_are_one_line_and_exit_2(tmp_path, args, message):
    res = _cli(args, tmp_path)
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output
    assert len([line for line in res.output.splitlines() if "rror" in line]) == 1


def test_device_bench_reads_the_model_from_stdin(tmp_path):
    from _tiny_tflite import build_tiny_models

    from edgecnn.device.cli import main as device_main

    path = build_tiny_models(tmp_path)["int8"]
    res = CliRunner().invoke(device_main, ["bench", "--json", "--runs", "3", "-"], input=path.read_bytes())
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["status"] == "ok" and out["median_ms"] > 0
