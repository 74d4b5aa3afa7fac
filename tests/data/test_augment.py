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
    ("length", 0.8, 12800, 1280),  # the paper's / SpeechBrain's reading: 0.8x the samples
    ("length", 1.0, 16000, 1600),
    ("length", 1.2, 19208, 1921),  # 1.2x, applied as 1.20048x (rate 13328 Hz, see below)
    ("lhotse", 0.8, 20000, 2000),  # lhotse's reading: 1 / 0.8 = 1.25x
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


# ----------------------------------------------------------------------------- presets / SpeechBrain


def test_presets_resolve_and_explicit_values_win():
    paper = AugmentConfig().resolved()
    assert (paper.preset, paper.speed_per, paper.drop_freq_prob, paper.drop_chunk_prob) == (
        "paper",
        "utterance",
        0.0,
        0.0,
    )
    assert not AugmentConfig().waveform_enabled and AugmentConfig().enabled
    sb = AugmentConfig(preset="speechbrain").resolved()
    assert (sb.speed_per, sb.drop_freq_prob, sb.drop_chunk_prob) == ("batch", 1.0, 1.0)
    assert (
        sb.drop_freq_count_low,
        sb.drop_freq_count_high,
        sb.drop_chunk_count_low,
        sb.drop_chunk_count_high,
        sb.drop_chunk_length_low,
        sb.drop_chunk_length_high,
    ) == (0, 3, 0, 5, 1000, 2000)
    assert sb.speeds == [0.8, 1.0, 1.2]  # the paper's rates under either reading
    assert AugmentConfig(preset="speechbrain").waveform_enabled
    own = AugmentConfig(preset="speechbrain", speed_per="utterance", drop_chunk_prob=0.0).resolved()
    assert (own.speed_per, own.drop_freq_prob, own.drop_chunk_prob) == ("utterance", 1.0, 0.0)
    assert AugmentConfig(drop_freq_prob=0.5).resolved().drop_freq_prob == 0.5


def test_preset_survives_override_round_trip():
    """`data.augment.preset=speechbrain` on a loaded config must switch the preset's values:
    overrides go through to_dict / from_dict, so the preset fields stay unresolved (None)."""
    from metaser.config import apply_overrides, to_dict

    cfg = apply_overrides(AugmentConfig(), ["preset=speechbrain"])
    assert to_dict(cfg)["drop_freq_prob"] is None and to_dict(cfg)["speed_per"] == "preset"
    assert cfg.resolved().speed_per == "batch" and cfg.waveform_enabled
    back = apply_overrides(cfg, ["preset=paper"])
    assert back.resolved().speed_per == "utterance" and not back.waveform_enabled


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"preset": "kaldi"}, "preset"),
        ({"speed_per": "epoch"}, "speed_per"),
        ({"drop_freq_prob": 1.5}, "drop_freq_prob"),
        ({"drop_freq_count_low": 3, "drop_freq_count_high": 1}, "drop_freq_count"),
        ({"drop_chunk_length_low": 0}, "drop_chunk_length"),
        ({"drop_freq_width": 0.7}, "drop_freq_width"),
    ],
)
def test_sb_config_validation(data, match):
    with pytest.raises(ConfigError, match=match):
        from_dict(AugmentConfig, data)


def _response(kernel: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    """|H| of an FIR kernel at frequencies given as fractions of Nyquist."""
    n = np.arange(len(kernel)) - len(kernel) // 2
    return np.abs(np.exp(-1j * np.pi * np.outer(freqs, n)) @ kernel)


def test_notch_filter_rejects_its_band_only():
    from metaser.data.augment import notch_filter

    for f in (0.1, 0.4, 0.7):
        k = notch_filter(f, 0.05)
        assert k.shape == (101,) and np.allclose(k, k[::-1])  # linear phase
        centre, far = _response(k, np.array([f + 0.05])), _response(k, np.array([f - 0.2, f + 0.3]))
        assert centre[0] < 0.01  # the band's centre: below -40 dB
        assert np.allclose(far[(np.array([f - 0.2, f + 0.3]) > 0) & (np.array([f - 0.2, f + 0.3]) < 1)], 1.0, atol=0.01)
    assert np.allclose(_response(notch_filter(0.97, 0.05), np.array([0.0, 0.5])), 1.0, atol=0.01)  # only low-pass


def test_drop_freq_follows_its_draws():
    from metaser.data.augment import drop_freq

    sr, n = 16000, 16000
    t = torch.arange(n, dtype=torch.float64) / sr
    tones = list(range(200, 8000, 200))
    wave = sum(torch.sin(2 * torch.pi * f * t) for f in tones).float()  # (S,)
    seed = 4
    rng, replay = np.random.default_rng(seed), np.random.default_rng(seed)
    out = drop_freq(wave, rng, 1, 3, 0.05)
    count = int(replay.integers(1, 4))
    centres = replay.uniform(1e-14, 1.0, size=count) + 0.05  # band centres, fractions of Nyquist
    assert out.shape == wave.shape and out.dtype == torch.float32
    spec_in, spec_out = (torch.fft.rfft(x.double()).abs() for x in (wave, out))
    for c in centres:
        tone = min(tones, key=lambda f: abs(f - c * sr / 2))
        if abs(tone - c * sr / 2) < 100 and 300 < tone < 7700:
            assert spec_out[tone] < 0.05 * spec_in[tone]
    far = [f for f in tones if all(abs(f - c * sr / 2) > 1600 for c in centres)]
    assert far and torch.allclose(spec_out[far], spec_in[far], rtol=0.03)
    assert torch.equal(drop_freq(wave, np.random.default_rng(0), 0, 0), wave)  # no notch: a copy
    assert torch.equal(drop_freq(wave, np.random.default_rng(seed), 1, 3, 0.05), out)  # deterministic


def test_drop_chunk_counts_and_lengths():
    from metaser.data.augment import drop_chunk

    wave = torch.ones(20000)
    counts = set()
    for seed in range(40):
        rng, replay = np.random.default_rng(seed), np.random.default_rng(seed)
        out = drop_chunk(wave, rng, 0, 5, 1000, 2000)
        count = int(replay.integers(0, 6))
        counts.add(count)
        lengths = replay.integers(1000, 2001, size=count) if count else np.array([], dtype=int)
        starts = replay.integers(0, 20000 - (lengths.max() if count else 0) + 1, size=count)
        expected = torch.ones(20000)
        for s0, ln in zip(starts.tolist(), lengths.tolist()):
            expected[s0 : s0 + ln] = 0
        assert torch.equal(out, expected)
    assert counts == {0, 1, 2, 3, 4, 5}
    assert torch.equal(wave, torch.ones(20000))  # input untouched
    short = drop_chunk(torch.ones(500), np.random.default_rng(1), 1, 1, 1000, 2000)
    assert torch.equal(short, torch.zeros(500))  # a chunk longer than the clip zeroes all of it


def test_batch_rng_and_batch_factor():
    from metaser.data.augment import batch_rng

    ids = ["b", "a", "c"]
    first = batch_rng(0, 3, ids).random(4)
    assert np.array_equal(first, batch_rng(0, 3, ["c", "b", "a"]).random(4))  # order-free
    for other in (batch_rng(1, 3, ids), batch_rng(0, 4, ids), batch_rng(0, 3, ["a", "b"])):
        assert not np.array_equal(first, other.random(4))
    sp = SpeedPerturb([0.8, 1.0, 1.2], prob=1.0)
    factors = [sp.draw_batch_factor(batch_rng(0, e, ids)) for e in range(60)]
    assert set(factors) == {0.8, 1.0, 1.2}
    assert factors == [sp.draw_batch_factor(batch_rng(0, e, ids)) for e in range(60)]
    assert sp.draw_batch_factor(batch_rng(0, 0, ids)) == sp.draw(batch_rng(0, 0, ids))


def test_waveform_augment_presets():
    wave = 1.0 + torch.from_numpy(np.random.default_rng(3).standard_normal(16000)).float()  # (S,)
    paper = WaveformAugment(AugmentConfig())
    rng = np.random.default_rng(5)
    before = rng.bit_generator.state
    assert torch.equal(paper(wave, rng), wave) and rng.bit_generator.state == before  # draws nothing
    sb = WaveformAugment(AugmentConfig(preset="speechbrain"))
    assert sb.enabled and not paper.enabled
    outs = [sb(wave, np.random.default_rng(s)) for s in range(20)]
    assert sum(not torch.equal(o, wave) for o in outs) >= 15  # 0 notches and 0 chunks: 1 in 24
    assert sum(bool((o == 0).any()) for o in outs) >= 10  # chunks zeroed in most
    assert torch.equal(sb(wave, np.random.default_rng(7)), sb(wave, np.random.default_rng(7)))
