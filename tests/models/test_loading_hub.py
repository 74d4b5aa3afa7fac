"""Loading the paper's hub checkpoints by path: tiny replicas laid out exactly as on the hub
(``tests/hub_replicas.py``: hub config.json fields, ``pytorch_model.bin`` with legacy weight-norm
names, wav2vec2 saved from ``Wav2Vec2ForPreTraining``).

Every tensor must arrive bit for bit, the forward must equal transformers' own model loaded from
the same directory, metaser's ``encoder.gradient_checkpointing`` must win over the checkpoint's
flag in both directions, and a load must not print transformers' LOAD REPORT: expected keys stay
quiet, real problems are one warning line.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from metaser.errors import ConfigError
from metaser.models.config import EncoderConfig, ModelConfig
from metaser.models.encoder import SSLEncoder
from metaser.models.metaser import MetaSERModel
from tests.hub_replicas import (
    KINDS,
    PRETRAINING_HEADS,
    encoder_view,
    hub_config,
    read_replica_state_dict,
    write_hub_replica,
)
from tests.models.helpers import EMOTIONS, TASKS, make_batch

LOADER = "metaser.models.encoder.loading"


@pytest.fixture(scope="module")
def replicas(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("hub")
    return {kind: str(write_hub_replica(kind, root / kind)) for kind in KINDS}


def load(path: str, **kw) -> SSLEncoder:
    return SSLEncoder.from_pretrained(EncoderConfig(name_or_path=path, **kw))


def checkpointing_flags(enc: SSLEncoder) -> set[bool]:
    return {m.gradient_checkpointing for m in enc.model.modules() if hasattr(m, "gradient_checkpointing")}


# ------------------------------------------------------------------------------ the replicas
@pytest.mark.parametrize("kind", KINDS)
def test_replica_is_laid_out_like_the_hub(kind, replicas, tmp_path):
    d = replicas[kind]
    files = sorted(p.name for p in Path(d).iterdir())
    assert files == ["config.json", "preprocessor_config.json", "pytorch_model.bin"]
    cfg = json.loads(Path(d, "config.json").read_text())
    assert cfg["feat_extract_norm"] == "group" and cfg["do_stable_layer_norm"] is False
    assert cfg["mask_time_prob"] == 0.05 and cfg["architectures"]
    assert (cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"]) == (32, 12, 2)
    pre = json.loads(Path(d, "preprocessor_config.json").read_text())
    assert {"do_normalize", "return_attention_mask", "sampling_rate"} <= set(pre)
    saved = read_replica_state_dict(d)
    keys = set(saved)
    assert any(k.endswith("pos_conv_embed.conv.weight_g") for k in keys)
    assert any(k.endswith("pos_conv_embed.conv.weight_v") for k in keys)
    assert not any("parametrizations" in k for k in keys)
    assert any(k.endswith("masked_spec_embed") for k in keys)
    if kind == "wav2vec2-base":
        assert cfg["gradient_checkpointing"] is True and cfg["architectures"] == ["Wav2Vec2ForPreTraining"]
        assert {k.split(".")[0] + "." for k in keys} == {"wav2vec2.", *PRETRAINING_HEADS}
    # deterministic: the same seed writes the same tensors
    again = read_replica_state_dict(write_hub_replica(kind, tmp_path / "again"))
    assert again.keys() == saved.keys() and all(torch.equal(again[k], saved[k]) for k in saved)
    assert hub_config(kind) == cfg


# ------------------------------------------------------------------------------------ weights
@pytest.mark.parametrize("kind", KINDS)
def test_every_tensor_arrives_bit_for_bit(kind, replicas):
    enc = load(replicas[kind])
    ours = enc.model.state_dict()
    expected = encoder_view(kind, read_replica_state_dict(replicas[kind]))
    assert set(ours) == set(expected)
    for key, value in expected.items():
        assert torch.equal(ours[key], value), key


@pytest.mark.parametrize("kind", KINDS)
def test_normalisation_comes_from_the_preprocessor_config(kind, replicas):
    pre = json.loads(Path(replicas[kind], "preprocessor_config.json").read_text())
    assert load(replicas[kind]).normalize_waveform is pre["do_normalize"]


@pytest.mark.parametrize("attn", ["eager", None])
@pytest.mark.parametrize("kind", KINDS)
def test_forward_equals_transformers_own_model_and_feature_extractor(kind, attn, replicas):
    """Each utterance alone: transformers' feature extractor + model from the same directory."""
    from transformers import AutoFeatureExtractor, AutoModel

    d = replicas[kind]
    fe = AutoFeatureExtractor.from_pretrained(d)
    ref = AutoModel.from_pretrained(d, attn_implementation="eager").eval()
    enc = load(d, attn_implementation=attn).eval()
    waves, lengths = make_batch([9000, 6400])
    for i, n in enumerate(lengths.tolist()):
        w, n_ = waves[i : i + 1, :n], lengths[i : i + 1]
        inputs = fe([w[0].numpy()], sampling_rate=16000, return_tensors="pt")["input_values"]
        x = enc.prepare(w, n_)  # metaser's normalisation (numpy vs torch: float rounding)
        torch.testing.assert_close(x, inputs, rtol=0, atol=2e-6)
        with torch.no_grad():
            expected = ref(x, output_hidden_states=True).hidden_states[1:]
            ours = enc(w, n_).hidden_states
        assert len(ours) == len(expected) == 12
        for a, b in zip(ours, expected):
            if attn == "eager":
                assert torch.equal(a, b)
            else:  # SDPA (transformers' own, or metaser's for WavLM) against eager: float rounding
                torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------- gradient checkpointing
def recomputed_layers(enc: SSLEncoder) -> int:
    """Forward + backward in training mode: how often layer 6 ran (2 = checkpointed, replayed)."""
    enc.train()
    calls: list[int] = []
    enc.model.encoder.layers[6].feed_forward.register_forward_hook(lambda *a: calls.append(1))  # inside the checkpoint
    waves, lengths = make_batch([6000, 4000])
    out = enc(waves, lengths)
    sum(h.pow(2).mean() for h in out.hidden_states).backward()
    return len(calls)


def checkpointing_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOADER and "gradient checkpointing" in r.getMessage()]


def test_checkpoint_asking_for_checkpointing_loses_to_metaser_off(replicas, caplog):
    caplog.set_level(logging.INFO, logger=LOADER)
    enc = load(replicas["wav2vec2-base"], gradient_checkpointing=False)
    assert checkpointing_flags(enc) == {False}
    assert recomputed_layers(enc) == 1
    lines = checkpointing_lines(caplog)
    assert len(lines) == 1
    assert lines[0].startswith(
        "encoder: gradient checkpointing off (the checkpoint's config asked for it; "
        "encoder.gradient_checkpointing=false wins)"
    )
    assert [r.levelno for r in caplog.records if r.name == LOADER and "checkpointing" in r.getMessage()] == [
        logging.INFO
    ]
    assert "gradient_checkpointing" not in enc.hf_config_dict()


def test_metaser_on_wins_over_a_checkpoint_that_has_it_off(replicas, caplog):
    caplog.set_level(logging.INFO, logger=LOADER)
    enc = load(replicas["hubert-base"], gradient_checkpointing=True)  # hub config: "gradient_checkpointing": false
    assert True in checkpointing_flags(enc)
    assert all(layer.gradient_checkpointing for layer in enc.model.encoder.layers)
    assert recomputed_layers(enc) == 2
    (line,) = checkpointing_lines(caplog)
    assert line.startswith(
        "encoder: gradient checkpointing on (the checkpoint's config had it off; "
        "encoder.gradient_checkpointing=true wins)"
    )


def test_agreeing_settings_log_nothing_about_checkpointing(replicas, caplog):
    caplog.set_level(logging.INFO, logger=LOADER)
    enc = load(replicas["wav2vec2-base"], gradient_checkpointing=True)
    assert recomputed_layers(enc) == 2
    enc = load(replicas["wavlm-base"])  # no flag in its config, metaser's default (off)
    assert checkpointing_flags(enc) == {False}
    assert checkpointing_lines(caplog) == []


def test_a_saved_metaser_model_does_not_carry_the_flag_back(replicas, tmp_path, caplog):
    cfg = ModelConfig(encoder=EncoderConfig(name_or_path=replicas["wav2vec2-base"]))
    model = MetaSERModel.build(cfg, EMOTIONS, TASKS)
    assert checkpointing_flags(model.encoder) == {False}
    model.save_pretrained(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    assert "gradient_checkpointing" not in meta["encoder_config"]
    assert meta["model"]["encoder"]["gradient_checkpointing"] is False
    assert checkpointing_flags(MetaSERModel.from_pretrained(tmp_path / "m").encoder) == {False}
    model.encoder.save_pretrained(tmp_path / "enc")
    assert "gradient_checkpointing" not in json.loads((tmp_path / "enc" / "config.json").read_text())
    # a model saved before the fix carried it in encoder_config: metaser's setting still wins
    meta["encoder_config"]["gradient_checkpointing"] = True
    (tmp_path / "m" / "config.json").write_text(json.dumps(meta))
    caplog.set_level(logging.INFO, logger=LOADER)
    assert checkpointing_flags(MetaSERModel.from_pretrained(tmp_path / "m").encoder) == {False}
    assert len(checkpointing_lines(caplog)) == 1


# -------------------------------------------------------------------------------- load report
@pytest.mark.parametrize("kind", KINDS)
def test_a_clean_hub_checkpoint_loads_without_a_report_or_warning(kind, replicas, capfd, caplog):
    caplog.set_level(logging.DEBUG)
    load(replicas[kind])
    out, err = capfd.readouterr()
    assert "LOAD REPORT" not in out + err and "UNEXPECTED" not in out + err
    assert "Loading weights" not in out + err
    assert "masked_spec_embed" not in out + err
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert noisy == [], [r.getMessage() for r in noisy]
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "LOAD REPORT" not in text and "masked_spec_embed" not in text
    heads = [r.getMessage() for r in caplog.records if r.name == LOADER and "pretraining heads" in r.getMessage()]
    if kind == "wav2vec2-base":  # expected, said once at INFO: project_hid, project_q, quantizer
        assert len(heads) == 1 and "7 tensors" in heads[0] and "project_hid, project_q, quantizer" in heads[0]
    else:
        assert heads == []


DROPPED = "encoder.layers.3.attention.k_proj.weight"


@pytest.mark.parametrize(
    "damage,fragments",
    [
        ({"drop_keys": (DROPPED,)}, ["1 tensor missing from the checkpoint (randomly initialised): " + DROPPED]),
        (
            {"extra_tensors": {"encoder.extra.weight": torch.zeros(3), "foo": torch.ones(2)}},
            ["2 tensors of the checkpoint not used by the encoder: encoder.extra.weight, foo"],
        ),
        (
            {"drop_keys": (DROPPED, "encoder.layer_norm.bias"), "extra_tensors": {"foo": torch.ones(2)}},
            ["2 tensors missing", DROPPED, "encoder.layer_norm.bias", "1 tensor of the checkpoint not used", "foo"],
        ),
    ],
    ids=["missing", "unexpected", "both"],
)
def test_a_real_key_problem_is_exactly_one_warning_line(damage, fragments, tmp_path, capfd, caplog):
    d = write_hub_replica("hubert-base", tmp_path / "broken", **damage)
    caplog.set_level(logging.DEBUG)
    load(str(d))
    warnings_ = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings_) == 1, [r.getMessage() for r in warnings_]
    line = warnings_[0].getMessage()
    assert "\n" not in line and warnings_[0].name == LOADER
    assert line.startswith(f"encoder: {d} does not match the encoder: ")
    for fragment in fragments:
        assert fragment in line
    assert "masked_spec_embed" not in line  # the expected one stays out of it
    out, err = capfd.readouterr()
    assert "LOAD REPORT" not in out + err


def test_a_pretraining_head_in_a_base_model_checkpoint_is_reported(tmp_path, caplog):
    """quantizer.* is expected only from a *ForPreTraining checkpoint."""
    d = write_hub_replica("hubert-base", tmp_path / "h", extra_tensors={"quantizer.codevectors": torch.zeros(1, 4, 2)})
    caplog.set_level(logging.INFO)
    load(str(d))
    (line,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert "1 tensor of the checkpoint not used by the encoder: quantizer.codevectors" in line


def test_a_shape_mismatch_is_a_config_error_with_the_key(tmp_path, capfd):
    d = write_hub_replica("hubert-base", tmp_path / "m", extra_tensors={"encoder.layer_norm.weight": torch.ones(7)})
    with pytest.raises(ConfigError, match="cannot load") as e:
        load(str(d))
    assert "encoder.layer_norm.weight" in e.value.message
    out, err = capfd.readouterr()
    assert "LOAD REPORT" not in out + err


def test_forward_is_finite_on_real_lengths(replicas):
    """Smoke: the group-norm replicas run zero-padded batches (no mask) of uneven lengths."""
    for kind in KINDS:
        enc = load(replicas[kind]).eval()
        waves, lengths = make_batch([8000, 3000])
        out = enc(waves, lengths)
        assert not enc.uses_attention_mask
        assert all(np.isfinite(h.detach().numpy()).all() for h in out.hidden_states)
