"""EmoDB recipe: a tiny EmoDB-named fixture (always) and the real corpus (integration)."""

from __future__ import annotations

from collections import Counter

import pytest

from metaser.data.manifest import EMOTION, EMOTION_RAW, SESSION, TEXT_RAW, get_field, load_manifest
from metaser.data.recipes import prepare_emodb
from metaser.data.recipes.emodb import SPEAKERS, TEXTS, parse_erkennung
from metaser.errors import DataError
from tests.data.conftest import EMODB_BAD, EMODB_FILES, EMODB_ROOT


def test_parse_erkennung_latin1_nbsp(emodb_root):
    rates = parse_erkennung(emodb_root / "erkennung.txt")
    assert rates == {"03a01Fa.wav": (90.0, 75.0), "08a02Wb.wav": (100.0, 95.5), "16b10Lc.wav": (62.5, 40.0)}


def test_prepare_emodb_fixture(emodb_root, tmp_path):
    res = prepare_emodb(emodb_root, tmp_path / "out")
    cuts = {c.id: c for c in res.cuts}
    assert set(cuts) == set(EMODB_FILES)
    c = cuts["03a01Fa"]
    assert (get_field(c, EMOTION), get_field(c, EMOTION_RAW)) == ("happiness", "F")
    assert (get_field(c, "speaker"), get_field(c, "gender"), get_field(c, "age")) == ("03", "male", 31)
    assert get_field(c, "text") == "der lappen liegt auf dem eisschrank."
    assert get_field(c, TEXT_RAW) == "Der Lappen liegt auf dem Eisschrank."
    assert (get_field(c, "text_id"), get_field(c, "version")) == ("a01", "a")
    assert (get_field(c, "recognition_rate"), get_field(c, "naturalness")) == (90.0, 75.0)
    assert get_field(c, SESSION) is None
    w = cuts["08a02Wb"]
    assert (get_field(w, EMOTION), get_field(w, "gender"), get_field(w, "naturalness")) == ("anger", "female", 95.5)
    assert get_field(cuts["16b10Lc"], EMOTION) == "boredom"
    t = cuts["13b03Ta"]  # not listed in erkennung.txt: rates absent, and said so
    assert get_field(t, EMOTION) == "sadness" and get_field(t, "recognition_rate") is None
    s = res.summary
    assert s["group_by"] == "speaker"
    assert s["emotions"] == {"anger": 1, "boredom": 1, "happiness": 1, "sadness": 1}
    assert {d["utt_id"]: d["reason"] for d in s["skipped"]} == EMODB_BAD
    assert s["notes"] == ["1 file(s) not listed in erkennung.txt: no recognition_rate / naturalness for them"]
    assert len(load_manifest(tmp_path / "out")) == 4


def test_prepare_emodb_errors(tmp_path, emodb_root):
    with pytest.raises(DataError, match="EmoDB root not found"):
        prepare_emodb(tmp_path / "nope", tmp_path / "o")
    (tmp_path / "nowav").mkdir()
    with pytest.raises(DataError, match="EmoDB directory missing: .*nowav/wav"):
        prepare_emodb(tmp_path / "nowav", tmp_path / "o")
    with pytest.raises(DataError, match="4 utterance\\(s\\) cannot be used"):
        prepare_emodb(emodb_root, tmp_path / "o", strict=True)
    (emodb_root / "erkennung.txt").write_bytes(b"Nr.\tSatz\terkannt\tnatuerlich\n1\t03a01Fa.wav\tabc\t1\n")
    with pytest.raises(DataError, match="erkennung.txt:2: cannot read the rates 'abc'"):
        prepare_emodb(emodb_root, tmp_path / "o")


@pytest.mark.integration
@pytest.mark.skipif(not EMODB_ROOT.is_dir(), reason=f"real EmoDB not found at {EMODB_ROOT}")
def test_prepare_real_emodb(tmp_path):
    res = prepare_emodb(EMODB_ROOT, tmp_path / "out", strict=True)
    cuts = list(res.cuts)
    assert len(cuts) == 535
    assert Counter(get_field(c, EMOTION) for c in cuts) == {
        "anger": 127,
        "boredom": 81,
        "neutral": 79,
        "happiness": 71,
        "fear": 69,
        "sadness": 62,
        "disgust": 46,
    }
    assert Counter(get_field(c, EMOTION_RAW) for c in cuts) == {
        "W": 127,
        "L": 81,
        "N": 79,
        "F": 71,
        "A": 69,
        "T": 62,
        "E": 46,
    }
    assert {get_field(c, "speaker") for c in cuts} == set(SPEAKERS)
    assert {get_field(c, "text_id") for c in cuts} == set(TEXTS)
    for c in cuts:
        assert get_field(c, "gender") == SPEAKERS[get_field(c, "speaker")][0]
        assert c.sampling_rate == 16000 and c.num_channels == 1
    assert res.summary["genders"] == {"female": 302, "male": 233}
    assert all(get_field(c, "recognition_rate") is not None for c in cuts)
    fa = res.cuts["03a01Fa"]
    assert (get_field(fa, "recognition_rate"), get_field(fa, "naturalness")) == (90.0, 75.0)
    assert res.summary["num_skipped"] == 0 and res.summary["notes"] == []
    assert 0.40 < res.summary["hours"] < 0.42  # 24.8 minutes
