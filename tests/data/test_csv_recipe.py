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
        "female",
        "female",
        "female",
        "male",
        "male",
        "male",
        None,
        None,
    ]
    with pytest.raises(ValueError):
        normalize_gender("x")


def test_prepare_csv_comma(tmp_path, audio_dir):
    table = _write(
        tmp_path / "corpus.csv",
        [
            ["Path", "Emotion", "Speaker", "Gender", "Text", "Style", "Session", "accent", "age_group"],
            ["audio/a.wav", "happy", "s1", "F", "Hello  World", "acted", "1", "us", "young"],
            ["audio/b.wav", "sad", "s2", "man", "", "", "2", "", "old"],
            [str(audio_dir / "c.wav"), "angry", "s1", "", "Go!", "acted", "1", "uk", "young"],
            ["audio/missing.wav", "sad", "s3", "f", "", "", "2", "", ""],
            ["audio/d.wav", "", "s3", "f", "", "", "2", "", ""],
        ],
    )
    res = prepare_csv(table, tmp_path / "out")
    cuts = {c.id: c for c in res.cuts}
    assert sorted(cuts) == ["a", "b", "c"]
    a = cuts["a"]
    assert (
        get_field(a, EMOTION),
        get_field(a, EMOTION_RAW),
        get_field(a, "speaker"),
        get_field(a, "gender"),
        get_field(a, "text"),
        get_field(a, TEXT_RAW),
        get_field(a, STYLE),
        get_field(a, SESSION),
        get_field(a, "accent"),
        get_field(a, "age_group"),
    ) == ("happy", "happy", "s1", "female", "hello world", "Hello  World", "acted", "1", "us", "young")
    assert a.recording.sources[0].source == str((tmp_path / "audio" / "a.wav").absolute())
    b = cuts["b"]
    assert (get_field(b, "gender"), get_field(b, "text"), get_field(b, STYLE), get_field(b, "accent")) == (
        "male",
        None,
        None,
        None,
    )
    assert get_field(cuts["c"], "gender") is None
    s = res.summary
    assert s["corpus"] == "corpus"
    assert [(d["utt_id"], d["reason"]) for d in s["skipped"]] == [("missing", "missing"), ("d", "empty emotion")]
    assert "extra columns kept as fields: accent, age_group" in s["notes"]


def test_prepare_csv_tsv_ids_folds_audio_root(tmp_path, audio_dir):
    (tmp_path / "meta").mkdir()
    table = _write(
        tmp_path / "meta" / "list.tsv",
        [
            ["id", "path", "emotion", "emotion_raw", "fold", "text"],
            ["utt1", "a.wav", "neu", "N", "f1", "a, b, c"],
            ["utt2", "sub/a.wav", "ang", "W", "f2", "x"],
        ],
        sep="\t",
    )
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
    t = _write(
        tmp_path / "t2.csv",
        [
            ["path", "emotion", "gender"],
            ["audio/a.wav", "x", "f"],
            ["audio/b.wav", "x", "X"],
            ["audio/c.wav", "x", "other"],
        ],
    )
    with pytest.raises(DataError, match=r"unknown gender value\(s\): 'X' \(line 3\); 'other' \(line 4\)"):
        prepare_csv(t, tmp_path / "o")
    t = _write(tmp_path / "t3.csv", [["path", "emotion"], ["audio/a.wav", "x"], ["audio/sub/a.wav", "y"]])
    with pytest.raises(DataError, match=r"utterance ids must be unique; duplicated: a \(x2\)"):
        prepare_csv(t, tmp_path / "o")
    t = _write(tmp_path / "t4.csv", [["path", "emotion"], ["audio/a.wav", "x"], ["audio/nothere.wav", "y"]])
    with pytest.raises(DataError, match=r"1 utterance\(s\) cannot be used \(strict mode\):\n  nothere"):
        prepare_csv(t, tmp_path / "o", strict=True)
    with pytest.raises(DataError, match="audio root not found"):
        prepare_csv(t, tmp_path / "o", audio_root=tmp_path / "nodir")
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------- numbers and checks


def test_regression_columns_are_numbers(tmp_path, audio_dir):
    table = _write(
        tmp_path / "t.csv",
        [
            ["path", "emotion", "speaker", "Valence", "arousal", "accent"],
            ["audio/a.wav", "hap", "s1", "3.5", "-1e-1", "uk"],
            ["audio/b.wav", "sad", "s2", "", "2", "us"],
            ["audio/c.wav", "sad", "s3", "4", "0", "1.5"],
        ],
    )
    res = prepare_csv(table, tmp_path / "out", regression=["valence", " Arousal"])
    cuts = {c.id: c for c in res.cuts}
    assert get_field(cuts["a"], "valence") == 3.5 and get_field(cuts["a"], "arousal") == -0.1
    assert isinstance(get_field(cuts["c"], "valence"), float) and get_field(cuts["c"], "valence") == 4.0
    assert get_field(cuts["b"], "valence") is None and get_field(cuts["b"], "arousal") == 2.0
    assert get_field(cuts["c"], "accent") == "1.5"  # other extra columns stay strings
    s = res.summary
    assert s["numeric_fields"] == ["arousal", "valence"]
    assert "regression columns stored as numbers: valence, arousal" in s["notes"]
    assert "extra columns kept as fields: accent" in s["notes"]
    assert s["warnings"] == [
        "1 emotion class(es) with a single utterance: hap (it can be in a training or a test part, never both)"
    ]


def test_regression_errors(tmp_path, audio_dir):
    table = _write(
        tmp_path / "t.csv",
        [
            ["path", "emotion", "valence"],
            ["audio/a.wav", "hap", '"3,5"'],
            ["audio/b.wav", "sad", "high"],
            ["audio/c.wav", "sad", "nan"],
        ],
    )
    with pytest.raises(DataError, match=r"not numbers: valence \(line 2 '3,5', 3 'high', 4 'nan'\)"):
        prepare_csv(table, tmp_path / "o", regression=["valence"])
    with pytest.raises(DataError, match=r"regression column\(s\) not in the table: arousal"):
        prepare_csv(table, tmp_path / "o", regression=["arousal"])
    with_speaker = _write(tmp_path / "t2.csv", [["path", "emotion", "speaker"], ["audio/a.wav", "x", "1"]])
    with pytest.raises(DataError, match="speaker cannot be regression targets"):
        prepare_csv(with_speaker, tmp_path / "o", regression=["speaker"])
    assert not (tmp_path / "o").exists()


def test_duplicate_audio_is_an_error_unless_allowed(tmp_path, audio_dir):
    table = _write(
        tmp_path / "t.csv",
        [
            ["id", "path", "emotion"],
            ["u1", "audio/a.wav", "hap"],
            ["u2", "audio/b.wav", "sad"],
            ["u3", "audio/../audio/a.wav", "ang"],  # the same file, spelled differently
        ],
    )
    with pytest.raises(
        DataError,
        match=r"1 audio file\(s\) listed under more than one id.*u1 \(line 2\), "
        r"u3 \(line 4\)",
    ) as e:
        prepare_csv(table, tmp_path / "o")
    assert "--allow-duplicate-audio" in e.value.hint
    res = prepare_csv(table, tmp_path / "o", allow_duplicate_audio=True)
    assert sorted(c.id for c in res.cuts) == ["u1", "u2", "u3"]
    assert "checks switched off: duplicate audio" in res.summary["notes"]


@pytest.mark.parametrize("column", ["session", "fold"])
def test_speaker_in_two_groups_is_an_error_unless_allowed(tmp_path, audio_dir, column):
    table = _write(
        tmp_path / "t.csv",
        [
            ["path", "emotion", "speaker", column],
            ["audio/a.wav", "hap", "s1", "1"],
            ["audio/b.wav", "sad", "s2", "2"],
            ["audio/c.wav", "hap", "s1", "2"],
        ],
    )
    with pytest.raises(
        DataError,
        match=rf"1 speaker\(s\) occur in more than one {column}.*"
        rf"s1 \({column}s 1 \(line 2\), 2 \(line 4\)\)",
    ):
        prepare_csv(table, tmp_path / "o")
    res = prepare_csv(table, tmp_path / "o", allow_speaker_overlap=True)
    assert len(res.cuts) == 3


def test_encoding(tmp_path, audio_dir):
    rows = "path,emotion,speaker\naudio/a.wav,hap,Jürgen\naudio/b.wav,Ärger,Åsa\n"
    latin = tmp_path / "latin.csv"
    latin.write_bytes(rows.encode("latin-1"))
    with pytest.raises(DataError, match=r"latin.csv:2: not valid utf-8 text \(byte 0xfc at column 18\)") as e:
        prepare_csv(latin, tmp_path / "o")
    assert "--encoding" in e.value.hint
    res = prepare_csv(latin, tmp_path / "o", encoding="latin-1")
    assert sorted(get_field(c, "speaker") for c in res.cuts) == ["Jürgen", "Åsa"]
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + rows.encode("utf-8"))
    assert len(prepare_csv(bom, tmp_path / "o2").cuts) == 2  # the BOM is not part of "path"
    with pytest.raises(DataError, match="unknown encoding 'klingon'"):
        prepare_csv(bom, tmp_path / "o3", encoding="klingon")


def test_line_numbers_count_blank_lines(tmp_path, audio_dir):
    table = tmp_path / "t.csv"
    table.write_text("path,emotion,gender\n\naudio/a.wav,x,f\n\naudio/b.wav,x,robot\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"'robot' \(line 5\)"):
        prepare_csv(table, tmp_path / "o")


def test_cli_prepare_csv_flags(tmp_path, audio_dir):
    from click.testing import CliRunner

    from metaser.cli import main

    table = _write(
        tmp_path / "t.csv",
        [
            ["path", "emotion", "speaker", "session", "valence"],
            ["audio/a.wav", "hap", "s1", "1", "2.5"],
            ["audio/b.wav", "sad", "s1", "2", "x"],
        ],
    )
    out = tmp_path / "out"
    r = CliRunner().invoke(
        main, ["prepare", "csv", str(table), "-o", str(out), "--allow-speaker-overlap", "--regression", "valence"]
    )
    assert r.exit_code == 2 and "not numbers: valence (line 3 'x')" in r.output
    table.write_text(table.read_text().replace(",x\n", ",1\n"))
    r = CliRunner().invoke(main, ["prepare", "csv", str(table), "-o", str(out), "--regression", "valence"])
    assert r.exit_code == 2 and "--allow-speaker-overlap" in r.output
    r = CliRunner().invoke(
        main, ["prepare", "csv", str(table), "-o", str(out), "--allow-speaker-overlap", "--regression", "valence"]
    )
    assert r.exit_code == 0, r.output
    assert "warning: 2 emotion class(es) with a single utterance: hap, sad" in r.output
