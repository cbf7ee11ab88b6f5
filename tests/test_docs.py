"""The README and docs/ say what they can prove: every shell block is run, or says why not.

Directly above every fenced shell block (```bash, ```sh, ```shell, ```console) in
README.md and docs/*.md sits one marker line:

- ``<!-- run: fast -->``: run here, in the default suite (``--help``, ``list``,
  ``run --check``: seconds);
- ``<!-- run: slow -->``: run by the slow test below (it trains; minutes);
- ``<!-- not run: REASON -->``: it needs what a test machine has not (the network, a phone,
  a Raspberry Pi, several GPUs or machines), or it is the test suite itself.

A block runs with bash (``-e -o pipefail``) in a temporary folder that holds a copy of
``recipes/``, so nothing it writes lands in the repository. ``edgecnn`` and
``edgecnn-device`` on its PATH are shims that run this checkout's code (the installed
console scripts may point at another checkout). The slow blocks of one page run in order in
one folder, so a page may train a run in one block and measure it in the next; that folder
also holds ``photos/`` and ``test_photos/`` (the digits as JPEG files, one folder per
class) and ``photo.jpg``, the image folders the pages' commands name.

The README is a door into docs/, not the house: at most ``README_MAX_LINES`` lines, and
every link it or a docs page makes into the repository resolves, anchors included.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOC_FILES = (README, *sorted((ROOT / "docs").glob("*.md")))
README_MAX_LINES = 250
SHELL_LANGUAGES = ("bash", "sh", "shell", "console")
MARKER = re.compile(r"^<!-- (?:run: (?P<run>fast|slow)|not run: (?P<reason>\S.*?)) -->$")
FENCE = re.compile(r"^```(?P<lang>[\w+-]*)\s*$")
LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")
FAST_TIMEOUT_S = 120
SLOW_TIMEOUT_S = 3600
PHOTOS_PER_CLASS = 30  # digits as JPEG files: 10 classes, enough to train and evaluate in minutes


@dataclass(frozen=True)
class ShellBlock:
    """One fenced shell block of a page, with the marker above it (None when missing)."""

    path: Path
    line: int  # the opening fence's line, 1-based
    run: str | None  # "fast", "slow", "not run", or None without a marker
    text: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def shell_blocks(path: Path) -> list[ShellBlock]:
    """The shell blocks of ``path`` in page order; a marker counts only on the line above a fence."""
    lines = path.read_text(encoding="utf-8").split("\n")
    blocks, i = [], 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), len(lines))
        if fence["lang"] in SHELL_LANGUAGES:
            marker = MARKER.match(lines[i - 1]) if i else None
            run = None if marker is None else marker["run"] or "not run"
            blocks.append(ShellBlock(path, i + 1, run, "\n".join(lines[i + 1 : end])))
        i = end + 1
    return blocks


ALL_BLOCKS = [block for path in DOC_FILES for block in shell_blocks(path)]
FAST_BLOCKS = [b for b in ALL_BLOCKS if b.run == "fast"]
SLOW_PAGES = sorted({b.path for b in ALL_BLOCKS if b.run == "slow"})


def test_every_shell_block_says_whether_a_test_runs_it():
    unmarked = [b.where for b in ALL_BLOCKS if b.run is None]
    assert unmarked == [], (
        "put <!-- run: fast -->, <!-- run: slow --> or <!-- not run: REASON --> on the line above: "
        + ", ".join(unmarked)
    )
    assert FAST_BLOCKS and SLOW_PAGES, "the docs run nothing: the markers were not read"


def test_every_marker_sits_above_a_shell_block():
    stray = []
    for path in DOC_FILES:
        lines = path.read_text(encoding="utf-8").split("\n")
        for n, line in enumerate(lines[:-1]):
            if (
                line.startswith("<!-- ")
                and ("run:" in line)
                and not (MARKER.match(line) and (f := FENCE.match(lines[n + 1])) and f["lang"] in SHELL_LANGUAGES)
            ):
                stray.append(f"{path.relative_to(ROOT)}:{n + 1}")
    assert stray == [], f"a run marker must be well formed and directly above a shell block: {stray}"


def test_the_readme_is_a_door():
    lines = README.read_text(encoding="utf-8").split("\n")
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move sections into docs/"
    text = "\n".join(lines)
    assert "docs/show_lenet5_grad_cam.png" in text  # one picture of `edgecnn show` (issue 27)
    for page in (ROOT / "docs").glob("*.md"):
        if page.name != "README.md":
            assert f"docs/{page.name}" in text, f"README.md's contents list misses docs/{page.name}"


def test_ci_runs_the_readmes_test_command():
    commands = [b.text.strip() for b in shell_blocks(README) if "pytest" in b.text]
    assert len(commands) == 1, "README.md has one test command, in one block"
    assert f"step tests {commands[0]}\n" in (ROOT / ".ci" / "run").read_text()


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors of a Markdown page (lower case, punctuation dropped, spaces to -)."""
    seen, anchors = {}, set()
    text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.S | re.M)
    for heading in re.findall(r"^#{1,6} (.+)$", text, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def test_every_link_into_the_repository_resolves():
    broken = []
    for page in DOC_FILES:
        text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.S | re.M)
        for target in LINK.findall(text):
            if re.match(r"[a-z]+:", target):
                continue  # https://..., mailto:
            file, _, anchor = target.partition("#")
            dest = (page.parent / file).resolve() if file else page
            if not dest.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert broken == [], broken


@pytest.fixture(scope="module")
def shims(tmp_path_factory) -> dict:
    """The environment a block runs in: ``edgecnn`` and ``edgecnn-device`` run this checkout."""
    bin_dir = tmp_path_factory.mktemp("bin")
    for name, module in (("edgecnn", "edgecnn"), ("edgecnn-device", "edgecnn.device.cli")):
        shim = bin_dir / name
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m {module} "$@"\n')
        shim.chmod(0o755)
    env = dict(os.environ, PYTHONPATH=str(ROOT), PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    env["EDGECNN_REPO"] = str(ROOT)
    return env


def _workdir(root: Path) -> Path:
    shutil.copytree(ROOT / "recipes", root / "recipes")
    return root


def _run(block: ShellBlock, cwd: Path, env: dict, timeout: int) -> None:
    done = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", block.text],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"{block.where} exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


@pytest.mark.parametrize("block", FAST_BLOCKS, ids=[b.where for b in FAST_BLOCKS])
def test_fast_block_runs(block, shims, tmp_path):
    _run(block, _workdir(tmp_path), shims, FAST_TIMEOUT_S)


def _photos(root: Path) -> None:
    """``photos/`` and ``test_photos/`` (digits as 32x32 JPEG files, one folder per class), ``photo.jpg``."""
    from PIL import Image

    from edgecnn.data.dataset import load_dataset

    data = load_dataset("digits", image_size=32, channels=3, val_split=0.0, test_split=0.0)
    count: dict[int, int] = {}
    for i, (image, label) in enumerate(zip(data.x["train"], data.y["train"])):
        n = count[int(label)] = count.get(int(label), 0) + 1
        if n > 2 * PHOTOS_PER_CLASS:
            continue
        folder = root / ("photos" if n <= PHOTOS_PER_CLASS else "test_photos") / data.class_names[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i:04d}.jpg", quality=95)
    shutil.copy(next((root / "test_photos" / data.class_names[0]).iterdir()), root / "photo.jpg")


@pytest.mark.slow
@pytest.mark.exhaustive
@pytest.mark.parametrize("page", SLOW_PAGES, ids=[p.name for p in SLOW_PAGES])
def test_slow_blocks_of_a_page_run_in_order(page, shims, tmp_path):
    cwd = _workdir(tmp_path)
    _photos(cwd)
    for block in (b for b in shell_blocks(page) if b.run == "slow"):
        _run(block, cwd, shims, SLOW_TIMEOUT_S)
