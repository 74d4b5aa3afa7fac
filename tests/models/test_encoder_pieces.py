"""SSLEncoder run in two pieces at the frozen boundary: prefix(n) -> suffix.

What an exact frozen-prefix cache relies on: the pieces give forward()'s outputs and gradients,
and the independent computation gives every utterance its outputs alone, whatever its batch.
"""

from __future__ import annotations

import pytest
import torch

from metaser.boundary import FrozenFeatures, Waveforms
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


def stored(feats: FrozenFeatures) -> FrozenFeatures:
    """What a store gives back: contiguous copies without autograd history."""
    return FrozenFeatures(
        tuple(_stored(h) for h in feats.hidden),
        feats.frame_lengths,
        feats.num_samples,
        layer=feats.layer,
        independent=feats.independent,
    )


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("n", [0, 1, 4])
def test_prefix_then_suffix_equals_forward(variant, n):
    enc = build_frozen(variant, n)
    waves, lengths = make_batch(LENGTHS)
    ref = enc(waves, lengths)
    feats = enc.prefix(Waveforms(waves, lengths), n, independent=False)
    assert feats.layer == n and len(feats.hidden) == max(n, 1)
    assert all(h.grad_fn is None and not h.requires_grad for h in feats.hidden)  # frozen: no graph kept
    if n == 0:
        assert feats.hidden[0].shape == (3, ref.frame_mask.shape[1], enc.feature_size)
    assert torch.equal(feats.frame_lengths, ref.frame_lengths) and feats.num_samples.tolist() == LENGTHS
    out = enc.suffix(stored(feats))
    assert torch.equal(out.frame_mask, ref.frame_mask)
    assert_same(out.hidden_states, ref.hidden_states)


@pytest.mark.parametrize("variant", ["tiny-wavlm", "tiny-wav2vec2", "stable-wavlm"])
@pytest.mark.parametrize("independent", [False, True])
def test_a_cnn_store_advances_to_the_boundary(variant, independent):
    """Boundary features at layer 0 (a CNN store) advanced to layer n equal prefix(n) from audio."""
    enc = build_frozen(variant, 4)
    waves, lengths = make_batch(LENGTHS)
    direct = enc.prefix(Waveforms(waves, lengths), 4, independent=independent)
    cnn = stored(enc.prefix(Waveforms(waves, lengths), 0, independent=independent))
    advanced = enc.prefix(cnn, 4, independent=independent)
    assert advanced.layer == 4
    assert_same(advanced.hidden, direct.hidden)
    assert enc.prefix(advanced, 4, independent=independent) is advanced  # already at the boundary


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
    feats = stored(enc.prefix(Waveforms(waves, lengths), 4, independent=False))  # what builds the cache
    out = enc.suffix(feats)
    assert [h.requires_grad for h in out.hidden_states] == [False] * 4 + [True] * 8
    _loss(out.hidden_states).backward()
    got = _grads(enc)
    assert set(ref) == set(got) and ref
    assert all(name.startswith("encoder.layers.") and int(name.split(".")[2]) >= 4 for name in got)
    for name in ref:
        torch.testing.assert_close(got[name], ref[name], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("variant", VARIANTS)
def test_cnn_boundary_gives_the_same_gradients_with_nothing_frozen(variant):
    waves, lengths = make_batch(LENGTHS)
    enc = build_frozen(variant, 0)
    _loss(enc(waves, lengths).hidden_states).backward()
    ref = _grads(enc)
    enc.zero_grad(set_to_none=True)
    feats = stored(enc.prefix(Waveforms(waves, lengths), 0, independent=False))
    _loss(enc.suffix(feats).hidden_states).backward()
    got = _grads(enc)
    assert set(ref) == set(got) and any(n.startswith("feature_projection.") for n in got)
    for name in ref:
        torch.testing.assert_close(got[name], ref[name], rtol=1e-5, atol=1e-7)


def _alone_worst(enc: SSLEncoder, independent: bool, n: int = 0) -> float:
    """Largest difference, over utterances and all layer outputs on valid frames, between the
    batch and each utterance alone."""
    waves, lengths = make_batch(LENGTHS)
    batch = enc.suffix(enc.prefix(Waveforms(waves, lengths), n, independent=independent)).hidden_states
    worst = 0.0
    for i, s in enumerate(LENGTHS):
        one = enc.prefix(Waveforms(waves[i : i + 1, :s], lengths[i : i + 1]), n, independent=independent)
        alone = enc.suffix(one).hidden_states
        t = alone[-1].shape[1]
        worst = max(worst, max((a[0] - b[i, :t]).abs().max().item() for a, b in zip(alone, batch)))
    return worst


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("n", [0, 4])
def test_independent_computation_gives_every_utterance_its_outputs_alone(variant, n):
    """independent=True: group-norm CNNs normalise over the valid frames, every encoder gets an
    attention mask, stacked positional convs are re-zeroed: the batch changes nothing beyond
    float rounding (convolution kernels sum in another order for another input length)."""
    assert _alone_worst(build_frozen(variant, n), True, n) < 1e-5


@pytest.mark.parametrize("variant", ["tiny-wav2vec2", "tiny-hubert", "tiny-data2vec"])
def test_padded_computation_depends_on_the_batch_where_hf_does(variant):
    """independent=False is HF's padded batch: a group-norm CNN normalises over the padding and
    gets no attention mask; data2vec's stacked positional convs carry padding into valid frames."""
    enc = build_frozen(variant, 0)
    assert not enc.padded_layers_exact
    assert enc.padded_cnn_exact is (variant == "tiny-data2vec")
    assert _alone_worst(enc, False) > 1e-4


@pytest.mark.parametrize("variant", ["tiny-wavlm", "stable-wav2vec2"])
def test_layer_norm_encoders_are_exact_padded_too(variant):
    enc = build_frozen(variant, 0)
    assert enc.padded_cnn_exact and enc.padded_layers_exact
    assert _alone_worst(enc, False) < 1e-5


def test_boundary_is_checked():
    enc = build_frozen("tiny-wavlm", 3)
    waves, lengths = make_batch([8000])
    audio = Waveforms(waves, lengths)
    with pytest.raises(ValueError, match="boundary must be"):
        enc.prefix(audio, 4, independent=True)  # beyond the frozen layers
    with pytest.raises(ValueError, match="boundary must be"):
        enc.prefix(audio, -1, independent=True)
    feats = enc.prefix(audio, 3, independent=True)
    with pytest.raises(ValueError, match="independent"):
        enc.prefix(feats, 3, independent=False)
    with pytest.raises(ValueError, match="cannot be advanced"):
        enc.prefix(feats, 2, independent=True)
    with pytest.raises(ValueError, match="hold 3 tensor"):
        FrozenFeatures(feats.hidden[:2], feats.frame_lengths, feats.num_samples, layer=3)
