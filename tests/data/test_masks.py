"""metaser.masks.lengths_to_mask (the one padding-mask helper) and its use by Batch."""

from __future__ import annotations

import pytest
import torch

from metaser.data.batch import Batch
from metaser.data.sampling import padding_ratio
from metaser.masks import lengths_to_mask


def test_lengths_to_mask_exact():
    mask = lengths_to_mask(torch.tensor([3, 0, 1]))
    assert mask.dtype == torch.bool and mask.shape == (3, 3)
    assert mask.tolist() == [[True, True, True], [False, False, False], [True, False, False]]
    wide = lengths_to_mask(torch.tensor([2, 1]), max_len=4)
    assert wide.tolist() == [[True, True, False, False], [True, False, False, False]]
    assert lengths_to_mask(torch.zeros(0, dtype=torch.long)).shape == (0, 0)
    with pytest.raises(ValueError, match="1-D"):
        lengths_to_mask(torch.ones(2, 2, dtype=torch.long))


def test_batch_mask_and_padding_counts():
    waveforms = torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 0.0, 0.0]])  # (B, S)
    batch = Batch(waveforms=waveforms, lengths=torch.tensor([4, 2]))
    assert batch.mask.tolist() == [[True] * 4, [True, True, False, False]]
    assert (batch.num_samples, batch.padded_samples, batch.padding_samples) == (6, 8, 2)
    assert batch.padding_ratio == pytest.approx(2 / 6) == padding_ratio([batch])
