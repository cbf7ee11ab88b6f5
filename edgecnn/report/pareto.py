"""The accuracy-vs-latency picture of a table of rows, and its Pareto front.

``report.md``'s companion ``pareto.png`` (:func:`edgecnn.report.tables.write_report`):
each row a marker (area ~ file size, colour per device), and per device the rows no other
row beats on both latency and accuracy joined and labelled.

Example:
    >>> [r["l"] for r in pareto_front([{"l": 1, "a": 0.5}, {"l": 2, "a": 0.4}], "l", "a")]
    [1]
"""

from __future__ import annotations

import math
from pathlib import Path


def pareto_front(rows: list, x: str = "latency_median_ms", y: str = "tflite_accuracy") -> list:
    """The rows no other row beats: none is both at least as fast (lower ``x``) and at least
    as accurate (higher ``y``) and strictly better in one. Sorted by ``x``.

    Example:
        >>> pts = [{"l": 1, "a": 0.5}, {"l": 2, "a": 0.9}, {"l": 3, "a": 0.8}]
        >>> [p["l"] for p in pareto_front(pts, "l", "a")]
        [1, 2]
    """
    pts = [r for r in rows if isinstance(r.get(x), (int, float)) and isinstance(r.get(y), (int, float))]
    front, best = [], -math.inf
    for r in sorted(pts, key=lambda r: (r[x], -r[y])):
        if r[y] > best:
            front.append(r)
            best = r[y]
    return front


def plot_accuracy_latency(rows: list, path, title: str = "Accuracy vs latency", budget_ms=None) -> Path | None:
    """PNG of accuracy against median latency: marker area ~ file size, colour per device,
    the Pareto front joined and labelled, and ``budget_ms`` (``edgecnn search``'s latency
    budget) as a vertical line. Returns ``None`` when no row has both figures.

    Example:
        >>> from edgecnn.report.results import load_results
        >>> plot_accuracy_latency(load_results(["runs/sweep"]), "runs/sweep/pareto.png")  # doctest: +SKIP
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgecnn._io import atomic_path

    pts = [
        r
        for r in rows
        if isinstance(r.get("latency_median_ms"), (int, float)) and isinstance(r.get("tflite_accuracy"), (int, float))
    ]
    if not pts:
        return None
    sizes = [float(r.get("size_bytes") or 0) for r in pts]
    biggest = max(sizes) or 1.0
    fig, ax = plt.subplots(figsize=(9, 6), dpi=110)
    devices = sorted({str(r.get("device")) for r in pts})
    colors = plt.get_cmap("tab10")
    for i, device in enumerate(devices):
        sel = [r for r in pts if str(r.get("device")) == device]
        ax.scatter(
            [r["latency_median_ms"] for r in sel],
            [100 * r["tflite_accuracy"] for r in sel],
            s=[30 + 600 * float(r.get("size_bytes") or 0) / biggest for r in sel],
            alpha=0.55,
            color=colors(i % 10),
            edgecolors="black",
            linewidths=0.5,
            label=device,
        )
    for device in devices:
        front = pareto_front([r for r in pts if str(r.get("device")) == device])
        ax.plot(
            [r["latency_median_ms"] for r in front],
            [100 * r["tflite_accuracy"] for r in front],
            "--",
            color="black",
            linewidth=1,
            drawstyle="steps-post",
        )
        for r in front:
            ax.annotate(
                str(r.get("label", r.get("model"))),
                (r["latency_median_ms"], 100 * r["tflite_accuracy"]),
                textcoords="offset points",
                xytext=(6, -10),
                fontsize=7,
            )
    if budget_ms is not None:
        ax.axvline(budget_ms, color="red", linewidth=1.2, label=f"budget {budget_ms:g} ms")
    ax.set_xscale("log")
    ax.set_xlabel("median latency (ms, log scale)")
    ax.set_ylabel("top-1 accuracy of the .tflite (%)")
    ax.set_title(f"{title}\n(marker area ~ file size; dashed: Pareto front, labelled)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(title="device", loc="lower right", fontsize=8, markerscale=0.5)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
