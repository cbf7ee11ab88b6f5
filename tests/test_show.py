"""``edgecnn show``: four readable PNGs from a run folder, linked from its report.md, and
one ``error:`` line for a folder it cannot use."""

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from edgecnn.cli import main
from edgecnn.report.pictures import PICTURES


@pytest.fixture(scope="module")
def shown(lenet_run, tmp_path_factory):
    """A copy of the session's LeNet-5 run (float32 + int8), shown once with the defaults."""
    run = tmp_path_factory.mktemp("show") / "lenet5"
    shutil.copytree(lenet_run[0], run)
    res = CliRunner().invoke(main, ["show", str(run)])
    assert res.exit_code == 0, res.output
    return run, res.output


def _readable(path, min_side=200):
    from PIL import Image

    with Image.open(path) as image:
        assert image.format == "PNG" and min(image.size) >= min_side, (path, image.size)
        pixels = np.asarray(image.convert("RGB"), np.float32)
    assert pixels.std() > 5, f"{path} looks blank"
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 10, f"{path} has almost one colour"


def test_show_writes_four_readable_pictures(shown):
    run, output = shown
    for stem in PICTURES:
        _readable(run / "show" / f"{stem}.png")
    assert not list((run / "show").glob("*.tmp*")), "no temporary files left behind"
    assert "[5/5]" in output and "c1: int8 RMSE" in output and "Traceback" not in output


def test_report_links_the_pictures_once(shown):
    run, _ = shown
    text = (run / "report.md").read_text()
    assert text.startswith("# lenet5") and text.count("## Pictures") == 1
    for stem, caption in PICTURES.items():
        assert f"![{caption}](show/{stem}.png)" in text


def test_options_and_a_second_call_rewrite_the_section(shown, tmp_path):
    run, _ = shown
    out = tmp_path / "pics"
    res = CliRunner().invoke(main, ["show", str(run), "--out", str(out), "--layers", "c3", "--images", "2",
                                    "--seed", "3"])
    assert res.exit_code == 0, res.output
    assert "feature maps of c3 " in res.output and "on 2 test image(s)" in res.output
    for stem in PICTURES:
        _readable(out / f"{stem}.png")
    text = (run / "report.md").read_text()
    assert text.count("## Pictures") == 1 and "show/filters.png" not in text
    assert "pics/grad_cam.png" in text


def test_a_run_without_int8_shows_float32_only(shown, tmp_path):
    run = tmp_path / "float_only"
    shutil.copytree(shown[0], run, ignore=shutil.ignore_patterns("show"))
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["rows"] = [r for r in metrics["rows"] if r["variant"] == "float32"]
    (run / "metrics.json").write_text(json.dumps(metrics))
    (run / "model_int8.tflite").unlink()
    res = CliRunner().invoke(main, ["show", str(run), "--images", "1"])
    assert res.exit_code == 0, res.output
    assert "int8 RMSE" not in res.output
    _readable(run / "show" / "feature_maps.png")


def _one_error_line(res, *words):
    """Exit 2, stderr one ``error:`` line (progress lines before it go to stdout), no traceback."""
    assert res.exit_code == 2, res.output
    assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1, res.stderr
    assert "Traceback" not in res.output
    for word in words:
        assert word in res.output, res.output


def test_bad_run_folders_are_one_error_line(shown, tmp_path):
    _one_error_line(CliRunner().invoke(main, ["show", str(tmp_path / "nope")]), "does not exist")
    (tmp_path / "config.json").write_text("{}")
    _one_error_line(CliRunner().invoke(main, ["show", str(tmp_path)]), "no metrics.json")
    res = CliRunner().invoke(main, ["show", str(shown[0]), "--layers", "c1,c9", "--out", str(tmp_path / "x")])
    _one_error_line(res, "no layer 'c9'", "did you mean", "c1")
    res = CliRunner().invoke(main, ["show", str(shown[0]), "--layers", "f6", "--out", str(tmp_path / "x")])
    _one_error_line(res, "'f6' has no feature maps")
