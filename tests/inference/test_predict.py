from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner
from rich.console import Console

from metaser.cli import main
from metaser.errors import ConfigError, MetaserError
from metaser.inference.predict import expand_inputs, run_predict
from metaser.inference.recognizer import PredictionError
from tests.inference.helpers import EMOTIONS, babble, bad_files, write


def _consoles():
    out, err = io.StringIO(), io.StringIO()
    return (
        Console(file=out, width=200, highlight=False, color_system=None),
        Console(file=err, width=200, highlight=False, color_system=None),
        out,
        err,
    )


@pytest.fixture()
def audio(tmp_path):
    """Two good files in a nested directory, one at the top, and the bad ones."""
    d = tmp_path / "audio"
    good = [
        write(d / "a.wav", babble(0.6, seed=1)),
        write(d / "sub" / "b.flac", babble(0.9, seed=2), subtype="PCM_16"),
        write(tmp_path / "c.wav", babble(0.7, seed=3)),
    ]
    (d / "sub" / "notes.txt").write_text("not audio, skipped by the directory scan")
    return good, bad_files(tmp_path / "bad")


def test_expand_inputs(tmp_path, audio):
    good, bad = audio
    (tmp_path / "empty_dir").mkdir()
    got = expand_inputs([tmp_path / "audio", good[2], tmp_path / "empty_dir", bad["missing"]])
    assert got[:3] == [good[0], good[1], good[2]]  # recursive, sorted, non-audio left out
    assert isinstance(got[3], PredictionError) and got[3].reason == "no_audio"
    assert str(tmp_path / "empty_dir") in got[3].error
    assert got[4] == bad["missing"]


def test_run_predict_json_with_bad_files(model_dir, audio, tmp_path):
    good, bad = audio
    (tmp_path / "empty_dir").mkdir()
    con, err, out, errs = _consoles()
    paths = [good[0], *bad.values(), tmp_path / "empty_dir", good[2]]
    n = run_predict(model_dir, paths, fmt="json", console=con, err_console=err)
    assert n == len(bad) + 1
    rows = json.loads(out.getvalue())
    assert [r["path"] for r in rows] == [str(p) for p in paths]
    assert [r.get("reason") for r in rows] == [None, *bad, "no_audio", None]
    for r in (rows[0], rows[-1]):
        assert r["emotion"] in EMOTIONS and set(r["probs"]) == set(EMOTIONS)
        assert r["gender"] in ("female", "male") and r["style"] in ("impro", "script")
        assert isinstance(r["transcript"], str) and r["segments"] == []
    for r, p in zip(rows[1 : 1 + len(bad)], bad.values()):
        assert p.name in r["error"]
    assert f"{len(bad) + 1} of {len(paths)} input(s) failed" in errs.getvalue()


def test_run_predict_csv_to_file(model_dir, audio, tmp_path):
    good, bad = audio
    con, err, out, errs = _consoles()
    target = tmp_path / "res" / "out.csv"
    n = run_predict(
        model_dir, [tmp_path / "audio", bad["silent"]], fmt="csv", output=target, console=con, err_console=err
    )
    assert n == 1 and out.getvalue() == ""
    assert f"wrote 3 result(s) to {target}" in errs.getvalue()
    rows = list(csv.DictReader(target.open()))
    assert list(rows[0])[: 3 + len(EMOTIONS)] == ["path", "emotion", "prob"] + [f"probs_{c}" for c in EMOTIONS]
    assert {"gender", "gender_prob", "style", "transcript", "error"} <= set(rows[0])
    assert [r["path"] for r in rows] == [str(good[0]), str(good[1]), str(bad["silent"])]
    for r in rows[:2]:
        assert r["emotion"] in EMOTIONS and r["error"] == ""
        assert abs(sum(float(r[f"probs_{c}"]) for c in EMOTIONS) - 1) < 1e-4
        assert float(r["prob"]) == max(float(r[f"probs_{c}"]) for c in EMOTIONS)
    assert rows[2]["emotion"] == "" and rows[2]["reason"] == "silent" and "silent" in rows[2]["error"]


def test_run_predict_table(model_dir, audio):
    good, bad = audio
    con, err, out, _ = _consoles()
    n = run_predict(model_dir, [good[0], bad["corrupt"]], fmt="table", console=con, err_console=err)
    assert n == 1
    text = out.getvalue()
    for word in (
        "file",
        "emotion",
        "prob",
        "gender",
        "style",
        "transcript",
        "1 predicted, 1 failed",
        "audio/a.wav",
        "bad/corrupt.wav",
        "error",
        "truncated",
        f"files under {good[2].parent}",
    ):
        assert word in text, word
    assert any(e in text for e in EMOTIONS)


def test_run_predict_usage_errors(model_dir, tmp_path, audio):
    good, _ = audio
    con, err, _, _ = _consoles()
    with pytest.raises(MetaserError, match="model directory not found") as e:
        run_predict(tmp_path / "no_model", [good[0]], console=con, err_console=err)
    assert e.value.exit_code == 2
    with pytest.raises(ConfigError, match="--format"):
        run_predict(model_dir, [good[0]], fmt="xml", console=con, err_console=err)
    with pytest.raises(MetaserError, match="is a directory"):
        run_predict(model_dir, [good[0]], output=tmp_path, console=con, err_console=err)


def test_cli_predict(model_dir, audio, tmp_path):
    good, bad = audio
    runner = CliRunner()
    ok = runner.invoke(main, ["predict", str(model_dir), str(good[0]), "--format", "json", "--batch-size", "2"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)[0]["path"] == str(good[0])

    for reason in ("corrupt", "nonfinite", "too_short"):
        r = runner.invoke(main, ["predict", str(model_dir), str(good[0]), str(bad[reason]), "--format", "json"])
        assert r.exit_code == 1, r.output
        assert "Traceback" not in r.output
        assert isinstance(r.exception, SystemExit)  # a clean exit, not an escaped exception
        rows = json.loads(r.stdout)
        assert rows[0]["emotion"] in EMOTIONS and rows[1]["reason"] == reason

    r = runner.invoke(main, ["predict", str(tmp_path / "no_model"), str(good[0])])
    assert r.exit_code == 2
    assert "model directory not found" in r.output and "Traceback" not in r.output

    out = tmp_path / "res.json"
    r = runner.invoke(
        main,
        [
            "predict",
            str(model_dir),
            str(tmp_path / "audio"),
            "-o",
            str(out),
            "--format",
            "json",
            "--max-seconds",
            "5",
            "--device",
            "cpu",
        ],
    )
    assert r.exit_code == 0 and r.stdout == ""
    assert [x["path"] for x in json.loads(out.read_text())] == [str(good[0]), str(good[1])]

    r = runner.invoke(main, ["predict", str(model_dir), str(good[0]), "--device", "nonsense"])
    assert r.exit_code == 2 and "--device" in r.output and "Traceback" not in r.output


def test_progress_bar_on_a_terminal(model_dir, tmp_path):
    files = [write(tmp_path / f"f{i}.wav", babble(0.5, seed=30 + i)) for i in range(6)]
    con, _, out, _ = _consoles()
    err_buf = io.StringIO()
    err = Console(file=err_buf, width=100, force_terminal=True)
    assert run_predict(model_dir, files, fmt="json", console=con, err_console=err) == 0
    assert "predict" in err_buf.getvalue() and "6/6" in err_buf.getvalue()
    assert [r["path"] for r in json.loads(out.getvalue())] == [str(f) for f in files]


def test_a_broken_link_in_a_directory_is_reported_not_skipped(model_dir, tmp_path):
    d = tmp_path / "in"
    good = write(d / "a.wav", babble(0.6, seed=1))
    (d / "gone.wav").symlink_to(tmp_path / "deleted.wav")
    con, err, out, errs = _consoles()
    assert run_predict(model_dir, [d], fmt="json", console=con, err_console=err) == 1
    rows = json.loads(out.getvalue())
    assert rows[0]["path"] == str(good) and rows[0]["emotion"] in EMOTIONS
    assert rows[1]["reason"] == "missing" and "broken symbolic link" in rows[1]["error"]


def test_an_unreadable_file_is_a_per_file_error_inside_a_directory_and_on_the_command_line(
    model_dir, tmp_path, monkeypatch
):
    import os

    d = tmp_path / "in"
    good = write(d / "a.wav", babble(0.6, seed=1))
    locked = write(d / "b.wav", babble(0.6, seed=2))
    real_access = os.access
    # root reads any file: refuse read access to one file the way a chmod 000 does for a user
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if str(p) == str(locked) else real_access(p, mode))
    for inputs in ([d], [good, locked]):
        con, err, out, _ = _consoles()
        assert run_predict(model_dir, inputs, fmt="json", console=con, err_console=err) == 1
        rows = json.loads(out.getvalue())
        assert rows[0]["emotion"] in EMOTIONS
        assert rows[1]["reason"] == "unreadable" and rows[1]["error"] == f"permission denied: {locked}"


def test_output_is_checked_before_any_inference(model_dir, tmp_path, monkeypatch):
    from metaser.inference import recognizer as rec_mod

    good = write(tmp_path / "a.wav", babble(0.6, seed=1))
    (tmp_path / "file").write_text("x")
    monkeypatch.setattr(rec_mod.EmotionRecognizer, "from_pretrained", lambda *a, **k: pytest.fail("model loaded"))
    r = CliRunner().invoke(main, ["predict", str(model_dir), str(good), "-o", str(tmp_path / "file" / "out.json")])
    assert r.exit_code == 2 and "not a writable directory" in r.output and "Traceback" not in r.output
