"""The report's figures: the pooled confusion matrix and the selected model's learned layer weights
(the per-stage curves of stage 1 are :mod:`metaser.experiments.layer_plots`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["pct", "plot_confusion", "plot_layer_weights"]


def pct(x: float | None) -> str:
    """A fraction as a percentage with two decimals ("–" for None)."""
    return "–" if x is None else f"{100 * x:.2f}"


def plot_confusion(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = res["pooled_confusion"]
    n = len(cm)
    fig, ax = plt.subplots(figsize=(1.2 * n + 2, 1.2 * n + 1.5))
    norm = [[v / max(sum(r), 1) for v in r] for r in cm]
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            ax.text(
                j,
                i,
                f"{cm[i][j]}\n{100 * norm[i][j]:.0f}%",
                ha="center",
                va="center",
                color="white" if norm[i][j] > 0.5 else "black",
                fontsize=9,
            )
    ax.set_xticks(range(n), res["classes"])
    ax.set_yticks(range(n), res["classes"])
    ax.set_xlabel("predicted")
    ax.set_ylabel("reference")
    ua = res["test"].get("ua", {}).get("mean")
    ax.set_title(f"{res['run']}: pooled over {len(res['folds'])} folds (UA {pct(ua)}%)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_layer_weights(res: dict[str, Any], path: Path) -> bool:
    w = res.get("mean_layer_weights")
    if not w:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3))
    ax.bar(range(1, len(w) + 1), w, color="tab:blue")
    ax.set_xlabel("transformer layer")
    ax.set_ylabel("softmax weight")
    ax.set_title(f"{res['run']}: learned layer weights (mean over folds)")
    ax.set_xticks(range(1, len(w) + 1))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
