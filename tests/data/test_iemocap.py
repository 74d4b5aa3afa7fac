"""IEMOCAP recipe on a tiny IEMOCAP_full_release tree (see conftest.build_iemocap)."""

from __future__ import annotations

import json
import shutil

import pytest
from lhotse import MonoCut
from lhotse.cut import MultiCut

from metaser.data.manifest import (
    EMOTION,
    EMOTION_RAW,
    MANIFEST_NAME,
    SESSION,
    STYLE,
    SUMMARY_NAME,
    TEXT_RAW,
    get_field,
    load_cut_audio,
    load_manifest,
)
from metaser.data.recipes import RECIPES, prepare_iemocap
from metaser.data.recipes.iemocap import clean_iemocap_text, parse_iemocap_id
from metaser.data.summary import print_summary
from metaser.errors import DataError
from tests.data.conftest import IEMOCAP_KEPT, IEMOCAP_SKIPPED, IEMOCAP_TEXTS


@pytest.mark.parametrize(
    "utt, session, dialog, speaker, gender, style",
    [
        ("Ses01F_impro01_F000", "1", "Ses01F_impro01", "Ses01F", "female", "impro"),
        ("Ses01M_impro01_F000", "1", "Ses01M_impro01", "Ses01F", "female", "impro"),
        ("Ses01F_impro01_M013", "1", "Ses01F_impro01", "Ses01M", "male", "impro"),
        ("Ses03M_impro05a_F000", "3", "Ses03M_impro05a", "Ses03F", "female", "impro"),
        ("Ses05M_script01_1b_F003", "5", "Ses05M_script01_1b", "Ses05F", "female", "script"),
        ("Ses02F_script02_2_M045", "2", "Ses02F_script02_2", "Ses02M", "male", "script"),
    ],
)
def test_parse_iemocap_id(utt, session, dialog, speaker, gender, style):
    meta = parse_iemocap_id(utt)
    assert (meta.utt_id, meta.session, meta.dialog, meta.speaker, meta.gender, meta.style) == (
        utt,
        session,
        dialog,
        speaker,
        gender,
        style,
    )


@pytest.mark.parametrize(
    "utt, match",
    [
        ("hello", "not an IEMOCAP utterance id"),
        ("Ses01F_impro01", "not an IEMOCAP utterance id"),
        ("Ses01F_impro01_X000", "does not start with F or M"),
        ("Ses01F_chat01_F000", "neither impro\\* nor script\\*"),
    ],
)
def test_parse_iemocap_id_rejects(utt, match):
    with pytest.raises(DataError, match=match):
        parse_iemocap_id(utt)


def test_clean_text():
    assert clean_iemocap_text("Do you have your forms? [LAUGHTER]  Yeah.") == "do you have your forms? yeah."
    assert clean_iemocap_text("[BREATHING] [GARBAGE]") is None
    assert clean_iemocap_text(None) is None


def test_prepare_iemocap(iemocap_root, tmp_path, quiet_console, capsys):
    out = tmp_path / "out"
    res = prepare_iemocap(iemocap_root, out)
    cuts = {c.id: c for c in res.cuts}
    assert set(cuts) == set(IEMOCAP_KEPT)  # no F099 (Categorical/), no MXX0, no fru/xxx
    for utt, (emo, raw, spk, gender, sess, style, dialog) in IEMOCAP_KEPT.items():
        c = cuts[utt]
        assert (
            get_field(c, EMOTION),
            get_field(c, EMOTION_RAW),
            get_field(c, "speaker"),
            get_field(c, "gender"),
            get_field(c, SESSION),
            get_field(c, STYLE),
            get_field(c, "dialog"),
        ) == (emo, raw, spk, gender, sess, style, dialog), utt
        assert get_field(c, TEXT_RAW) == IEMOCAP_TEXTS[utt]
        assert len(c.supervisions) == 1 and c.supervisions[0].duration == c.duration
    m000 = cuts["Ses01F_impro01_M000"]
    assert get_field(m000, "text") == "do you have your forms? yeah."
    assert (get_field(m000, "valence"), get_field(m000, "activation"), get_field(m000, "dominance")) == (1.5, 3.5, 4.0)
    assert get_field(cuts["Ses01M_script01_1_F000"], "text") == "i'm so excited!"
    # audio kept as it is: 8 kHz mono, 48 kHz stereo as a MultiCut over both channels
    c8 = cuts["Ses01M_script01_1_F000"]
    assert isinstance(c8, MonoCut) and c8.sampling_rate == 8000 and c8.recording.num_samples == 2000
    st = cuts["Ses01M_script01_1_M000"]
    assert isinstance(st, MultiCut) and st.channel == [0, 1] and st.sampling_rate == 48000
    assert load_cut_audio(st).shape == (4000,)
    assert load_cut_audio(c8).shape == (4000,)

    s = res.summary
    assert s["utterances"] == 7
    assert s["emotions"] == {"ang": 2, "hap": 2, "neu": 2, "sad": 1}
    assert s["emotion_raw"] == {"ang": 2, "exc": 1, "hap": 1, "neu": 2, "sad": 1}
    assert s["emotion_by_group"] == {
        "1": {"ang": 1, "hap": 1, "neu": 1, "sad": 1},
        "2": {"hap": 1},
        "3": {"neu": 1},
        "5": {"ang": 1},
    }
    assert s["excluded"] == {"fru": 1, "xxx": 1}
    assert {d["utt_id"]: d["reason"] for d in s["skipped"]} == IEMOCAP_SKIPPED
    assert s["skipped_by_reason"] == {"corrupt": 1, "empty": 1, "missing": 1, "unreadable": 1}
    assert s["num_speakers"] == 5 and s["genders"] == {"female": 5, "male": 2}
    assert s["styles"] == {"impro": 4, "script": 3}
    assert s["notes"] == [
        "sessions found: 1, 2, 3, 5",
        "annotator votes: 6 of 7 utterance(s) have votes; "
        "2.5 vote(s) for other classes dropped; self-evaluations not counted",
    ]
    assert s["votes"]["cuts_with_votes"] == 6 and s["votes"]["cuts_without_votes"] == 1
    assert s["votes"]["dropped_by_category"] == {"Frustration": 0.5, "Other": 1.0, "Surprise": 1.0}
    assert s["votes"]["votes_by_class"] == {"ang": 2.0, "hap": 2.0, "neu": 4.5, "sad": 1.0}
    assert {"vote_ang", "vote_hap", "vote_neu", "vote_sad", "votes_dropped"} <= set(s["numeric_fields"])
    # files on disk
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST_NAME, SUMMARY_NAME]
    assert json.loads((out / SUMMARY_NAME).read_text()) == s
    assert [c.id for c in load_manifest(out)] == [c.id for c in res.cuts]
    assert capsys.readouterr() == ("", "")  # the recipe prints nothing
    print_summary(res.summary, quiet_console)  # what `metaser prepare` shows
    printed = quiet_console.file.getvalue()
    assert "iemocap: 7 utterances" in printed and "excluded by label/rule: 2 (fru 1, xxx 1)" in printed


def test_recipes_registry():
    assert RECIPES["iemocap"] is prepare_iemocap
    assert {"csv", "emodb", "iemocap", "ravdess", "emobox", "emobox-track2"} == set(RECIPES)


def test_prepare_iemocap_strict(iemocap_root, tmp_path):
    with pytest.raises(DataError) as ei:
        prepare_iemocap(iemocap_root, tmp_path / "out", strict=True)
    msg = str(ei.value)
    assert "4 utterance(s) cannot be used (strict mode)" in msg
    for utt, reason in IEMOCAP_SKIPPED.items():
        assert f"{utt} (" in msg and f"): {reason}" in msg
    assert not (tmp_path / "out").exists()


def test_prepare_iemocap_parent_dir_and_partial(iemocap_root, tmp_path):
    for sess in ("2", "3", "5"):
        shutil.rmtree(iemocap_root / f"Session{sess}")
    res = prepare_iemocap(iemocap_root.parent, tmp_path / "out", strict=True)
    assert res.summary["utterances"] == 4
    assert res.summary["notes"][0] == "sessions found: 1"


def test_prepare_iemocap_bad_roots(tmp_path, iemocap_root):
    with pytest.raises(DataError, match="IEMOCAP root not found"):
        prepare_iemocap(tmp_path / "nope", tmp_path / "o")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no Session\*/dialog/EmoEvaluation found"):
        prepare_iemocap(tmp_path / "empty", tmp_path / "o")
    shutil.rmtree(iemocap_root / "Session2" / "sentences" / "wav")
    with pytest.raises(DataError, match=r"IEMOCAP directories missing:\n  .*Session2/sentences/wav"):
        prepare_iemocap(iemocap_root, tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_prepare_iemocap_malformed_and_duplicate_ids(iemocap_root, tmp_path):
    emo = iemocap_root / "Session1" / "dialog" / "EmoEvaluation" / "Ses01F_impro01.txt"
    emo.write_text(
        emo.read_text()
        + "[9.0000 - 9.5000]\tSes01F_chat01_F000\tneu\t[2.0000, 2.0000, 2.0000]\n"
        + "[9.5000 - 9.9000]\tSes01F_impro01_F000\tang\t[2.0000, 2.0000, 2.0000]\n"
    )
    res = prepare_iemocap(iemocap_root, tmp_path / "out")
    reasons = {(d["utt_id"], d["reason"]) for d in res.summary["skipped"]}
    assert ("Ses01F_chat01_F000", "malformed id") in reasons
    assert ("Ses01F_impro01_F000", "duplicate id") in reasons
    assert res.summary["num_skipped"] == len(IEMOCAP_SKIPPED) + 2
    assert get_field(res.cuts["Ses01F_impro01_F000"], EMOTION) == "neu"  # the first label wins


# ----------------------------------------------------------------------------- annotator votes

VOTE_KEYS = ("vote_ang", "vote_hap", "vote_neu", "vote_sad", "votes_dropped")


def test_votes_on_cuts(iemocap_root, tmp_path):
    from tests.data.conftest import IEMOCAP_VOTES

    res = prepare_iemocap(iemocap_root, tmp_path / "out")
    for cut in res.cuts:
        got = tuple(get_field(cut, k) for k in VOTE_KEYS)
        expected = IEMOCAP_VOTES[cut.id]
        assert got == (expected if expected is not None else (None,) * 5), cut.id
    with_self = prepare_iemocap(iemocap_root, tmp_path / "self", self_evaluations=True)
    votes = {c.id: tuple(get_field(c, k) for k in VOTE_KEYS) for c in with_self.cuts}
    assert votes["Ses01F_impro01_F000"] == (1.0, 0.0, 2.5, 0.0, 0.5)  # + C-F1 Anger
    assert votes["Ses01M_script01_1_M000"] == (0.0, 0.0, 0.0, 2.0, 0.0)  # + C-M1 Sadness
    assert with_self.summary["votes"]["self_evaluations"] == "counted"


def test_annotator_line_parsing_and_weights():
    from metaser.data.recipes.iemocap_votes import count_votes, parse_annotator_line, vote_fields

    line = parse_annotator_line("C-E3:\tFrustration; Anger;\t(mildly annoyed; loud)")
    assert (line.annotator, line.categories, line.is_self) == ("E3", ("Frustration", "Anger"), False)
    assert parse_annotator_line("C-F1:\tNeutral state;\t()").is_self
    assert parse_annotator_line("A-E1:\tval 3; act 2; dom  3;\t()") is None
    assert parse_annotator_line("[1.0 - 2.0]\tSes01F_impro01_F000\tneu\t[2.5, 2.5, 2.5]") is None
    assert parse_annotator_line("C-E2:\t;\t()").categories == ()
    lines = [
        parse_annotator_line(x)
        for x in (
            "C-E1:\tHappiness; Excited; Surprise;\t()",  # a third each: 2/3 hap, 1/3 dropped
            "C-E2:\tNeutral   State;\t()",
            "C-E3:\t;\t()",  # spacing and case ignored; an empty line counts not
            "C-M1:\tSadness;\t()",
        )
    ]
    v = count_votes(lines)
    assert v.lines == 2 and v.dropped == {"Surprise": 1 / 3}
    assert vote_fields(v) == {
        "vote_ang": 0.0,
        "vote_hap": 0.666667,
        "vote_neu": 1.0,
        "vote_sad": 0.0,
        "votes_dropped": 0.333333,
    }
    assert count_votes([lines[-1]]) is None and count_votes([]) is None and vote_fields(None) == {}
    assert count_votes([lines[-1]], self_evaluations=True).votes["sad"] == 1.0
