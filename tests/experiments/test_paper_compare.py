"""Which paper row a run's config reproduces (what reports and `cv` print beside ours)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from metaser.config import load_config
from metaser.experiments.paper_compare import PAPER_AUX, paper_figures, paper_reference
from metaser.training.config import RunConfig

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _model(path: str) -> tuple[dict, list[str]]:
    cfg = load_config(RunConfig, CONFIGS / path)
    return dataclasses.asdict(cfg.model), list(cfg.active_aux_tasks)


def test_the_paper_presets_are_the_full_model():
    model, aux = _model("iemocap/wavlm-base.yaml")
    assert set(aux) == set(PAPER_AUX)
    assert paper_reference(model, aux) == ("modules", "full")
    assert paper_figures(model, aux)["ua"] > 0


@pytest.mark.parametrize(
    "layers, tasks, aux, row",
    [
        ("ari", "coattention", [], ("tasks", "none")),  # Table IV's "SER only": fine-tuned through ARI
        ("ari", "coattention", ["gender", "asr"], ("tasks", "gender_asr")),
        ("ari", "concat", list(PAPER_AUX), ("modules", "wo_co")),
        ("weighted_sum", "coattention", list(PAPER_AUX), ("fusion", "weighted_sum")),
        ("weighted_sum", "none", [], None),  # the frozen-encoder (EmoBox) mode is no paper row
        ("ari", "guided", list(PAPER_AUX), None),
    ],
)
def test_rows(layers, tasks, aux, row):
    model = {"architecture": "metaser", "fusion": {"layers": layers, "tasks": tasks}}
    assert paper_reference(model, aux) == row


def test_the_frozen_encoder_preset_gets_no_paper_figure():
    model, aux = _model("emobox/frozen-wavlm-base.yaml")
    assert paper_reference(model, aux) is None and paper_figures(model, aux) is None
