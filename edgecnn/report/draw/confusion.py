"""``confusion.png``: the float32 file's confusion matrix on the test split, with the class names.

Example:
    >>> plot_confusion([[5, 1], [0, 6]], ["cat", "dog"], "Confusion matrix", Path("confusion.png"))  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgecnn.report.draw._common import class_name, pyplot, save_png


def plot_confusion(confusion, names: list, title: str, path: Path) -> Path:
    """``confusion.png``: counts, coloured by the share of each true class (row)."""
    plt = pyplot()
    m = np.asarray(confusion, np.int64)
    k = len(m)
    names = [class_name(names, i) for i in range(k)]
    rows = m.sum(axis=1, keepdims=True)
    share = m / np.where(rows > 0, rows, 1)
    side = min(14.0, max(4.5, 0.45 * k + 2.5))
    fig, ax = plt.subplots(figsize=(side + 1.0, side), layout="constrained")
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    if k <= 30:
        for i in range(k):
            for j in range(k):
                if m[i, j]:
                    ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=8 if k <= 15 else 6,
                            color="white" if share[i, j] > 0.6 else "black")
        ax.set_xticks(range(k))
        ax.set_yticks(range(k))
        ax.set_xticklabels(names, rotation=45 if max(len(s) for s in names) > 3 else 0, ha="right", fontsize=8)
        ax.set_yticklabels(names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    return save_png(fig, path)
