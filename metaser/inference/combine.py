"""One input's pieces -> one :class:`~metaser.inference.results.Prediction`.

The overall emotion (and every classification head) is the duration-weighted mean of the pieces'
probabilities; a split recording also gets its timeline (one segment per piece); the transcript
is stitched from the pieces' greedy CTC frame labels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from metaser.constants import SAMPLE_RATE
from metaser.inference.inputs import Loaded
from metaser.inference.results import Prediction, SegmentPrediction
from metaser.models.config import TaskSpec

__all__ = ["combine_pieces", "stitch_transcript"]


def combine_pieces(
    loaded: Loaded,
    pieces: list[tuple[int, int]],
    outs: list[dict[str, Any]],
    emotion_labels: list[str],
    tasks: list[TaskSpec],
    vocab=None,
    frame_stride: int = 320,
) -> Prediction:
    """Duration-weighted mean over the pieces (``[start, end)`` samples) of one input."""
    sr = SAMPLE_RATE
    w = np.array([e - s for s, e in pieces], dtype=np.float64)
    w = w / w.sum()
    emo = sum(wi * o["emotion"] for wi, o in zip(w, outs))  # (C,)
    pred = Prediction(
        path=loaded.path,
        emotion=emotion_labels[int(np.argmax(emo))],
        probs={c: float(p) for c, p in zip(emotion_labels, emo)},
        duration=loaded.x.shape[0] / sr,
    )
    for t in tasks:
        if t.kind != "classification" or t.name not in outs[0]:
            continue
        p = sum(wi * o[t.name] for wi, o in zip(w, outs))  # (C_k,)
        k = int(np.argmax(p))
        label, prob = str(t.labels[k]), float(p[k])
        if t.name == "gender":
            pred.gender, pred.gender_prob = label, prob
        elif t.name == "style":
            pred.style, pred.style_prob = label, prob
        else:
            pred.aux[t.name] = (label, prob)
    if vocab is not None and all(o.get("ctc_ids") is not None for o in outs):
        pred.transcript = stitch_transcript(pieces, [o["ctc_ids"] for o in outs], vocab, frame_stride)
    if loaded.method in ("vad", "windows"):
        pred.segmentation = loaded.method
        for (s, e), o in zip(pieces, outs):
            pred.segments.append(
                SegmentPrediction(
                    start=s / sr,
                    end=e / sr,
                    emotion=emotion_labels[int(np.argmax(o["emotion"]))],
                    probs={c: float(v) for c, v in zip(emotion_labels, o["emotion"])},
                    transcript=o["transcript"],
                )
            )
    return pred


def stitch_transcript(pieces: list[tuple[int, int]], frame_ids: list[np.ndarray], vocab, frame_stride: int) -> str:
    """One transcript for a recording from its pieces' greedy CTC frame labels.

    Overlapping pieces (windows) each contribute only the frames of their own part: from the
    middle of the overlap with the previous piece to the middle of the overlap with the next
    one, so overlapped speech is not transcribed twice. Runs of overlapping pieces are decoded as
    one frame sequence; separate runs (VAD segments) are joined with a space.
    """
    runs: list[list[np.ndarray]] = []
    for k, ((s, e), ids) in enumerate(zip(pieces, frame_ids)):
        prev_end = pieces[k - 1][1] if k > 0 else None
        next_start = pieces[k + 1][0] if k + 1 < len(pieces) else None
        lo = (s + prev_end) // 2 if prev_end is not None and prev_end > s else s
        hi = (e + next_start) // 2 if next_start is not None and next_start < e else e
        t = s + frame_stride * np.arange(len(ids))  # (T,) sample offset of each frame
        own = ids[(t >= lo) & (t < hi)]
        if prev_end is not None and prev_end > s:
            runs[-1].append(own)
        else:
            runs.append([own])
    texts = [vocab.greedy_decode(np.concatenate(r)) for r in runs]
    return " ".join(t for t in texts if t)
