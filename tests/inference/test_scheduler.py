"""The serve model worker: pieces of all requests scheduled round-robin, results unchanged."""

from __future__ import annotations

import threading
from concurrent.futures import CancelledError

import numpy as np
import pytest

from metaser.inference.inputs import Loaded
from metaser.inference.recognizer import EmotionRecognizer, RecognizerConfig
from metaser.inference.segment import SegmentConfig
from metaser.inference.serve.scheduler import Busy, ModelFailed, PieceScheduler
from tests.inference.helpers import babble, tone

SR = 16000


class _Recorder:
    """A recognizer stand-in: each piece's output is its first sample (its tag); records the
    tags of every forward. ``gate``: the first forward waits for it (to queue work meanwhile)."""

    def __init__(self, gate: threading.Event | None = None):
        self.forwards: list[list[float]] = []
        self.gate = gate
        self.started = threading.Event()

    def run_pieces(self, chunks):
        self.started.set()
        if self.gate is not None and not self.forwards:
            assert self.gate.wait(10)
        self.forwards.append([float(c[0]) for c in chunks])
        return [{"tag": float(c[0])} for c in chunks]

    def combine(self, loaded, spans, outs):
        return [o["tag"] for o in outs]


def _loaded(tag: float, n_pieces: int, seconds: float = 1.0) -> Loaded:
    """An input of ``n_pieces`` pieces of ``seconds`` each; piece k starts with the sample 100 * tag + k."""
    n = int(seconds * SR)
    x = np.zeros(n * n_pieces, dtype=np.float32)
    spans = [(k * n, (k + 1) * n) for k in range(n_pieces)]
    for k, (s, _) in enumerate(spans):
        x[s] = 100 * tag + k
    return Loaded(path=None, x=x, spans=spans, method="windows" if n_pieces > 1 else "whole")


def test_short_requests_are_not_held_behind_a_long_one():
    gate = threading.Event()
    rec = _Recorder(gate)
    s = PieceScheduler(rec, max_batch=4, max_batch_seconds=2.0, max_wait_s=0.0)
    long = s.submit(_loaded(1, 40))  # 40 one-second pieces
    assert rec.started.wait(10)  # the first forward (2 pieces of the long file) is running
    shorts = [s.submit(_loaded(10 + i, 1)) for i in range(3)]
    gate.set()
    assert [f.result(10) for f in shorts] == [[1000.0], [1100.0], [1200.0]]
    assert long.result(10) == [100.0 + k for k in range(40)]  # in span order, whatever the schedule
    tags = rec.forwards
    done_at = max(i for i, f in enumerate(tags) if any(t >= 1000 for t in f))
    assert done_at <= 2, tags  # the shorts ran within two forwards of the running one, not after 40 pieces
    assert all(len(f) <= 2 for f in tags), tags  # 2 s of audio per forward at most
    assert sorted(t for f in tags for t in f) == [100.0 + k for k in range(40)] + [1000, 1100, 1200]
    s.stop()


def test_a_request_arriving_during_a_forward_goes_before_the_requests_in_it():
    gate = threading.Event()
    rec = _Recorder(gate)
    s = PieceScheduler(rec, max_batch=8, max_batch_seconds=1.0, max_wait_s=0.0)
    long = s.submit(_loaded(1, 5))
    assert rec.started.wait(10)  # the long file's first piece is running
    short = s.submit(_loaded(2, 1))
    gate.set()
    assert short.result(10) == [200.0] and long.result(10) == [100.0 + k for k in range(5)]
    assert rec.forwards == [[100.0], [200.0], [101.0], [102.0], [103.0], [104.0]]
    s.stop()


def test_round_robin_between_long_requests_and_budget_per_forward():
    gate = threading.Event()
    rec = _Recorder(gate)
    s = PieceScheduler(rec, max_batch=8, max_batch_seconds=3.0, max_wait_s=0.0)
    first = s.submit(_loaded(100, 1))  # tag 10000
    assert rec.started.wait(10)
    a, b = s.submit(_loaded(1, 6)), s.submit(_loaded(2, 6))
    gate.set()
    assert a.result(10) and b.result(10) and first.result(10) == [10000.0]
    order = [int(t) // 100 for f in rec.forwards[1:] for t in f]
    assert order == [1, 2] * 6  # alternating pieces, not one file then the other
    assert all(len(f) <= 3 for f in rec.forwards)


def test_a_piece_longer_than_the_budget_runs_alone():
    rec = _Recorder()
    s = PieceScheduler(rec, max_batch=8, max_batch_seconds=1.0, max_wait_s=0.05)
    futs = [s.submit(_loaded(1, 1, seconds=3.0)), s.submit(_loaded(2, 1, seconds=0.5))]
    assert [f.result(10) for f in futs] == [[100.0], [200.0]]
    assert rec.forwards == [[100.0], [200.0]]
    s.stop()


def test_idle_worker_batches_concurrent_requests():
    rec = _Recorder()
    s = PieceScheduler(rec, max_batch=8, max_batch_seconds=30.0, max_wait_s=0.5)
    futs = [s.submit(_loaded(i, 1)) for i in range(5)]
    assert [f.result(10) for f in futs] == [[100.0 * i] for i in range(5)]
    assert rec.forwards == [[0.0, 100.0, 200.0, 300.0, 400.0]]  # one forward, not five
    assert s.stats()["forwards"] == 1 and s.stats()["unfinished_requests"] == 0
    s.stop()


def test_a_cancelled_request_leaves_the_rotation():
    gate = threading.Event()
    rec = _Recorder(gate)
    s = PieceScheduler(rec, max_batch=1, max_batch_seconds=1.0, max_wait_s=0.0)
    first = s.submit(_loaded(1, 1))
    assert rec.started.wait(10)
    doomed = s.submit(_loaded(2, 50))
    assert doomed.cancel()  # the client went away
    gate.set()
    assert first.result(10) == [100.0]
    with pytest.raises(CancelledError):
        doomed.result(1)
    assert s.submit(_loaded(3, 1)).result(10) == [300.0]
    assert all(int(t) // 100 != 2 for f in rec.forwards for t in f)
    assert s.stats()["unfinished_requests"] == 0
    s.stop()


def test_full_queue_refuses_work_and_recovers():
    gate = threading.Event()
    rec = _Recorder(gate)
    s = PieceScheduler(rec, max_batch=1, max_wait_s=0.0, max_queue=2)
    first = s.submit(_loaded(1, 1))
    assert rec.started.wait(10)
    second = s.submit(_loaded(2, 1))
    with pytest.raises(Busy):
        s.submit(_loaded(3, 1))
    gate.set()
    assert first.result(10) == [100.0] and second.result(10) == [200.0]
    assert s.submit(_loaded(4, 1)).result(10) == [400.0]
    s.stop()


def test_model_errors_reach_the_requests_of_that_forward_and_the_worker_goes_on():
    class Flaky(_Recorder):
        def run_pieces(self, chunks):
            if any(float(c[0]) == 1300 for c in chunks):
                raise RuntimeError("boom")
            return super().run_pieces(chunks)

    s = PieceScheduler(Flaky(), max_batch=1, max_wait_s=0.0)
    with pytest.raises(ModelFailed, match="RuntimeError: boom") as err:
        s.submit(_loaded(13, 3)).result(10)
    assert isinstance(err.value.__cause__, RuntimeError)
    assert s.submit(_loaded(4, 2)).result(10) == [400.0, 401.0]
    assert s.stats()["unfinished_requests"] == 0
    s.stop()


def test_a_piece_that_fails_alone_fails_only_its_request():
    """``run_pieces`` returns an exception in the place of a piece it could not run (after its
    one-by-one retry): that piece's request fails, the others in the same forward do not."""

    class OnePieceFails(_Recorder):
        def run_pieces(self, chunks):
            outs = super().run_pieces(chunks)
            return [ValueError("bad piece") if float(c[0]) == 1300 else o for c, o in zip(chunks, outs)]

    gate = threading.Event()
    rec = OnePieceFails(gate)
    s = PieceScheduler(rec, max_batch=8, max_wait_s=0.0)
    first = s.submit(_loaded(1, 1))  # holds the worker until both requests are queued
    assert rec.started.wait(10)
    bad, good = s.submit(_loaded(13, 3)), s.submit(_loaded(4, 2))
    gate.set()
    assert first.result(10) == [100.0]
    with pytest.raises(ModelFailed, match="bad piece"):
        bad.result(10)
    assert good.result(10) == [400.0, 401.0]
    assert any(1300.0 in f and 400.0 in f for f in rec.forwards)  # they shared a forward
    assert s.stats()["unfinished_requests"] == 0
    s.stop()


def test_on_idle_runs_when_the_work_is_done():
    calls = threading.Event()
    s = PieceScheduler(_Recorder(), max_wait_s=0.0, on_idle=calls.set)
    s.submit(_loaded(1, 3)).result(10)
    assert calls.wait(10)
    s.stop()


def test_same_answers_as_predict_whatever_runs_alongside(model_dir):
    """A long file (fixed windows) and short files scheduled together, interleaved piece by
    piece, give each file the answer ``predict`` gives it alone (segments, transcript, probs)."""
    rec = EmotionRecognizer.from_pretrained(
        model_dir, device="cpu", config=RecognizerConfig(segment=SegmentConfig(max_seconds=2.0, method="windows"))
    )
    inputs = [np.concatenate([tone(5.0, seed=1), babble(6.0, seed=2)])] + [
        babble(0.5 + 0.3 * i, seed=i) for i in range(5)
    ]
    expected = [rec.predict(x).to_dict() for x in inputs]
    assert len(expected[0]["segments"]) == 10
    s = PieceScheduler(rec, max_batch=4, max_batch_seconds=4.0, max_wait_s=0.05)
    futs = [s.submit(rec._load(x, i)) for i, x in enumerate(inputs)]
    got = [f.result(60).to_dict() for f in futs]
    s.stop()
    assert s.stats()["forwards"] > 3  # really interleaved, not one forward per file
    for g, e in zip(got, expected):
        assert g["emotion"] == e["emotion"] and g["transcript"] == e["transcript"]
        assert [(x["start"], x["end"]) for x in g["segments"]] == [(x["start"], x["end"]) for x in e["segments"]]
        for k, v in e["probs"].items():
            assert g["probs"][k] == pytest.approx(v, abs=1e-4)  # padding next to other pieces only
