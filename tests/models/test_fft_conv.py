"""The FFT positional convolution against torch's direct convolution."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from metaser.models.config import EncoderConfig
from metaser.models.encoder import SSLEncoder, preset_config
from metaser.models.encoder.fft_conv import fast_length, fft_conv1d, set_fft_pos_conv, uses_fft_conv
from tests.models.helpers import make_batch


def test_fast_length():
    assert [fast_length(n) for n in (1, 2, 7, 11, 100, 237, 257, 1000)] == [1, 2, 8, 12, 100, 240, 270, 1000]

    def smooth(m: int) -> bool:  # only factors 2, 3, 5
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        return m == 1

    for n in range(1, 600):
        m = fast_length(n)
        assert m >= n and smooth(m) and not any(smooth(j) for j in range(n, m))  # the smallest


@pytest.mark.parametrize("shape", [(2, 8, 1, 20, 5, 2), (3, 48, 16, 37, 128, 64), (1, 12, 4, 300, 31, 15)])
def test_equals_conv1d_with_gradients(shape):
    b, c, groups, t, k, pad = shape
    torch.manual_seed(0)
    x = torch.randn(b, c, t, dtype=torch.float64, requires_grad=True)
    w = torch.randn(c, c // groups, k, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(c, dtype=torch.float64, requires_grad=True)
    want = F.conv1d(x, w, bias, padding=pad, groups=groups)
    got = fft_conv1d(x.float(), w.float(), bias.float(), pad, groups)
    assert got.shape == want.shape
    scale = want.abs().max()
    torch.testing.assert_close(got.double() / scale, want / scale, rtol=0, atol=1e-6)
    g = torch.randn_like(want)
    grads_want = torch.autograd.grad(want, (x, w, bias), g)
    # float64 all the way: equal to conv1d up to float64 rounding (the FFT is exact arithmetic)
    grads_got = torch.autograd.grad(fft_conv1d(x, w, bias, pad, groups).double(), (x, w, bias), g)
    for a, e in zip(grads_got, grads_want):
        torch.testing.assert_close(a, e, rtol=1e-9, atol=1e-9)


def test_encoder_with_fft_conv_equals_direct():
    """Outputs and gradients (weight-norm g and v included) of a tiny WavLM, padded batch.

    On valid frames: the padded frames of a masked encoder are zero before the convolution, and
    far from the valid ones the layer norm after it normalises a vector that is all bias, which
    magnifies rounding (1e-7 there becomes 1e-3); every consumer masks those frames out."""
    d = preset_config("tiny-wavlm").to_dict()
    outs, grads = [], []
    waves, lengths = make_batch([12000, 7000, 9999])
    for fft in (False, True):
        torch.manual_seed(5)
        enc = SSLEncoder.from_hf_config(d, EncoderConfig(name_or_path="tiny-wavlm"))
        assert set_fft_pos_conv(enc.model, fft) and uses_fft_conv(enc.model) is fft
        enc.eval()
        res = enc(waves, lengths)
        valid = res.frame_mask[..., None]  # (B, T, 1)
        out = [h * valid for h in res.hidden_states]
        sum(h.pow(2).mean() for h in out).backward()
        outs.append(out)
        grads.append({n: p.grad for n, p in enc.model.encoder.pos_conv_embed.named_parameters()})
    for a, b in zip(*outs):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-5)
    assert len(grads[0]) == 3  # weight-norm g, v and the bias
    for name, g in grads[0].items():
        torch.testing.assert_close(grads[1][name], g, rtol=1e-4, atol=1e-6)


def test_switch_back_keeps_the_state_dict_and_the_module():
    enc = SSLEncoder.from_pretrained(EncoderConfig(name_or_path="tiny-wav2vec2"))
    conv = enc.model.encoder.pos_conv_embed.conv
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    cls = type(conv)
    assert set_fft_pos_conv(enc.model, True) and type(conv) is cls
    assert set_fft_pos_conv(enc.model, False) and not uses_fft_conv(enc.model)
    assert all(torch.equal(before[k], v) for k, v in enc.state_dict().items())
    assert set_fft_pos_conv(torch.nn.Linear(2, 2), True) is False  # nothing to route
