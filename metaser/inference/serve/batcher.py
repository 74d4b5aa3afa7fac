"""Micro-batching: requests from many threads, one model worker.

``submit(loaded)`` returns a :class:`concurrent.futures.Future`. The worker thread takes the
first waiting input, gathers more for up to ``max_wait_s`` (at most ``max_batch`` in all), and
predicts them together with :meth:`EmotionRecognizer.predict_loaded`, so the model never runs
in two threads at once and concurrent clients share forwards. A full queue refuses new work
(:class:`Busy`) instead of growing without bound.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

__all__ = ["MicroBatcher", "Busy"]

log = logging.getLogger(__name__)


class Busy(Exception):
    """The queue is full."""


@dataclass
class _Job:
    loaded: object
    future: Future = field(default_factory=Future)


class MicroBatcher:
    """One worker thread over ``recognizer``. ``max_queue`` waiting inputs at most."""

    def __init__(self, recognizer, *, max_batch: int = 8, max_wait_s: float = 0.01, max_queue: int = 256):
        self.recognizer = recognizer
        self.max_batch = max(1, int(max_batch))
        self.max_wait_s = float(max_wait_s)
        self._q: queue.Queue[_Job | None] = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._loop, name="metaser-model", daemon=True)
        self._started = False
        self._lock = threading.Lock()
        self.batches = 0  # forwards run (for tests and stats)
        self.items = 0

    def start(self) -> None:
        with self._lock:
            if not self._started:
                self._started = True
                self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._lock:
            if not self._started:
                return
            self._started = False
        self._q.put(None)
        self._thread.join(timeout)
        self._thread = threading.Thread(target=self._loop, name="metaser-model", daemon=True)

    def submit(self, loaded) -> Future:
        self.start()
        job = _Job(loaded)
        try:
            self._q.put_nowait(job)
        except queue.Full:
            raise Busy(f"{self._q.maxsize} requests are waiting") from None
        return job.future

    def _loop(self) -> None:
        while True:
            first = self._q.get()
            if first is None:
                return
            jobs = [first]
            deadline = time.monotonic() + self.max_wait_s
            stop = False
            while len(jobs) < self.max_batch:
                left = deadline - time.monotonic()
                try:
                    nxt = self._q.get(timeout=max(left, 0.0)) if left > 0 else self._q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                jobs.append(nxt)
            self._run(jobs)
            if stop:
                return

    def _run(self, jobs: list[_Job]) -> None:
        try:
            preds = self.recognizer.predict_loaded([j.loaded for j in jobs])
        except BaseException as e:  # the model failed: every waiting request learns why
            log.exception("prediction failed")
            for j in jobs:
                j.future.set_exception(e)
            return
        self.batches += 1
        self.items += len(jobs)
        for j, p in zip(jobs, preds):
            j.future.set_result(p)
