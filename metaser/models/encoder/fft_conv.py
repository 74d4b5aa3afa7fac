"""The positional convolution through FFTs on CPU (same function, a fraction of the arithmetic).

wav2vec2, HuBERT and WavLM add a grouped convolution with a 128-frame kernel to the CNN
features before layer 0 (``encoder.pos_conv_embed.conv``: 768 channels in 16 groups). Direct,
it costs 768 x 48 x 128 multiply-adds per frame, and torch's CPU kernel for it is slow: about 8 %
of a base-size WavLM stage-1 step (``python scripts/cpu_micro.py posconv``). As a product of
spectra it costs two real FFTs per channel and a (48 x 48) complex product per group and
frequency bin.

:func:`fft_conv1d` computes exactly ``F.conv1d(x, weight, bias, padding=padding, groups=groups)``
(cross-correlation, stride 1, zero padding) up to float rounding: the FFT length is at least the
padded length, so the circular correlation never wraps. Gradients (input, weight, bias) come from
autograd through ``torch.fft``. Only CPU tensors take this path; CUDA tensors (cuDNN is fast
there) and anything else go to the module's own convolution. The weight-norm parametrization of
the checkpoint is untouched: the convolution receives the weight it computes.

Installed by :func:`set_fft_pos_conv` as an instance attribute ``_conv_forward`` on the conv
module (no class change, so the parametrization and the state dict stay as they are); on by
default in training (``trainer.fft_conv``). Written by hand: torch has no FFT convolution.
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["fft_conv1d", "fast_length", "set_fft_pos_conv", "uses_fft_conv"]


def fast_length(n: int) -> int:
    """The smallest 2^a * 3^b * 5^c >= n (FFT sizes that the FFT libraries handle fastest)."""
    best = 1 << max(int(n - 1).bit_length(), 0)
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def fft_conv1d(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: int, groups: int
) -> torch.Tensor:
    """x (B, C_in, T), weight (C_out, C_in / groups, K) -> (B, C_out, T + 2 * padding - K + 1)."""
    b, c_in, t = x.shape
    c_out, c_group, k = weight.shape
    length = t + 2 * padding
    n = fast_length(length)
    work = torch.float64 if x.dtype == torch.float64 else torch.float32  # bf16 / fp16 inputs: fp32 FFTs
    spec_x = torch.fft.rfft(F.pad(x.to(work), (padding, padding)), n=n)  # (B, C_in, F)
    spec_w = torch.fft.rfft(weight.to(work), n=n).conj()  # (C_out, C_in / g, F)
    f = spec_x.shape[-1]
    spec_x = spec_x.view(b, groups, c_group, f)  # (B, g, C_in / g, F)
    spec_w = spec_w.view(groups, c_out // groups, c_group, f)  # (g, C_out / g, C_in / g, F)
    spec_y = torch.einsum("bgif,goif->bgof", spec_x, spec_w).reshape(b, c_out, f)  # (B, C_out, F)
    y = torch.fft.irfft(spec_y, n=n)[..., : length - k + 1]  # (B, C_out, T_out)
    if bias is not None:
        y = y + bias.to(work)[None, :, None]
    return y.to(x.dtype)


def _fft_conv_forward(self: nn.Conv1d, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None):
    if input.device.type != "cpu":
        return type(self)._conv_forward(self, input, weight, bias)
    return fft_conv1d(input, weight, bias, self.padding[0], self.groups)


def _pos_conv(model: nn.Module) -> nn.Conv1d | None:
    """The HF encoder's positional convolution if it is one FFT-able ``nn.Conv1d``, else None."""
    conv = getattr(getattr(getattr(model, "encoder", None), "pos_conv_embed", None), "conv", None)
    if not isinstance(conv, nn.Conv1d):
        return None
    plain = conv.stride == (1,) and conv.dilation == (1,) and conv.padding_mode == "zeros"
    return conv if plain and isinstance(conv.padding, tuple) else None


def set_fft_pos_conv(model: nn.Module, enabled: bool) -> bool:
    """Route the positional convolution of a HF speech encoder through :func:`fft_conv1d` (or
    back); returns whether ``model`` has such a convolution."""
    conv = _pos_conv(model)
    if conv is None:
        return False
    if enabled:
        conv._conv_forward = types.MethodType(_fft_conv_forward, conv)
    else:
        conv.__dict__.pop("_conv_forward", None)
    return True


def uses_fft_conv(model: nn.Module) -> bool:
    conv = _pos_conv(model)
    return conv is not None and "_conv_forward" in conv.__dict__
