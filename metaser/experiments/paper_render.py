"""Markdown of the ``metaser paper-tables`` document (:func:`metaser.experiments.paper_tables.build_paper_tables`).

Every table keeps the paper's columns (Wav2Vec-2.0 / HuBert / WavLM x UA, WA; Table III: CER,
WER, GR acc, StyR acc, UA, WA per encoder) and rows. In a table where at least one run is
placed, each paper row has four lines: ``ours`` (mean ± std over folds), ``pooled`` (over all
test utterances of all folds), ``paper`` and ``Δ`` (ours − paper, points). A table without a run
shows the paper's line only. "–": no run; "n/c": not comparable (``--encoder-as``).
"""

from __future__ import annotations

from typing import Any

from metaser.paper import ENCODER_NAMES, ENCODERS
from metaser.paper.prose import AUX_METRICS

__all__ = ["render"]

DASH = "–"


def _line(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _header(cells: list[str], left: int, right: int | None = None) -> list[str]:
    """Header and alignment lines: columns ``left`` .. ``right`` - 1 right-aligned (numbers)."""
    right = len(cells) if right is None else right
    align = ["---:" if left <= i < right else "---" for i in range(len(cells))]
    return [_line(cells), _line(align)]


def _n(v: float | None, sign: bool = False) -> str:
    if v is None:
        return DASH
    return f"{v:+.2f}" if sign else f"{v:.2f}"


def _ours(cell: dict[str, Any], m: str) -> str:
    ours = cell.get("ours")
    if not ours or m not in ours["mean"]:
        return DASH
    text = f"{ours['mean'][m]:.2f} ± {ours['std'][m]:.2f}"
    if not cell["comparable"]:
        text += " †"
    if cell["n_folds"] != 5:
        text += f" ({cell['n_folds']} fold{'s' if cell['n_folds'] != 1 else ''})"
    return text


def _pooled(cell: dict[str, Any], m: str) -> str:
    ours = cell.get("ours")
    return _n(ours["pooled"].get(m)) if ours else DASH


def _delta(cell: dict[str, Any], m: str) -> str:
    if not cell.get("ours"):
        return DASH
    if not cell["comparable"]:
        return "n/c"
    return _n((cell.get("delta") or {}).get(m), sign=True)


def _lines(label: str, cells: list[tuple[dict[str, Any], str]], with_ours: bool) -> list[str]:
    """The row's lines: one per kind, ``cells`` = the (cell, metric) of each column."""
    out = []
    if with_ours:
        out.append(_line([label, "ours", *(_ours(c, m) for c, m in cells)]))
        out.append(_line(["", "pooled", *(_pooled(c, m) for c, m in cells)]))
    out.append(_line(["" if with_ours else label, "paper", *(_n(c["paper"][m]) for c, m in cells)]))
    if with_ours:
        out.append(_line(["", "Δ", *(_delta(c, m) for c, m in cells)]))
    return out


def _by_encoder_columns(t: dict[str, Any]) -> list[str]:
    metrics = t["metrics"]
    names = t["metric_names"]
    out = _header(["Row", "", *(f"{ENCODER_NAMES[e]} {names[m]}" for e in ENCODERS for m in metrics)], 2)
    for row in t["rows"]:
        if not row["per_encoder"]:
            continue
        cells = [(row["cells"][e], m) for e in ENCODERS for m in metrics]
        if "{encoder}" in row["name"]:  # Table I: "Ours({encoder})" is the row of each column
            label = row["group"]
        else:
            label = f"{row['group']}: {row['name']}" if row.get("group") else row["name"]
        out += _lines(label, cells, t["runs"] > 0)
    return out


def _table_iii(t: dict[str, Any]) -> list[str]:
    metrics, names = t["metrics"], t["metric_names"]
    out = _header(["Encoder / task", "", *(names[m] for m in metrics)], 2)
    for e in ENCODERS:
        for row in t["rows"]:
            cells = [(row["cells"][e], m) for m in metrics]
            out += _lines(f"{ENCODER_NAMES[e]}: {row['name']}", cells, t["runs"] > 0)
    return out


def _prior_art(t: dict[str, Any]) -> list[str]:
    metrics, names = t["metrics"], t["metric_names"]
    out = _header(["Prior art", "CV", *(names[m] for m in metrics)], 2)
    for row in t["rows"]:
        if not row["per_encoder"]:
            out.append(_line([row["name"], row["cv"] or "", *(_n(row["paper"][m]) for m in metrics)]))
    return out


def _table(tid: str, t: dict[str, Any]) -> list[str]:
    out = [f"## Table {tid}. {t['title']}", ""]
    if tid == "I":
        out += _prior_art(t) + [""]
    out += _table_iii(t) if tid == "III" else _by_encoder_columns(t)
    if t.get("note"):
        out += ["", f"Note (Table {tid}): {t['note']}"]
    if not t["runs"]:
        out += ["", "No run placed in this table: the paper's figures only."]
    return out + [""]


def _task_counts(doc: dict[str, Any]) -> list[str]:
    ta = doc["task_analysis"]
    paper, ours = ta["paper"]["ua"], ta["ours"].get("ua", {})
    cols = []
    for e in ENCODERS:
        cols.append(f"{ENCODER_NAMES[e]} paper")
        if e in ours:
            cols.append(f"{ENCODER_NAMES[e]} ours (rows)")
    out = [
        "## Table IV by number of auxiliary tasks: mean UA",
        "",
        "Mean over the Table IV rows with k auxiliary tasks (1, 4, 6, 4, 1 rows).",
        "",
        *_header(["tasks", *cols], 1),
    ]
    for k in range(5):
        cells = []
        for e in ENCODERS:
            cells.append(_n(paper[e]["count_means"][str(k)]["mean"]))
            if e in ours:
                c = ours[e]["count_means"][str(k)]
                cells.append(f"{_n(c['mean'])} ({c['n']}/{c['of']})")
        out.append(_line([str(k), *cells]))
    return out + [""]


def _additions(doc: dict[str, Any]) -> list[str]:
    ta = doc["task_analysis"]
    out = [
        "## Single-task additions to Table IV rows that lower UA",
        "",
        "Every pair (S, S ∪ {t}) of Table IV rows: within MTL (S not empty; 28 pairs with all 16 rows) "
        "and from SER only (4 pairs). Sec. IV-D says every addition within MTL improves performance.",
        "",
        *_header(["data", "encoder", "within MTL", "from SER only", "lowering additions"], 2, 4),
    ]
    for who in ("paper", "ours"):
        for e in ENCODERS:
            a = ta[who].get("ua", {}).get(e)
            if a is None:
                continue
            s = a["additions_summary"]
            low = ", ".join(f"{x['from']} + {x['task']} ({x['delta']:+.2f})" for x in s["all"]["lowering"]) or "none"
            out.append(
                _line(
                    [
                        who,
                        ENCODER_NAMES[e],
                        f"{s['mtl']['lowers']} of {s['mtl']['of']}",
                        f"{s['from_ser_only']['lowers']} of {s['from_ser_only']['of']}",
                        low,
                    ]
                )
            )
    return out + [""]


def _fusion(doc: dict[str, Any]) -> list[str]:
    f = doc["fusion_improvement"]
    metrics = [*AUX_METRICS, "ua", "wa"]
    names = doc["tables"]["III"]["metric_names"]
    out = [
        "## ARI over the weighted sum (Table III, Sec. IV-C)",
        "",
        "Improvement of ARI over the weighted sum, mean over encoders (CER/WER as reductions): in points, "
        "and relative to the weighted sum. 'mean of the four' is the mean over encoders x the four auxiliary "
        "metrics: in points it is the paper's '5.41%'.",
        "",
        *_header(["data", "", *(names[m] for m in metrics), "mean of the four"], 2),
    ]
    for who in ("paper", "ours"):
        d = f.get(who)
        if not d:
            continue
        enc = ", ".join(ENCODER_NAMES[e] for e in d["encoders"])
        for kind, total in (("points", d["aux_mean_points"]), ("relative", d["aux_mean_relative"])):
            unit = "points" if kind == "points" else "relative %"
            cells = [_n(d["mean"][m][kind]) if m in d["mean"] else DASH for m in metrics]
            out.append(_line([f"{who} ({enc})", unit, *cells, _n(total)]))
    return out + [""]


def _prose(doc: dict[str, Any]) -> list[str]:
    out = [
        "## The paper's prose figures, recomputed from its tables",
        "",
        *_header(["§", "the paper says", "stated", "recomputed", "verdict"], 2, 4),
    ]
    for p in doc["prose"]:
        stated = DASH if p["stated"] is None else ", ".join(f"{x:.2f}" for x in p["stated"])
        rec = ", ".join(f"{x:.2f}" if x != int(x) else str(int(x)) for x in p["recomputed"])
        out.append(_line([p["section"], f"“{p['claim']}”", stated, rec, f"{p['verdict']}; {p['definition']}"]))
    return out + [""]


def _runs(doc: dict[str, Any]) -> list[str]:
    out = ["## Runs", ""]
    if not doc["runs"] and not doc["unplaced"]:
        return out + ["No run given: the paper's figures only.", ""]
    for r in doc["runs"]:
        shown = ", ".join(f"{t} {row}" for t, row in r["shown_in"]) or "no cell (another run fills them)"
        hidden = [f"{t} {row}" for t, row in r["cells"] if [t, row] not in r["shown_in"]]
        mark = "" if r["comparable"] else f" † (encoder {r['encoder_name']} placed with --encoder-as)"
        folds = f"{r['n_folds']} fold{'s' if r['n_folds'] != 1 else ''}"
        line = f"- `{r['path']}`: {ENCODER_NAMES[r['encoder']]}, {folds}{mark}; shown in {shown}"
        if hidden:
            line += f"; not shown in {', '.join(hidden)} (another run fills it)"
        out.append(line)
    if doc["unplaced"]:
        out += ["", "Not placed:", ""]
        out += [f"- `{u['path']}`: {u['reason']}" for u in doc["unplaced"]]
    return out + [""]


def render(doc: dict[str, Any]) -> str:
    """The whole ``metaser paper-tables`` Markdown for ``doc``."""
    compare = "the mean over folds" if doc["compare"] == "mean" else "the pooled figure"
    out = [
        "# The paper's tables (arXiv 2412.20707) beside ours",
        "",
        f"Percent. ours: mean ± std over folds; pooled: over all test utterances of all folds at once; paper: "
        f"the paper's figure; Δ = ours − paper in points, with ours {compare} (the paper does not say how it "
        "aggregated its folds). –: no run. †: encoder placed with --encoder-as, not the paper's: no Δ (n/c). "
        "(k folds): a run with other than the paper's 5 folds.",
        "",
    ]
    for tid, t in doc["tables"].items():
        out += _table(tid, t)
    out += _task_counts(doc) + _additions(doc) + _fusion(doc) + _prose(doc) + _runs(doc)
    return "\n".join(out).rstrip() + "\n"
