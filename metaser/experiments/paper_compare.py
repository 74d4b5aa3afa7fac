"""The paper's figure for a run: which row of Tables II-IV a config is, and its numbers.

Only runs whose encoder is one of the paper's three pretrained base encoders (wav2vec2-base,
HuBERT-base, WavLM-base; :func:`metaser.paper.paper_encoder`) get a paper figure: tiny or
random encoders and other checkpoints are not comparable.
"""

from __future__ import annotations

from typing import Any

from metaser.paper import paper_encoder, paper_row, tasks_slug

__all__ = ["paper_reference", "paper_figures", "PAPER_AUX", "METRIC_NAMES"]

PAPER_AUX = ("gender", "speaker", "style", "asr")

#: metaser metric -> the paper's column (Table III)
METRIC_NAMES = {"ua": "ua", "wa": "wa", "cer": "cer", "wer": "wer", "gender_acc": "gr_acc", "style_acc": "styr_acc"}

_MODULE_ROWS = {
    ("last", "concat"): "wo_ari_co",
    ("last", "coattention"): "wo_ari",
    ("ari", "concat"): "wo_co",
    ("ari", "coattention"): "full",
}


def paper_reference(model: dict[str, Any], aux_tasks: list[str]) -> tuple[str, str] | None:
    """(study, row id) of the paper row a config reproduces, or None.

    ``model``: the ``model`` section of a run config as a dict; ``aux_tasks``: the tasks the run
    trains. Co-attention readings other than metaser's default (``guided``) have no row.
    """
    if model.get("architecture") == "baseline":
        return ("modules", "baseline")
    fusion = model.get("fusion", {})
    layers, tasks = fusion.get("layers"), fusion.get("tasks")
    if not set(aux_tasks) <= set(PAPER_AUX):
        return None
    if set(aux_tasks) == set(PAPER_AUX):
        if (layers, tasks) in _MODULE_ROWS:
            return ("modules", _MODULE_ROWS[(layers, tasks)])
        if (layers, tasks) == ("weighted_sum", "coattention"):
            return ("fusion", "weighted_sum")
        return None
    if (layers, tasks) == ("ari", "coattention") or (not aux_tasks and layers == "ari"):
        # "SER only" (Table IV) fine-tunes through ARI: a weighted sum (the frozen-encoder mode) is not it
        return ("tasks", tasks_slug(aux_tasks))
    return None


def paper_figures(model: dict[str, Any], aux_tasks: list[str]) -> dict[str, float] | None:
    """The paper's figures (percent) under metaser's metric names, or None (no comparable row)."""
    ref = paper_reference(model, aux_tasks)
    enc = paper_encoder(str(model.get("encoder", {}).get("name_or_path", "")))
    if ref is None or enc is None:
        return None
    study, row = ref
    out: dict[str, float] = {}
    for table in (study, "fusion") if (study, row) == ("modules", "full") else (study,):
        fig = paper_row(table, "ari" if table == "fusion" and study != "fusion" else row, enc) or {}
        for ours, theirs in METRIC_NAMES.items():
            if theirs in fig:
                out.setdefault(ours, float(fig[theirs]))
    return out or None
