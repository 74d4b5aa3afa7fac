"""``metaser paper-tables``: the paper's Tables I-IV with a user's runs beside them, as one document.

:func:`build_paper_tables` places the runs (:mod:`metaser.experiments.paper_runs`) and returns
the JSON document that ``--json`` writes; :func:`metaser.experiments.paper_render.render` turns it
into Markdown. Every figure is in percent. Ours: the mean ± std over folds and the pooled figure
(over all test utterances of all folds); Δ = ours − paper in points, with ours the mean over
folds by default (``compare="pooled"`` for the other): the paper does not say how it aggregated
its folds. Runs placed with ``--encoder-as`` (not the paper's encoder) get no Δ.

Besides the tables: Table IV by number of auxiliary tasks and its single-task additions
(:mod:`metaser.paper.task_analysis`), ARI over the weighted sum (Sec. IV-C,
:func:`metaser.paper.prose.fusion_improvement`), for the paper's data and for the runs, and the
paper's prose figures recomputed (:func:`metaser.paper.prose.prose_figures`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from metaser.errors import ConfigError
from metaser.experiments.paper_compare import METRIC_NAMES
from metaser.experiments.paper_runs import PlacedRun, place_runs
from metaser.experiments.report import AGGREGATION
from metaser.paper import ENCODERS, TABLES, paper_table
from metaser.paper.prose import fusion_improvement, prose_figures
from metaser.paper.task_analysis import analyse, analyse_paper

__all__ = ["COMPARE", "PAPER_FOLDS", "build_paper_tables"]

COMPARE = ("mean", "pooled")

#: the paper's protocol: 5-fold leave-one-session-out (a run with another fold count is flagged)
PAPER_FOLDS = 5

#: the paper's figure key -> metaser's metric name
_OURS = {theirs: ours for ours, theirs in METRIC_NAMES.items()}

#: the ablation study whose run is shown first in each table (None: a plain cv run)
_OWN_STUDY = {"I": None, "II": "modules", "III": "fusion", "IV": "tasks"}


def _ours(run: PlacedRun, metrics: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """{"mean", "std", "pooled"} -> {paper metric: percent} for the metrics the run has."""
    res = run.result
    out: dict[str, dict[str, float]] = {"mean": {}, "std": {}, "pooled": {}}
    for m in metrics:
        s = res["test"].get(_OURS[m])
        if s:
            out["mean"][m] = 100 * s["mean"]
            out["std"][m] = 100 * s["std"]
        pooled = (res.get("test_pooled") or {}).get(_OURS[m])
        if pooled is not None:
            out["pooled"][m] = 100 * pooled
    return out


def _rank(run: PlacedRun, table: str) -> int:
    own = _OWN_STUDY[table]
    return 0 if run.study == own else 1 if run.study is None else 2


def _cell(table: str, row_id: str, encoder: str, runs: list[PlacedRun], compare: str) -> dict[str, Any]:
    t = paper_table(table)
    paper = dict(t.row(row_id).values[encoder])
    cands = sorted(
        (r for r in runs if r.encoder == encoder and (table, row_id) in r.cells), key=lambda r: _rank(r, table)
    )
    cell: dict[str, Any] = {
        "paper": paper,
        "run": None,
        "comparable": None,
        "n_folds": None,
        "ours": None,
        "delta": None,
        "others": [],
    }
    if not cands:
        return cell
    run, others = cands[0], cands[1:]
    ours = _ours(run, t.metrics)
    cell.update(
        run=str(run.path),
        comparable=run.comparable,
        n_folds=run.n_folds,
        ours=ours,
        others=[str(o.path) for o in others],
    )
    if run.comparable:
        cell["delta"] = {m: ours[compare][m] - paper[m] for m in t.metrics if m in ours[compare]}
    return cell


def _tables(runs: list[PlacedRun], compare: str) -> dict[str, Any]:
    out = {}
    for tid in TABLES:
        t = paper_table(tid)
        rows = []
        for r in t.rows:
            row: dict[str, Any] = {
                "id": r.id,
                "name": r.name,
                "group": r.group,
                "cv": r.cv,
                "per_encoder": r.per_encoder,
            }
            if r.per_encoder:
                row["cells"] = {e: _cell(tid, r.id, e, runs, compare) for e in ENCODERS}
            else:
                row["paper"] = dict(r.values["*"])
            rows.append(row)
        used = {c["run"] for row in rows for c in (row.get("cells") or {}).values() if c["run"]}
        out[tid] = {
            "title": t.title,
            "metrics": list(t.metrics),
            "metric_names": dict(t.metric_names),
            "note": t.note,
            "rows": rows,
            "runs": len(used),
        }
    return out


def _figure(cell: dict[str, Any], metric: str, compare: str) -> float | None:
    ours = cell.get("ours")
    return None if not ours else ours[compare].get(metric)


def _task_analysis(tables: dict[str, Any], compare: str) -> dict[str, Any]:
    """Table IV by task count and single-task additions: the paper's and ours, per metric and encoder."""
    rows = tables["IV"]["rows"]
    ours: dict[str, dict[str, Any]] = {}
    for metric in ("ua", "wa"):
        ours[metric] = {}
        for e in ENCODERS:
            values = {r["id"]: _figure(r["cells"][e], metric, compare) for r in rows}
            values = {k: v for k, v in values.items() if v is not None}
            if values:
                ours[metric][e] = analyse(values)
    return {"paper": {m: analyse_paper(m) for m in ("ua", "wa")}, "ours": ours}


def _fusion(tables: dict[str, Any], compare: str) -> dict[str, Any]:
    """ARI over the weighted sum (Sec. IV-C) in the paper and, where both rows ran, in ours."""
    rows = {r["id"]: r for r in tables["III"]["rows"]}
    paper = fusion_improvement(
        {e: rows["weighted_sum"]["cells"][e]["paper"] for e in ENCODERS},
        {e: rows["ari"]["cells"][e]["paper"] for e in ENCODERS},
    )
    ws, ari = {}, {}
    for e in ENCODERS:
        a, b = rows["weighted_sum"]["cells"][e], rows["ari"]["cells"][e]
        if a.get("ours") and b.get("ours"):
            ws[e], ari[e] = dict(a["ours"][compare]), dict(b["ours"][compare])
    return {"paper": paper, "ours": fusion_improvement(ws, ari) if ws else None}


def build_paper_tables(
    paths: Iterable[str | Path], *, encoder_as: dict[str, str] | None = None, compare: str = "mean"
) -> dict[str, Any]:
    """The ``metaser paper-tables`` document (``--json``): every value in percent.

    ``{"compare", "units", "aggregation", "tables": {"I".."IV": {"title", "metrics",
    "metric_names", "note", "runs", "rows": [{"id", "name", "group", "cv", "per_encoder",
    "cells": {encoder: {"paper", "run", "comparable", "n_folds", "ours": {"mean", "std",
    "pooled"}, "delta", "others"}}} or "paper" for prior art]}}, "runs": [...], "unplaced":
    [{"path", "reason"}], "task_analysis", "fusion_improvement", "prose"}``.
    """
    if compare not in COMPARE:
        raise ConfigError(f"compare must be one of {', '.join(COMPARE)}, got {compare!r}")
    placed, unplaced = place_runs(paths, encoder_as)
    tables = _tables(placed, compare)
    shown = {
        (c["run"], tid, row["id"])
        for tid, t in tables.items()
        for row in t["rows"]
        for c in (row.get("cells") or {}).values()
        if c["run"]
    }
    runs = [
        {
            "path": str(r.path),
            "study": r.study,
            "encoder_name": r.encoder_name,
            "encoder": r.encoder,
            "comparable": r.comparable,
            "reference": list(r.reference),
            "n_folds": r.n_folds,
            "cells": [[t, row] for t, row in r.cells],
            "shown_in": [[t, row] for t, row in r.cells if (str(r.path), t, row) in shown],
        }
        for r in placed
    ]
    doc = {
        "compare": compare,
        "units": "percent",
        "aggregation": AGGREGATION,
        "tables": tables,
        "runs": runs,
        "unplaced": unplaced,
        "task_analysis": _task_analysis(tables, compare),
        "fusion_improvement": _fusion(tables, compare),
        "prose": [f.to_dict() for f in prose_figures()],
    }
    return json.loads(json.dumps(doc))  # as --json writes it: string keys (task counts "0".."4")
