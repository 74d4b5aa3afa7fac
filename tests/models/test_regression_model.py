"""Regression heads in the model: aux regression heads (valence, arousal, ...) and a regression
main task (one value from the main head instead of emotion classes), batch independence,
save / load."""

from __future__ import annotations

import json

import pytest
import torch

from metaser.errors import ConfigError
from metaser.models.config import TaskSpec
from metaser.models.factory import build_ser_model, load_ser_model
from tests.models.helpers import EMOTIONS, TASKS, make_batch, tiny_model_config

REG_TASKS = [*TASKS[:2], TaskSpec("valence", "regression"), TaskSpec("arousal", "regression"), TASKS[2]]
H = 16  # aux_head.hidden_dim of tiny_model_config


def test_regression_aux_heads_give_one_value_and_feed_the_coattention():
    model = build_ser_model(tiny_model_config(), EMOTIONS, REG_TASKS).eval()
    waves, lengths = make_batch([12000, 8000])
    with torch.no_grad():
        out = model.from_audio(waves, lengths)
    assert set(out.task_values) == {"valence", "arousal"} and set(out.task_logits) == {"gender", "style"}
    assert all(v.shape == (2,) for v in out.task_values.values())
    assert set(out.task_hidden) == {"gender", "style", "valence", "arousal", "asr"}
    assert out.attentions["task_to_frame"].shape[1] == 5  # K = 5 aux hidden layers a_k, regression ones included
    assert out.emotion_logits.shape == (2, 4) and out.main_value is None
    # the regression head's hidden layer is what the co-attention reads: changing it changes emotion
    with torch.no_grad():
        model.task_heads["arousal"].hidden.bias.add_(1.0)
        changed = model.from_audio(waves, lengths)
    assert not torch.allclose(changed.emotion_logits, out.emotion_logits)


@pytest.mark.parametrize("architecture", ["metaser", "baseline"])
def test_regression_main_task_outputs_one_value_and_no_emotion(architecture):
    tasks = REG_TASKS if architecture == "metaser" else []
    model = build_ser_model(tiny_model_config(architecture=architecture), [], tasks, main_task="arousal").eval()
    last = model.emotion_head.net[-1] if architecture == "metaser" else model.emotion_head.out
    assert model.main_regression and model.main_outputs == 1 and last.out_features == 1
    waves, lengths = make_batch([12000, 8000, 5000])
    with torch.no_grad():
        out = model.from_audio(waves, lengths)
        stage1 = model.from_audio(waves, lengths, compute_emotion=False)
    assert out.emotion_logits is None and out.main_value.shape == (3,)
    assert stage1.main_value is None


@pytest.mark.parametrize("preset", ["tiny-wav2vec2", "tiny-wavlm"])
def test_padded_batch_equals_each_utterance_alone_for_values(preset):
    """``infer``: the regression values (aux heads and the main head) of a file are the same alone
    and in a padded batch (a group-norm CNN included)."""
    model = build_ser_model(tiny_model_config(preset=preset), [], REG_TASKS, main_task="dominance").eval()
    lens = [16000, 9000, 5000]
    waves, lengths = make_batch(lens, seed=4)
    with torch.no_grad():
        batch = model.infer(waves, lengths)
        for i, n in enumerate(lens):
            one = model.infer(waves[i : i + 1, :n], lengths[i : i + 1])
            torch.testing.assert_close(batch.main_value[i], one.main_value[0], rtol=0, atol=1e-5)
            for k in ("valence", "arousal"):
                torch.testing.assert_close(batch.task_values[k][i], one.task_values[k][0], rtol=0, atol=1e-5)


def test_regression_main_task_saves_and_loads(tmp_path):
    model = build_ser_model(tiny_model_config(), [], REG_TASKS, main_task="arousal").eval()
    model.save_pretrained(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    assert meta["main_task"] == "arousal" and meta["emotion_labels"] == []
    assert meta["tasks"][2] == {"name": "valence", "kind": "regression", "labels": []}
    loaded = load_ser_model(tmp_path / "m")
    assert loaded.main_task == "arousal"
    waves, lengths = make_batch([9000, 8000])
    with torch.no_grad():
        a, b = model.from_audio(waves, lengths), loaded.from_audio(waves, lengths)
    assert torch.equal(a.main_value, b.main_value)
    assert all(torch.equal(a.task_values[k], b.task_values[k]) for k in a.task_values)


def test_main_task_errors_are_config_errors():
    cfg = tiny_model_config()
    with pytest.raises(ConfigError, match="takes no emotion labels"):
        build_ser_model(cfg, EMOTIONS, [], main_task="arousal")
    with pytest.raises(ConfigError, match="main_task"):
        build_ser_model(cfg, [], [], main_task="asr")
    with pytest.raises(ConfigError, match="no labels"):
        build_ser_model(cfg, EMOTIONS, [TaskSpec("gender", "classification")])
