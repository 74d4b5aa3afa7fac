"""RAVDESS recipe on a tiny Actor_XX tree (48 kHz, one stereo file, one song file)."""

from __future__ import annotations

import pytest
from lhotse.cut import MultiCut

from metaser.data.manifest import EMOTION, EMOTION_RAW, SESSION, TEXT_RAW, get_field, load_cut_audio
from metaser.data.recipes import prepare_ravdess
from metaser.data.recipes.ravdess import parse_ravdess_name
from metaser.errors import DataError
from tests.data.conftest import RAVDESS_KEPT, RAVDESS_SKIPPED


def test_parse_ravdess_name():
    assert parse_ravdess_name("03-01-06-01-02-01-12") == {
        "modality": "03",
        "channel": "01",
        "emotion": "06",
        "intensity": "01",
        "statement": "02",
        "repetition": "01",
        "actor": "12",
    }
    with pytest.raises(DataError, match="emotion code 09"):
        parse_ravdess_name("03-01-09-01-01-01-02")
    with pytest.raises(DataError, match="actor code 25"):
        parse_ravdess_name("03-01-01-01-01-01-25")
    with pytest.raises(DataError, match="seven two-digit codes"):
        parse_ravdess_name("03-01-01-01-01-01")


def test_prepare_ravdess(ravdess_root, tmp_path):
    res = prepare_ravdess(ravdess_root, tmp_path / "out")
    cuts = {c.id: c for c in res.cuts}
    assert set(cuts) == set(RAVDESS_KEPT)
    for stem, (emo, raw, inten, stmt, rep, spk, gender, channels) in RAVDESS_KEPT.items():
        c = cuts[stem]
        assert (
            get_field(c, EMOTION),
            get_field(c, EMOTION_RAW),
            get_field(c, "intensity"),
            get_field(c, "statement"),
            get_field(c, "repetition"),
            get_field(c, "speaker"),
            get_field(c, "gender"),
            c.num_channels,
        ) == (emo, raw, inten, stmt, rep, spk, gender, channels), stem
        assert c.sampling_rate == 48000 and c.recording.num_samples == 9600
        assert get_field(c, SESSION) is None
    c = cuts["03-01-01-01-02-02-02"]
    assert get_field(c, "text") == "dogs are sitting by the door"
    assert get_field(c, TEXT_RAW) == "Dogs are sitting by the door"
    assert isinstance(c, MultiCut)
    x = load_cut_audio(c)
    assert x.shape == (3200,) and x.ndim == 1
    s = res.summary
    assert s["excluded"] == {"song": 1}
    assert {d["utt_id"]: d["reason"] for d in s["skipped"]} == RAVDESS_SKIPPED
    assert s["group_by"] == "speaker"
    assert s["emotion_by_group"] == {"01": {"angry": 1}, "02": {"neutral": 1, "surprised": 1}}
    assert s["notes"] == ["actors found: 2"]


def test_prepare_ravdess_parent_folder_and_errors(ravdess_root, tmp_path):
    res = prepare_ravdess(ravdess_root.parent, tmp_path / "out")
    assert len(res.cuts) == 3
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no Actor_XX directories found"):
        prepare_ravdess(tmp_path / "empty", tmp_path / "o")
    with pytest.raises(DataError, match="RAVDESS root not found"):
        prepare_ravdess(tmp_path / "nope", tmp_path / "o")
    with pytest.raises(DataError, match="3 utterance\\(s\\) cannot be used"):
        prepare_ravdess(ravdess_root, tmp_path / "o", strict=True)
