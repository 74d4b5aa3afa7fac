"""Stage-1 layer weights of the tasks study, one curve per auxiliary task (``layer_weights_stage1.png``).

The paper motivates ARI with the WavLM paper's layer analysis (Sec. II-A-4): layers 1 and 4 carry
speaker information, 8-10 emotion, 11 text. Stage 1 is where each auxiliary task shapes the
layer weights, so the tasks study's single-task variants (and the full one) show what each task
draws from which layer. Each fold's metrics.json reports ``layer_weights_by_stage`` (the
softmax weights of each stage's selected model: L - 1 values for ARI, L for the weighted sum);
the curves are their mean over folds. Runs without that field give no curve (and no error).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["STAGE1_VARIANTS", "LAYER_ROLES", "stage1_curves", "plot_stage1_weights"]

#: the tasks-study variants whose stage-1 weights are plotted: one task each, then all four
STAGE1_VARIANTS = ("gender", "speaker", "style", "asr", "gender_speaker_style_asr")

#: the WavLM paper's layer roles the paper cites (Sec. II-A-4): (first, last layer, what)
LAYER_ROLES = ((1, 1, "speaker"), (4, 4, "speaker"), (8, 10, "emotion"), (11, 11, "text"))


def stage1_curves(variants: list[dict[str, Any]]) -> dict[str, list[float]]:
    """slug -> mean stage-1 layer weights, for the :data:`STAGE1_VARIANTS` among ``variants``
    (summary.json rows: ``slug`` and ``mean_layer_weights_by_stage``) that report them."""
    by_slug = {v["slug"]: v for v in variants}
    out = {}
    for slug in STAGE1_VARIANTS:
        w = ((by_slug.get(slug) or {}).get("mean_layer_weights_by_stage") or {}).get("stage1")
        if w:
            out[slug] = list(w)
    return out


def plot_stage1_weights(curves: dict[str, list[float]], path: Path, title: str) -> bool:
    """Write the curves to ``path`` (PNG); False (nothing written) when there is none."""
    if not curves:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(len(w) for w in curves.values())
    fig, ax = plt.subplots(figsize=(8, 3.8))
    if n >= 11:  # the roles are about a 12-layer base encoder
        for first, last, what in LAYER_ROLES:
            ax.axvspan(first - 0.4, last + 0.4, color="0.92", zorder=0)
            ax.text((first + last) / 2, 1.0, what, transform=ax.get_xaxis_transform(), ha="center", va="bottom")
    for slug, w in curves.items():
        label = "all four tasks" if slug == "gender_speaker_style_asr" else slug
        style = {"color": "black", "linewidth": 2.2} if slug == "gender_speaker_style_asr" else {}
        ax.plot(range(1, len(w) + 1), w, marker="o", label=label, **style)
    ax.axhline(1.0 / n, color="0.5", linestyle=":", linewidth=1, label="uniform")
    ax.set_xticks(range(1, n + 1))
    ax.set_xlabel("transformer layer")
    ax.set_ylabel("stage-1 layer weight")
    ax.set_title(title, pad=16)
    ax.legend(fontsize=8, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
