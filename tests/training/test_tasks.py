"""Regression tasks (valence / arousal / dominance) and soft emotion targets in training, on the
synthetic corpus (whose IEMOCAP-format files carry ratings and annotator lines).

One optimiser step of each new kind of stage through a Lightning Trainer, with the functions
``train_fold`` uses, then one whole fold each with a regression main task and with soft labels,
and the report built from it.
"""

from __future__ import annotations

import json

import pytest
import pytorch_lightning as pl
import torch

from tests.training.test_module import changed, one_step

#: fixed batches of 8: CCC needs at least two values in a batch (the bucketing sampler of the demo
#: preset can give a batch of one utterance, whose CCC loss is 0)
FIXED = ("data.sampler.mode=fixed", "data.sampler.batch_size=8")


def fold1(cfg):
    """(labels, FoldData) of fold 1 for ``cfg``, as ``prepare_fold`` builds them."""
    from metaser.data.dataset import build_label_space
    from metaser.data.manifest import load_manifest
    from metaser.rundir import manifest_file
    from metaser.training.datamodule import FoldData
    from metaser.training.fold import resolve_fold

    cuts = load_manifest(manifest_file(cfg.data.manifest))
    train, valid, test = resolve_fold(cfg, cuts, 1).subsets(cuts)
    labels = build_label_space(train, cfg.active_aux_tasks, main_task=cfg.main_task)
    return labels, FoldData(cfg, labels, cfg.active_aux_tasks, train, valid, test)


def stage_module(cfg, labels, name):
    from metaser.training.stages import build_model, build_stage, stage_plan

    spec = next(s for s in stage_plan(cfg) if s.name == name)
    return build_stage(build_model(cfg, labels), spec, labels, cfg)


def evaluate(module, data) -> tuple[dict[str, float], list[dict]]:
    """Validation metrics and test rows of ``module``."""
    kw = dict(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False)
    val = pl.Trainer(**kw).validate(module, datamodule=data, verbose=False)[0]
    pl.Trainer(**kw).test(module, datamodule=data, verbose=False)
    return val, module.test_rows


def test_stage1_step_with_an_arousal_aux_task(make_run_config, tmp_path):
    cfg = make_run_config(tmp_path, "aux_tasks={arousal: 1.0, gender: 1.0}", *FIXED)
    labels, data = fold1(cfg)
    assert labels.regression == ["arousal"]  # IEMOCAP's "activation", as numbers
    module = stage_module(cfg, labels, "stage1")
    assert [(t.name, t.kind) for t in module.model.tasks] == [("arousal", "regression"), ("gender", "classification")]
    batch = next(iter(data._loader("train")))
    assert batch.targets["arousal"].dtype == torch.float32
    lo = module.loss_on(batch)
    assert set(lo.parts) == {"arousal", "gender"}
    before = one_step(module, data)
    moved = changed(module, before)
    assert any(k.startswith("task_heads.arousal.") for k in moved)
    val, rows = evaluate(module, data)
    assert {"val/loss", "val/arousal_ccc", "val/arousal_mae", "val/gender_acc"} <= set(val)
    assert -1.0 <= val["val/arousal_ccc"] <= 1.0 and val["val/arousal_mae"] > 0
    assert rows and all(isinstance(r["arousal_pred"], float) for r in rows)
    assert all(r["arousal"] is None or 1.0 <= r["arousal"] <= 5.0 for r in rows)


def test_emotion_only_step_with_main_task_arousal(make_run_config, tmp_path):
    from metaser.training.losses import RegressionLoss

    cfg = make_run_config(tmp_path, "aux_tasks={}", "main_task=arousal", *FIXED)
    labels, data = fold1(cfg)
    assert "emotion" not in labels.classes and labels.regression == ["arousal"]
    module = stage_module(cfg, labels, "emotion_only")
    assert module.spec.monitor == ("val/ccc", "max") and isinstance(module.loss_fn, RegressionLoss)
    assert module.model.main_task == "arousal" and module.model.emotion_labels == []
    before = one_step(module, data)
    assert any(k.startswith("emotion_head.") for k in changed(module, before))  # the main head
    val, rows = evaluate(module, data)
    assert {"val/loss", "val/ccc", "val/mae"} <= set(val) and "val/ua" not in val
    assert rows and set(rows[0]) == {"id", "arousal", "pred"}
    assert val["val/loss"] == pytest.approx(1 - val["val/ccc"], abs=0.5)  # a batch mean vs the whole set


def test_soft_label_step_differs_from_the_hard_one(make_run_config, tmp_path):
    from metaser.training.losses import SoftEmotionLoss

    moved = {}
    for target in ("hard", "soft"):
        cfg = make_run_config(tmp_path / target, "aux_tasks={}", f"emotion_target={target}", *FIXED)
        labels, data = fold1(cfg)
        module = stage_module(cfg, labels, "emotion_only")
        before = one_step(module, data)
        moved[target] = module.model.emotion_head.net[-1].weight.detach().clone()
        assert changed(module, before)
    assert isinstance(module.loss_fn, SoftEmotionLoss)
    batch = next(iter(data._loader("train")))
    assert batch.emotion_dist.shape == (len(batch), 4) and bool(batch.emotion_dist_voted.all())
    assert torch.allclose(batch.emotion_dist.sum(-1), torch.ones(len(batch)))
    assert not torch.equal(moved["hard"], moved["soft"])  # the votes are not all one-hot
    val, rows = evaluate(module, data)
    assert {"val/ua", "val/wa", "val/kl"} <= set(val) and val["val/kl"] > 0
    assert all(r["kl"] >= 0 for r in rows) and {"emotion", "pred", "probs", "kl"} <= set(rows[0])


def test_a_fold_with_arousal_as_main_and_aux_task_and_its_report(make_run_config, tmp_path):
    from metaser.experiments.report import write_report
    from metaser.training.fold_run import train_fold

    cfg = make_run_config(tmp_path, "name=aro", "aux_tasks={arousal: 1.0, gender: 1.0}", "main_task=arousal", *FIXED)
    m = train_fold(cfg, 1)
    assert m["main_task"] == "arousal" and m["stages"]["stage2"]["monitor"] == "val/ccc"
    assert {"ccc", "mae", "num_utterances", "arousal_ccc", "arousal_mae", "gender_acc"} <= set(m["test"])
    assert "ua" not in m["test"] and {"ccc", "mae"} <= set(m["valid"])
    saved = json.loads((cfg.run_dir / "fold1" / "model" / "config.json").read_text())
    assert saved["main_task"] == "arousal" and saved["emotion_labels"] == []
    res = write_report(cfg.run_dir)
    assert res["main_task"] == "arousal" and res["classes"] == []
    assert res["test"]["ccc"]["mean"] == pytest.approx(m["test"]["ccc"]) and res["test"]["ccc"]["std"] == 0.0
    assert set(res["test_pooled"]) >= {"ccc", "mae", "arousal_ccc"}
    md = (cfg.run_dir / "report.md").read_text()
    assert "| fold | test group | CCC | MAE | GR | arousal CCC | arousal MAE |" in md
    assert f"{m['test']['ccc']:.3f}" in md and "confusion" not in md
    assert not (cfg.run_dir / "confusion.png").exists()


def test_a_soft_label_fold_reports_kl_and_the_fallbacks(make_run_config, tmp_path):
    from metaser.experiments.report import write_report
    from metaser.training.fold_run import train_fold

    cfg = make_run_config(tmp_path, "name=soft", "aux_tasks={}", "emotion_target=soft", *FIXED)
    m = train_fold(cfg, 1)
    assert {"ua", "wa", "kl"} <= set(m["test"]) and "kl" in m["valid"]
    soft = m["soft_labels"]
    assert set(soft) == {"train", "valid", "test"}
    assert soft["train"]["fallback"] == 0 and soft["train"]["total"] > 0  # every synthetic turn has votes
    res = write_report(cfg.run_dir)
    assert res["test"]["kl"]["mean"] == pytest.approx(m["test"]["kl"]) and "kl" in res["test_pooled"]
    assert "| UA | WA | F1 | KL |" in (cfg.run_dir / "report.md").read_text()
