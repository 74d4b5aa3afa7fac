"""The CNN's masked group norm (metaser.models.encoder.cnn): GroupNorm over the valid frames."""

from __future__ import annotations

import torch
from torch import nn

from metaser.models.encoder.cnn import masked_group_norm


def test_masked_group_norm_is_group_norm_of_the_valid_frames_alone():
    torch.manual_seed(0)
    norm = nn.GroupNorm(4, 8, affine=True)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2.0)
        norm.bias.uniform_(-1.0, 1.0)
    frames = torch.tensor([50, 17, 33])
    x = torch.randn(3, 8, 50) * 3 + 1  # (B, C, T)
    x[1, :, 17:] = 1e3  # padding of any value must not count
    y = masked_group_norm(x, frames, norm)
    for b, t in enumerate(frames.tolist()):
        alone = norm(x[b : b + 1, :, :t])  # (1, C, t)
        torch.testing.assert_close(y[b : b + 1, :, :t], alone, rtol=0, atol=1e-5)


def test_masked_group_norm_one_group_per_channel_as_the_base_encoders():
    norm = nn.GroupNorm(16, 16, affine=False)
    x = torch.randn(2, 16, 40)
    full = masked_group_norm(x, torch.tensor([40, 40]), norm)
    torch.testing.assert_close(full, norm(x), rtol=0, atol=1e-5)
