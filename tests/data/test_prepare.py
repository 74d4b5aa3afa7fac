"""metaser.data.prepare: the common end of the recipes, the too-short filter, ``metaser prepare``."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from metaser.cli import main
from metaser.constants import MIN_SAMPLES, SAMPLE_RATE
from metaser.data.manifest import MANIFEST_NAME, SUMMARY_NAME, load_manifest
from metaser.data.prepare import DEFAULT_MIN_DURATION, TOO_SHORT, PrepareResult, SkippedItem, finish_prepare
from metaser.data.recipes import prepare_csv
from metaser.errors import DataError
from tests.data.conftest import write_tone
from tests.data.helpers import summary_corpus


def test_finish_prepare(tmp_path, capsys):
    cuts = summary_corpus(tmp_path)
    skipped = [SkippedItem("x", "/p/x.wav", "missing")]
    with pytest.raises(
        DataError,
        match=r"1 utterance\(s\) cannot be used \(strict mode\):\n"
        r"  x \(/p/x.wav\): missing",
    ):
        finish_prepare(cuts, skipped, corpus="toy", out_dir=tmp_path / "s", strict=True)
    assert not (tmp_path / "s").exists()  # nothing written in strict mode
    with pytest.raises(DataError, match=r"no usable utterances found \(skipped: 1: missing 1"):
        finish_prepare([], skipped, corpus="toy", out_dir=tmp_path / "e")
    res = finish_prepare(cuts, skipped, corpus="toy", out_dir=tmp_path / "ok", excluded={"fru": 2})
    assert isinstance(res, PrepareResult) and res.out_dir == tmp_path / "ok"
    assert (res.cuts_path, res.summary_path) == (tmp_path / "ok" / MANIFEST_NAME, tmp_path / "ok" / SUMMARY_NAME)
    assert [c.id for c in load_manifest(res.cuts_path)] == ["a", "b", "c"] == [c.id for c in res.cuts]
    assert json.loads(res.summary_path.read_text()) == res.summary
    assert res.summary["num_excluded"] == 2 and res.summary["num_skipped"] == 1
    assert res.summary["min_duration"] == DEFAULT_MIN_DURATION
    assert capsys.readouterr() == ("", "")  # recipes print nothing


def test_default_min_duration_covers_every_paper_speed():
    """0.8 (the shortest TDSA length factor) times a clip of the default minimum still gives
    the CNN its 400-sample receptive field; a clip one sample shorter does not."""
    assert DEFAULT_MIN_DURATION == 0.03125 == MIN_SAMPLES / 0.8 / SAMPLE_RATE
    shortest = round(DEFAULT_MIN_DURATION * SAMPLE_RATE)  # 500 samples
    assert int(0.8 * shortest) >= MIN_SAMPLES > int(0.8 * (shortest - 1))


@pytest.fixture
def short_clips_table(tmp_path):
    """A user's CSV corpus: three normal clips and a 10 ms and a 30 ms one (8 kHz for one)."""
    audio = tmp_path / "audio"
    for name, seconds, sr in (
        ("ok1", 0.5, 16000),
        ("ok2", 0.2, 16000),
        ("ok3", 0.04, 8000),
        ("ten_ms", 0.01, 16000),
        ("thirty_ms", 0.03, 8000),
    ):
        write_tone(audio / f"{name}.wav", seconds=seconds, sr=sr)
    table = tmp_path / "corpus.csv"
    table.write_text(
        "path,emotion,speaker\n"
        + "".join(
            f"audio/{n}.wav,{e},s{i % 2}\n"
            for i, (n, e) in enumerate(
                [("ok1", "neu"), ("ten_ms", "ang"), ("ok2", "sad"), ("thirty_ms", "neu"), ("ok3", "ang")]
            )
        )
    )
    return table


def test_short_clips_are_dropped_and_listed_as_too_short(short_clips_table, tmp_path):
    res = prepare_csv(short_clips_table, tmp_path / "out")
    assert sorted(c.id for c in res.cuts) == ["ok1", "ok2", "ok3"]  # 40 ms at 8 kHz is kept
    summary = json.loads(res.summary_path.read_text())
    assert summary["skipped_by_reason"] == {TOO_SHORT: 2} and summary["num_skipped"] == 2
    assert [(s["utt_id"], s["reason"], s["detail"]) for s in summary["skipped"]] == [
        ("ten_ms", TOO_SHORT, "10.00 ms < min_duration 31.25 ms"),
        ("thirty_ms", TOO_SHORT, "30.00 ms < min_duration 31.25 ms"),
    ]
    assert summary["skipped"][0]["path"].endswith("ten_ms.wav")
    assert "2 clip(s) shorter than min_duration 0.03125 s dropped (reason too_short)" in summary["notes"]
    # a deliberate filter, not a broken file: strict mode still prepares
    assert len(prepare_csv(short_clips_table, tmp_path / "strict", strict=True).cuts) == 3
    kept = prepare_csv(short_clips_table, tmp_path / "all", min_duration=0)
    assert len(kept.cuts) == 5 and kept.summary["num_skipped"] == 0
    assert sorted(c.id for c in prepare_csv(short_clips_table, tmp_path / "long", min_duration=0.1).cuts) == [
        "ok1",
        "ok2",
    ]
    with pytest.raises(DataError, match="no usable utterances found"):
        prepare_csv(short_clips_table, tmp_path / "none", min_duration=1.0)


def test_cli_prepare_prints_the_summary_and_takes_min_duration(short_clips_table, tmp_path):
    out = tmp_path / "cli"
    result = CliRunner().invoke(main, ["prepare", "csv", str(short_clips_table), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "corpus: 3 utterances" in result.output  # the rendered summary
    assert "skipped: 2 (too_short 2)" in result.output
    assert "ten_ms: too_short - 10.00 ms < min_duration 31.25 ms" in result.output
    assert f"wrote {out / MANIFEST_NAME} and {out / SUMMARY_NAME}" in " ".join(result.output.split())
    result = CliRunner().invoke(main, ["prepare", "csv", str(short_clips_table), "-o", str(out), "--min-duration", "0"])
    assert result.exit_code == 0 and "corpus: 5 utterances" in result.output
    bad = CliRunner().invoke(main, ["prepare", "csv", str(short_clips_table), "-o", str(out), "--min-duration", "-1"])
    assert bad.exit_code == 2 and "--min-duration" in bad.output


@pytest.mark.parametrize("corpus", ["iemocap", "emodb", "ravdess", "csv"])
def test_every_prepare_command_documents_min_duration(corpus):
    result = CliRunner().invoke(main, ["prepare", corpus, "--help"])
    text = " ".join(result.output.split())
    assert result.exit_code == 0 and "--min-duration SECONDS" in text
    assert f"Default {DEFAULT_MIN_DURATION} s" in text and "too_short" in text
