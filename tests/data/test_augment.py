"""TDSA speed perturbation and the optional band / chunk dropping."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from metaser.config import from_dict
from metaser.data.augment import SpeedPerturb, WaveformAugment, band_drop, chunk_drop
from metaser.data.config import AugmentConfig
from metaser.errors import ConfigError
from tests.data.helpers import make_cut


@pytest.mark.parametrize("factor, expected", [(0.8, 20000), (1.0, 16000), (1.2, 13333)])
def test_speed_perturb_changes_number_of_samples(tmp_path, factor, expected):
    cut = make_cut(tmp_path, "u", 1.0, emotion="neu")  # 16000 samples at 16 kHz
    out = SpeedPerturb.apply(cut, factor)
    audio = out.load_audio()  # (1, S)
    assert audio.shape == (1, expected)
    assert out.num_samples == expected
    if factor == 1.0:
        assert out is cut
    else:
        assert out.id == f"u_sp{factor}"
        assert out.supervisions[0].custom["emotion"] == "neu"


def test_speed_perturb_other_sample_rate(tmp_path):
    cut = make_cut(tmp_path, "u8k", 0.5, emotion="neu", sample_rate=8000)  # 4000 samples
    out = SpeedPerturb.apply(cut, 0.8).resample(16000)
    assert out.load_audio().shape == (1, 10000)  # 0.625 s at 16 kHz


def test_speed_draw_distribution_and_prob():
    sp = SpeedPerturb([0.8, 1.0, 1.2], prob=1.0)
    rng = np.random.default_rng(0)
    counts = Counter(sp.draw(rng) for _ in range(3000))
    assert set(counts) == {0.8, 1.0, 1.2}
    assert all(900 < n < 1100 for n in counts.values())
    never = SpeedPerturb([0.8, 1.2], prob=0.0)
    assert {never.draw(rng) for _ in range(100)} == {1.0}
    half = SpeedPerturb([0.8], prob=0.5)
    n_perturbed = sum(half.draw(rng) == 0.8 for _ in range(2000))
    assert 900 < n_perturbed < 1100
    # same generator state -> same factors
    a = [sp.draw(np.random.default_rng(7)) for _ in range(5)]
    b = [sp.draw(np.random.default_rng(7)) for _ in range(5)]
    assert a == b


def test_band_drop_zeroes_exactly_one_band():
    sr, n = 16000, 16000
    t = torch.arange(n) / sr
    wave = sum(torch.sin(2 * torch.pi * f * t) for f in range(100, 8000, 100)).float()  # (S,)
    rng = np.random.default_rng(1)
    out = band_drop(wave, sr, rng, min_hz=500.0, max_hz=500.0)
    assert out.shape == wave.shape and out.dtype == torch.float32
    spec_in = torch.fft.rfft(wave.double()).abs()
    spec_out = torch.fft.rfft(out.double()).abs()
    removed = [f for f in range(100, 8000, 100) if spec_out[f] < 1e-3 * spec_in[f]]
    assert len(removed) == 5  # a 500 Hz band holds 5 of the 100 Hz-spaced tones
    assert removed[-1] - removed[0] == 400
    kept = [f for f in range(100, 8000, 100) if f not in removed]
    assert torch.allclose(spec_out[kept], spec_in[kept], rtol=1e-4)


def test_chunk_drop_zeroes_bounded_chunks():
    wave = torch.ones(16000)
    out = chunk_drop(wave, 16000, np.random.default_rng(0), max_count=2, max_seconds=0.1)
    zeros = int((out == 0).sum())
    assert 1 <= zeros <= 2 * 1600
    assert torch.equal(wave, torch.ones(16000))  # input untouched
    assert set(out.unique().tolist()) == {0.0, 1.0}


def test_waveform_augment_off_by_default_and_probabilities():
    wave = torch.ones(8000)
    off = WaveformAugment(AugmentConfig())
    assert not off.enabled
    assert torch.equal(off(wave, np.random.default_rng(0)), wave)
    on = WaveformAugment(AugmentConfig(chunk_drop_prob=1.0))
    assert on.enabled
    assert int((on(wave, np.random.default_rng(0)) == 0).sum()) > 0


def test_augment_config_validation():
    assert AugmentConfig().speeds == [0.8, 1.0, 1.2]
    assert AugmentConfig().enabled and not AugmentConfig(speeds=[1.0]).enabled
    with pytest.raises(ConfigError, match=r"augment.speeds\[1\]"):
        from_dict(AugmentConfig, {"speeds": [0.9, 0.0]})
    with pytest.raises(ConfigError, match="speed_prob"):
        from_dict(AugmentConfig, {"speed_prob": 1.5})
    with pytest.raises(ConfigError, match="band_drop_max_hz"):
        from_dict(AugmentConfig, {"band_drop_min_hz": 500, "band_drop_max_hz": 100})
