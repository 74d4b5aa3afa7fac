"""A user's CSV corpus with 10 ms and 30 ms clips: prepare lists them, and kept, they train to the end.

TDSA at 0.8 shortens a 30 ms clip (480 samples) to 384, below the CNN's 400-sample receptive
field; the collating dataset pads such clips to the receptive field instead of stopping.
"""

from __future__ import annotations

import csv
import json

import pytest
from click.testing import CliRunner

from metaser.cli import main
from tests.conftest import TEST_OVERRIDES, TINY_PRESET
from tests.data.conftest import write_tone

SPEAKERS = {"s1": ("female", "1"), "s2": ("male", "1"), "s3": ("female", "2"), "s4": ("male", "2")}


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    root = tmp_path_factory.mktemp("short")
    rows = []
    for spk, (gender, session) in SPEAKERS.items():
        for i in range(6):
            emo = ("neu", "ang")[i % 2]
            p = root / "audio" / f"{spk}_{i}.wav"
            write_tone(p, seconds=0.4 + 0.05 * i, freq=150.0 + 40 * i)
            rows.append([str(p), emo, spk, gender, session])
        for ms in (10, 30):  # the short ones, in every speaker: some land in train, some in test
            p = root / "audio" / f"{spk}_short{ms}.wav"
            write_tone(p, seconds=ms / 1000)
            rows.append([str(p), "neu", spk, gender, session])
    path = root / "corpus.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "emotion", "speaker", "gender", "session"])
        w.writerows(rows)
    return path


def test_prepare_lists_short_clips_as_too_short(table, tmp_path):
    result = CliRunner().invoke(main, ["prepare", "csv", str(table), "-o", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "m" / "summary.json").read_text())
    short = sorted(s["utt_id"] for s in summary["skipped"] if s["reason"] == "too_short")
    assert short == sorted(f"{s}_short{ms}" for s in SPEAKERS for ms in (10, 30))


def test_kept_short_clips_train_to_the_end(table, tmp_path):
    result = CliRunner().invoke(main, ["prepare", "csv", str(table), "-o", str(tmp_path / "m"), "--min-duration", "0"])
    assert result.exit_code == 0, result.output
    args = [
        "train",
        str(TINY_PRESET),
        f"data.manifest={tmp_path / 'm'}",
        f"output_dir={tmp_path / 'runs'}",
        *TEST_OVERRIDES,
        "aux_tasks={gender: 1.0}",
        "data.split.group_by=session",
        "data.split.valid_fraction=0.25",
        "data.sampler.mode=fixed",
        "data.sampler.batch_size=4",
        "name=short",
        "--fold",
        "1",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    fold = tmp_path / "runs" / "short" / "fold1"
    metrics = json.loads((fold / "metrics.json").read_text())
    rows = [json.loads(x) for x in (fold / "predictions.jsonl").read_text().splitlines()]
    assert any("short" in r["id"] for r in rows)  # short test clips got predictions too
    assert metrics["test"]["num_utterances"] == len(rows)
