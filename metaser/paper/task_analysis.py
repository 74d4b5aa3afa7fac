"""Table IV read as a function of the auxiliary-task set: means by task count, single-task additions.

Every function takes ``values``: a Table IV row id (:func:`~metaser.paper.tasks_slug`, ``"none"``
for SER only) -> one figure (UA or WA, any unit), for one encoder. Rows may be missing (a user's
tasks study that ran a few variants): each result says how many rows it used.

Sec. IV-D claims that "in the MTL framework, each additional modality, regardless of its relevance
to the primary task, improves performance". :func:`single_additions` lists every pair
(S, S ∪ {t}) of rows; :func:`additions_summary` counts those that lower the figure, within MTL
(S non-empty: 4 · 7 = 28 pairs when all 16 rows are there) and from SER only (4 more pairs).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any

from metaser.paper.tables import ENCODERS, TASK_ORDER, paper_table, tasks_slug

__all__ = [
    "task_set",
    "paper_values",
    "count_means",
    "single_additions",
    "additions_summary",
    "min_tasks_beating_ser_only",
    "analyse",
]


def task_set(slug: str) -> frozenset[str]:
    """The auxiliary tasks of a Table IV row id: ``"gender_asr"`` -> {gender, asr}; ``"none"`` -> {}."""
    return frozenset() if slug == "none" else frozenset(slug.split("_"))


def _all_slugs() -> list[str]:
    """The 16 row ids in Table IV's order: by number of tasks, then in the paper's task order."""
    return [tasks_slug(c) for k in range(len(TASK_ORDER) + 1) for c in itertools.combinations(TASK_ORDER, k)]


def paper_values(metric: str, encoder: str) -> dict[str, float]:
    """The paper's Table IV column ``metric`` (``ua`` / ``wa``) for ``encoder``, by row id."""
    return {r.id: r.values[encoder][metric] for r in paper_table("IV").rows}


def count_means(values: Mapping[str, float]) -> dict[int, dict[str, Any]]:
    """k (number of auxiliary tasks, 0..4) -> {"mean", "n", "of", "rows"}: the mean over the
    ``n`` rows with k tasks that ``values`` holds (``of`` = how many rows Table IV has with k
    tasks); ``mean`` is None where ``n`` is 0."""
    out: dict[int, dict[str, Any]] = {}
    for k in range(len(TASK_ORDER) + 1):
        rows = [s for s in _all_slugs() if len(task_set(s)) == k]
        have = [s for s in rows if s in values]
        mean = sum(values[s] for s in have) / len(have) if have else None
        out[k] = {"mean": mean, "n": len(have), "of": len(rows), "rows": have}
    return out


def single_additions(values: Mapping[str, float]) -> list[dict[str, Any]]:
    """Every pair (S, S ∪ {t}) of rows both present in ``values``, in Table IV's row order.

    Each item: ``from`` / ``to`` (row ids), ``task`` (t), ``before`` / ``after`` (figures),
    ``delta`` (after − before) and ``effect``: ``"raises"``, ``"lowers"`` or ``"equal"``.
    """
    out = []
    for slug in _all_slugs():
        if slug not in values:
            continue
        have = task_set(slug)
        for t in TASK_ORDER:
            if t in have:
                continue
            to = tasks_slug(have | {t})
            if to not in values:
                continue
            before, after = values[slug], values[to]
            effect = "raises" if after > before else "lowers" if after < before else "equal"
            out.append(
                {"from": slug, "task": t, "to": to, "before": before, "after": after, "delta": after - before}
                | {"effect": effect}
            )
    return out


def _count(adds: list[dict[str, Any]]) -> dict[str, Any]:
    lower = [a for a in adds if a["effect"] == "lowers"]
    return {
        "lowers": len(lower),
        "raises": sum(a["effect"] == "raises" for a in adds),
        "equal": sum(a["effect"] == "equal" for a in adds),
        "of": len(adds),
        "lowering": [{k: a[k] for k in ("from", "task", "to", "delta")} for a in lower],
    }


def additions_summary(adds: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Counts of :func:`single_additions`: ``mtl`` (S non-empty, the paper's "in the MTL
    framework"), ``from_ser_only`` (S empty) and ``all``; each {"lowers", "raises", "equal",
    "of", "lowering": [{"from", "task", "to", "delta"}]}."""
    return {
        "mtl": _count([a for a in adds if a["from"] != "none"]),
        "from_ser_only": _count([a for a in adds if a["from"] == "none"]),
        "all": _count(adds),
    }


def min_tasks_beating_ser_only(values: Mapping[str, float]) -> int | None:
    """The smallest k >= 1 such that every present row with k or more tasks beats SER only.

    Sec. IV-D: "with enough modalities, the MTL framework consistently outperforms SER-only
    model". None when SER only is missing, or no k works (not even the full row).
    """
    if "none" not in values:
        return None
    base = values["none"]
    rows = [(len(task_set(s)), v) for s, v in values.items() if s != "none"]
    for k in range(1, len(TASK_ORDER) + 1):
        above = [v for n, v in rows if n >= k]
        if above and all(v > base for v in above):
            return k
    return None


def _clean(values: Mapping[str, float | None]) -> dict[str, float]:
    return {s: float(v) for s, v in values.items() if v is not None and not math.isnan(v)}


def analyse(values: Mapping[str, float | None]) -> dict[str, Any]:
    """Everything above for one encoder's figures: {"count_means", "additions",
    "additions_summary", "min_tasks_beating_ser_only", "rows"} (rows = how many of the 16)."""
    vals = _clean(values)
    adds = single_additions(vals)
    return {
        "rows": len(vals),
        "count_means": count_means(vals),
        "additions": adds,
        "additions_summary": additions_summary(adds),
        "min_tasks_beating_ser_only": min_tasks_beating_ser_only(vals),
    }


def analyse_paper(metric: str = "ua") -> dict[str, dict[str, Any]]:
    """:func:`analyse` of the paper's Table IV, per encoder key."""
    return {e: analyse(paper_values(metric, e)) for e in ENCODERS}
