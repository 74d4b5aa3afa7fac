from __future__ import annotations

import numpy as np
import pytest

from metaser.errors import ConfigError
from metaser.inference import segment as seg_mod
from metaser.inference.segment import SegmentConfig, fixed_windows, segment_audio
from tests.inference.helpers import SR, babble, silence, tone


def test_fixed_windows_exact():
    assert fixed_windows(0, 10, 4, 2) == [(0, 4), (2, 6), (4, 8), (6, 10)]
    assert fixed_windows(0, 11, 4, 2) == [(0, 4), (2, 6), (4, 8), (6, 10), (7, 11)]  # last aligned to end
    assert fixed_windows(5, 9, 4, 2) == [(5, 9)]
    assert fixed_windows(3, 5, 4, 2) == [(3, 5)]
    assert fixed_windows(0, 10, 4, 4) == [(0, 4), (4, 8), (6, 10)]
    with pytest.raises(ValueError):
        fixed_windows(0, 10, 0, 1)


def test_short_audio_is_one_piece():
    x = tone(3.0)
    s = segment_audio(x, SegmentConfig(max_seconds=3.0))
    assert s.spans == [(0, 3 * SR)] and s.method == "whole" and s.note is None


def test_windows_method_skips_vad(monkeypatch):
    monkeypatch.setattr(seg_mod, "vad_spans", lambda *a, **k: pytest.fail("VAD must not run"))
    s = segment_audio(tone(25.0), SegmentConfig(max_seconds=10.0, method="windows", window_seconds=8.0, overlap=0.25))
    assert s.method == "windows"
    assert s.spans == [(0, 8 * SR), (6 * SR, 14 * SR), (12 * SR, 20 * SR), (17 * SR, 25 * SR)]


def test_window_shrinks_to_max_seconds():
    s = segment_audio(tone(9.0), SegmentConfig(max_seconds=4.0, method="windows"))  # window 10 -> 4 s, hop 2 s
    assert s.spans == [(0, 4 * SR), (2 * SR, 6 * SR), (4 * SR, 8 * SR), (5 * SR, 9 * SR)]


def test_vad_finds_speech_regions():
    x = np.concatenate([silence(1.0), babble(3.0, seed=1), silence(2.0), babble(4.0, f0=200, seed=2), silence(1.0)])
    s = segment_audio(x, SegmentConfig(max_seconds=5.0))
    assert s.method == "vad" and s.note is None
    assert len(s.spans) == 2
    (a0, a1), (b0, b1) = [(st / SR, en / SR) for st, en in s.spans]
    assert a0 == pytest.approx(1.0, abs=0.15) and a1 == pytest.approx(4.0, abs=0.3)
    assert b0 == pytest.approx(6.0, abs=0.15) and b1 == pytest.approx(10.0, abs=0.3)


def test_long_vad_region_is_windowed(monkeypatch):
    monkeypatch.setattr(seg_mod, "vad_spans", lambda x, cfg, sr=SR: [(SR, 2 * SR), (3 * SR, 15 * SR)])
    s = segment_audio(tone(20.0), SegmentConfig(max_seconds=5.0))
    assert s.method == "vad"
    assert s.spans == [
        (SR, 2 * SR),
        (3 * SR, 8 * SR),
        (int(5.5 * SR), int(10.5 * SR)),
        (8 * SR, 13 * SR),
        (10 * SR, 15 * SR),
    ]


def test_no_speech_or_broken_vad_falls_back_to_windows(monkeypatch):
    x = tone(12.0)
    s = segment_audio(x, SegmentConfig(max_seconds=6.0))  # a pure tone is not speech
    assert s.method == "windows" and s.note == "silero-vad found no speech"
    assert s.spans == [(0, 6 * SR), (3 * SR, 9 * SR), (6 * SR, 12 * SR)]

    def broken(*a, **k):
        raise ImportError("no silero here")

    monkeypatch.setattr(seg_mod, "vad_spans", broken)
    s = segment_audio(x, SegmentConfig(max_seconds=6.0))
    assert s.method == "windows" and "silero-vad unavailable" in s.note and "no silero here" in s.note
    assert s.spans == [(0, 6 * SR), (3 * SR, 9 * SR), (6 * SR, 12 * SR)]


@pytest.mark.parametrize(
    "kw, field",
    [
        ({"max_seconds": 0}, "max_seconds"),
        ({"method": "magic"}, "method"),
        ({"window_seconds": -1}, "window_seconds"),
        ({"overlap": 1.0}, "overlap"),
    ],
)
def test_config_validation(kw, field):
    with pytest.raises(ConfigError, match=field):
        SegmentConfig(**kw).validate()
