"""metaser.data.manifest: the cut contract, loading cut audio, manifest files."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from lhotse import CutSet, MonoCut, RecordingSet
from lhotse.cut import MixedCut, MultiCut

from metaser.data.audio import AudioError
from metaser.data.manifest import (
    EMOTION,
    EMOTION_RAW,
    MANIFEST_NAME,
    SESSION,
    STYLE,
    TEXT_RAW,
    get_field,
    load_cut_audio,
    load_manifest,
    make_cut,
    save_manifest,
)
from metaser.errors import DataError
from tests.data.conftest import write_tone


def _cut(
    tmp_path,
    utt="u1",
    *,
    sr=16000,
    channels=1,
    seconds=0.5,
    emotion="neu",
    session="1",
    speaker="spk1",
    gender="female",
    style="impro",
    subtype="PCM_16",
):
    wav = tmp_path / f"{utt}.wav"
    write_tone(wav, seconds=seconds, sr=sr, channels=channels, subtype=subtype)
    return make_cut(
        utt,
        wav,
        emotion=emotion,
        emotion_raw=emotion.upper(),
        speaker=speaker,
        gender=gender,
        text="hello there",
        custom={TEXT_RAW: "Hello  there", SESSION: session, STYLE: style, "valence": 2.5, "empty": None},
    )


def test_constants():
    assert (EMOTION, EMOTION_RAW, STYLE, SESSION, TEXT_RAW) == (
        "emotion",
        "emotion_raw",
        "style",
        "session",
        "text_raw",
    )


def test_make_cut_mono(tmp_path):
    cut = _cut(tmp_path, sr=8000, seconds=0.5)
    assert isinstance(cut, MonoCut) and cut.channel == 0
    assert cut.id == "u1" and cut.recording.id == "u1"
    assert cut.start == 0 and cut.duration == 0.5
    assert cut.sampling_rate == 8000 and cut.recording.num_samples == 4000
    assert cut.recording.sources[0].source == str((tmp_path / "u1.wav").absolute())
    assert len(cut.supervisions) == 1
    sup = cut.supervisions[0]
    assert (sup.start, sup.duration, sup.channel) == (0.0, 0.5, 0)
    assert (sup.speaker, sup.gender, sup.text) == ("spk1", "female", "hello there")
    assert sup.custom == {
        "emotion": "neu",
        "emotion_raw": "NEU",
        "text_raw": "Hello  there",
        "session": "1",
        "style": "impro",
        "valence": 2.5,
    }


def test_make_cut_multichannel_covers_all_channels(tmp_path):
    cut = _cut(tmp_path, sr=48000, channels=2)
    assert isinstance(cut, MultiCut)
    assert cut.channel == [0, 1] and cut.num_channels == 2
    assert cut.supervisions[0].channel == [0, 1]
    assert cut.recording.sources[0].channels == [0, 1]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"gender": "F"}, "gender must be 'female' or 'male'"),
        ({"emotion": ""}, "emotion must be a non-empty string"),
        ({"custom": {"speaker": "x"}}, "'speaker' is reserved"),
        ({"custom": {"valence": float("nan")}}, "'valence' is nan"),
        ({"custom": {"tags": ["a"]}}, "'tags' must be a string or a number"),
    ],
)
def test_make_cut_rejects_bad_fields(tmp_path, kwargs, match):
    wav = tmp_path / "a.wav"
    write_tone(wav)
    args = {"emotion": "neu", "emotion_raw": "neu", **kwargs}
    with pytest.raises(DataError, match=match):
        make_cut("a", wav, **args)


def test_make_cut_missing_audio(tmp_path):
    with pytest.raises(AudioError) as ei:
        make_cut("a", tmp_path / "none.wav", emotion="neu", emotion_raw="neu")
    assert ei.value.reason == "missing"


def test_get_field(tmp_path):
    cut = _cut(tmp_path)
    assert get_field(cut, "speaker") == "spk1"
    assert get_field(cut, "gender") == "female"
    assert get_field(cut, "text") == "hello there"
    assert get_field(cut, EMOTION) == "neu"
    assert get_field(cut, EMOTION_RAW) == "NEU"
    assert get_field(cut, SESSION) == "1"
    assert get_field(cut, "valence") == 2.5
    assert get_field(cut, "empty") is None
    assert get_field(cut, "nonexistent") is None
    padded = cut.pad(duration=1.0)
    assert isinstance(padded, MixedCut) and get_field(padded, SESSION) == "1"


def test_load_cut_audio_stereo_48k(tmp_path):
    cut = _cut(tmp_path, sr=48000, channels=2, seconds=1.0, subtype="FLOAT")
    x = load_cut_audio(cut)
    assert x.dtype == np.float32 and x.shape == (16000,)
    # native rate: exactly the mean of the two channels (amplitudes 0.5 and 0.25)
    native = load_cut_audio(cut, sample_rate=48000)
    from tests.data.conftest import tone

    np.testing.assert_allclose(native, tone(1.0, 48000, 2).mean(axis=1), atol=1e-7)
    assert abs(np.abs(x[2000:14000]).max() - 0.375) < 0.01
    slow = load_cut_audio(cut.perturb_speed(0.8))
    assert slow.shape == (20000,)  # 1.25 x
    fast = load_cut_audio(cut.perturb_speed(1.25))
    assert fast.shape == (12800,)


def test_load_cut_audio_mono_8k_and_mixed_cut(tmp_path):
    cut = _cut(tmp_path, sr=8000, seconds=0.5)
    assert load_cut_audio(cut).shape == (8000,)
    mixed = cut.pad(duration=1.0)
    assert isinstance(mixed, MixedCut)
    padded = load_cut_audio(mixed)
    assert padded.shape == (16000,)
    assert np.all(padded[8100:] == 0) and np.abs(padded[:8000]).max() > 0.4


def test_load_cut_audio_reports_missing_file(tmp_path):
    cut = _cut(tmp_path)
    (tmp_path / "u1.wav").unlink()
    with pytest.raises(AudioError, match="cannot load audio of cut u1") as ei:
        load_cut_audio(cut)
    assert ei.value.reason == "missing"
    assert ei.value.path == str((tmp_path / "u1.wav").absolute())


def test_manifest_roundtrip(tmp_path):
    cuts = [_cut(tmp_path, "a"), _cut(tmp_path, "b", channels=2, sr=48000, emotion="ang")]
    path = save_manifest(cuts, tmp_path / "out")
    assert path == tmp_path / "out" / MANIFEST_NAME and path.is_file()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [MANIFEST_NAME]
    for where in (tmp_path / "out", path, str(path)):
        loaded = load_manifest(where)
        assert isinstance(loaded, CutSet)
        assert [c.id for c in loaded] == ["a", "b"]
    b = load_manifest(path)["b"]
    assert isinstance(b, MultiCut)
    assert get_field(b, EMOTION) == "ang" and get_field(b, "valence") == 2.5
    assert load_cut_audio(b).shape == (8000,)


def test_load_manifest_errors(tmp_path):
    with pytest.raises(DataError, match="manifest not found") as ei:
        load_manifest(tmp_path / "nothing")
    assert str(tmp_path / "nothing") in str(ei.value)
    (tmp_path / "d").mkdir()
    with pytest.raises(DataError, match=f"manifest not found: .*d/{MANIFEST_NAME}"):
        load_manifest(tmp_path / "d")
    bad = tmp_path / "bad.jsonl.gz"
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="cannot read manifest"):
        load_manifest(bad)
    # a lhotse CutSet whose supervision carries no emotion is not ours
    cut = _cut(tmp_path)
    cut.supervisions[0].custom = {}
    CutSet.from_cuts([cut]).to_file(tmp_path / "foreign.jsonl.gz")
    with pytest.raises(DataError, match="not a metaser manifest: cut 'u1'"):
        load_manifest(tmp_path / "foreign.jsonl.gz")
    RecordingSet.from_recordings([_cut(tmp_path).recording]).to_file(tmp_path / "rec.jsonl.gz")
    with pytest.raises(DataError, match="not a metaser manifest: it holds Recording"):
        load_manifest(tmp_path / "rec.jsonl.gz")
    with gzip.open(tmp_path / "empty.jsonl.gz", "wt") as f:
        f.write("")
    with pytest.raises(DataError, match="holds no utterances"):
        load_manifest(tmp_path / "empty.jsonl.gz")
