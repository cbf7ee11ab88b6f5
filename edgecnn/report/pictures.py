"""Pictures of what a trained run has learned: ``edgecnn show RUN``.

Four PNGs, written into ``<run>/show/`` and linked from the run's ``report.md`` (a
"Pictures" section, rewritten in place on every call):

- ``filters.png``: the first convolution's kernels beside classic hand-made filters built
  here with numpy, Sobel x/y (Sobel & Feldman 1968, at the learned kernel's size as
  OpenCV extends it) and even Gabor filters at 0, 45, 90 and 135 degrees (Daugman 1985,
  JOSA A 2(7)). Each learned kernel is captioned with the hand-made one it correlates
  with most: the first layers of CNNs learn edge and Gabor-like detectors (Krizhevsky et
  al. 2012; Zeiler & Fergus 2014, arXiv:1311.2901).
- ``feature_maps.png``: the outputs of chosen layers for one test image, computed by the
  run's own ``.tflite`` files (float32 over int8), read with TFLite's
  ``experimental_preserve_all_tensors``; a Keras layer is found by the converter's tensor
  names (:func:`edgecnn.tflite.debugger.short_layer_name`). Each int8 map carries its error:
  the RMSE against the float map in percent of the float map's range, and in int8 steps.
- ``grad_cam.png``: Grad-CAM (Selvaraju et al. 2017, arXiv:1610.02391) of the float
  Keras model for a few test images, with their true and predicted labels.
- ``confusion.png``: the float32 file's confusion matrix on the test split (from
  ``metrics.json``), with the class names.

matplotlib draws with its Agg backend (no display needed) and every PNG is written
atomically (:func:`edgecnn._io.atomic_path`).

Example:
    >>> pictures = show_run("runs/lenet5-32px")  # doctest: +SKIP
    >>> sorted(pictures)                         # doctest: +SKIP
    ['confusion', 'feature_maps', 'filters', 'grad_cam']
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import numpy as np

from edgecnn.errors import UserError
from edgecnn.report.draw._common import class_name
from edgecnn.report.draw.confusion import plot_confusion
from edgecnn.report.draw.feature_maps import (
    check_layers,
    default_layers,
    map_error,
    plot_feature_maps,
    tflite_layer_outputs,
)
from edgecnn.report.draw.filters import first_conv, plot_filters
from edgecnn.report.draw.grad_cam import grad_cam, plot_grad_cam

#: The PNGs :func:`show_run` writes, in report order: file stem -> caption in report.md.
PICTURES = {
    "filters": "First-layer filters beside hand-made ones",
    "feature_maps": "Feature maps, float32 and int8",
    "grad_cam": "Grad-CAM of the float model",
    "confusion": "Confusion matrix",
}
#: The heading of the section :func:`link_pictures` keeps in report.md.
SECTION = "## Pictures"


def _read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot be read ({str(exc).splitlines()[0][:120]}); {what}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: not a JSON object; {what}")
    return data


def check_run(run) -> dict:
    """What :func:`show_run` needs from a run folder, checked before any work: the folder,
    ``config.json``, ``metrics.json`` (a finished run), ``preprocess.json`` and the float32
    row's file. Returns ``{"run", "metrics", "preprocess", "rows"}``, ``rows`` by
    variant. Raises :class:`UserError` (one line) on anything missing.

    Example:
        >>> check_run("no/such/run")
        Traceback (most recent call last):
        ...
        edgecnn.errors.UserError: run folder no/such/run does not exist
    """
    run = Path(run)
    if not run.exists():
        raise UserError(f"run folder {run} does not exist")
    if not run.is_dir():
        raise UserError(f"{run} is not a folder; edgecnn show takes a run folder (runs/<name>)")
    if not (run / "config.json").is_file():
        raise UserError(f"{run} holds no config.json: not a run folder")
    if not (run / "metrics.json").is_file():
        raise UserError(f"{run} holds no metrics.json: the run did not finish (run it again to complete it)")
    metrics = _read_json(run / "metrics.json", "run the pipeline again to rewrite it")
    _read_json(run / "config.json", "not a run folder")  # checked before any work; load_run reads it
    spec = _read_json(run / "preprocess.json", "run the pipeline again") if (run / "preprocess.json").is_file() else {}
    rows = {r.get("variant"): r for r in metrics.get("rows") or [] if isinstance(r, dict)}
    if "float32" not in rows:
        raise UserError(f"{run / 'metrics.json'} has no float32 row: nothing to show")
    for variant in ("float32", "int8"):
        listed = run / str(rows.get(variant, {}).get("file"))
        if variant in rows and not listed.is_file():
            raise UserError(f"{listed} is missing (listed in metrics.json's {variant} row)")
    return {"run": run, "metrics": metrics, "preprocess": spec, "rows": rows}


def pick_images(data, count: int, seed: int) -> tuple:
    """``count`` test images drawn with ``seed``: ``(x, y, positions)``, ``x`` normalized.

    A streamed split (:class:`edgecnn.data.contract.LazySplit`) is read in order up to the last
    chosen position only."""
    split = data.normalized("test")
    labels = np.asarray(data.y["test"])
    n = len(labels)
    if n == 0:
        raise UserError("the run has no test images (data.test_split 0): nothing to show Grad-CAM or feature maps on")
    rng = np.random.default_rng(seed)
    positions = np.sort(rng.choice(n, size=min(int(count), n), replace=False))
    if isinstance(split, np.ndarray):
        return split[positions].astype(np.float32), labels[positions], positions
    wanted, xs, ys, kept, i = set(int(p) for p in positions), [], [], [], 0
    for xb, yb in split.batches(64):
        for x, y in zip(xb, yb):
            if i in wanted:
                xs.append(x)
                ys.append(y)
                kept.append(i)
            i += 1
        if i > positions[-1]:
            break
    if not xs:
        raise UserError("none of the chosen test images could be read")
    return np.stack(xs).astype(np.float32), np.asarray(ys), np.asarray(kept)


def pictures_section(links: dict) -> str:
    """The "Pictures" section of report.md: ``links`` maps captions to relative paths.

    Example:
        >>> print(pictures_section({"Confusion matrix": "show/confusion.png"}))
        ## Pictures
        <BLANKLINE>
        Drawn by `edgecnn show` from this run's files.
        <BLANKLINE>
        ### Confusion matrix
        <BLANKLINE>
        ![Confusion matrix](show/confusion.png)
        <BLANKLINE>
    """
    lines = [SECTION, "", "Drawn by `edgecnn show` from this run's files.", ""]
    for caption, link in links.items():
        lines += [f"### {caption}", "", f"![{caption}]({link})", ""]
    return "\n".join(lines)


def with_pictures(text: str, links: dict) -> str:
    """``text`` (a report.md) with its "Pictures" section replaced by one for ``links``, or
    that section appended: running it twice gives the same text.

    Example:
        >>> once = with_pictures("# run\\n\\n## Ops\\n\\n- x\\n", {"A": "show/a.png"})
        >>> with_pictures(once, {"A": "show/a.png"}) == once
        True
        >>> once.count("## Pictures"), once.index("## Ops") < once.index("## Pictures")
        (1, True)
    """
    lines = text.rstrip("\n").split("\n") if text.strip() else []
    if SECTION in lines:
        start = lines.index(SECTION)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        lines = lines[:start] + lines[end:]
    while lines and not lines[-1].strip():
        lines.pop()
    body = "\n".join(lines)
    return (body + "\n\n" if body else "") + pictures_section(links).rstrip("\n") + "\n"


def link_pictures(run: Path, paths: dict) -> Path:
    """Rewrite ``<run>/report.md`` with a "Pictures" section linking ``paths``
    (``{stem: png}``, in :data:`PICTURES` order); the rest of the report is kept."""
    from edgecnn._io import write_text

    report = run / "report.md"
    text = report.read_text() if report.is_file() else f"# {run.name}\n"
    links = {}
    for stem, png in paths.items():
        links[PICTURES[stem]] = Path(os.path.relpath(png, run)).as_posix()
    write_text(report, with_pictures(text, links))
    return report


def show_run(run, out=None, layers: list | None = None, images: int = 4, seed: int = 0,
             echo: Callable = print) -> dict:
    """Write the four pictures of the run folder ``run`` into ``out`` (default ``<run>/show``)
    and link them from ``<run>/report.md``; returns ``{stem: path}`` (see the module docstring).

    ``layers``: the Keras layers whose feature maps are shown (default
    :func:`default_layers`); ``images``: how many test images Grad-CAM draws; ``seed``: which.
    Any mistake (no such folder, an unfinished run, an unknown layer) is a :class:`UserError`.
    """
    from edgecnn._io import run_lock

    found = check_run(run)
    run = found["run"]
    out = Path(out) if out is not None else run / "show"
    if images < 1:
        raise UserError(f"images must be at least 1, got {images}")
    with run_lock(run, "edgecnn show"):
        return _show(found, out, layers, images, seed, echo)


def _show(found: dict, out: Path, layers, images: int, seed: int, echo: Callable) -> dict:
    from edgecnn.report.run import load_run

    run, rows, spec = found["run"], found["rows"], found["preprocess"]
    echo(f"[1/5] loading the model and the test split of {run}")
    _, data, model = load_run(run)  # the same reading of a finished run as eval --explain
    names = list(spec.get("class_names") or data.class_names)
    layers = check_layers(model, layers) if layers else default_layers(model)
    x, y, positions = pick_images(data, images, seed)
    paths = {}

    echo("[2/5] filters: the first convolution beside Sobel and Gabor filters")
    conv = first_conv(model)
    if conv is None:
        echo("      no Conv2D in the model: no filter picture")
    else:
        paths["filters"] = plot_filters(conv, out / "filters.png")

    echo(f"[3/5] feature maps of {', '.join(layers) or 'no layer'} from the .tflite files (one test image)")
    if layers:
        output_name = model.output_names[0] if len(model.outputs) == 1 else None
        float_file = run / rows["float32"]["file"]
        int8_file = run / rows["int8"]["file"] if "int8" in rows else None
        floats = tflite_layer_outputs(float_file, x[0], layers, output_name)
        missing = [name for name in layers if name not in floats]
        if missing:
            raise UserError(f"{float_file.name} holds no tensor for layer(s) {', '.join(missing)} (the converter "
                            "folded them away); choose another --layers")
        int8s = tflite_layer_outputs(int8_file, x[0], layers, output_name) if int8_file else {}
        maps = {name: {"float": floats[name], "int8": int8s.get(name), "error": None} for name in layers}
        for m in maps.values():
            if m["int8"] is not None and m["int8"]["map"].shape == m["float"]["map"].shape:
                m["error"] = map_error(m["float"]["map"], m["int8"]["map"], m["int8"]["scale"])
        note = "float32 over int8" if int8_file else "this run has no int8 file: float32 only"
        caption = f"input: test #{int(positions[0])}\ntrue: {class_name(names, int(y[0]))}"
        paths["feature_maps"] = plot_feature_maps(x[0], spec, caption, maps, out / "feature_maps.png", note)
        for name, m in maps.items():
            if m["error"] and m["error"]["relative"] is not None:
                echo(f"      {name}: int8 RMSE {100 * m['error']['relative']:.1f}% of the float range"
                     + (f" ({m['error']['steps']:.2f} steps)" if m["error"]["steps"] else ""))

    echo(f"[4/5] Grad-CAM of the float model on {len(x)} test image(s)")
    cams, probs, cam_layer = grad_cam(model, x)
    paths["grad_cam"] = plot_grad_cam(x, spec, cams, probs, y, names, cam_layer, out / "grad_cam.png")

    echo("[5/5] confusion matrix of the float32 file")
    row = rows["float32"]
    confusion = row.get("confusion")
    if not confusion:
        from edgecnn.device.evaluate import evaluate_tflite

        echo("      not in metrics.json: evaluating the float32 file on the test split")
        confusion = evaluate_tflite(run / row["file"], data.normalized("test"), data.y["test"])["confusion"]
    acc = row.get("tflite_accuracy")
    title = (f"Confusion matrix: {row['file']} on the test split"
             + (f" (top-1 {100 * acc:.1f}%)" if isinstance(acc, (int, float)) else "") + "\nrows: true class; "
             "columns: predicted")
    paths["confusion"] = plot_confusion(confusion, names, title, out / "confusion.png")

    ordered = {stem: paths[stem] for stem in PICTURES if stem in paths}
    report = link_pictures(run, ordered)
    echo(f"pictures: {out}  (linked from {report})")
    return ordered
