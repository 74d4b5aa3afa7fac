"""The figures the paper's text states (Sec. IV), recomputed from its Tables I-IV.

:func:`prose_figures` returns one :class:`ProseFigure` per claim: the paper's words, the figures
it states, the figures recomputed from ``tables.yaml``, the definition that gives them and a
verdict. :func:`fusion_improvement` is Sec. IV-C's comparison of ARI with the weighted sum for any
pair of Table III rows (the paper's, or a user's fusion study).

What the recomputation finds (see docs/paper.md, "The prose figures"):

- Sec. IV-C's "average improvement of 5.41%" is the mean over 3 encoders x 4 auxiliary metrics
  (CER, WER, GR acc, StyR acc) of ARI's improvement in *points* (CER/WER as reductions); the
  relative improvements average 14.09 %.
- Sec. IV-B's module gains match only with Table II's "w/o ARI" and "w/o Co" labels swapped.
- Sec. IV-D's "each additional modality ... improves performance" does not hold: for every
  encoder, 4 of the 28 single-task additions within MTL lower UA.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from metaser.paper.tables import ENCODER_NAMES, ENCODERS, paper_row, paper_table
from metaser.paper.task_analysis import analyse_paper, paper_values, task_set

__all__ = ["AUX_METRICS", "LOWER_IS_BETTER", "ProseFigure", "fusion_improvement", "prose_figures"]

#: Table III's auxiliary-task metrics ("the four shown metrics" of Sec. IV-C)
AUX_METRICS: tuple[str, ...] = ("cer", "wer", "gr_acc", "styr_acc")
LOWER_IS_BETTER: tuple[str, ...] = ("cer", "wer")


@dataclass(frozen=True)
class ProseFigure:
    """One claim of the text. ``stated``: the figures it prints (None for a qualitative claim);
    ``recomputed``: the same figures from the tables, in the same order, by ``definition``."""

    id: str
    section: str
    claim: str
    stated: tuple[float, ...] | None
    recomputed: tuple[float, ...]
    definition: str
    verdict: str

    @property
    def matches(self) -> bool | None:
        """Whether the stated figures are the recomputed ones rounded to 2 decimals (None: qualitative)."""
        if self.stated is None:
            return None
        return len(self.stated) == len(self.recomputed) and all(
            round(r, 2) == s for r, s in zip(self.recomputed, self.stated)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "section": self.section,
            "claim": self.claim,
            "stated": None if self.stated is None else list(self.stated),
            "recomputed": list(self.recomputed),
            "definition": self.definition,
            "matches": self.matches,
            "verdict": self.verdict,
        }


def _gain(metric: str, ws: float, ari: float) -> float:
    """ARI's improvement over the weighted sum in points (a reduction for CER / WER)."""
    return ws - ari if metric in LOWER_IS_BETTER else ari - ws


def fusion_improvement(
    weighted_sum: Mapping[str, Mapping[str, float]], ari: Mapping[str, Mapping[str, float]]
) -> dict[str, Any] | None:
    """ARI over the weighted sum (Sec. IV-C), from ``{encoder: {metric: figure}}`` of each row.

    Figures in percent under Table III's keys (cer, wer, gr_acc, styr_acc, ua, wa). Uses the
    encoders and metrics both rows have. Returns None when they share no encoder, else::

        {"encoders": [...],
         "per_encoder": {enc: {metric: {"points", "relative"}}},
         "mean": {metric: {"points", "relative", "n"}},   # over encoders
         "aux_mean_points": ..., "aux_mean_relative": ..., "aux_cells": n}

    ``points`` = improvement in percentage points (CER / WER as reductions), ``relative`` = it
    divided by the weighted sum's figure, in %. ``aux_mean_points`` is the mean of ``points``
    over every (encoder, auxiliary metric) cell: the definition that gives the paper's 5.41.
    """
    encoders = [e for e in weighted_sum if e in ari]
    if not encoders:
        return None
    per: dict[str, dict[str, dict[str, float]]] = {}
    for e in encoders:
        per[e] = {}
        for m in ("cer", "wer", "gr_acc", "styr_acc", "ua", "wa"):
            ws, new = weighted_sum[e].get(m), ari[e].get(m)
            if ws is None or new is None:
                continue
            pts = _gain(m, ws, new)
            per[e][m] = {"points": pts, "relative": 100 * pts / ws if ws else float("nan")}
    mean: dict[str, dict[str, float]] = {}
    for m in ("cer", "wer", "gr_acc", "styr_acc", "ua", "wa"):
        cells = [per[e][m] for e in encoders if m in per[e]]
        if cells:
            mean[m] = {
                "points": sum(c["points"] for c in cells) / len(cells),
                "relative": sum(c["relative"] for c in cells) / len(cells),
                "n": len(cells),
            }
    aux = [per[e][m] for e in encoders for m in AUX_METRICS if m in per[e]]
    return {
        "encoders": encoders,
        "per_encoder": per,
        "mean": mean,
        "aux_mean_points": sum(c["points"] for c in aux) / len(aux) if aux else None,
        "aux_mean_relative": sum(c["relative"] for c in aux) / len(aux) if aux else None,
        "aux_cells": len(aux),
    }


def _mean(xs) -> float:
    xs = list(xs)
    return sum(xs) / len(xs)


def _table_ii_gain(row: str, metric: str) -> float:
    return _mean(paper_row("II", row, e)[metric] - paper_row("II", "wo_ari_co", e)[metric] for e in ENCODERS)


def _paper_fusion() -> dict[str, Any]:
    ws = {e: paper_row("III", "weighted_sum", e) for e in ENCODERS}
    ari = {e: paper_row("III", "ari", e) for e in ENCODERS}
    out = fusion_improvement(ws, ari)
    assert out is not None
    return out


def _verdict(stated: tuple[float, ...], recomputed: tuple[float, ...], alt: str | None = None) -> str:
    if all(round(r, 2) == s for r, s in zip(recomputed, stated)):
        return "matches" + (f" ({alt})" if alt else "")
    return "differs" + (f" ({alt})" if alt else "")


def _module_figures() -> list[ProseFigure]:
    out = []
    claims = [
        (
            "iv_b_ari",
            "UA increases by 0.44% and WA by 0.61% with the addition of the ARI module",
            (0.44, 0.61),
            "wo_co",
        ),
        ("iv_b_co", "When the Co-attention module is added, ... 0.64% in UA and 0.82% in WA", (0.64, 0.82), "wo_ari"),
    ]
    for fid, claim, stated, by_label in claims:
        swapped = "wo_ari" if by_label == "wo_co" else "wo_co"
        by_labels = (_table_ii_gain(by_label, "ua"), _table_ii_gain(by_label, "wa"))
        alt = (_table_ii_gain(swapped, "ua"), _table_ii_gain(swapped, "wa"))
        name = paper_table("II").row(by_label).name
        other = paper_table("II").row(swapped).name
        if all(round(r, 2) == s for r, s in zip(alt, stated)) and not all(
            round(r, 2) == s for r, s in zip(by_labels, stated)
        ):
            verdict = (
                f"differs by Table II's labels ({by_labels[0]:.2f} / {by_labels[1]:.2f}); matches "
                f"'{other}' − 'Ours w/o ARI&Co', i.e. with the labels 'Ours w/o ARI' and 'Ours w/o Co' swapped"
            )
        else:
            verdict = _verdict(stated, by_labels)
        out.append(
            ProseFigure(
                fid,
                "IV-B",
                claim,
                stated,
                by_labels,
                f"mean over the 3 encoders of Table II '{name}' − 'Ours w/o ARI&Co' (UA, WA)",
                verdict,
            )
        )
    both = (_table_ii_gain("full", "ua"), _table_ii_gain("full", "wa"))
    out.append(
        ProseFigure(
            "iv_b_both",
            "IV-B",
            "when both the ARI and Co-attention modules are included together, the increase in UA reaches 1.31%, "
            "and WA improves by 1.29%",
            (1.31, 1.29),
            both,
            "mean over the 3 encoders of Table II 'Our' − 'Ours w/o ARI&Co' (UA, WA)",
            _verdict((1.31, 1.29), both),
        )
    )
    return out


def _fusion_figures() -> list[ProseFigure]:
    f = _paper_fusion()
    out = []
    for fid, m, claim, stated in (
        ("iv_c_cer", "cer", "a relative average improvement of 24.40% in CER", 24.40),
        ("iv_c_wer", "wer", "an average improvement of 29.75% in WER", 29.75),
        ("iv_c_gr", "gr_acc", "for gender recognition ... the relative average improvement is only 0.66%", 0.66),
        ("iv_c_styr", "styr_acc", "and [style recognition] 1.55%", 1.55),
    ):
        rel, pts = f["mean"][m]["relative"], f["mean"][m]["points"]
        out.append(
            ProseFigure(
                fid,
                "IV-C",
                claim,
                (stated,),
                (rel,),
                f"mean over the 3 encoders of (ARI − weighted sum) / weighted sum, Table III {m}"
                + (" as a reduction" if m in LOWER_IS_BETTER else "")
                + f", in % (in points: {pts:.2f})",
                _verdict((stated,), (rel,)),
            )
        )
    pts, rel = f["aux_mean_points"], f["aux_mean_relative"]
    out.append(
        ProseFigure(
            "iv_c_average",
            "IV-C",
            "the four shown metrics exhibit an average improvement of 5.41% over the weighted sum method",
            (5.41,),
            (pts,),
            "mean over 3 encoders x 4 metrics (CER, WER, GR acc, StyR acc) of ARI − weighted sum in "
            f"percentage points, CER/WER as reductions (the relative improvements average {rel:.2f} %)",
            _verdict((5.41,), (pts,), "as points, not a relative %"),
        )
    )
    better = [(e, m) for e in ENCODERS for m, c in f["per_encoder"][e].items() if c["points"] > 0 and m in AUX_METRICS]
    n_aux = sum(m in AUX_METRICS for e in ENCODERS for m in f["per_encoder"][e])
    final = [(e, m) for e in ENCODERS for m in ("ua", "wa") if f["per_encoder"][e][m]["points"] > 0]
    out.append(
        ProseFigure(
            "iv_c_every_task",
            "IV-C",
            "compared to the weighted sum method, the ARI module demonstrates superior performance across every "
            "task ... the final results ... also maintain the same trend",
            None,
            (len(better), n_aux, len(final), 2 * len(ENCODERS)),
            "(encoder, auxiliary metric) cells where ARI beats the weighted sum, of all; then the same for UA/WA",
            f"holds: ARI is better in {len(better)} of {n_aux} auxiliary cells and {len(final)} of "
            f"{2 * len(ENCODERS)} UA/WA cells",
        )
    )
    return out


def _task_figures() -> list[ProseFigure]:
    ana = analyse_paper("ua")
    mtl = {e: ana[e]["additions_summary"]["mtl"] for e in ENCODERS}
    counts = tuple(float(x) for e in ENCODERS for x in (mtl[e]["lowers"], mtl[e]["of"]))
    per = "; ".join(
        f"{ENCODER_NAMES[e]} {mtl[e]['lowers']} of {mtl[e]['of']}: "
        + ", ".join(f"{a['from']} + {a['task']} ({a['delta']:+.2f})" for a in mtl[e]["lowering"])
        for e in ENCODERS
    )
    out = [
        ProseFigure(
            "iv_d_each_addition",
            "IV-D",
            "in the MTL framework, each additional modality, regardless of its relevance to the primary task, "
            "improves performance",
            None,
            counts,
            "per encoder: single-task additions (S, S ∪ {t}) with S non-empty that lower Table IV UA, of all such "
            "pairs",
            f"does not hold: {per}",
        )
    ]
    means = {e: [ana[e]["count_means"][k]["mean"] for k in range(5)] for e in ENCODERS}
    falls = [e for e in ENCODERS if means[e][1] < means[e][0]]
    rises = [e for e in ENCODERS if all(b > a for a, b in zip(means[e][1:], means[e][2:]))]
    trend = "holds from 1 task on for " + (", ".join(ENCODER_NAMES[e] for e in rises) or "no encoder")
    out.append(
        ProseFigure(
            "iv_d_count_trend",
            "IV-D",
            "A clear improvement in model efficacy correlates with the incremental integration of auxiliary tasks",
            None,
            tuple(m for e in ENCODERS for m in means[e]),
            "per encoder, mean Table IV UA over the rows with 0, 1, 2, 3, 4 auxiliary tasks",
            f"{trend}; the mean falls from 0 to 1 task for "
            + (", ".join(ENCODER_NAMES[e] for e in falls) if falls else "no encoder"),
        )
    )
    ks = tuple(float(ana[e]["min_tasks_beating_ser_only"] or 0) for e in ENCODERS)
    out.append(
        ProseFigure(
            "iv_d_enough_modalities",
            "IV-D",
            "with enough modalities, the multi-task learning (MTL) framework consistently outperforms SER-only model",
            None,
            ks,
            "per encoder, the smallest k such that every Table IV row with k or more tasks beats 'SER only' (UA)",
            "holds with "
            + ", ".join(f"k = {int(k)} for {ENCODER_NAMES[e]}" for e, k in zip(ENCODERS, ks))
            + " (0: no k)",
        )
    )
    deltas = tuple(
        paper_values("ua", e)["gender_speaker_style"] - paper_values("ua", e)["gender_speaker"] for e in ENCODERS
    )
    assert task_set("gender_speaker_style") - task_set("gender_speaker") == {"style"}
    out.append(
        ProseFigure(
            "iv_d_speaker_gender_style",
            "IV-D",
            "integrating speaker identification still improved performance ... (e.g. from speaker + gender to "
            "speaker + gender + style)",
            None,
            deltas,
            "per encoder, Table IV UA of SER+gender+speaker+style − SER+gender+speaker",
            "holds: UA rises for every encoder" if all(d > 0 for d in deltas) else "does not hold for every encoder",
        )
    )
    return out


def prose_figures() -> list[ProseFigure]:
    """Every recomputable figure of Sec. IV's text, in the paper's order."""
    gain = tuple(
        _mean(paper_row("I", "proposed", e)[m] - paper_row("I", "baseline", e)[m] for e in ENCODERS)
        for m in ("ua", "wa")
    )
    prior = [r for r in paper_table("I").rows if not r.per_encoder]
    best = {m: max(r.values["*"][m] for r in prior) for m in ("ua", "wa")}
    over = {m: [paper_row("I", "proposed", e)[m] - best[m] for e in ENCODERS] for m in ("ua", "wa")}
    rng = (min(over["ua"]), max(over["ua"]), min(over["wa"]), max(over["wa"]))
    figures = [
        ProseFigure(
            "iv_a_gain_over_baseline",
            "IV-A",
            "an average increase of 4.09% in UA and 3.90% in WA",
            (4.09, 3.90),
            gain,
            "mean over the 3 encoders of Table I 'Ours(encoder)' − 'Our baseline' (UA, WA)",
            _verdict((4.09, 3.90), gain),
        ),
        ProseFigure(
            "iv_a_over_leading",
            "IV-A",
            "improvements ranging from 0.54% to 1.64% in UA and from 0.9% to 1.39% in WA",
            (0.54, 1.64, 0.90, 1.39),
            rng,
            "min and max over the 3 encoders of 'Ours(encoder)' − the best prior art of Table I (Gao et al.), "
            "UA then WA",
            _verdict((0.54, 1.64, 0.90, 1.39), rng),
        ),
    ]
    return figures + _module_figures() + _fusion_figures() + _task_figures()
