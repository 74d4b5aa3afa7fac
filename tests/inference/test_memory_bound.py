"""What goes through the encoder is bounded by memory, whatever --max-seconds says; a forward that
fails becomes per-file errors, never a lost run."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

from metaser.cli import main
from metaser.constants import SAMPLE_RATE
from metaser.inference.recognizer import EmotionRecognizer, RecognizerConfig
from tests.inference.helpers import babble, tone, write


class Recording:
    """A backend wrapper that records the shape of every forward (and can fail on long input)."""

    def __init__(self, inner, fail_over: int | None = None):
        self.inner, self.fail_over = inner, fail_over
        self.name, self.device, self.shapes = inner.name, inner.device, []

    def run(self, wav, lens):
        self.shapes.append(wav.shape)
        if self.fail_over is not None and wav.shape[1] > self.fail_over:
            raise RuntimeError("out of memory (simulated)")
        return self.inner.run(wav, lens)


def test_a_20_minute_file_goes_through_in_bounded_pieces_with_max_seconds_1200(model_dir, tmp_path):
    rec = EmotionRecognizer.from_pretrained(model_dir, device="cpu", max_seconds=1200)
    rec.backend = Recording(rec.backend)
    good = write(tmp_path / "good.wav", babble(2.0, seed=1))
    long = write(tmp_path / "long_20min.wav", np.tile(babble(30.0, seed=2), 40), subtype="PCM_16")
    out = rec.predict_batch([good, long])
    assert [p.ok for p in out] == [True, True]
    assert out[1].duration == 1200.0 and out[1].segments == []  # not split into a timeline below 1200 s
    piece = rec.config.max_piece_seconds * SAMPLE_RATE
    assert max(s[1] for s in rec.backend.shapes) <= piece
    assert max(s[0] * s[1] for s in rec.backend.shapes) <= rec.config.max_batch_seconds * SAMPLE_RATE


def test_a_failing_forward_fails_only_its_files(model_dir, tmp_path):
    rec = EmotionRecognizer.from_pretrained(model_dir, device="cpu", config=RecognizerConfig(batch_size=4))
    rec.backend = Recording(rec.backend, fail_over=3 * SAMPLE_RATE)
    files = [write(tmp_path / f"{i}.wav", tone(1.0 + i, seed=i)) for i in range(4)]  # 1..4 s: one padded batch
    out = rec.predict_batch(files)
    assert [p.ok for p in out] == [True, True, True, False]  # the batch failed; retried alone, only 4 s fails
    assert out[3].reason == "model_error" and "out of memory (simulated)" in out[3].error
    alone = EmotionRecognizer.from_pretrained(model_dir, device="cpu").predict(files[2])
    assert max(abs(out[2].probs[k] - alone.probs[k]) for k in alone.probs) <= 1e-5


def test_predict_command_reports_the_failing_file_and_keeps_the_others(model_dir, tmp_path, monkeypatch):
    from metaser.inference import backends

    real = backends.TorchBackend.run

    def run(self, wav, lens):
        if wav.shape[1] > 3 * SAMPLE_RATE:
            raise RuntimeError("out of memory (simulated)")
        return real(self, wav, lens)

    monkeypatch.setattr(backends.TorchBackend, "run", run)
    short = write(tmp_path / "short.wav", tone(1.0))
    long = write(tmp_path / "long.wav", tone(4.0))
    r = CliRunner().invoke(main, ["predict", str(model_dir), str(short), str(long), "--format", "json"])
    assert r.exit_code == 1 and "Traceback" not in r.output
    rows = json.loads(r.stdout)
    assert rows[0]["emotion"] and rows[1]["reason"] == "model_error"


def test_max_piece_and_batch_seconds_are_checked():
    import pytest

    from metaser.errors import ConfigError

    with pytest.raises(ConfigError, match="max_batch_seconds"):
        RecognizerConfig(max_piece_seconds=60, max_batch_seconds=30).validate()
