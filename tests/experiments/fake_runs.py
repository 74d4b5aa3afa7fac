"""Run folders as metaser.training.fold writes them, without training: for the report tests.

Configs come from the package's own loaders (the tiny preset plus overrides, or an ablation
study's variants via ``study_runs``), fold metrics from the package's own ``fold_test_metrics``;
only the per-utterance predictions are made up, to give chosen UA figures.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from metaser.config import load_config, save_config
from metaser.data.labels import CharVocab, LabelSpace
from metaser.rundir import write_jsonl
from metaser.training.config import RunConfig
from metaser.training.evaluate import fold_test_metrics
from metaser.training.stages import stage_plan
from tests.conftest import TINY_PRESET

EMOTIONS = ["ang", "hap", "neu", "sad"]
PAPER_WAVLM = "microsoft/wavlm-base"

#: fold, stage -> weights (or None): what a fold reports as layer_weights_by_stage[stage]
WeightFn = Callable[[int, str], "list[float] | None"]


def emotion_rows(ua: float, fold: int, sizes: Sequence[int] = (20, 20, 20, 20)) -> list[dict]:
    """Predictions whose UA is ``ua`` when ``ua * size`` is whole for every class: the first
    round(ua * n) utterances of each class are right, the others predicted as the next class."""
    rows = []
    for c, n in zip(EMOTIONS, sizes):
        right = round(ua * n)
        wrong = EMOTIONS[(EMOTIONS.index(c) + 1) % len(EMOTIONS)]
        for i in range(n):
            rows.append({"id": f"f{fold}-{c}-{i:03d}", "emotion": c, "pred": c if i < right else wrong})
    return rows


def aux_rows(ids: list[str], tasks: list[str], acc: float) -> list[dict]:
    """Stage-1 predictions: gender / style right for the first ``acc`` share, ASR exact there too."""
    out = []
    for i, uid in enumerate(ids):
        ok = i < round(acc * len(ids))
        row: dict = {"id": uid}
        if "gender" in tasks:
            row.update(gender="female", gender_pred="female" if ok else "male")
        if "style" in tasks:
            row.update(style="impro", style_pred="impro" if ok else "script")
        if "speaker" in tasks:
            row.update(speaker=None, speaker_pred="Ses01F")  # unseen test speakers: no label
        if "asr" in tasks:
            row.update(text="a b", asr_pred="a b" if ok else "a")
        out.append(row)
    return out


def tiny_config(root: Path, name: str, *overrides: str, encoder: str = PAPER_WAVLM) -> RunConfig:
    """The tiny preset as a run named ``name`` under ``root``, with the given encoder id."""
    return load_config(
        RunConfig,
        TINY_PRESET,
        [f"output_dir={root}", f"name={name}", f"model.encoder.name_or_path={encoder}", *overrides],
    )


def write_run(
    cfg: RunConfig,
    fold_ua: Sequence[float],
    *,
    sizes: Sequence[Sequence[int]] | None = None,
    aux_acc: float = 0.9,
    weights: WeightFn | None = None,
) -> Path:
    """cfg.run_dir with one finished fold per entry of ``fold_ua`` (fold<K>/ as fold.py writes it)."""
    aux = cfg.active_aux_tasks
    labels = LabelSpace(
        classes={"emotion": EMOTIONS, **({"gender": ["female", "male"]} if "gender" in aux else {})},
        vocab=CharVocab(tokens=list("ab ")) if "asr" in aux else None,
    )
    stages = [s.name for s in stage_plan(cfg)]
    for k, ua in enumerate(fold_ua, start=1):
        d = cfg.run_dir / f"fold{k}"
        d.mkdir(parents=True)
        rows = emotion_rows(ua, k, sizes[k - 1] if sizes else (20, 20, 20, 20))
        arows = aux_rows([r["id"] for r in rows], aux, aux_acc) if "stage1" in stages else None
        save_config(cfg, d / "config.yaml")
        labels.save(d / "labels.json")
        info = {"fold": k, "fold_name": f"fold{k}", "test_group": str(k), "aux_tasks": aux, "seed": cfg.seed}
        (d / "run_info.json").write_text(json.dumps(info))
        write_jsonl(rows, d / "predictions.jsonl")
        if arows is not None:
            write_jsonl(arows, d / "aux_predictions.jsonl")
        metrics = {
            "fold": k,
            "fold_name": f"fold{k}",
            "test_group": str(k),
            "test": fold_test_metrics(rows, labels, aux, arows),
            "valid": {"ua": ua, "wa": ua, "loss": 1.0},
            "stages": {s: {"key": f"{s}-key", "epochs": 1, "reused": False} for s in stages},
            "layer_weights": weights(k, stages[-1]) if weights else None,
            "seconds": 1.0,
        }
        if weights is not None:
            metrics["layer_weights_by_stage"] = {s: weights(k, s) for s in stages}
        (d / "metrics.json").write_text(json.dumps(metrics))
    return cfg.run_dir


def fake_cv_run(root: Path, name: str, fold_ua: Sequence[float], *overrides: str, encoder: str = PAPER_WAVLM, **kw):
    """A `metaser cv` run folder ``root/name`` of the tiny preset with ``encoder``."""
    return write_run(tiny_config(root, name, *overrides, encoder=encoder), fold_ua, **kw)


def fake_study(
    root: Path,
    study: str,
    ua_by_slug: dict[str, Sequence[float]],
    *overrides: str,
    encoder: str = PAPER_WAVLM,
    name: str = "base",
    **kw,
) -> Path:
    """``root/name/ablate-<study>/`` with the given variants (slug -> fold UAs), each variant's
    config made by the package's own ``study_runs``. Returns the study root."""
    from metaser.experiments.ablation import study_root, study_runs

    base = tiny_config(root, name, *overrides, encoder=encoder)
    for _v, run in study_runs(base, study, list(ua_by_slug)):
        write_run(run.cfg, ua_by_slug[run.slug], **kw)
    return study_root(base, study)


def softmax_weights(peak: int, n: int = 11) -> list[float]:
    """Weights over ``n`` layers peaking at layer ``peak`` (1-based), summing to 1."""
    import math

    logits = [-abs(i + 1 - peak) for i in range(n)]
    z = sum(math.exp(x) for x in logits)
    return [math.exp(x) / z for x in logits]
