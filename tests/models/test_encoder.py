"""SSLEncoder: presets, frame lengths, frozen-prefix execution, normalisation, save/load."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from metaser.errors import ConfigError, DataError
from metaser.models.config import EncoderConfig
from metaser.models.encoder import PRESETS, SSLEncoder, normalize_waveforms
from tests.models.helpers import TINY_PRESETS, make_batch

KERNELS = (10, 3, 3, 3, 3, 2, 2)
STRIDES = (5, 2, 2, 2, 2, 2, 2)


def hand_frames(n: int) -> int:
    for k, s in zip(KERNELS, STRIDES):
        n = (n - k) // s + 1
    return n


def tiny(preset: str = "tiny-wavlm", **kw) -> SSLEncoder:
    return SSLEncoder.from_pretrained(EncoderConfig(name_or_path=preset, **kw))


def plain_hidden(enc: SSLEncoder, waves: torch.Tensor, lengths: torch.Tensor):
    """The library's own forward, with the same input and mask policy."""
    mask = None
    if enc.uses_attention_mask:
        mask = (torch.arange(waves.shape[1])[None, :] < lengths[:, None]).long()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Support for mismatched key_padding_mask")
        return enc.model(waves, attention_mask=mask, output_hidden_states=True).hidden_states[1:]


@pytest.mark.parametrize("preset", TINY_PRESETS)
def test_tiny_presets_shapes(preset):
    enc = tiny(preset).eval()
    waves, lengths = make_batch([16000, 9000])
    out = enc(waves, lengths)
    assert enc.num_layers == 12 and enc.hidden_size == 32
    assert len(out.hidden_states) == 12
    assert all(h.shape == (2, 49, 32) for h in out.hidden_states)
    assert out.frame_lengths.tolist() == [49, 27]
    assert out.frame_mask.dtype == torch.bool
    assert out.frame_mask.sum(1).tolist() == [49, 27]
    assert out.frame_mask[1, :27].all() and not out.frame_mask[1, 27:].any()


def test_preset_norm_policy():
    assert tiny("tiny-wavlm").uses_attention_mask is True
    assert tiny("tiny-data2vec").uses_attention_mask is True
    assert tiny("tiny-wav2vec2").uses_attention_mask is False
    assert tiny("tiny-hubert").uses_attention_mask is False
    assert set(PRESETS) >= {"tiny-wav2vec2", "tiny-hubert", "tiny-wavlm", "base-random-wavlm"}


@pytest.mark.parametrize("preset,masked", [("tiny-wav2vec2", False), ("tiny-hubert", False), ("tiny-wavlm", True)])
def test_attention_mask_only_for_layer_norm_cnns(preset, masked):
    enc = tiny(preset)
    seen = []
    enc.model.encoder.layers[0].register_forward_pre_hook(
        lambda m, a, kw: seen.append(kw.get("attention_mask")), with_kwargs=True
    )
    waves, lengths = make_batch([8000, 5000])
    out = enc(waves, lengths)
    assert enc.padded_cnn_exact is masked
    enc(waves, lengths, independent=True)  # computed as if alone: every encoder gets a mask
    assert seen[-1] is not None
    if masked:  # WavLM's layers get HF's frame mask (True = valid frame)
        assert seen[0].tolist() == out.frame_mask.tolist() and out.frame_mask[1].sum() < out.frame_mask[0].sum()
    else:
        assert seen[0] is None
        # group-norm input is zero-padded (the padding is zeroed even if the caller did not)
        waves2 = waves.clone()
        waves2[1, 5000:] = 1.0
        torch.testing.assert_close(enc.prepare(waves2, lengths), waves)


def test_frame_lengths_match_cnn_formula():
    enc = tiny("tiny-wavlm").eval()
    samples = [400, 401, 719, 720, 1000, 12345, 16000]
    expected = [hand_frames(n) for n in samples]
    assert expected[:4] == [1, 1, 1, 2] and expected[-1] == 49
    assert enc.frame_lengths(torch.tensor(samples)).tolist() == expected
    assert enc.min_samples == 400
    # ... and each equals the number of frames the model produces for that utterance alone
    for n, frames in zip(samples[2:5], expected[2:5]):
        waves, lengths = make_batch([n])
        assert enc(waves, lengths).hidden_states[-1].shape[1] == frames


def test_preset_is_deterministic_and_leaves_global_rng_alone():
    torch.manual_seed(7)
    expected_next = torch.rand(3)
    torch.manual_seed(7)
    a = tiny("tiny-hubert")
    after = torch.rand(3)
    b = tiny("tiny-hubert")
    assert torch.equal(after, expected_next)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("preset", TINY_PRESETS)
@pytest.mark.parametrize("n", [0, 4, 12])
def test_frozen_prefix_forward_equals_plain_forward(preset, n):
    # WavLM with transformers' own (eager) attention: our SDPA is compared in test_wavlm_sdpa.py
    enc = tiny(preset, attn_implementation="eager" if preset == "tiny-wavlm" else None)
    enc.freeze_layers(n)
    enc.eval()
    waves, lengths = make_batch([12000, 7000, 9999])
    ours = enc(waves, lengths).hidden_states
    ref = plain_hidden(enc, waves, lengths)
    assert len(ours) == len(ref) == 12
    for a, b in zip(ours, ref):
        assert torch.equal(a, b)


def _trainable(enc: SSLEncoder) -> set[str]:
    return {name for name, p in enc.model.named_parameters() if p.requires_grad}


def test_freeze_layers_selects_exactly_the_upper_layers():
    enc = tiny("tiny-wavlm")
    enc.freeze_layers(4)
    trainable = _trainable(enc)
    assert {name.split(".")[2] for name in trainable} == {str(i) for i in range(4, 12)}
    assert all(name.startswith("encoder.layers.") for name in trainable)
    per_layer = {n for n, _ in enc.model.encoder.layers[5].named_parameters()}
    assert len(trainable) == 8 * len(per_layer)
    enc.freeze_layers(0)
    trainable0 = _trainable(enc)
    assert any(n.startswith("feature_projection.") for n in trainable0)
    assert any(n.startswith("encoder.pos_conv_embed.") for n in trainable0)
    assert "encoder.layer_norm.weight" in trainable0
    assert any(n.startswith("encoder.layers.0.") for n in trainable0)
    enc.freeze_layers(12)
    assert _trainable(enc) == set()


@pytest.mark.parametrize("n", [0, 4, 12])
def test_cnn_never_requires_grad(n):
    enc = tiny("tiny-wav2vec2")
    enc.freeze_layers(n)
    assert not any(p.requires_grad for p in enc.model.feature_extractor.parameters())


def test_freeze_layers_rejects_out_of_range():
    enc = tiny("tiny-wavlm")
    for bad in (-1, 13, 2.0):
        with pytest.raises(ConfigError, match="freeze_layers"):
            enc.freeze_layers(bad)


def test_frozen_prefix_keeps_no_activations():
    enc = tiny("tiny-wavlm")
    enc.freeze_layers(4)
    enc.train()
    waves, lengths = make_batch([8000, 6000])
    # attribute every tensor autograd saves to the module running at that moment
    current = ["input"]
    saved_by: dict[str, int] = {}
    enter = {"cnn": enc.model.feature_extractor, "prefix": enc.model.feature_projection}
    handles = [
        mod.register_forward_pre_hook(lambda m, a, name=name: current.__setitem__(0, name))
        for name, mod in enter.items()
    ]
    for i, layer in enumerate(enc.model.encoder.layers):
        handles.append(layer.register_forward_pre_hook(lambda m, a, i=i: current.__setitem__(0, f"layer{i}")))

    grad_mode: dict[str, bool] = {}
    for name, mod in (
        ("cnn", enc.model.feature_extractor),
        ("prefix", enc.model.feature_projection),
        ("layer3", enc.model.encoder.layers[3]),
        ("layer4", enc.model.encoder.layers[4]),
    ):
        handles.append(
            mod.register_forward_hook(lambda m, a, o, name=name: grad_mode.__setitem__(name, torch.is_grad_enabled()))
        )

    def pack(t):
        saved_by[current[0]] = saved_by.get(current[0], 0) + 1
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = enc(waves, lengths)
    for h in handles:
        h.remove()
    assert set(saved_by) == {f"layer{i}" for i in range(4, 12)}
    assert grad_mode == {"cnn": False, "prefix": False, "layer3": False, "layer4": True}
    for h in out.hidden_states[:4]:
        assert not h.requires_grad and h.grad_fn is None
    for h in out.hidden_states[4:]:
        assert h.requires_grad and h.grad_fn is not None
    sum(h.pow(2).mean() for h in out.hidden_states[4:]).backward()
    for name, p in enc.model.named_parameters():
        upper = name.startswith("encoder.layers.") and int(name.split(".")[2]) >= 4
        if upper:
            assert p.grad is not None, name
        else:
            assert p.grad is None, name


def test_grad_mode_is_restored():
    enc = tiny("tiny-wavlm")
    enc.freeze_layers(4)
    waves, lengths = make_batch([8000])
    with torch.no_grad():
        out = enc(waves, lengths)
        assert not torch.is_grad_enabled()
    assert all(h.grad_fn is None for h in out.hidden_states)
    assert torch.is_grad_enabled()
    out = enc(waves, lengths)
    assert torch.is_grad_enabled()
    assert out.hidden_states[-1].grad_fn is not None


def test_layerdrop_and_specaugment_are_off():
    enc = tiny("tiny-wavlm")
    cfg = enc.model.config
    assert (cfg.layerdrop, cfg.mask_time_prob, cfg.mask_feature_prob) == (0.0, 0.0, 0.0)
    assert getattr(enc.model, "masked_spec_embed", None) is None


def test_frozen_modules_stay_in_eval_mode():
    enc = tiny("tiny-wavlm")
    enc.freeze_layers(4)
    enc.train()
    layers = enc.model.encoder.layers
    assert [layer.training for layer in layers] == [False] * 4 + [True] * 8
    assert not enc.model.feature_extractor.training
    assert not enc.model.feature_projection.training
    enc.freeze_layers(0)
    assert all(layer.training for layer in layers) and enc.model.feature_projection.training
    assert not enc.model.feature_extractor.training
    enc.eval()
    assert not any(layer.training for layer in layers)


def test_activation_checkpointing_gives_the_same_gradients():
    waves, lengths = make_batch([8000, 5000])
    grads = []
    for ckpt in (False, True):
        enc = tiny("tiny-wavlm", gradient_checkpointing=ckpt, dropout=0.0)
        enc.freeze_layers(4)
        enc.train()  # transformers checkpoints in training mode only; dropout 0: the same function
        recomputed = []
        enc.model.encoder.layers[6].feed_forward.register_forward_hook(lambda *a, seen=recomputed: seen.append(1))
        out = enc(waves, lengths)
        sum(h.pow(2).mean() for h in out.hidden_states).backward()
        assert len(recomputed) == (2 if ckpt else 1)  # the backward replays a checkpointed layer
        grads.append({n: p.grad.clone() for n, p in enc.model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 0
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-5, atol=1e-7)


# --------------------------------------------------------------------- waveform normalisation
def test_normalize_uses_true_length_only():
    waves, lengths = make_batch([8000, 5000])
    waves = waves * 3.0 + 0.5 * (waves != 0)
    out = normalize_waveforms(waves, lengths)
    assert torch.all(out[1, 5000:] == 0)
    for i, n in enumerate(lengths.tolist()):
        seg = out[i, :n].double()
        assert abs(seg.mean().item()) < 1e-5
        assert abs(seg.var(unbiased=False).item() - 1.0) < 1e-4
    alone = normalize_waveforms(waves[1:, :5000], lengths[1:])
    torch.testing.assert_close(out[1:, :5000], alone, rtol=0, atol=1e-6)


def test_normalize_matches_hf_feature_extractor():
    from transformers import Wav2Vec2FeatureExtractor

    waves, lengths = make_batch([8000, 5000])
    mask = (torch.arange(8000)[None] < lengths[:, None]).int().numpy()
    ref = Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm(
        [w for w in waves.numpy()], attention_mask=mask, padding_value=0.0
    )
    np.testing.assert_allclose(normalize_waveforms(waves, lengths).numpy(), np.stack(ref), atol=1e-5)


def test_encoder_forward_normalizes_when_asked():
    waves, lengths = make_batch([8000, 5000])
    raw, norm = tiny("tiny-wavlm"), tiny("tiny-wavlm", normalize_waveform=True)
    assert raw.normalize_waveform is False and norm.normalize_waveform is True
    torch.testing.assert_close(norm.prepare(waves, lengths), normalize_waveforms(waves, lengths))
    torch.testing.assert_close(raw.prepare(waves, lengths), waves)


# -------------------------------------------------------------------------------- save / load
def test_save_pretrained_and_load_back_by_path(tmp_path):
    src = tiny("tiny-wavlm", normalize_waveform=True)
    src.save_pretrained(tmp_path / "enc")
    assert (tmp_path / "enc" / "config.json").is_file()
    pre = json.loads((tmp_path / "enc" / "preprocessor_config.json").read_text())
    assert pre["do_normalize"] is True
    loaded = SSLEncoder.from_pretrained(EncoderConfig(name_or_path=str(tmp_path / "enc")))
    assert loaded.normalize_waveform is True  # resolved from preprocessor_config.json
    assert type(loaded.model) is type(src.model)
    src.eval(), loaded.eval()
    waves, lengths = make_batch([9000, 4000])
    for a, b in zip(src(waves, lengths).hidden_states, loaded(waves, lengths).hidden_states):
        assert torch.equal(a, b)
    # an explicit setting wins over the checkpoint's
    off = SSLEncoder.from_pretrained(EncoderConfig(name_or_path=str(tmp_path / "enc"), normalize_waveform=False))
    assert off.normalize_waveform is False
    # no preprocessor_config.json -> False
    (tmp_path / "enc" / "preprocessor_config.json").unlink()
    assert SSLEncoder.from_pretrained(EncoderConfig(name_or_path=str(tmp_path / "enc"))).normalize_waveform is False


@pytest.mark.parametrize("preset", ["tiny-wav2vec2", "tiny-hubert", "tiny-wavlm"])
def test_from_hf_config_rebuilds_the_architecture(preset):
    src = tiny(preset).eval()
    rebuilt = SSLEncoder.from_hf_config(src.hf_config_dict(), EncoderConfig(name_or_path=preset))
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in src.state_dict().items()}
    rebuilt.load_state_dict(src.state_dict())
    rebuilt.eval()
    waves, lengths = make_batch([6000, 5000])
    assert torch.equal(src(waves, lengths).hidden_states[-1], rebuilt(waves, lengths).hidden_states[-1])


def test_missing_directory_is_a_config_error(tmp_path):
    missing = tmp_path / "nope" / "enc"
    with pytest.raises(ConfigError, match="directory not found"):
        SSLEncoder.from_pretrained(EncoderConfig(name_or_path=str(missing)))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no config.json"):
        SSLEncoder.from_pretrained(EncoderConfig(name_or_path=str(tmp_path / "empty")))


@pytest.mark.parametrize("impl", ["flash_attention_2", "no-such-attention"])
def test_unsupported_attention_implementation_is_a_config_error(impl):
    with pytest.raises(ConfigError):
        tiny("tiny-wavlm", attn_implementation=impl)


def test_too_short_utterance_is_a_data_error():
    enc = tiny("tiny-wavlm")
    waves, lengths = make_batch([8000, 399])
    with pytest.raises(DataError, match="1 utterance"):
        enc(waves, lengths)


def test_deep_copies_keep_independent_freezing():
    import copy

    src = tiny("tiny-wavlm")
    src.freeze_layers(2)
    dup = copy.deepcopy(src)
    dup.freeze_layers(6)
    src.freeze_layers(0)
    waves, lengths = make_batch([6000])
    a, b = src(waves, lengths).hidden_states, dup(waves, lengths).hidden_states
    assert [h.requires_grad for h in a] == [True] * 12
    assert [h.requires_grad for h in b] == [False] * 6 + [True] * 6


def test_dropout_override_reaches_the_built_model():
    from metaser.models.config import EncoderConfig
    from metaser.models.encoder import SSLEncoder

    enc = SSLEncoder.from_pretrained(EncoderConfig(name_or_path="tiny-wavlm", dropout=0.0))
    hf = enc.model.config
    assert (hf.hidden_dropout, hf.attention_dropout, hf.activation_dropout) == (0.0, 0.0, 0.0)
    drops = [m.p for m in enc.model.modules() if isinstance(m, torch.nn.Dropout)]
    assert drops and all(p == 0.0 for p in drops)
    default = SSLEncoder.from_pretrained(EncoderConfig(name_or_path="tiny-wavlm"))
    assert default.model.config.hidden_dropout == 0.1
