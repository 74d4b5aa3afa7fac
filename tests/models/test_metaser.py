"""The two architectures (MetaSERModel, BaselineModel): variants, batch independence, training
hooks, save / load."""

from __future__ import annotations

import json

import pytest
import torch

from metaser.errors import ConfigError, MetaserError
from metaser.models.baseline import BaselineModel
from metaser.models.config import EncoderConfig, ModelConfig, TaskSpec
from metaser.models.factory import build_ser_model, load_ser_model
from metaser.models.metaser import MetaSERModel, MetaSEROutput
from tests.models.helpers import EMOTIONS, TASKS, TINY_PRESETS, make_batch, tiny_model_config

H = 16  # aux_head.hidden_dim of tiny_model_config


def build(tasks=TASKS, **kw):
    return build_ser_model(tiny_model_config(**kw), EMOTIONS, tasks)


@pytest.mark.parametrize("layers,n_weights", [("ari", 11), ("weighted_sum", 12), ("last", None)])
@pytest.mark.parametrize("fusion", ["coattention", "concat", "none"])
def test_variant_shapes(layers, n_weights, fusion):
    model = MetaSERModel.build(tiny_model_config(layers=layers, tasks=fusion), EMOTIONS, TASKS).eval()
    waves, lengths = make_batch([16000, 8000, 12000])
    out = model.from_audio(waves, lengths)
    assert isinstance(out, MetaSEROutput)
    assert out.emotion_logits.shape == (3, 4)
    assert {k: tuple(v.shape) for k, v in out.task_logits.items()} == {"gender": (3, 2), "style": (3, 3)}
    assert out.ctc_log_probs.shape == (3, 49, 9)  # 8 tokens + blank
    assert out.ctc_lengths.tolist() == out.frame_lengths.tolist() == [49, 24, 37]
    assert {k: tuple(v.shape) for k, v in out.task_hidden.items()} == {k: (3, H) for k in ("gender", "style", "asr")}
    if n_weights is None:
        assert out.layer_weights is None and model.layer_weights() is None
    else:
        assert out.layer_weights.shape == (n_weights,)
        assert abs(float(out.layer_weights.sum()) - 1.0) < 1e-6
    if fusion == "coattention":
        assert out.attentions["task_to_frame"].shape == (3, 3, 49)
        assert out.attentions["frame_to_task"].shape == (3, 49, 3)
    else:
        assert out.attentions == {}
    assert model.emotion_head.in_features == {"coattention": 7 * H, "concat": 4 * H, "none": H}[fusion]


def test_baseline_is_last_layer_mean_and_one_linear():
    model = build(tasks=[], architecture="baseline").eval()
    assert isinstance(model, BaselineModel) and not isinstance(model, MetaSERModel)
    waves, lengths = make_batch([16000, 8000])
    out = model.from_audio(waves, lengths)
    enc = model.encoder(waves, lengths)
    m = enc.frame_mask.float().unsqueeze(-1)
    pooled = (enc.hidden_states[-1] * m).sum(1) / m.sum(1)
    torch.testing.assert_close(out.emotion_logits, model.emotion_head.out(pooled))
    assert out.task_logits == {} and out.ctc_log_probs is None and out.layer_weights is None
    assert [p.shape for p in model.head_parameters()] == [torch.Size([4, 32]), torch.Size([4])]
    assert model.from_audio(waves, lengths, compute_emotion=False).emotion_logits is None


def test_baseline_rejects_aux_tasks():
    with pytest.raises(ConfigError, match="baseline takes no auxiliary tasks"):
        build(architecture="baseline")


def test_architecture_picks_the_class():
    with pytest.raises(ConfigError, match="is not a MetaSERModel"):
        MetaSERModel.build(tiny_model_config(architecture="baseline"), EMOTIONS, [])
    with pytest.raises(ConfigError, match="not one of"):
        build(architecture="other")


def test_no_aux_task_reduces_to_ser_only():
    model = build(tasks=[]).eval()
    waves, lengths = make_batch([16000, 8000])
    out = model.from_audio(waves, lengths)
    assert out.emotion_logits.shape == (2, 4)
    assert out.task_logits == {} and out.task_hidden == {} and out.attentions == {}
    assert out.ctc_log_probs is None and out.ctc_lengths is None
    assert model.emotion_head.in_features == H


def test_compute_emotion_false_skips_fusion_and_emotion_head():
    model = build().eval()
    calls = []
    model.task_fusion.register_forward_hook(lambda *a: calls.append("fusion"))
    model.emotion_head.register_forward_hook(lambda *a: calls.append("emotion"))
    waves, lengths = make_batch([8000, 6000])
    out = model.from_audio(waves, lengths, compute_emotion=False)
    assert calls == [] and out.emotion_logits is None and out.attentions == {}
    assert set(out.task_logits) == {"gender", "style"} and out.ctc_log_probs is not None
    model.from_audio(waves, lengths)
    assert calls == ["fusion", "emotion"]


@pytest.mark.parametrize("preset", TINY_PRESETS)
def test_padded_batch_equals_each_utterance_alone(preset):
    """What inference runs (``infer``): every head of every encoder kind gives a file the same
    outputs alone and in a padded batch (group-norm CNNs included)."""
    model = build(preset=preset).eval()
    lens = [16000, 9000, 5000]
    waves, lengths = make_batch(lens, seed=4)
    with torch.no_grad():
        batch = model.infer(waves, lengths)
        for i, n in enumerate(lens):
            one = model.infer(waves[i : i + 1, :n], lengths[i : i + 1])
            t = int(one.frame_lengths[0])
            assert int(batch.frame_lengths[i]) == t

            def close(a, b):
                torch.testing.assert_close(a, b, rtol=0, atol=1e-5)

            close(batch.emotion_logits[i], one.emotion_logits[0])
            for k in batch.task_logits:
                close(batch.task_logits[k][i], one.task_logits[k][0])
            for k in batch.task_hidden:
                close(batch.task_hidden[k][i], one.task_hidden[k][0])
            close(batch.ctc_log_probs[i, :t], one.ctc_log_probs[0, :t])
            close(batch.attentions["task_to_frame"][i, :, :t], one.attentions["task_to_frame"][0])
            close(batch.attentions["frame_to_task"][i, :t], one.attentions["frame_to_task"][0])
            assert float(batch.attentions["task_to_frame"][i, :, t:].abs().sum()) == 0.0


@pytest.mark.parametrize("preset", ["tiny-wav2vec2", "tiny-hubert", "tiny-wavlm", "tiny-data2vec"])
def test_all_encoder_classes_train_end_to_end(preset):
    model = build(preset=preset)
    model.freeze_encoder_layers(4)
    model.train()
    waves, lengths = make_batch([8000, 6400])
    out = model.from_audio(waves, lengths)
    loss = out.emotion_logits.logsumexp(-1).sum() + sum(v.sum() for v in out.task_logits.values())
    loss = loss - out.ctc_log_probs.mean()
    loss.backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(p.grad is not None for _, p in trainable)
    assert model.layer_fusion.logits.grad.abs().sum() > 0


def _missing_grads(model: MetaSERModel) -> list[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]


def test_every_trainable_parameter_gets_a_gradient_in_each_stage():
    """No trainable parameter is unused (what DDP without find_unused_parameters needs)."""
    waves, lengths = make_batch([8000, 6400])
    model = build()
    # stage 1: aux heads, no emotion compute
    model.freeze_encoder_layers(0)
    model.set_trainable(aux_heads=True, emotion_head=False)
    model.train()
    out = model.from_audio(waves, lengths, compute_emotion=False)
    (sum(v.logsumexp(-1).sum() for v in out.task_logits.values()) - out.ctc_log_probs.mean()).backward()
    assert _missing_grads(model) == []
    assert not any(p.requires_grad for p in model.emotion_head.parameters())
    # stage 2: encoder layers 4.., fusion, co-attention and emotion head; aux heads frozen
    model.zero_grad(set_to_none=True)
    model.freeze_encoder_layers(4)
    model.set_trainable(aux_heads=False, emotion_head=True)
    model.train()
    model.from_audio(waves, lengths).emotion_logits.logsumexp(-1).sum().backward()
    assert _missing_grads(model) == []
    assert all(p.grad is None for p in model.task_heads.parameters())


def test_set_trainable_and_frozen_heads_in_eval_mode():
    model = build()
    model.set_trainable(aux_heads=False, emotion_head=True)
    model.train()
    assert not any(p.requires_grad for p in model.task_heads.parameters())
    assert all(p.requires_grad for p in model.emotion_head.parameters())
    assert all(p.requires_grad for p in model.task_fusion.parameters())
    assert model.layer_fusion.logits.requires_grad
    assert not model.task_heads.training and model.emotion_head.training
    model.set_trainable(aux_heads=True, emotion_head=False)
    assert model.task_heads.training and not model.emotion_head.training and not model.task_fusion.training
    model.eval()
    assert not model.task_heads.training


def test_parameter_groups_partition_the_model():
    model = build()
    enc = {id(p) for p in model.encoder_parameters()}
    head = {id(p) for p in model.head_parameters()}
    assert enc.isdisjoint(head)
    assert enc | head == {id(p) for p in model.parameters()}
    assert id(model.layer_fusion.logits) in head
    assert enc == {id(p) for p in model.encoder.parameters()}


def test_freeze_encoder_layers_delegates():
    model = build()
    model.freeze_encoder_layers(4)
    assert model.encoder.frozen_layers == 4
    layers = model.encoder.model.encoder.layers
    assert [any(p.requires_grad for p in layer.parameters()) for layer in layers] == [False] * 4 + [True] * 8


def test_invalid_labels_and_tasks_are_config_errors():
    cfg = tiny_model_config()
    with pytest.raises(ConfigError, match="at least 2 classes"):
        MetaSERModel.build(cfg, ["neu"], [])
    with pytest.raises(ConfigError, match="duplicate task names"):
        MetaSERModel.build(cfg, EMOTIONS, [TASKS[0], TASKS[0]])
    with pytest.raises(ConfigError, match="main task"):
        MetaSERModel.build(cfg, EMOTIONS, [TaskSpec("emotion", "classification", EMOTIONS)])
    with pytest.raises(ConfigError, match="at most one CTC"):
        MetaSERModel.build(cfg, EMOTIONS, [TASKS[2], TaskSpec("asr2", "ctc", ["a"])])


# ----------------------------------------------------------------------------- save / load
def test_save_then_load_gives_identical_outputs(tmp_path):
    model = build(normalize=True)
    model.freeze_encoder_layers(4)
    with torch.no_grad():  # make every head weight non-default
        model.layer_fusion.logits.copy_(torch.linspace(-1, 1, 11))
    model.save_pretrained(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    assert set(meta) == {
        "metaser_version",
        "model",
        "emotion_labels",
        "tasks",
        "encoder_config",
        "sample_rate",
        "normalize_waveform",
    }
    assert meta["sample_rate"] == 16000 and meta["normalize_waveform"] is True
    assert meta["emotion_labels"] == EMOTIONS
    assert meta["tasks"][2] == {"name": "asr", "kind": "ctc", "labels": list(" abcdefg")}
    assert meta["encoder_config"]["model_type"] == "wavlm"
    assert meta["model"]["aux_head"] == {"hidden_dim": 16, "dropout": 0.1}

    loaded = load_ser_model(tmp_path / "m", map_location="cpu")
    assert type(loaded) is MetaSERModel
    assert not loaded.training and loaded.encoder.normalize_waveform is True
    # same trainable set as the source: torch may pick other CPU kernels (1e-7 apart) when
    # parameters require grad, even under no_grad
    loaded.freeze_encoder_layers(4)
    model.eval()
    waves, lengths = make_batch([12000, 7000])
    with torch.no_grad():
        a, b = model.from_audio(waves, lengths), loaded.from_audio(waves, lengths)
    assert torch.equal(a.emotion_logits, b.emotion_logits)
    assert torch.equal(a.ctc_log_probs, b.ctc_log_probs)
    assert all(torch.equal(a.task_logits[k], b.task_logits[k]) for k in a.task_logits)
    torch.testing.assert_close(loaded.layer_weights(), torch.softmax(torch.linspace(-1, 1, 11), 0))


def test_baseline_save_load_roundtrip(tmp_path):
    model = build(tasks=[], architecture="baseline", preset="tiny-hubert").eval()
    model.save_pretrained(tmp_path / "b")
    loaded = load_ser_model(tmp_path / "b")
    assert type(loaded) is BaselineModel
    waves, lengths = make_batch([9000, 8000])
    with torch.no_grad():
        a, b = model.from_audio(waves, lengths), loaded.from_audio(waves, lengths)
    assert torch.equal(a.emotion_logits, b.emotion_logits)


def test_load_errors_are_clear(tmp_path):
    with pytest.raises(MetaserError, match="model directory not found"):
        load_ser_model(tmp_path / "missing")
    build(tasks=[]).save_pretrained(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    meta["emotion_labels"] = EMOTIONS + ["fear"]  # 5 classes vs 4 saved
    (tmp_path / "m" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(MetaserError, match="does not match"):
        load_ser_model(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").unlink()
    with pytest.raises(MetaserError, match="missing model.safetensors"):
        load_ser_model(tmp_path / "m")


def test_base_size_random_wavlm_forward_backward_on_cpu():
    """The real base sizes (12 x 768, random init): one step on 1 s of audio."""
    cfg = ModelConfig(encoder=EncoderConfig(name_or_path="base-random-wavlm"))
    model = MetaSERModel.build(cfg, EMOTIONS, TASKS)
    model.freeze_encoder_layers(4)
    model.set_trainable(aux_heads=False, emotion_head=True)  # stage 2
    model.train()
    waves, lengths = make_batch([16000])
    out = model.from_audio(waves, lengths)
    assert out.emotion_logits.shape == (1, 4) and out.ctc_log_probs.shape == (1, 49, 9)
    assert model.encoder.hidden_size == 768 and out.layer_weights.shape == (11,)
    assert model.emotion_head.in_features == 7 * 256
    out.emotion_logits.sum().backward()
    assert _missing_grads(model) == []
