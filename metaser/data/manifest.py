"""The manifest contract: one lhotse cut per utterance, its labels and metadata on one supervision.

Every corpus recipe writes ``OUT/cuts.jsonl.gz`` (a lhotse ``CutSet``) and ``OUT/summary.json``
(:mod:`metaser.data.prepare`, :mod:`metaser.data.summary`).
Each cut (id = utterance id) covers the whole audio file, unresampled: its ``Recording`` has
the file's absolute path, sampling rate, channel count and length from the header. It holds
exactly one ``SupervisionSegment`` spanning the cut with

* ``custom["emotion"]`` (:data:`EMOTION`): the training label, and ``custom["emotion_raw"]``
  (:data:`EMOTION_RAW`): the corpus' own label;
* ``speaker``, ``gender`` (``"female"`` / ``"male"``) and ``text`` (cleaned transcript) where the
  corpus has them, ``custom["text_raw"]`` (:data:`TEXT_RAW`) the raw transcript;
* ``custom["style"]``, ``custom["session"]`` where known, and every further field the corpus
  offers: categorical fields as strings, numeric extras as floats / ints.

Read any field with :func:`get_field`.

**Multi-channel audio.** A mono file becomes a ``MonoCut`` (channel 0). A file with C > 1
channels becomes a ``MultiCut`` over all its channels (never channel 0 alone), and the mono
mix-down (mean over channels) happens when loading. Always load through
:func:`load_cut_audio`, which resamples, applies lhotse transforms (speed perturbation...) and
mixes down, for every kind of cut: ``MonoCut``, ``MultiCut`` and ``MixedCut``.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from metaser.constants import SAMPLE_RATE
from metaser.data.audio import AudioError, AudioInfo, probe_audio
from metaser.errors import DataError

__all__ = [
    "EMOTION",
    "EMOTION_RAW",
    "STYLE",
    "SESSION",
    "TEXT_RAW",
    "MANIFEST_NAME",
    "SUMMARY_NAME",
    "SUPERVISION_ATTRS",
    "make_cut",
    "get_field",
    "load_cut_audio",
    "save_manifest",
    "load_manifest",
    "clean_text",
]

EMOTION = "emotion"
EMOTION_RAW = "emotion_raw"
STYLE = "style"
SESSION = "session"
TEXT_RAW = "text_raw"

MANIFEST_NAME = "cuts.jsonl.gz"
SUMMARY_NAME = "summary.json"

GENDERS = ("female", "male")
#: Read from SupervisionSegment attributes; every other field lives in supervision.custom.
SUPERVISION_ATTRS = ("speaker", "gender", "text")
_RESERVED = (EMOTION, EMOTION_RAW) + SUPERVISION_ATTRS


# --------------------------------------------------------------------------------------------
# cuts


def clean_text(text: str | None) -> str | None:
    """Lower-case and squeeze whitespace; None / blank -> None."""
    if text is None:
        return None
    text = re.sub(r"\s+", " ", text).strip().lower()
    return text or None


def _check_custom_value(utt_id: str, key: str, value: Any) -> None:
    if isinstance(value, (bool, str, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise DataError(f"utterance {utt_id}: custom field {key!r} is {value} (not finite)")
        return
    raise DataError(
        f"utterance {utt_id}: custom field {key!r} must be a string or a number, got {type(value).__name__} {value!r}"
    )


def make_cut(
    utt_id: str,
    audio_path: str | Path,
    *,
    emotion: str,
    emotion_raw: str,
    speaker: str | None = None,
    gender: str | None = None,
    text: str | None = None,
    custom: dict[str, Any] | None = None,
    info: AudioInfo | None = None,
):
    """Build the cut of one utterance (see the module docstring for the contract).

    info: the file's :class:`~metaser.data.audio.AudioInfo` when already probed; otherwise
        the header is read here (raising :class:`~metaser.data.audio.AudioError`).
    custom: further fields; ``None`` values are left out (the field is then absent).
    Returns a ``MonoCut`` for mono audio, a ``MultiCut`` over all channels otherwise.
    """
    from lhotse import MonoCut, Recording, SupervisionSegment
    from lhotse.audio import AudioSource
    from lhotse.cut import MultiCut

    if not isinstance(utt_id, str) or not utt_id or utt_id != utt_id.strip():
        raise DataError(f"invalid utterance id {utt_id!r}: must be a non-empty string without surrounding spaces")
    if not isinstance(emotion, str) or not emotion:
        raise DataError(f"utterance {utt_id}: emotion must be a non-empty string, got {emotion!r}")
    if gender is not None and gender not in GENDERS:
        raise DataError(f"utterance {utt_id}: gender must be 'female' or 'male', got {gender!r}")
    if info is None:
        info = probe_audio(audio_path)
    path = os.path.abspath(audio_path)

    sup_custom: dict[str, Any] = {EMOTION: emotion, EMOTION_RAW: str(emotion_raw)}
    for key, value in (custom or {}).items():
        if key in _RESERVED:
            raise DataError(f"utterance {utt_id}: custom field {key!r} is reserved (pass it as the {key}= argument)")
        if value is None:
            continue
        _check_custom_value(utt_id, key, value)
        sup_custom[key] = value

    duration = info.frames / info.samplerate
    channels = list(range(info.channels))
    recording = Recording(
        id=utt_id,
        sources=[AudioSource(type="file", channels=channels, source=path)],
        sampling_rate=info.samplerate,
        num_samples=info.frames,
        duration=duration,
    )
    channel: int | list[int] = 0 if info.channels == 1 else channels
    sup = SupervisionSegment(
        id=utt_id,
        recording_id=utt_id,
        start=0.0,
        duration=duration,
        channel=channel,
        text=text,
        speaker=speaker,
        gender=gender,
        custom=sup_custom,
    )
    cls = MonoCut if info.channels == 1 else MultiCut
    return cls(id=utt_id, start=0.0, duration=duration, channel=channel, recording=recording, supervisions=[sup])


def get_field(cut, name: str) -> str | float | int | None:
    """The value of field ``name`` for ``cut``; None when absent.

    ``speaker`` / ``gender`` / ``text`` are read from the supervision, every other name
    (``emotion``, ``session``, ``style``...) from ``supervision.custom``. Categorical
    fields are strings; numeric extras (e.g. ``valence``) are numbers.
    """
    sups = cut.supervisions
    if not sups:
        return None
    sup = sups[0]
    if name in SUPERVISION_ATTRS:
        return getattr(sup, name)
    return (sup.custom or {}).get(name)


def _cut_paths(cut) -> list[str]:
    """Audio file paths behind a cut (several for a MixedCut)."""
    tracks = getattr(cut, "tracks", None)
    cuts = [t.cut for t in tracks] if tracks is not None else [cut]
    paths = []
    for c in cuts:
        rec = getattr(c, "recording", None)
        if rec is not None:
            paths.extend(str(s.source) for s in rec.sources if s.type == "file")
    return paths


def load_cut_audio(cut, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Load a cut as mono float32 at ``sample_rate``: returns (S,).

    Resamples through lhotse (``cut.resample``), so transforms already on the cut (e.g.
    lhotse's ``cut.perturb_speed(0.8)``: 1.25x the samples) apply; multi-channel audio (``MultiCut``,
    ``MixedCut``) is mixed down by the mean over channels. Failures raise
    :class:`~metaser.data.audio.AudioError` naming the cut and its file.
    """
    if cut.sampling_rate != sample_rate:
        cut = cut.resample(sample_rate)
    try:
        audio = cut.load_audio()  # (C, S) for every cut type
    except Exception as e:  # lhotse wraps backend errors in several exception types
        paths = _cut_paths(cut)
        missing = [p for p in paths if not os.path.exists(p)]
        reason = "missing" if missing else "unreadable"
        raise AudioError(
            f"cannot load audio of cut {cut.id} ({', '.join(missing or paths)}): "
            f"{str(e).splitlines()[0] if str(e) else type(e).__name__}",
            reason=reason,
            path=(missing or paths or [None])[0],
        ) from e
    if audio is None:
        raise AudioError(f"cut {cut.id} has no recording to load", reason="missing")
    audio = np.asarray(audio)
    if audio.ndim == 2:
        audio = audio.mean(axis=0) if audio.shape[0] > 1 else audio[0]  # (S,)
    return np.ascontiguousarray(audio, dtype=np.float32)


# --------------------------------------------------------------------------------------------
# manifest files


def save_manifest(cuts, out_dir: str | Path) -> Path:
    """Write ``cuts`` (a CutSet or any iterable of cuts) to ``out_dir/cuts.jsonl.gz``."""
    from lhotse import CutSet

    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create output directory {out}: {e}") from None
    if not isinstance(cuts, CutSet):
        cuts = CutSet.from_cuts(list(cuts))
    path = out / MANIFEST_NAME
    tmp = out / f".{MANIFEST_NAME[: -len('.jsonl.gz')]}.partial.jsonl.gz"
    cuts.to_file(tmp)
    os.replace(tmp, path)  # never leave a half-written manifest under the real name
    return path


def load_manifest(path_or_dir: str | Path):
    """Read a manifest written by :func:`save_manifest`: the file or its directory.

    Raises DataError when it is missing, unreadable, or not a metaser manifest (cuts without
    a supervision carrying ``custom["emotion"]``, duplicate cut ids).
    """
    from lhotse import CutSet
    from lhotse.cut import Cut

    p = Path(path_or_dir)
    if p.is_dir():
        p = p / MANIFEST_NAME
    if not p.is_file():
        raise DataError(f"manifest not found: {p}", hint="create it with `metaser prepare <corpus> ROOT -o OUT`")
    try:
        cuts = CutSet.from_file(p)  # None for an empty file
        cuts = cuts.to_eager() if cuts is not None else CutSet()
        items = list(cuts)
    except Exception as e:  # gzip / json / lhotse deserialisation errors
        raise DataError(f"cannot read manifest {p}: {type(e).__name__}: {e}") from None
    if not items:
        raise DataError(f"manifest {p} holds no utterances")
    seen: set[str] = set()
    for item in items:
        if not isinstance(item, Cut):
            raise DataError(f"{p} is not a metaser manifest: it holds {type(item).__name__} entries, not cuts")
        if not item.supervisions or EMOTION not in (item.supervisions[0].custom or {}):
            raise DataError(
                f"{p} is not a metaser manifest: cut {item.id!r} has no supervision with custom['{EMOTION}']",
                hint="prepare the corpus with `metaser prepare`",
            )
        if item.id in seen:
            raise DataError(f"manifest {p}: duplicate cut id {item.id!r}")
        seen.add(item.id)
    return cuts
