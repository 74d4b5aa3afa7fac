"""Dropout whose CPU masks come from numpy's PCG64 instead of torch's ``bernoulli_``.

On CPU, ``torch.nn.functional.dropout`` draws its mask with ``bernoulli_``, one Mersenne-Twister
draw and a double compare per element on a single thread: for a base-size WavLM step that is
about a quarter of the time (``python scripts/cpu_micro.py dropout``). Here the mask is a
comparison of uniform 32-bit integers (numpy's PCG64 ``random_raw``, two per 64-bit draw) with a
threshold, and the kept elements are scaled by ``1 / (1 - p)`` as torch does.

The distribution is torch's: every element is dropped independently with probability
``round(p * 2**32) / 2**32`` (within 2**-33 of ``p``; torch's own double-precision draw rounds
too), and the backward multiplies the gradient by the same mask and scale. The generator is
seeded from torch's default CPU generator at every call, so ``torch.manual_seed`` (and
Lightning's ``seed_everything``) still make runs repeatable, and activation checkpointing,
which restores torch's RNG state before recomputing, recomputes the same masks. The masks are
not the ones torch would draw, so the same seed gives a different (equally valid) run: the
switch (``trainer.fast_dropout``) is part of the stage keys.

Only CPU tensors take this path; CUDA tensors go to ``F.dropout`` (torch's fused Philox kernel is
fast there). In eval mode, or with ``p = 0``, dropout is the identity as usual.

Written by hand: torch offers no faster CPU mask generator.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FastDropout", "fast_dropout", "dropout_mask", "set_fast_dropout"]


def dropout_mask(shape: torch.Size | tuple[int, ...], p: float) -> torch.Tensor:
    """A bool keep-mask of ``shape``: each element is False (dropped) with probability ~p."""
    n = math.prod(shape)
    seed = int(torch.randint(0, 2**62, (1,)).item())  # from torch's generator: seeded runs repeat
    raw = np.random.PCG64(seed).random_raw((n + 1) // 2)  # (ceil(n/2),) uint64
    bits = torch.from_numpy(raw.view(np.int32)[:n])  # (n,) uniform over [-2**31, 2**31)
    threshold = int(round(p * 2**32)) - 2**31  # P(bits < threshold) = round(p * 2**32) / 2**32
    return bits.ge(threshold).view(shape)


class _MaskScale(torch.autograd.Function):
    """y = x * keep / (1 - p); dy/dx = keep / (1 - p)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return torch.mul(x, keep).mul_(scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (keep,) = ctx.saved_tensors
        return torch.mul(grad, keep).mul_(ctx.scale), None, None


def fast_dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """``F.dropout(x, p, training)`` with a PCG64 mask on CPU (see the module docstring)."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or p >= 1.0:
        return F.dropout(x, p, training)
    return _MaskScale.apply(x, dropout_mask(x.shape, p), 1.0 / (1.0 - p))


class FastDropout(nn.Dropout):
    """``nn.Dropout`` through :func:`fast_dropout` (same ``p``, no parameters, same state dict)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if self.inplace:
            return F.dropout(input, self.p, self.training, inplace=True)
        return fast_dropout(input, self.p, self.training)


def set_fast_dropout(model: nn.Module, enabled: bool) -> int:
    """Switch every ``nn.Dropout`` of ``model`` to :class:`FastDropout` (or back); returns how many.

    Modules with a ``use_fast_dropout`` attribute (metaser's WavLM SDPA attention, whose
    attention dropout is not an ``nn.Dropout``) get it set too.
    """
    n = 0
    for module in model.modules():
        if type(module) in (nn.Dropout, FastDropout):
            module.__class__ = FastDropout if enabled else nn.Dropout
            n += 1
        elif hasattr(module, "use_fast_dropout"):
            module.use_fast_dropout = enabled
            n += 1
    return n
