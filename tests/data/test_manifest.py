"""metaser.data.manifest: the cut contract, loading cut audio, manifest files, summaries."""

from __future__ import annotations

import gzip
import json

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
    SUMMARY_NAME,
    TEXT_RAW,
    PrepareResult,
    SkippedItem,
    finish_prepare,
    get_field,
    load_cut_audio,
    load_manifest,
    make_cut,
    print_summary,
    save_manifest,
    summarize,
    write_summary,
)
from metaser.errors import DataError
from tests.data.conftest import write_tone


def _cut(tmp_path, utt="u1", *, sr=16000, channels=1, seconds=0.5, emotion="neu", session="1",
         speaker="spk1", gender="female", style="impro", subtype="PCM_16"):
    wav = tmp_path / f"{utt}.wav"
    write_tone(wav, seconds=seconds, sr=sr, channels=channels, subtype=subtype)
    return make_cut(utt, wav, emotion=emotion, emotion_raw=emotion.upper(), speaker=speaker,
                    gender=gender, text="hello there",
                    custom={TEXT_RAW: "Hello  there", SESSION: session, STYLE: style,
                            "valence": 2.5, "empty": None})


def test_constants():
    assert (EMOTION, EMOTION_RAW, STYLE, SESSION, TEXT_RAW) == (
        "emotion", "emotion_raw", "style", "session", "text_raw")


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
    assert sup.custom == {"emotion": "neu", "emotion_raw": "NEU", "text_raw": "Hello  there",
                          "session": "1", "style": "impro", "valence": 2.5}


def test_make_cut_multichannel_covers_all_channels(tmp_path):
    cut = _cut(tmp_path, sr=48000, channels=2)
    assert isinstance(cut, MultiCut)
    assert cut.channel == [0, 1] and cut.num_channels == 2
    assert cut.supervisions[0].channel == [0, 1]
    assert cut.recording.sources[0].channels == [0, 1]


@pytest.mark.parametrize("kwargs, match", [
    ({"gender": "F"}, "gender must be 'female' or 'male'"),
    ({"emotion": ""}, "emotion must be a non-empty string"),
    ({"custom": {"speaker": "x"}}, "'speaker' is reserved"),
    ({"custom": {"valence": float("nan")}}, "'valence' is nan"),
    ({"custom": {"tags": ["a"]}}, "'tags' must be a string or a number"),
])
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


def _corpus(tmp_path):
    return [
        _cut(tmp_path, "a", emotion="neu", session="1", speaker="s1", gender="female"),
        _cut(tmp_path, "b", emotion="ang", session="1", speaker="s2", gender="male",
             style="script"),
        _cut(tmp_path, "c", emotion="neu", session="2", speaker="s3", gender="female",
             sr=8000, channels=2),
    ]


def test_summarize_exact(tmp_path):
    skipped = [SkippedItem("x", "/p/x.wav", "missing", "audio file not found: /p/x.wav"),
               SkippedItem("y", "/p/y.wav", "corrupt")]
    s = summarize(_corpus(tmp_path), skipped, "toy", excluded={"fru": 3, "xxx": 1, "oth": 0},
                  notes=["hello"])
    assert s["corpus"] == "toy" and s["utterances"] == 3
    assert s["seconds"] == 1.5 and s["hours"] == round(1.5 / 3600, 4)
    assert s["emotions"] == {"ang": 1, "neu": 2}
    assert s["emotion_raw"] == {"ANG": 1, "NEU": 2}
    assert s["group_by"] == "session"
    assert s["emotion_by_group"] == {"1": {"ang": 1, "neu": 1}, "2": {"neu": 1}}
    assert s["speakers"] == {"s1": 1, "s2": 1, "s3": 1} and s["num_speakers"] == 3
    assert s["genders"] == {"female": 2, "male": 1}
    assert s["styles"] == {"impro": 2, "script": 1}
    assert s["sample_rates"] == {"8000": 1, "16000": 2}
    assert s["channels"] == {"1": 2, "2": 1}
    assert s["fields"] == ["gender", "session", "speaker", "style", "text", "text_raw", "valence"]
    assert s["excluded"] == {"fru": 3, "xxx": 1} and s["num_excluded"] == 4
    assert s["num_skipped"] == 2 and s["skipped_by_reason"] == {"corrupt": 1, "missing": 1}
    assert s["skipped"][0] == {"utt_id": "x", "path": "/p/x.wav", "reason": "missing",
                               "detail": "audio file not found: /p/x.wav"}
    assert s["notes"] == ["hello"]
    json.dumps(s)  # serialisable


def test_summarize_groups_by_speaker_without_sessions(tmp_path):
    wav = tmp_path / "a.wav"
    write_tone(wav)
    cuts = [make_cut("a", wav, emotion="fear", emotion_raw="A", speaker="03"),
            make_cut("b", wav, emotion="fear", emotion_raw="A", speaker="10")]
    s = summarize(cuts, [], "emo")
    assert s["group_by"] == "speaker"
    assert s["emotion_by_group"] == {"03": {"fear": 1}, "10": {"fear": 1}}


def test_print_and_write_summary(tmp_path, quiet_console):
    s = summarize(_corpus(tmp_path), [SkippedItem("x", "/p/x.wav", "missing", "gone")], "toy",
                  excluded={"fru": 3}, notes=["sessions found: 1, 2"])
    print_summary(s, quiet_console)
    out = quiet_console.file.getvalue()
    assert "toy: 3 utterances" in out
    assert "speakers: 3" in out
    assert "genders: female 2, male 1" in out
    assert "excluded by label/rule: 3 (fru 3)" in out
    assert "skipped: 1 (missing 1)" in out
    assert "x: missing - gone" in out
    assert "note: sessions found: 1, 2" in out
    path = write_summary(s, tmp_path / "o")
    assert path == tmp_path / "o" / SUMMARY_NAME
    assert json.loads(path.read_text()) == s


def test_finish_prepare(tmp_path, quiet_console):
    cuts = _corpus(tmp_path)
    skipped = [SkippedItem("x", "/p/x.wav", "missing")]
    with pytest.raises(DataError, match=r"1 utterance\(s\) cannot be used \(strict mode\):\n"
                                        r"  x \(/p/x.wav\): missing"):
        finish_prepare(cuts, skipped, corpus="toy", out_dir=tmp_path / "s", strict=True,
                       console=quiet_console)
    assert not (tmp_path / "s").exists()  # nothing written in strict mode
    with pytest.raises(DataError, match=r"no usable utterances found \(skipped: 1: missing 1"):
        finish_prepare([], skipped, corpus="toy", out_dir=tmp_path / "e", console=quiet_console)
    res = finish_prepare(cuts, skipped, corpus="toy", out_dir=tmp_path / "ok",
                         console=quiet_console, excluded={"fru": 2})
    assert isinstance(res, PrepareResult) and res.out_dir == tmp_path / "ok"
    assert [c.id for c in load_manifest(res.out_dir)] == ["a", "b", "c"]
    assert json.loads((res.out_dir / SUMMARY_NAME).read_text()) == res.summary
    assert res.summary["num_excluded"] == 2 and res.summary["num_skipped"] == 1
    assert "toy: 3 utterances" in quiet_console.file.getvalue()
