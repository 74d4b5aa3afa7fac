"""An ablation study's summary: summary.json and summary.md in the study root, and its plots.

Each variant's row holds ours (mean ± std over folds, and pooled over all folds' test
utterances) and, for the paper's encoders, the paper's figures with Δ = ours (mean over folds)
− paper, for every column of the study's table (Table III: CER, WER, GR, StyR, UA, WA). The
tasks study also plots the stage-1 layer weights per task (``layer_weights_stage1.png``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from metaser.experiments.layer_plots import plot_stage1_weights, stage1_curves
from metaser.experiments.paper_compare import PAPER_AUX
from metaser.experiments.report import AGGREGATION, TEST_COLUMNS, pct, write_report
from metaser.rundir import fold_dirs

__all__ = ["COLUMNS", "summarize_study", "render_ablation"]

#: the columns of each study's table, as in the paper
COLUMNS = {
    "modules": ["ua", "wa"],
    "fusion": ["cer", "wer", "gender_acc", "style_acc", "ua", "wa"],
    "tasks": ["ua", "wa"],
}
#: pooled columns shown beside the means
POOLED = ["ua", "wa"]

_TITLES = {
    "modules": "Table II layout: module ablation",
    "fusion": "Table III layout: layer fusion",
    "tasks": "Table IV layout: auxiliary-task subsets",
}


def summarize_study(base: str, study: str, variants: Iterable[dict[str, Any]], root: Path) -> dict[str, Any]:
    """Rebuild every finished variant's report and write the study's summary into ``root``.

    ``variants``: {"slug", "label", "overrides", "run_dir"} in the study's order; one without a
    finished fold is left out. Returns the summary.json document.
    """
    rows = []
    for v in variants:
        rdir = Path(v["run_dir"])
        if not fold_dirs(rdir, finished=True):
            continue
        res = write_report(rdir)
        rows.append(
            {
                "slug": v["slug"],
                "label": v["label"],
                "overrides": v["overrides"],
                "test": res["test"],
                "valid": res["valid"],
                "paper": res.get("paper"),
                "test_pooled": res.get("test_pooled"),
                "paper_row": res.get("paper_row"),
                "mean_layer_weights_by_stage": res.get("mean_layer_weights_by_stage"),
            }
        )
    summary: dict[str, Any] = {"study": study, "base": base, "variants": rows, "aggregation": AGGREGATION}
    root.mkdir(parents=True, exist_ok=True)
    if study == "tasks":
        curves = stage1_curves(rows)
        summary["stage1_layer_weights"] = curves or None
        png = root / "layer_weights_stage1.png"
        title = f"{base}: stage-1 layer weights per auxiliary task (mean over folds)"
        if not plot_stage1_weights(curves, png, title):
            png.unlink(missing_ok=True)  # a stale plot of older runs would mislead
    (root / "summary.json").write_text(json.dumps(summary, indent=2))
    (root / "summary.md").write_text(render_ablation(summary))
    return summary


def render_ablation(summary: dict[str, Any]) -> str:
    """The study's table: ours (mean ± std over folds, then pooled) and, for the paper's encoders,
    the paper's figure with the difference."""
    study = summary["study"]
    cols = COLUMNS[study]
    names = dict(TEST_COLUMNS)
    has_paper = any(v.get("paper") for v in summary["variants"])
    pooled = [c for c in POOLED if any((v.get("test_pooled") or {}).get(c) is not None for v in summary["variants"])]
    head = [names.get(c, c) for c in cols] + [f"{names.get(c, c)} pooled" for c in pooled]
    if has_paper:
        head += [f"{names.get(c, c)} paper (Δ)" for c in cols]
    lines = [
        f"# {_TITLES[study]} ({summary['base']})",
        "",
        "Mean ± std over folds, % (UA = mean per-class recall, WA = overall accuracy)."
        + (" Pooled: over all test utterances of all folds at once." if pooled else "")
        + (
            " Paper: the paper's figure for this encoder; Δ = ours (mean over folds) − paper, points."
            if has_paper
            else ""
        ),
        "",
    ]
    if study == "tasks":
        lines += [
            "| gender | speaker | style | asr | " + " | ".join(head) + " |",
            "|---|---|---|---|" + "---|" * len(head),
        ]
    else:
        lines += ["| variant | " + " | ".join(head) + " |", "|---|" + "---|" * len(head)]
    for v in summary["variants"]:
        cells = [_cell(v, c) for c in cols] + [pct((v.get("test_pooled") or {}).get(c)) for c in pooled]
        if has_paper:
            cells += [_paper_cell(v, c) for c in cols]
        if study == "tasks":
            on = set(v["slug"].split("_")) if v["slug"] != "none" else set()
            marks = " | ".join("✓" if t in on else "" for t in PAPER_AUX)
            lines.append(f"| {marks} | " + " | ".join(cells) + " |")
        else:
            lines.append(f"| {v['label']} | " + " | ".join(cells) + " |")
    if study == "tasks" and summary.get("stage1_layer_weights"):
        lines += ["", "Stage-1 layer weights per auxiliary task (mean over folds): layer_weights_stage1.png", ""]
        for slug, w in summary["stage1_layer_weights"].items():
            lines.append(f"- {slug}: " + " ".join(f"L{i + 1}:{x:.3f}" for i, x in enumerate(w)))
    return "\n".join(lines) + "\n"


def _cell(v: dict, key: str) -> str:
    s = v["test"].get(key)
    if not s:
        return "–"
    return f"{pct(s['mean'])} ± {pct(s['std'])}"


def _paper_cell(v: dict, key: str) -> str:
    paper, ours = v.get("paper") or {}, v["test"].get(key)
    if key not in paper:
        return "–"
    diff = "" if not ours else f" ({100 * ours['mean'] - paper[key]:+.2f})"
    return f"{paper[key]:.2f}{diff}"
