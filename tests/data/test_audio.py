"""metaser.data.audio: header probing with truncation checks, loading, resampling."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from metaser.data.audio import AudioError, AudioInfo, check_finite, load_audio, probe_audio, resample
from metaser.errors import DataError
from tests.data.conftest import write_empty, write_garbage, write_tone, write_truncated


def test_probe_reads_header(tmp_path):
    p = tmp_path / "a.wav"
    write_tone(p, seconds=0.5, sr=8000, channels=2)
    info = probe_audio(p)
    assert isinstance(info, AudioInfo)
    assert (info.samplerate, info.channels, info.frames) == (8000, 2, 4000)
    assert info.duration == 0.5
    assert info.path == str(p.absolute())
    assert info.format == "WAV" and info.subtype == "PCM_16"


@pytest.mark.parametrize(
    "kind, reason",
    [
        ("missing", "missing"),
        ("empty", "empty"),
        ("garbage", "unreadable"),
        ("truncated", "corrupt"),
        ("header_only", "empty"),
        ("directory", "unreadable"),
    ],
)
def test_probe_reasons(tmp_path, kind, reason):
    p = tmp_path / "x.wav"
    if kind == "empty":
        write_empty(p)
    elif kind == "garbage":
        write_garbage(p)
    elif kind == "truncated":
        write_truncated(p)
    elif kind == "header_only":
        write_tone(p)
        p.write_bytes(p.read_bytes()[:44])  # canonical 44-byte header, no samples
    elif kind == "directory":
        p.mkdir()
    with pytest.raises(AudioError) as ei:
        probe_audio(p)
    assert ei.value.reason == reason
    assert isinstance(ei.value, DataError)
    assert str(p) in str(ei.value)
    assert ei.value.path == str(p)


def test_truncated_message_names_frame_counts(tmp_path):
    p = tmp_path / "t.wav"
    write_truncated(p, seconds=0.25, sr=16000)  # 4000 frames declared
    with pytest.raises(AudioError, match="declares 4000 frames") as ei:
        probe_audio(p)
    assert ei.value.reason == "corrupt"


def test_truncated_flac_is_rejected(tmp_path):
    p = tmp_path / "t.flac"
    write_tone(p, seconds=1.0, sr=16000)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError) as ei:
        probe_audio(p)
    assert ei.value.reason == "corrupt"


def test_load_audio_mixes_and_resamples(tmp_path):
    p = tmp_path / "st.wav"
    written = write_tone(p, seconds=0.5, sr=48000, channels=2, subtype="FLOAT")  # (S, 2)
    native = load_audio(p, sample_rate=None)
    assert native.dtype == np.float32 and native.shape == (24000,)
    np.testing.assert_array_equal(native, written.mean(axis=1))
    x16 = load_audio(p)  # default 16 kHz
    assert x16.dtype == np.float32 and x16.shape == (8000,) and x16.flags.c_contiguous
    np.testing.assert_allclose(x16, resample(written.mean(axis=1), 48000, 16000), atol=1e-6)
    # a 220 Hz tone at 0.75 * 0.5 amplitude survives resampling (away from the edges)
    assert abs(np.abs(x16[1000:7000]).max() - 0.375) < 0.01


def test_load_audio_upsamples_8k(tmp_path):
    p = tmp_path / "n.wav"
    write_tone(p, seconds=0.25, sr=8000)
    x = load_audio(p, 16000)
    assert x.shape == (4000,) and x.ndim == 1


def test_load_audio_raises_on_bad_files(tmp_path):
    with pytest.raises(AudioError) as ei:
        load_audio(tmp_path / "nope.wav")
    assert ei.value.reason == "missing"
    p = tmp_path / "t.wav"
    write_truncated(p)
    with pytest.raises(AudioError) as ei:
        load_audio(p)
    assert ei.value.reason == "corrupt"


def test_load_audio_keeps_nonfinite_and_check_finite_rejects(tmp_path):
    p = tmp_path / "nan.wav"
    x = np.zeros(100, dtype=np.float32)
    x[[3, 50]] = [np.nan, np.inf]
    sf.write(str(p), x, 16000, subtype="FLOAT")
    y = load_audio(p, None)
    assert np.isnan(y[3]) and np.isinf(y[50])  # not fixed silently
    with pytest.raises(AudioError, match=r"2 of 100 audio samples are NaN or inf in utt1") as ei:
        check_finite(y, name="utt1")
    assert ei.value.reason == "nonfinite"
    ok = np.ones(5, dtype=np.float32)
    assert check_finite(ok) is ok


def test_resample_lengths():
    x = np.ones(48000, dtype=np.float32)
    assert resample(x, 48000, 16000).shape == (16000,)
    assert resample(x, 44100, 16000).shape == (17415,)  # ceil(48000 * 160 / 441)
    assert resample(x, 16000, 16000).dtype == np.float32
    with pytest.raises(ValueError):
        resample(x, 0, 16000)
