"""The model over pieces: length-sorted, zero-padded batches, one forward each, per-piece outputs.

A piece is one stretch of one input (a whole short file, a VAD segment or a window of a long
one), at most ``max_piece_seconds`` long (:mod:`metaser.inference.inputs`). Pieces of many
inputs share batches; the backend's forward is batch-independent (every utterance as if alone),
so batching changes no answer, only the speed. A forward that fails (out of memory, a broken
backend) is retried piece by piece; a piece that fails alone gets the exception as its output,
and only its input fails.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["plan_batches", "run_pieces"]

log = logging.getLogger(__name__)


def plan_batches(
    lengths: Sequence[int], batch_size: int, max_padding: float, max_batch_samples: int | None = None
) -> list[list[int]]:
    """Indices grouped into batches: sorted by length, at most ``batch_size`` each, closed early
    when the padded size ``len(batch) * longest`` would exceed ``max_padding`` times the real
    samples or ``max_batch_samples`` (a memory bound). Returns the batches in order of increasing
    length."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    cur: list[int] = []
    real = 0
    for i in order:
        n = lengths[i]
        padded = (len(cur) + 1) * n
        full = len(cur) >= batch_size or padded > max_padding * (real + n)
        if cur and (full or (max_batch_samples is not None and padded > max_batch_samples)):
            batches.append(cur)
            cur, real = [], 0
        cur.append(i)
        real += n
    if cur:
        batches.append(cur)
    return batches


def _forward(backend, chunks: list[np.ndarray], idx: list[int], vocab) -> list[dict[str, Any]]:
    lens = [chunks[i].shape[0] for i in idx]
    wav = np.zeros((len(idx), max(lens)), dtype=np.float32)  # (B, S)
    for j, i in enumerate(idx):
        wav[j, : lens[j]] = chunks[i]
    res = backend.run(wav, np.asarray(lens, dtype=np.int64))
    frame_ids: list[np.ndarray | None] = [None] * len(idx)
    texts: list[str | None] = [None] * len(idx)
    if vocab is not None and "ctc_ids" in res:
        ids, tl = res["ctc_ids"], res["ctc_lengths"]  # (B, T), (B,)
        frame_ids = [ids[j, : int(tl[j])] for j in range(len(idx))]  # (T_j,)
        texts = [vocab.greedy_decode(f) for f in frame_ids]
    outs = []
    for j in range(len(idx)):
        d: dict[str, Any] = {"emotion": res["emotion"][j], "transcript": texts[j], "ctc_ids": frame_ids[j]}
        d.update({k: v[j] for k, v in res.items() if k not in ("emotion", "ctc_ids", "ctc_lengths")})
        outs.append(d)
    return outs


def run_pieces(
    backend,
    chunks: list[np.ndarray],
    *,
    batch_size: int,
    max_padding: float,
    max_batch_samples: int | None,
    vocab=None,
) -> list[dict[str, Any] | Exception]:
    """Per piece, in input order: ``{"emotion": (C,), "<task>": (C_k,) ..., "transcript": str |
    None, "ctc_ids": (T,) | None}`` (``ctc_ids``: greedy CTC label per valid frame), or the
    exception that piece's forward raised alone."""
    out: list[dict[str, Any] | Exception | None] = [None] * len(chunks)
    lengths = [c.shape[0] for c in chunks]
    for idx in plan_batches(lengths, batch_size, max_padding, max_batch_samples):
        try:
            results: list[dict[str, Any] | Exception] = list(_forward(backend, chunks, idx, vocab))
        except Exception as e:  # noqa: BLE001 - the model failed: find which piece, keep the others
            log.warning(
                "a forward of %d piece(s) failed (%s: %s); retrying them one by one", len(idx), type(e).__name__, e
            )
            results = []
            for i in idx:
                try:
                    results.append(_forward(backend, chunks, [i], vocab)[0])
                except Exception as e1:  # noqa: BLE001
                    results.append(e1)
        for i, r in zip(idx, results):
            out[i] = r
    return out  # type: ignore[return-value]
