"""metaser.data.summary: the counts of a prepared corpus, summary.json, the rendering the CLI prints."""

from __future__ import annotations

import json

from metaser.data.manifest import SUMMARY_NAME
from metaser.data.prepare import SkippedItem
from metaser.data.summary import SHOWN_SKIPPED, print_summary, render_summary, summarize, write_summary
from tests.data.helpers import make_cut, summary_corpus


def test_summarize_exact(tmp_path):
    skipped = [
        SkippedItem("x", "/p/x.wav", "missing", "audio file not found: /p/x.wav"),
        SkippedItem("y", "/p/y.wav", "corrupt"),
    ]
    s = summarize(summary_corpus(tmp_path), skipped, "toy", excluded={"fru": 3, "xxx": 1, "oth": 0}, notes=["hello"])
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
    assert s["skipped"][0] == {
        "utt_id": "x",
        "path": "/p/x.wav",
        "reason": "missing",
        "detail": "audio file not found: /p/x.wav",
    }
    assert s["notes"] == ["hello"]
    json.dumps(s)  # serialisable


def test_summarize_groups_by_speaker_without_sessions(tmp_path):
    cuts = [
        make_cut(tmp_path, "a", 0.1, emotion="fear", emotion_raw="A", speaker="03"),
        make_cut(tmp_path, "b", 0.1, emotion="fear", emotion_raw="A", speaker="10"),
    ]
    s = summarize(cuts, [], "emo")
    assert s["group_by"] == "speaker"
    assert s["emotion_by_group"] == {"03": {"fear": 1}, "10": {"fear": 1}}


def test_print_and_write_summary(tmp_path, quiet_console):
    s = summarize(
        summary_corpus(tmp_path),
        [SkippedItem("x", "/p/x.wav", "missing", "gone")],
        "toy",
        excluded={"fru": 3},
        notes=["sessions found: 1, 2"],
    )
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
    assert [p.name for p in path.parent.iterdir()] == [SUMMARY_NAME]  # no temporary file left


def test_render_lists_the_first_skips_and_keeps_brackets(tmp_path, quiet_console):
    """Ids and paths are plain text (a "[old]" is not rich markup); long skip lists are cut."""
    skipped = [SkippedItem(f"[old]_{i}", None, "too_short", "10.00 ms < 31.25 ms") for i in range(SHOWN_SKIPPED + 3)]
    s = summarize(summary_corpus(tmp_path), skipped, "toy", notes=["see [bold]x[/bold]"])
    quiet_console.print(render_summary(s))
    out = quiet_console.file.getvalue()
    assert "[old]_0: too_short - 10.00 ms < 31.25 ms" in out
    assert f"[old]_{SHOWN_SKIPPED - 1}:" in out and f"[old]_{SHOWN_SKIPPED}:" not in out
    assert f"... and 3 more (all listed in {SUMMARY_NAME})" in out
    assert "note: see [bold]x[/bold]" in out
