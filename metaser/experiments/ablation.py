"""The paper's ablation studies, each variant a full CV run expressed as config overrides.

- ``modules`` (Table II): baseline, w/o ARI & Co, w/o ARI, w/o Co, full.
- ``fusion``  (Table III): weighted sum of all layers vs ARI, with CER/WER/GR/StyR/UA/WA.
- ``tasks``   (Table IV): all 16 subsets of {gender, speaker, style, asr}.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from metaser.config import apply_overrides
from metaser.errors import MetaserError
from metaser.experiments.cv import run_cv
from metaser.experiments.report import TEST_COLUMNS, _pct
from metaser.training.config import PAPER_AUX_TASKS, RunConfig
from metaser.training.fold import is_global_zero

STUDIES = ("modules", "fusion", "tasks")


@dataclass
class Variant:
    slug: str
    label: str
    overrides: list[str]


def _aux_override(tasks: dict[str, float]) -> str:
    return "aux_tasks={" + ", ".join(f"{k}: {v}" for k, v in tasks.items()) + "}"


def variants(study: str, base: RunConfig) -> list[Variant]:
    if study == "modules":
        return [
            Variant("baseline", "Baseline", ["mode=baseline", "model.architecture=baseline"]),
            Variant("wo_ari_co", "w/o ARI & Co", ["model.fusion.layers=last", "model.fusion.tasks=concat"]),
            Variant("wo_ari", "w/o ARI", ["model.fusion.layers=last"]),
            Variant("wo_co", "w/o Co", ["model.fusion.tasks=concat"]),
            Variant("full", "Full (ARI + Co)", []),
        ]
    if study == "fusion":
        return [
            Variant("weighted_sum", "Weighted sum", ["model.fusion.layers=weighted_sum"]),
            Variant("ari", "ARI", ["model.fusion.layers=ari"]),
        ]
    if study == "tasks":
        weights = {t: base.aux_tasks.get(t, 1.0) for t in PAPER_AUX_TASKS}
        out = []
        for r in range(len(PAPER_AUX_TASKS) + 1):
            for combo in itertools.combinations(PAPER_AUX_TASKS, r):
                slug = "+".join(combo) if combo else "none"
                out.append(Variant(slug.replace("+", "_"), slug, [_aux_override({t: weights[t] for t in combo})]))
        return out
    raise MetaserError(f"unknown study {study!r}: choose one of {', '.join(STUDIES)}")


def run_ablation(base: RunConfig, study: str, *, resume: bool = False,
                 on_variant: Callable[[Variant, int, int], None] | None = None) -> dict[str, Any]:
    vs = variants(study, base)
    root = Path(base.output_dir) / base.name / f"ablate-{study}"
    results = []
    for i, v in enumerate(vs, 1):
        cfg = apply_overrides(base, v.overrides + [f"output_dir={root}", f"name={v.slug}"])
        if on_variant:
            on_variant(v, i, len(vs))
        res = run_cv(cfg, resume=resume)
        if not res:  # an extra DDP process: rank 0 writes the results
            continue
        results.append({"slug": v.slug, "label": v.label, "overrides": v.overrides,
                        "test": res["test"], "valid": res["valid"]})
    if not is_global_zero():
        return {}
    summary = {"study": study, "base": base.name, "variants": results}
    (root / "summary.json").write_text(json.dumps(summary, indent=2))
    (root / "summary.md").write_text(render_ablation(summary))
    return summary


def render_ablation(summary: dict[str, Any]) -> str:
    study = summary["study"]
    cols = {"modules": ["ua", "wa"],
            "fusion": ["cer", "wer", "gender_acc", "style_acc", "ua", "wa"],
            "tasks": ["ua", "wa"]}[study]
    names = dict(TEST_COLUMNS)
    title = {"modules": "Table II layout: module ablation",
             "fusion": "Table III layout: layer fusion",
             "tasks": "Table IV layout: auxiliary-task subsets"}[study]
    lines = [f"# {title} ({summary['base']})", "",
             "Mean ± std over folds, % (UA = mean per-class recall, WA = overall accuracy).", ""]
    if study == "tasks":
        lines += ["| gender | speaker | style | asr | UA | WA |", "|---|---|---|---|---|---|"]
        for v in summary["variants"]:
            on = set(v["label"].split("+")) if v["label"] != "none" else set()
            marks = " | ".join("✓" if t in on else "" for t in PAPER_AUX_TASKS)
            lines.append(f"| {marks} | " + " | ".join(_cell(v, c) for c in cols) + " |")
    else:
        lines += ["| variant | " + " | ".join(names.get(c, c) for c in cols) + " |",
                  "|---|" + "---|" * len(cols)]
        for v in summary["variants"]:
            lines.append(f"| {v['label']} | " + " | ".join(_cell(v, c) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def _cell(v: dict, key: str) -> str:
    s = v["test"].get(key)
    if not s:
        return "–"
    return f"{_pct(s['mean'])} ± {_pct(s['std'])}"
