"""The one padding-mask helper every layer uses (torch only; imports nothing of metaser).

A padded batch stores ``B`` sequences of true lengths ``lengths`` in a ``(B, T)`` tensor; the
mask says which positions hold real data:

>>> lengths_to_mask(torch.tensor([3, 1]))
tensor([[ True,  True,  True],
        [ True, False, False]])
"""

from __future__ import annotations

import torch

__all__ = ["lengths_to_mask"]


def lengths_to_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """``(B,)`` integer lengths -> ``(B, T)`` bool mask, True where ``t < lengths[b]``.

    ``T`` is ``max_len`` when given (it may exceed the longest length), else ``max(lengths)``
    (0 for an empty batch). The mask lives on ``lengths``' device.
    """
    if lengths.dim() != 1:
        raise ValueError(f"lengths must be 1-D (B,), got shape {tuple(lengths.shape)}")
    if max_len is None:
        max_len = int(lengths.max()) if lengths.numel() else 0
    # max_len is used as given (no int()): a traced shape stays dynamic in an ONNX export
    positions = torch.arange(max_len, device=lengths.device)  # (T,)
    return positions.unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)
