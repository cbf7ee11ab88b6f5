import subprocess
import sys

import pytest
from click.testing import CliRunner

from edgecnn.cli import main


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "edgecnn", *args], capture_output=True, text=True, timeout=timeout)


def test_help_lists_the_commands():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("optimize", "list", "bench", "eval", "--verbose"):
        assert command in result.output


def test_list_names_and_table():
    runner = CliRunner()
    names = runner.invoke(main, ["list", "mobilenet*", "--names"])
    assert names.exit_code == 0 and "mobilenet" in names.output.split()
    table = runner.invoke(main, ["list", "mobilenet", "--image-size", "224"])
    assert table.exit_code == 0 and "4.23M" in table.output and "568.74M" in table.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["optimize", "mobilnet"], "unknown model 'mobilnet' (did you mean: mobilenet"),
        (["optimize", "mobilenet", "--alpha", "7"], "alpha must be between"),
        (["optimize", "mobilenet", "--data", "no/such/folder"], "not found"),
        (["optimize", "mobilenet", "--threads", "0"], "Invalid value for '--threads'"),
        (["bench", "no_such_model.tflite"], "does not exist"),
    ],
)
def test_user_mistakes_get_one_line_and_exit_2(args, message):
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_unreadable_image_in_data_folder(image_folder, tmp_path):
    (image_folder / "red" / "bad.png").write_bytes(b"not an image")
    result = run_cli("optimize", "mobilenet", "--allow-outside", "--data", str(image_folder), "--image-size", "32",
                     "--out", str(tmp_path / "run"))
    assert result.returncode == 2 and "bad.png" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_optimize_builder_arguments_from_flags():
    from edgecnn.cli.optimize import config_from_flags

    cfg = config_from_flags("mobilenet_v3_small", {"arg": ("dropout=0.1", "minimalistic=true"), "phi": None})
    assert cfg.model.args == {"dropout": 0.1, "minimalistic": True}
    assert config_from_flags("efficientnet", {"phi": 1.5}).model.args == {"phi": 1.5}
    runner = CliRunner()
    bad = runner.invoke(main, ["optimize", "mobilenet_v2", "--arg", "phi=1.5"])
    assert bad.exit_code == 2 and "unexpected argument 'phi' for mobilenet_v2" in bad.output
    assert len(bad.output.strip().splitlines()) == 1
    bad = runner.invoke(main, ["optimize", "efficientnet", "--arg", "phi"])
    assert bad.exit_code == 2 and "--arg expects KEY=VALUE" in bad.output
    bad = runner.invoke(main, ["list", "efficientnet", "--phi", "99"])
    assert bad.exit_code == 2 and "phi must be between" in bad.output


def test_optimize_writes_an_out_typed_outside_the_working_directory(tmp_path, monkeypatch):
    """--out is typed by the user: it goes anywhere, no --allow-outside (a recipe's out: is still guarded)."""
    work, out = tmp_path / "work", tmp_path / "elsewhere" / "run"
    work.mkdir()
    monkeypatch.chdir(work)
    args = ["optimize", "mlp", "--epochs", "1", "--train-fraction", "0.2", "--no-bench", "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert (out / "metrics.json").is_file() and (out / "model_float32.tflite").is_file()
    assert not any(work.iterdir())
    # Still refused in one line: an --out that is a file, or under one.
    (tmp_path / "a_file").write_text("x")
    for bad, message in ((tmp_path / "a_file", "is a file"), (tmp_path / "a_file" / "run", "cannot be created")):
        for command in (["optimize", "mlp", "--no-bench"], ["sweep", "--models", "mlp"], ["report", str(out)]):
            r = CliRunner().invoke(main, [*command, "--out", str(bad)])
            assert r.exit_code == 2 and message in r.output, (command, r.output)
            assert len(r.output.strip().splitlines()) == 1, r.output


def test_a_recipe_out_outside_the_working_directory_is_still_refused(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    recipe = work / "r.yaml"
    recipe.write_text(f"model: {{name: mlp}}\ntrain: {{epochs: 1}}\nout: {tmp_path / 'elsewhere'}\n")
    r = CliRunner().invoke(main, ["run", str(recipe), "--check"])
    assert r.exit_code == 2 and "r.yaml line 3: out" in r.output and "is outside the working directory" in r.output
    assert "--allow-outside" in r.output and len(r.output.strip().splitlines()) == 1
    assert CliRunner().invoke(main, ["run", str(recipe), "--check", "--allow-outside"]).exit_code == 0
    typed = CliRunner().invoke(main, ["run", str(recipe), "--check", "--set", f"out={tmp_path / 'mine'}"])
    assert typed.exit_code == 0, typed.output
