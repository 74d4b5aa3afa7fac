"""metaser's SDPA attention for WavLM against transformers' eager attention."""

from __future__ import annotations

import pytest
import torch

from metaser.models.config import EncoderConfig
from metaser.models.encoder import SSLEncoder, preset_config, wavlm_sdpa
from tests.models.helpers import make_batch

LENGTHS = [12000, 7000, 9999]
#: tiny-wavlm (layer-norm CNN: padded batch with an attention mask), a group-norm WavLM
#: (wavlm-base style: no mask) and a stable-layer-norm one
VARIANTS = {
    "tiny-wavlm": {},
    "group-norm": {"feat_extract_norm": "group"},
    "stable": {"do_stable_layer_norm": True},
}


def pair(variant: str, **overrides) -> tuple[SSLEncoder, SSLEncoder]:
    """The same weights with eager and with SDPA attention."""
    d = {**preset_config("tiny-wavlm").to_dict(), **VARIANTS[variant], **overrides}
    torch.manual_seed(5)
    eager = SSLEncoder.from_hf_config(d, EncoderConfig(name_or_path=variant, attn_implementation="eager"))
    sdpa = SSLEncoder.from_hf_config(d, EncoderConfig(name_or_path=variant, attn_implementation="sdpa"))
    sdpa.load_state_dict(eager.state_dict())
    assert (eager.attn_implementation, sdpa.attn_implementation) == ("eager", "sdpa")
    return eager, sdpa


def test_default_attention_per_encoder():
    def impl(name, requested=None):
        return SSLEncoder.from_pretrained(EncoderConfig(name_or_path=name, attn_implementation=requested))

    assert wavlm_sdpa.is_available()
    assert impl("tiny-wavlm").attn_implementation == "sdpa"
    assert impl("tiny-wavlm", "eager").attn_implementation == "eager"
    assert impl("tiny-wavlm", "sdpa").attn_implementation == "sdpa"
    assert impl("tiny-wav2vec2").attn_implementation == "sdpa"  # transformers' own
    assert impl("tiny-hubert", "eager").attn_implementation == "eager"


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("frozen", [0, 4])
def test_sdpa_equals_eager_outputs_and_gradients(variant, frozen, monkeypatch):
    eager, sdpa = pair(variant)
    waves, lengths = make_batch(LENGTHS)
    calls = []
    real = wavlm_sdpa.F.scaled_dot_product_attention
    monkeypatch.setattr(
        wavlm_sdpa.F,
        "scaled_dot_product_attention",
        lambda *a, **kw: calls.append(kw["attn_mask"].shape) or real(*a, **kw),
    )
    outs, grads = [], []
    for enc in (eager, sdpa):
        enc.freeze_layers(frozen)
        enc.eval()
        out = enc(waves, lengths)
        sum((i + 1) * h.pow(2).mean() for i, h in enumerate(out.hidden_states)).backward()
        outs.append(out.hidden_states)
        grads.append({n: p.grad for n, p in enc.model.named_parameters() if p.grad is not None})
    assert calls == [(3, 2, 37, 37)] * 12  # every layer of the SDPA model, none of the eager one
    for a, b in zip(*outs):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-5)
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 0
    # the bias path trains too: the gate of every trainable layer, the bucket embedding when layer 0 trains
    assert f"encoder.layers.{frozen}.attention.gru_rel_pos_linear.weight" in grads[1]
    assert ("encoder.layers.0.attention.rel_attn_embed.weight" in grads[1]) is (frozen == 0)
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-4, atol=1e-6)


def test_padded_keys_get_no_attention():
    """An utterance alone and padded into a batch give the same SDPA outputs on its frames."""
    _, sdpa = pair("tiny-wavlm")
    sdpa.eval()
    waves, lengths = make_batch(LENGTHS)
    batch = sdpa(waves, lengths)
    alone = sdpa(waves[1:2, : LENGTHS[1]], lengths[1:2])
    t = int(batch.frame_lengths[1])
    torch.testing.assert_close(alone.hidden_states[-1][0], batch.hidden_states[-1][1, :t], rtol=0, atol=1e-5)


def test_attention_dropout_applies_in_training_only():
    no_drop = dict(hidden_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0)
    eager, sdpa = pair("tiny-wavlm", attention_dropout=0.3, **no_drop)
    waves, lengths = make_batch([8000, 6000])
    sdpa.train()
    a, b = sdpa(waves, lengths).hidden_states[-1], sdpa(waves, lengths).hidden_states[-1]
    assert (a - b).abs().max() > 1e-3  # attention dropout is on: two draws differ
    sdpa.eval(), eager.eval()
    with torch.no_grad():
        torch.testing.assert_close(
            sdpa(waves, lengths).hidden_states[-1], eager(waves, lengths).hidden_states[-1], rtol=0, atol=1e-5
        )
    # train mode without attention dropout: the same function as eager in train mode
    eager0, sdpa0 = pair("tiny-wavlm", attention_dropout=0.0, **no_drop)
    eager0.train(), sdpa0.train()
    torch.testing.assert_close(
        sdpa0(waves, lengths).hidden_states[-1], eager0(waves, lengths).hidden_states[-1], rtol=0, atol=1e-5
    )


def test_switching_back_and_forth_keeps_the_state_dict():
    eager, sdpa = pair("tiny-wavlm")
    assert list(sdpa.state_dict()) == list(eager.state_dict())
    assert wavlm_sdpa.set_wavlm_attention(sdpa.model, "eager") == 12
    assert sdpa.attn_implementation == "eager"
    with pytest.raises(ValueError):
        wavlm_sdpa.set_wavlm_attention(sdpa.model, "flash")


def test_save_pretrained_round_trip(tmp_path):
    src = SSLEncoder.from_pretrained(EncoderConfig(name_or_path="tiny-wavlm"))
    assert src.attn_implementation == "sdpa"
    src.save_pretrained(tmp_path / "enc")
    eager_ref = SSLEncoder.from_pretrained(EncoderConfig(name_or_path="tiny-wavlm", attn_implementation="eager"))
    back = SSLEncoder.from_pretrained(EncoderConfig(name_or_path=str(tmp_path / "enc")))
    back_eager = SSLEncoder.from_pretrained(
        EncoderConfig(name_or_path=str(tmp_path / "enc"), attn_implementation="eager")
    )
    assert back.attn_implementation == "sdpa" and back_eager.attn_implementation == "eager"
    sd, ref = back.state_dict(), eager_ref.state_dict()
    assert list(sd) == list(ref) and all(torch.equal(sd[k], ref[k]) for k in ref)
    waves, lengths = make_batch([9000, 4000])
    with torch.no_grad():
        a = src.eval()(waves, lengths).hidden_states
        b = back.eval()(waves, lengths).hidden_states
        c = back_eager.eval()(waves, lengths).hidden_states
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    for x, z in zip(a, c):
        torch.testing.assert_close(x, z, rtol=0, atol=1e-5)
