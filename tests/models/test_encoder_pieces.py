"""SSLEncoder run in pieces: features -> forward_features, prefix -> forward_from_layer.

What an exact frozen-prefix cache relies on: every path gives forward()'s outputs and gradients.
"""

from __future__ import annotations

import pytest
import torch

from metaser.models.config import EncoderConfig
from metaser.models.encoder import SSLEncoder, preset_config
from tests.models.helpers import TINY_PRESETS, make_batch

#: the tiny presets plus stable-layer-norm (pre-LN, "large"-style) variants of wav2vec2 and WavLM
VARIANTS = TINY_PRESETS + ["stable-wav2vec2", "stable-wavlm"]
LENGTHS = [12000, 7000, 9999]


def build(variant: str, **kw) -> SSLEncoder:
    if variant.startswith("stable-"):
        d = preset_config(f"tiny-{variant[7:]}").to_dict()
        d.update(do_stable_layer_norm=True, feat_extract_norm="layer")
        if kw.get("dropout") is not None:  # from_hf_config keeps the dict's dropout values
            d.update(
                {
                    k: kw["dropout"]
                    for k in ("hidden_dropout", "attention_dropout", "activation_dropout", "feat_proj_dropout")
                }
            )
        torch.manual_seed(3)
        return SSLEncoder.from_hf_config(d, EncoderConfig(name_or_path=variant, **kw))
    return SSLEncoder.from_pretrained(EncoderConfig(name_or_path=variant, **kw))


def build_frozen(variant: str, n: int) -> SSLEncoder:
    """``build(variant)`` with the first n layers frozen, in eval mode (no dropout)."""
    enc = build(variant)
    enc.freeze_layers(n)
    return enc.eval()


def _stored(t: torch.Tensor) -> torch.Tensor:
    """What a cache gives back: a contiguous copy, without autograd history."""
    return t.detach().contiguous().clone()


def assert_same(a, b, atol=1e-6):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.shape == y.shape
        torch.testing.assert_close(x, y, rtol=0, atol=atol)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("frozen", [0, 4])
def test_features_then_forward_features_equals_forward(variant, frozen):
    enc = build_frozen(variant, frozen)
    waves, lengths = make_batch(LENGTHS)
    ref = enc(waves, lengths)
    feats, frame_lengths = enc.features(waves, lengths)
    assert feats.shape == (3, ref.frame_mask.shape[1], enc.feature_size) and not feats.requires_grad
    assert torch.equal(frame_lengths, ref.frame_lengths)
    out = enc.forward_features(_stored(feats), frame_lengths)
    assert out.first_layer == 0 and torch.equal(out.frame_mask, ref.frame_mask)
    assert_same(out.hidden_states, ref.hidden_states)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("n", [1, 4])
def test_prefix_then_forward_from_layer_equals_forward(variant, n):
    enc = build_frozen(variant, n)
    waves, lengths = make_batch(LENGTHS)
    ref = enc(waves, lengths).hidden_states
    feats, frame_lengths = enc.features(waves, lengths)
    kept = enc.prefix(_stored(feats), frame_lengths, n)
    assert len(kept) == n and all(h.grad_fn is None for h in kept)  # frozen: no graph kept
    out = enc.forward_from_layer(tuple(_stored(h) for h in kept), frame_lengths, n)
    assert out.first_layer == 0
    assert_same(out.hidden_states, ref)
    # resuming from the input of layer n alone gives layers n..L-1
    hidden_n = enc.prefix_hidden(_stored(feats), frame_lengths, n)
    torch.testing.assert_close(hidden_n, ref[n - 1], rtol=0, atol=1e-6)
    alone = enc.forward_features(None, frame_lengths, start_layer=n, hidden=_stored(hidden_n))
    assert alone.first_layer == n
    assert_same(alone.hidden_states, ref[n:])


def _grads(enc: SSLEncoder) -> dict[str, torch.Tensor]:
    return {name: p.grad.clone() for name, p in enc.model.named_parameters() if p.grad is not None}


def _loss(hidden) -> torch.Tensor:
    return sum((i + 1) * h.pow(2).mean() for i, h in enumerate(hidden))


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("checkpointing", [False, True])
def test_cached_prefix_gives_the_same_gradients(variant, checkpointing):
    # train mode (checkpointing only acts in training), dropout 0 so both runs are the same function
    waves, lengths = make_batch(LENGTHS)
    enc = build(variant, dropout=0.0, gradient_checkpointing=checkpointing)
    enc.freeze_layers(4)
    enc.train()
    _loss(enc(waves, lengths).hidden_states).backward()
    ref = _grads(enc)
    enc.zero_grad(set_to_none=True)
    with torch.no_grad():  # what builds the cache
        feats, frame_lengths = enc.features(waves, lengths)
        kept = tuple(_stored(h) for h in enc.prefix(_stored(feats), frame_lengths, 4))
    out = enc.forward_from_layer(kept, frame_lengths, 4)
    assert [h.requires_grad for h in out.hidden_states] == [False] * 4 + [True] * 8
    _loss(out.hidden_states).backward()
    got = _grads(enc)
    assert set(ref) == set(got) and ref
    assert all(name.startswith("encoder.layers.") and int(name.split(".")[2]) >= 4 for name in got)
    for name in ref:
        torch.testing.assert_close(got[name], ref[name], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("variant", VARIANTS)
def test_features_path_gives_the_same_gradients_with_nothing_frozen(variant):
    waves, lengths = make_batch(LENGTHS)
    enc = build_frozen(variant, 0)
    _loss(enc(waves, lengths).hidden_states).backward()
    ref = _grads(enc)
    enc.zero_grad(set_to_none=True)
    feats, frame_lengths = enc.features(waves, lengths)
    _loss(enc.forward_features(_stored(feats), frame_lengths).hidden_states).backward()
    got = _grads(enc)
    assert set(ref) == set(got) and any(n.startswith("feature_projection.") for n in got)
    for name in ref:
        torch.testing.assert_close(got[name], ref[name], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("variant", ["tiny-wavlm", "tiny-data2vec", "stable-wav2vec2"])
def test_layer_norm_cnn_features_do_not_depend_on_the_batch(variant):
    """What makes a per-utterance cache exact: each utterance's CNN features on its valid frames
    equal those of the padded batch; with the attention mask and one positional conv, so do its
    layer outputs. data2vec-audio's stacked positional convs carry the padding into the last
    valid frames (HF zeroes padded frames only before the first), so its layers are not.

    Equal up to float rounding, not bit for bit: the convolution kernels sum in a different
    order for a different input length (measured: at most ~2e-6 on the features here)."""
    enc = build(variant).eval()
    assert enc.batch_independent
    assert enc.batch_independent_layers is (variant != "tiny-data2vec")
    waves, lengths = make_batch(LENGTHS)
    feats, frame_lengths = enc.features(waves, lengths)
    batch_out = enc.forward_features(feats, frame_lengths).hidden_states
    worst = 0.0
    for i, n in enumerate(LENGTHS):
        alone, alone_frames = enc.features(waves[i : i + 1, :n], lengths[i : i + 1])
        t = int(alone_frames[0])
        assert t == int(frame_lengths[i]) == alone.shape[1]
        torch.testing.assert_close(alone[0], feats[i, :t], rtol=0, atol=1e-5)
        alone_out = enc.forward_features(alone, alone_frames).hidden_states
        worst = max(worst, (alone_out[-1][0] - batch_out[-1][i, :t]).abs().max().item())
    if enc.batch_independent_layers:
        assert worst < 1e-5
    else:
        assert worst > 1e-3


def test_group_norm_cnn_features_depend_on_the_padding():
    """wav2vec2-base-style group-norm CNN without a mask: padding changes the valid frames, so
    ``batch_independent`` is False and a per-utterance cache would not be exact."""
    enc = build("tiny-wav2vec2").eval()
    assert not enc.batch_independent and not enc.batch_independent_layers
    waves, lengths = make_batch(LENGTHS)
    feats, frame_lengths = enc.features(waves, lengths)
    i, n = 1, LENGTHS[1]
    alone, _ = enc.features(waves[i : i + 1, :n], lengths[i : i + 1])
    t = int(frame_lengths[i])
    assert (alone[0] - feats[i, :t]).abs().max() > 1e-4


def test_layer_indices_are_checked():
    enc = build("tiny-wavlm").eval()
    waves, lengths = make_batch([8000])
    feats, frame_lengths = enc.features(waves, lengths)
    with pytest.raises(ValueError, match="layer index"):
        enc.prefix(feats, frame_lengths, 0)
    with pytest.raises(ValueError, match="layer index"):
        enc.prefix(feats, frame_lengths, 13)
    kept = enc.prefix(feats, frame_lengths, 3)
    with pytest.raises(ValueError, match="layers 0..3"):
        enc.forward_from_layer(kept, frame_lengths, 4)
    with pytest.raises(ValueError, match="start_layer"):
        enc.forward_features(feats, frame_lengths, start_layer=2)
