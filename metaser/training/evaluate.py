"""Evaluation of a selected stage: validation scores, per-utterance test rows, fold metrics.

The test part is touched once per stage, after selection on validation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from metaser.data.labels import LabelSpace
from metaser.training.config import RunConfig
from metaser.training.datamodule import FoldData
from metaser.training.metrics import ASRMetric, classification_scores
from metaser.training.module import SERModule
from metaser.training.trainer import eval_trainer

__all__ = ["test_rows", "validate", "fold_test_metrics"]


def test_rows(module: SERModule, data: FoldData, cfg: RunConfig, root: Path) -> list[dict]:
    """Per-utterance test predictions of ``module`` (its stage's tasks)."""
    eval_trainer(cfg, root).test(module, datamodule=data, verbose=False)
    return module.test_rows


test_rows.__test__ = False  # not a pytest test


def validate(module: SERModule, data: FoldData, cfg: RunConfig, root: Path) -> dict[str, float]:
    """Validation metrics of ``module`` (``val/`` prefix dropped)."""
    out = eval_trainer(cfg, root).validate(module, datamodule=data, verbose=False)
    return {k.removeprefix("val/"): float(v) for k, v in (out[0] if out else {}).items()}


def fold_test_metrics(
    rows: list[dict], labels: LabelSpace, aux_tasks: list[str], aux_rows: list[dict] | None
) -> dict[str, Any]:
    """Fold test metrics recomputed from saved per-utterance predictions.

    Emotion scores come from ``rows`` (the emotion stage); the auxiliary tasks' scores from
    ``aux_rows`` (the stage-1 model that trains them) when given.
    """
    emo = labels.classes["emotion"]
    idx = {c: i for i, c in enumerate(emo)}
    scored = [r for r in rows if r.get("emotion") is not None]
    if not scored:  # a fold without a test part (``metaser cross`` trains on a whole corpus)
        return {}
    out: dict[str, Any] = classification_scores(
        [idx[r["emotion"]] for r in scored], [idx[r["pred"]] for r in scored], len(emo)
    )
    out["classes"] = emo
    src = aux_rows if aux_rows is not None else rows
    for task in aux_tasks:
        if task == "asr":
            m = ASRMetric(sync=False)  # one process, all the saved rows
            m.update([r.get("asr_pred", "") for r in src], [r.get("text", "") for r in src])
            out.update(m.compute())
        else:
            pairs = [(r[task], r[f"{task}_pred"]) for r in src if r.get(task) is not None and f"{task}_pred" in r]
            if pairs:
                out[f"{task}_acc"] = sum(a == b for a, b in pairs) / len(pairs)
    return out
