"""TDSA speed perturbation and the optional band / chunk dropping."""

from __future__ import annotations

from collections import Counter
from math import gcd

import numpy as np
import pytest
import torch

from metaser.config import from_dict
from metaser.data.augment import (
    MAX_RATE_DENOMINATOR,
    SpeedPerturb,
    WaveformAugment,
    band_drop,
    chunk_drop,
    lhotse_speed_factor,
)
from metaser.data.config import AugmentConfig
from metaser.errors import ConfigError
from tests.data.helpers import make_cut


# (convention, factor, samples of a 1 s and of a 0.1 s clip at 16 kHz)
SPEED_CASES = [
    ("length", 0.8, 12800, 1280),    # the paper's / SpeechBrain's reading: 0.8x the samples
    ("length", 1.0, 16000, 1600),
    ("length", 1.2, 19208, 1921),    # 1.2x, applied as 1.20048x (rate 13328 Hz, see below)
    ("lhotse", 0.8, 20000, 2000),    # lhotse's reading: 1 / 0.8 = 1.25x
    ("lhotse", 1.2, 13333, 1333),
]


@pytest.mark.parametrize("convention, factor, n_1s, n_100ms", SPEED_CASES)
def test_speed_perturb_number_of_samples_per_convention(tmp_path, convention, factor, n_1s, n_100ms):
    sp = SpeedPerturb([factor], convention=convention)
    for seconds, expected in ((1.0, n_1s), (0.1, n_100ms)):
        cut = make_cut(tmp_path, f"u{seconds}", seconds, emotion="neu")  # 16000 * seconds samples
        out = sp.apply(cut, factor)
        audio = out.load_audio()  # (1, S)
        assert audio.shape == (1, expected) and out.num_samples == expected
        if factor == 1.0:
            assert out is cut
        else:
            assert out.id == f"u{seconds}_sp{sp.lhotse_factor(factor)}"
            assert out.supervisions[0].custom["emotion"] == "neu"
    n = 16000
    wanted = factor * n if convention == "length" else n / factor
    assert abs(n_100ms - wanted / 10) <= 1  # within one sample on a 0.1 s clip
    assert abs(n_1s - wanted) <= 5e-4 * wanted  # within 0.05 % on any clip


def test_speed_factor_rounding_keeps_the_resampler_small():
    """lhotse builds a (16000 / g) x (r / g) sinc kernel for rate r, g = gcd(r, 16000): 1 / 1.2
    (r = 13333, g = 1) would take a 7 GB kernel, so the nearest rate with a small one is used."""
    assert lhotse_speed_factor(0.8) == 1.25 and lhotse_speed_factor(0.8, "lhotse") == 0.8
    assert lhotse_speed_factor(1.2) == 13328 / 16000 and lhotse_speed_factor(1.2, "lhotse") == 1.2
    assert lhotse_speed_factor(1.0) == 1.0
    for convention in ("length", "lhotse"):
        for factor in np.round(np.arange(0.7, 1.31, 0.05), 2):
            s = lhotse_speed_factor(float(factor), convention)
            rate = round(16000 * s)
            assert rate == 16000 * s  # an integer rate: what lhotse's Speed resamples from
            assert 16000 // gcd(rate, 16000) <= MAX_RATE_DENOMINATOR
            length = 1 / s if convention == "length" else s  # wanted: factor
            assert abs(length - factor) < 1e-3 * factor
    with pytest.raises(ValueError, match="convention"):
        SpeedPerturb([0.8], convention="sox")


def test_speed_perturb_other_sample_rate(tmp_path):
    cut = make_cut(tmp_path, "u8k", 0.5, emotion="neu", sample_rate=8000)  # 4000 samples
    out = SpeedPerturb([0.8]).apply(cut, 0.8).resample(16000)
    assert out.load_audio().shape == (1, 6400)  # 0.4 s at 16 kHz
    lhotse = SpeedPerturb([0.8], convention="lhotse").apply(cut, 0.8).resample(16000)
    assert lhotse.load_audio().shape == (1, 10000)  # 0.625 s at 16 kHz


def test_speed_draw_is_the_same_under_both_conventions():
    length = SpeedPerturb([0.8, 1.0, 1.2], prob=0.7, convention="length")
    lhotse = SpeedPerturb([0.8, 1.0, 1.2], prob=0.7, convention="lhotse")
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    assert [length.draw(a) for _ in range(200)] == [lhotse.draw(b) for _ in range(200)]


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


@pytest.mark.parametrize("band, chunk", [(0.3, 0.0), (0.0, 0.5), (0.5, 0.5)])
def test_waveform_augment_intermediate_probabilities(band, chunk):
    """Each augmentation fires with its own probability, independently.

    2000 draws from a fixed seed: the count of a probability-p event is Binomial(2000, p), sd
    = sqrt(2000 p (1 - p)) <= 22.4; the tolerance of 100 is over 4.4 sd, so a correct
    implementation fails for fewer than 1 in 10^5 seeds, while p off by 0.05 (100 draws) fails.
    """
    n = 2000
    aug = WaveformAugment(AugmentConfig(band_drop_prob=band, chunk_drop_prob=chunk))
    wave = 1.0 + torch.from_numpy(np.random.default_rng(9).standard_normal(256)).float()  # (S,)
    rng = np.random.default_rng(1)
    banded = chunked = both = 0
    for _ in range(n):
        out = aug(wave, rng)
        zeroed = bool((out == 0).any())  # chunk drop writes exact zeros; band drop does not
        changed = not torch.allclose(out, wave, atol=1e-6)
        is_band = changed and (not zeroed or not torch.allclose(out[out != 0], wave[out != 0], atol=1e-6))
        banded += is_band
        chunked += zeroed
        both += is_band and zeroed
    assert abs(banded - band * n) <= 100
    assert abs(chunked - chunk * n) <= 100
    assert abs(both - band * chunk * n) <= 100


def test_augment_config_validation():
    assert AugmentConfig().speeds == [0.8, 1.0, 1.2] and AugmentConfig().speed_convention == "length"
    assert from_dict(AugmentConfig, {"speed_convention": "lhotse"}).speed_convention == "lhotse"
    with pytest.raises(ConfigError, match="speed_convention"):
        from_dict(AugmentConfig, {"speed_convention": "sox"})
    assert AugmentConfig().enabled and not AugmentConfig(speeds=[1.0]).enabled
    with pytest.raises(ConfigError, match=r"augment.speeds\[1\]"):
        from_dict(AugmentConfig, {"speeds": [0.9, 0.0]})
    with pytest.raises(ConfigError, match="speed_prob"):
        from_dict(AugmentConfig, {"speed_prob": 1.5})
    with pytest.raises(ConfigError, match="band_drop_max_hz"):
        from_dict(AugmentConfig, {"band_drop_min_hz": 500, "band_drop_max_hz": 100})
