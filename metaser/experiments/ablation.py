"""The paper's ablation studies, each variant a full CV run expressed as config overrides.

- ``modules`` (Table II): baseline, w/o ARI & Co, w/o ARI, w/o Co, full.
- ``fusion``  (Table III): weighted sum of all layers vs ARI, with CER/WER/GR/StyR/UA/WA.
- ``tasks``   (Table IV): all 16 subsets of {gender, speaker, style, asr}; the empty one is
  "SER only", one emotion-only stage.
- ``all``: the three together. Every variant of every study writes its own run folder, but
  they share one stage store, so each distinct stage (by content key) is trained once: the
  full model is in all three studies, "w/o Co" shares stage 1 with it, "w/o ARI & Co" with
  "w/o ARI".

:func:`plan` describes a study without training anything (``metaser ablate --plan``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metaser.config import apply_overrides, to_dict
from metaser.errors import MetaserError
from metaser.experiments.ablation_summary import render_ablation, summarize_study
from metaser.experiments.grid import GridRun, run_grid
from metaser.experiments.paper_compare import PAPER_AUX, paper_figures
from metaser.training.config import RunConfig
from metaser.training.fold import is_global_zero, store_root
from metaser.training.keys import KEY_SCHEMA, manifest_digest, stage_keys
from metaser.training.stages import stage_plan

__all__ = ["STUDIES", "Variant", "variants", "study_runs", "plan", "run_ablation", "render_ablation"]

STUDIES = ("modules", "fusion", "tasks")


@dataclass
class Variant:
    slug: str
    label: str
    overrides: list[str]


def _aux_override(tasks: dict[str, float]) -> str:
    return "aux_tasks={" + ", ".join(f"{k}: {v}" for k, v in tasks.items()) + "}"


def variants(study: str, base: RunConfig) -> list[Variant]:
    """The study's variants (labels as in the paper's tables)."""
    if study == "modules":
        return [
            Variant("baseline", "Baseline", ["model.architecture=baseline"]),
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
        weights = {t: base.aux_tasks.get(t, 1.0) for t in PAPER_AUX}
        out = []
        for r in range(len(PAPER_AUX) + 1):
            for combo in itertools.combinations(PAPER_AUX, r):
                slug = "_".join(combo) if combo else "none"
                label = "SER+" + "+".join(combo) if combo else "SER only"
                out.append(Variant(slug, label, [_aux_override({t: weights[t] for t in combo})]))
        return out
    raise MetaserError(f"unknown study {study!r}: choose one of {', '.join(STUDIES)} or all")


def _studies(study: str) -> tuple[str, ...]:
    if study == "all":
        return STUDIES
    if study not in STUDIES:
        raise MetaserError(f"unknown study {study!r}: choose one of {', '.join(STUDIES)} or all")
    return (study,)


def study_root(base: RunConfig, study: str) -> Path:
    return base.run_dir / f"ablate-{study}"


def study_runs(base: RunConfig, study: str, only: list[str] | None = None) -> list[tuple[Variant, GridRun]]:
    """(variant, run) pairs of ``study``; every run shares the base run's stage store and cache."""
    vs = variants(study, base)
    if only:
        unknown = [s for s in only if s not in {v.slug for v in vs}]
        if unknown:
            raise MetaserError(
                f"--only: {', '.join(unknown)} not in study {study!r}",
                hint="variants: " + ", ".join(v.slug for v in vs),
            )
        vs = [v for v in vs if v.slug in only]
    root = study_root(base, study)
    shared = [f"cache.dir={base.cache.dir or base.run_dir / 'cache'}"]
    if base.reuse:  # one store for every variant: a stage they share is trained once
        shared.append(f"store_dir={store_root(base)}")
    out = []
    for v in vs:
        cfg = apply_overrides(base, v.overrides + [f"output_dir={root}", f"name={v.slug}", *shared])
        out.append((v, GridRun(v.slug, v.label, cfg)))
    return out


def plan(base: RunConfig, study: str, only: list[str] | None = None) -> dict[str, Any]:
    """What ``ablate`` would train, without training: the ``--plan`` JSON document.

    ``{"study", "base", "variants": [{"slug", "label", "overrides", "stages": [{"name",
    "losses", "freeze_layers", "epochs", "key"}], "paper": {"ua", "wa"} | null}], "key_schema"}``
    (the version of what a stage computes, part of every key: :data:`metaser.training.keys.KEY_SCHEMA`); with
    ``study="all"`` also ``"studies"`` and each variant's ``"study"``, plus the counts of
    stages and distinct keys.
    """
    digest = manifest_digest(base)
    out_variants = []
    for st in _studies(study):
        for v, run in study_runs(base, st, only if study != "all" else None):
            cfg = run.cfg
            keys = stage_keys(cfg, digest)
            paper = paper_figures(to_dict(cfg.model), cfg.active_aux_tasks)
            row = {
                "slug": v.slug,
                "label": v.label,
                "overrides": v.overrides,
                "stages": [
                    {
                        "name": s.name,
                        "losses": list(s.losses),
                        "freeze_layers": s.freeze_layers,
                        "epochs": s.epochs,
                        "key": keys[s.name],
                    }
                    for s in stage_plan(cfg)
                ],
                "paper": None if paper is None else {"ua": paper["ua"], "wa": paper["wa"]},
            }
            if study == "all":
                row = {"study": st, **row}
            out_variants.append(row)
    stages = [s for v in out_variants for s in v["stages"]]
    doc: dict[str, Any] = {
        "study": study,
        "base": base.name,
        "key_schema": KEY_SCHEMA,
        "variants": out_variants,
        "num_stages": len(stages),
        "num_distinct_stages": len({s["key"] for s in stages}),
    }
    if study == "all":
        doc["studies"] = list(STUDIES)
    if digest.startswith("missing:"):
        doc["note"] = f"manifest not found ({digest[8:]}): keys hash its path, not its content"
    return doc


def run_ablation(
    base: RunConfig,
    study: str,
    *,
    resume: bool = False,
    only: list[str] | None = None,
    folds: list[int] | None = None,
    launcher=None,
    on_done: Callable | None = None,
) -> dict[str, Any]:
    """Run ``study`` (or ``all``) and write each study's summary.json / summary.md."""
    studies = _studies(study)
    pairs = {st: study_runs(base, st, only if study != "all" else None) for st in studies}
    runs = [run for st in studies for _, run in pairs[st]]
    results = run_grid(runs, folds=folds, resume=resume, launcher=launcher, on_done=on_done)
    if not is_global_zero():
        return {}
    summaries = {
        st: summarize_study(
            base.name,
            st,
            (
                {"slug": v.slug, "label": v.label, "overrides": v.overrides, "run_dir": run.cfg.run_dir}
                for v, run in pairs[st]
            ),
            study_root(base, st),
        )
        for st in studies
    }
    failed = [r for r in results.values() if not r.ok]
    if failed:
        first = failed[0]
        raise MetaserError(
            f"{len(failed)} task(s) failed; first: {first.key}: {first.error}",
            hint=f"log: {first.log_path}" if first.log_path else None,
            exit_code=1,
        )
    return summaries[study] if study != "all" else {"study": "all", "studies": summaries}
