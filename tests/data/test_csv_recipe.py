"""CSV / TSV recipe: column handling, gender normalisation, ids, path resolution, skips."""

from __future__ import annotations

import pytest

from metaser.data.manifest import EMOTION, EMOTION_RAW, SESSION, STYLE, TEXT_RAW, get_field
from metaser.data.recipes import prepare_csv
from metaser.data.recipes.csv_table import normalize_gender
from metaser.errors import DataError
from tests.data.conftest import write_tone


@pytest.fixture
def audio_dir(tmp_path):
    d = tmp_path / "audio"
    for name in ("a", "b", "c"):
        write_tone(d / f"{name}.wav", seconds=0.1)
    write_tone(d / "sub" / "a.wav", seconds=0.1, sr=22050, channels=2)
    return d


def _write(path, rows, sep=","):
    path.write_text("\n".join(sep.join(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_normalize_gender():
    assert [normalize_gender(v) for v in ("F", "female", " Woman ", "m", "MALE", "man", "", None)] == [
        "female", "female", "female", "male", "male", "male", None, None]
    with pytest.raises(ValueError):
        normalize_gender("x")


def test_prepare_csv_comma(tmp_path, audio_dir):
    table = _write(tmp_path / "corpus.csv", [
        ["Path", "Emotion", "Speaker", "Gender", "Text", "Style", "Session", "accent", "age_group"],
        ["audio/a.wav", "happy", "s1", "F", "Hello  World", "acted", "1", "us", "young"],
        ["audio/b.wav", "sad", "s2", "man", "", "", "2", "", "old"],
        [str(audio_dir / "c.wav"), "angry", "s1", "", "Go!", "acted", "1", "uk", "young"],
        ["audio/missing.wav", "sad", "s3", "f", "", "", "2", "", ""],
        ["audio/d.wav", "", "s3", "f", "", "", "2", "", ""],
    ])
    res = prepare_csv(table, tmp_path / "out")
    cuts = {c.id: c for c in res.cuts}
    assert sorted(cuts) == ["a", "b", "c"]
    a = cuts["a"]
    assert (get_field(a, EMOTION), get_field(a, EMOTION_RAW), get_field(a, "speaker"),
            get_field(a, "gender"), get_field(a, "text"), get_field(a, TEXT_RAW),
            get_field(a, STYLE), get_field(a, SESSION), get_field(a, "accent"),
            get_field(a, "age_group")) == ("happy", "happy", "s1", "female", "hello world",
                                            "Hello  World", "acted", "1", "us", "young")
    assert a.recording.sources[0].source == str((tmp_path / "audio" / "a.wav").absolute())
    b = cuts["b"]
    assert (get_field(b, "gender"), get_field(b, "text"), get_field(b, STYLE),
            get_field(b, "accent")) == ("male", None, None, None)
    assert get_field(cuts["c"], "gender") is None
    s = res.summary
    assert s["corpus"] == "corpus"
    assert [(d["utt_id"], d["reason"]) for d in s["skipped"]] == [("missing", "missing"),
                                                                    ("d", "empty emotion")]
    assert "extra columns kept as fields: accent, age_group" in s["notes"]


def test_prepare_csv_tsv_ids_folds_audio_root(tmp_path, audio_dir):
    (tmp_path / "meta").mkdir()
    table = _write(tmp_path / "meta" / "list.tsv", [
        ["id", "path", "emotion", "emotion_raw", "fold", "text"],
        ["utt1", "a.wav", "neu", "N", "f1", "a, b, c"],
        ["utt2", "sub/a.wav", "ang", "W", "f2", "x"],
    ], sep="\t")
    res = prepare_csv(table, tmp_path / "out", audio_root=audio_dir)
    cuts = {c.id: c for c in res.cuts}
    assert sorted(cuts) == ["utt1", "utt2"]
    assert get_field(cuts["utt1"], EMOTION_RAW) == "N"
    assert get_field(cuts["utt1"], "text") == "a, b, c"
    assert (get_field(cuts["utt2"], "fold"), get_field(cuts["utt2"], SESSION)) == ("f2", "f2")
    assert cuts["utt2"].num_channels == 2 and cuts["utt2"].sampling_rate == 22050


def test_prepare_csv_errors(tmp_path, audio_dir):
    with pytest.raises(DataError, match="table not found"):
        prepare_csv(tmp_path / "nope.csv", tmp_path / "o")
    t = _write(tmp_path / "t1.csv", [["file", "label", "speaker"], ["a.wav", "x", "s"]])
    with pytest.raises(DataError, match=r"required column\(s\) missing: path, emotion \(found: file, label, speaker\)"):
        prepare_csv(t, tmp_path / "o")
    t = _write(tmp_path / "t2.csv", [["path", "emotion", "gender"], ["audio/a.wav", "x", "f"],
                                     ["audio/b.wav", "x", "X"], ["audio/c.wav", "x", "other"]])
    with pytest.raises(DataError, match=r"unknown gender value\(s\): 'X' \(line 3\); 'other' \(line 4\)"):
        prepare_csv(t, tmp_path / "o")
    t = _write(tmp_path / "t3.csv", [["path", "emotion"], ["audio/a.wav", "x"],
                                     ["audio/sub/a.wav", "y"]])
    with pytest.raises(DataError, match=r"utterance ids must be unique; duplicated: a \(x2\)"):
        prepare_csv(t, tmp_path / "o")
    t = _write(tmp_path / "t4.csv", [["path", "emotion"], ["audio/a.wav", "x"],
                                     ["audio/nothere.wav", "y"]])
    with pytest.raises(DataError, match=r"1 utterance\(s\) cannot be used \(strict mode\):\n  nothere"):
        prepare_csv(t, tmp_path / "o", strict=True)
    with pytest.raises(DataError, match="audio root not found"):
        prepare_csv(t, tmp_path / "o", audio_root=tmp_path / "nodir")
    assert not (tmp_path / "o").exists()
