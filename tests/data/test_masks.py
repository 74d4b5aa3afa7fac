"""metaser.masks.lengths_to_mask (the one padding-mask helper) and its use by Batch."""

from __future__ import annotations

import pytest
import torch

from metaser.boundary import FrozenFeatures, Waveforms
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
    batch = Batch(inputs=Waveforms(waveforms, torch.tensor([4, 2])))
    assert batch.inputs.mask.tolist() == [[True] * 4, [True, True, False, False]]
    assert batch.num_samples == 6 and batch.inputs.padding() == (2, 6)
    assert padding_ratio([batch]) == pytest.approx(2 / 6)
    feats = FrozenFeatures((torch.zeros(2, 5, 3),), torch.tensor([5, 2]), torch.tensor([1600, 720]))
    assert len(feats) == 2 and feats.padding() == (3, 7)  # frames
    assert Batch(inputs=feats).num_samples == 2320
