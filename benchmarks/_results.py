"""Write one benchmark's figures into its own section of ``benchmarks/RESULTS.md``.

Each script owns a section between ``<!-- BEGIN name -->`` and ``<!-- END name -->``
markers and rewrites only that section (atomically), stamped with the machine, the date
and the exact command that produced it, so several scripts share one file safely.
"""

from __future__ import annotations

import datetime
import os
import platform
import re
import shlex
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
HEADER = "# Benchmark results\n\nEvery section below is written by the script its command names; rerun it to refresh.\n"


def machine() -> str:
    """One line describing this machine: CPU model, cores, the CPU features that decide int8 speed
    (:func:`edgecnn.device.bench.cpu_features`), OS, Python."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        from edgecnn.device.bench import cpu_features

        feats = cpu_features()
    except ImportError:
        feats = None
    flags = "features unknown" if feats is None else "CPU features: " + (" ".join(feats) or "none relevant")
    return (
        f"{cpu}, {os.cpu_count()} cores ({flags}), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def command() -> str:
    """The command line that is running, as a user would retype it."""
    return "python " + " ".join(shlex.quote(a) for a in sys.argv)


def update_section(name: str, title: str, body: str, cmd: str | None = None) -> Path:
    """Replace (or append) section ``name`` of RESULTS.md with ``body``."""
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    block = (
        f"<!-- BEGIN {name} -->\n## {title}\n\n"
        f"- Command: `{cmd or command()}`\n- Machine: {machine()}\n- Date: {stamp}\n\n"
        f"{body.rstrip()}\n<!-- END {name} -->"
    )
    text = RESULTS.read_text() if RESULTS.exists() else HEADER
    pattern = re.compile(rf"<!-- BEGIN {re.escape(name)} -->.*?<!-- END {re.escape(name)} -->", re.S)
    text = pattern.sub(lambda _m: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    tmp = RESULTS.with_suffix(".md.tmp")
    tmp.write_text(text)
    os.replace(tmp, RESULTS)
    return RESULTS
