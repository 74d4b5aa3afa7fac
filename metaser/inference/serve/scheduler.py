"""The model worker: one thread that schedules *pieces*, not requests.

An upload is decoded and split into pieces (:attr:`Loaded.spans`, as ``predict`` splits it);
a live stream submits one piece per window. :class:`PieceScheduler` keeps every waiting
request in a rotation and builds each forward from it round-robin: one piece from the request
at the head, which then goes to the back of the rotation, the next piece from the following
request, and so on, until the forward holds ``max_batch`` pieces or the next piece would take
it over ``max_batch_seconds`` of audio (a forward always holds at least one piece). The
requests served by the running forward rejoin the rotation when it is done, so a request
that arrives meanwhile goes before them. A new request thus waits for the running forward
and at most one piece of every other request, never for the whole of a long file: a
10-minute upload is ~120 pieces that interleave with everyone else's work instead of one
block.

The pieces of one forward go through :meth:`EmotionRecognizer.run_pieces` (length-sorted,
padded sub-batches). When the last piece of a request is done, its result is built from its
pieces in span order by the request's ``finish`` (for uploads :meth:`EmotionRecognizer.combine`,
exactly as ``predict`` combines them), so how a file's pieces were interleaved with other work
does not change how they are combined.

When the worker is idle and fewer than ``max_batch`` pieces wait, it waits up to
``max_wait_s`` after the oldest one arrived for more to batch with (micro-batching). At most
``max_queue`` requests may be unfinished; beyond that :meth:`submit` raises :class:`Busy`. A
cancelled future (a client that went away) drops the request's remaining pieces.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from metaser.constants import SAMPLE_RATE

__all__ = ["PieceScheduler", "Busy", "ModelFailed"]

log = logging.getLogger("metaser.serve")


class Busy(Exception):
    """Too many requests are unfinished."""


class ModelFailed(Exception):
    """The model's forward failed on a request's pieces (``__cause__`` is the model's error); the
    client answers it as the model's failure, not as a bug of the server."""

    def __init__(self, error: BaseException):
        super().__init__(f"{type(error).__name__}: {error}")
        self.__cause__ = error


@dataclass(eq=False)
class _Job:
    """One request: its pieces (views into its audio), their outputs, and how to finish it."""

    pieces: list[np.ndarray]  # each (S_i,) float32 at 16 kHz
    finish: Callable[[list[dict[str, Any]]], Any]
    arrived: float
    future: Future = field(default_factory=Future)
    outs: list[dict[str, Any] | None] = field(default_factory=list)
    next: int = 0  # the next piece to schedule
    done: int = 0  # pieces finished
    failed: bool = False
    retired: bool = False  # no longer counted as unfinished

    @property
    def dead(self) -> bool:
        return self.failed or self.future.cancelled()


class PieceScheduler:
    """One worker thread over ``recognizer`` (anything with ``run_pieces`` and ``combine``).

    max_batch: most pieces per forward. max_batch_seconds: most audio seconds per forward
    (a single longer piece still runs, alone). max_wait_s: how long an idle worker waits to fill
    a batch. max_queue: most unfinished requests. on_idle: called in the worker thread whenever
    it runs out of work (the server hands freed memory back then: :class:`~.memory.Trimmer`).
    """

    def __init__(
        self,
        recognizer,
        *,
        max_batch: int = 8,
        max_batch_seconds: float = 10.0,
        max_wait_s: float = 0.01,
        max_queue: int = 256,
        on_idle: Callable[[], None] | None = None,
    ):
        self.recognizer = recognizer
        self.max_batch = max(1, int(max_batch))
        self.max_batch_samples = max(1, int(max_batch_seconds * SAMPLE_RATE))
        self.max_wait_s = float(max_wait_s)
        self.max_queue = max(1, int(max_queue))
        self.on_idle = on_idle
        self._cond = threading.Condition()
        self._rotation: deque[_Job] = deque()  # requests with pieces not yet scheduled
        self._parked: list[_Job] = []  # in the running forward, with pieces left: rejoin after it
        self._unfinished = 0
        self._thread: threading.Thread | None = None
        self._stopping = False
        # counters (for /health and the tests); plain ints, nothing that grows per request
        self.forwards = 0
        self.pieces_run = 0
        self.audio_seconds = 0.0
        self.requests_done = 0

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        with self._cond:
            if self._thread is None:
                self._stopping = False
                self._thread = threading.Thread(target=self._loop, name="metaser-model", daemon=True)
                self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        with self._cond:
            thread, self._thread = self._thread, None
            self._stopping = True
            self._cond.notify_all()
        if thread is not None:
            thread.join(timeout)

    # ------------------------------------------------------------------ submitting
    def submit(self, loaded) -> Future:
        """Schedule a decoded upload (a :class:`~metaser.inference.inputs.Loaded`); the future
        gets its :class:`~metaser.inference.results.Prediction`."""
        spans = list(loaded.spans)
        return self._submit(
            [loaded.x[s:e] for s, e in spans], lambda outs: self.recognizer.combine(loaded, spans, outs)
        )

    def submit_pieces(self, pieces: Sequence[np.ndarray]) -> Future:
        """Schedule raw pieces (a stream's windows); the future gets their per-piece outputs
        (the dicts of :meth:`EmotionRecognizer.run_pieces`), in order."""
        return self._submit(list(pieces), lambda outs: outs)

    def _submit(self, pieces: list[np.ndarray], finish) -> Future:
        if not pieces:
            raise ValueError("a request needs at least one piece")
        self.start()
        job = _Job(pieces=pieces, finish=finish, arrived=time.monotonic(), outs=[None] * len(pieces))
        with self._cond:
            if self._unfinished >= self.max_queue:
                raise Busy(f"{self._unfinished} requests are waiting")
            self._unfinished += 1
            self._rotation.append(job)
            self._cond.notify()
        return job.future

    # ------------------------------------------------------------------ stats
    def stats(self) -> dict[str, Any]:
        with self._cond:
            waiting = sum(len(j.pieces) - j.next for j in (*self._rotation, *self._parked) if not j.dead)
            unfinished = self._unfinished
        return {
            "unfinished_requests": unfinished,
            "waiting_pieces": waiting,
            "forwards": self.forwards,
            "pieces": self.pieces_run,
            "audio_seconds": round(self.audio_seconds, 3),
        }

    # ------------------------------------------------------------------ the worker
    def _take(self) -> list[tuple[_Job, int]] | None:
        """The next forward's pieces, round-robin over the rotation (blocks; None: stop)."""
        with self._cond:
            while True:
                while self._rotation and self._rotation[0].dead:
                    self._retire(self._rotation.popleft())
                if self._stopping:
                    return None
                if not self._rotation:
                    self._cond.wait()
                    continue
                waiting = sum(len(j.pieces) - j.next for j in self._rotation)
                left = self._rotation[0].arrived + self.max_wait_s - time.monotonic()
                if waiting < self.max_batch and left > 0 and all(j.next == 0 for j in self._rotation):
                    self._cond.wait(left)  # idle: give concurrent requests a moment to join
                    continue
                break
            batch: list[tuple[_Job, int]] = []
            samples = 0
            while self._rotation and len(batch) < self.max_batch:
                job = self._rotation[0]
                if job.dead:
                    self._retire(self._rotation.popleft())
                    continue
                n = int(job.pieces[job.next].shape[0])
                if batch and samples + n > self.max_batch_samples:
                    break
                batch.append((job, job.next))
                samples += n
                job.next += 1
                self._rotation.popleft()
                if job.next < len(job.pieces):
                    self._rotation.append(job)  # to the back: everyone else gets a piece first
            # The requests served here (with pieces left) are now the tail of the rotation, in the
            # order of their last piece. They wait outside it until this forward is done, so that
            # requests arriving meanwhile go before them.
            served = len({id(j) for j, _ in batch if j.next < len(j.pieces)})
            self._parked = [self._rotation.pop() for _ in range(served)][::-1]
            return batch

    def _retire(self, job: _Job) -> None:
        """The request stops counting against ``max_queue`` (once). Call with the lock held."""
        if not job.retired:
            job.retired = True
            self._unfinished -= 1

    def _loop(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            self._run(batch)
            with self._cond:
                self._rotation.extend(self._parked)
                self._parked = []
                idle = not self._rotation
            if self.on_idle is not None and idle:
                try:
                    self.on_idle()
                except Exception:  # housekeeping must never stop the worker
                    log.exception("on_idle failed")

    def _run(self, batch: list[tuple[_Job, int]]) -> None:
        chunks = [job.pieces[i] for job, i in batch]
        try:
            outs = self.recognizer.run_pieces(chunks)
        except BaseException as e:  # the model failed: every request in the forward learns why
            log.warning("a forward of %d piece(s) failed: %s: %s", len(chunks), type(e).__name__, e)
            for job in {id(j): j for j, _ in batch}.values():
                self._fail(job, ModelFailed(e))
            return
        self.forwards += 1
        self.pieces_run += len(chunks)
        self.audio_seconds += sum(int(c.shape[0]) for c in chunks) / SAMPLE_RATE
        for (job, i), o in zip(batch, outs):
            if job.dead:  # its client went away: nothing to combine
                with self._cond:
                    self._retire(job)
                continue
            if isinstance(o, Exception):  # the model failed on this piece alone (run_pieces retried it)
                log.warning("a piece failed: %s: %s", type(o).__name__, o)
                self._fail(job, ModelFailed(o))
                continue
            job.outs[i] = o
            job.done += 1
            if job.done == len(job.pieces):
                self._finish(job)

    def _finish(self, job: _Job) -> None:
        with self._cond:
            self._retire(job)
            self.requests_done += 1
        try:
            result = job.finish(job.outs)
        except BaseException as e:  # its client logs it (one traceback)
            _settle(job.future, exc=e)
            return
        job.pieces, job.outs = [], []  # let the audio go now, not when the client reads the answer
        _settle(job.future, result=result)

    def _fail(self, job: _Job, e: BaseException) -> None:
        with self._cond:
            job.failed = True
            self._retire(job)
        _settle(job.future, exc=e)


def _settle(fut: Future, *, result: Any = None, exc: BaseException | None = None) -> None:
    """Set a future's outcome unless its client cancelled it meanwhile."""
    try:
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(result)
    except InvalidStateError:  # cancelled between our check and now
        pass
