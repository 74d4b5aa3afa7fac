"""Tiny synthetic corpora for the data tests: short tone + noise wavs and manifest-shaped cuts.

Cuts are built by the manifest's own :func:`metaser.data.manifest.make_cut`, so they follow
the contract: one cut per utterance with one supervision covering it (``speaker``,
``gender``, ``text``, ``custom={"emotion", "emotion_raw", "style", "session"?, ...}``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from lhotse import CutSet

from metaser.data import manifest

EMOTIONS = ("ang", "hap", "neu", "sad")
TEXTS = ("the cat sat", "hello world", "it's fine", "go home now")


def write_wav(
    path: Path, num_samples: int, *, sample_rate: int = 16000, channels: int = 1, freq: float = 220.0, seed: int = 0
) -> Path:
    """A tone plus a little noise, ``num_samples`` frames of ``channels`` channels."""
    rng = np.random.default_rng(seed)
    t = np.arange(num_samples) / sample_rate
    tone = 0.3 * np.sin(2 * np.pi * freq * t)
    data = np.stack(
        [tone * (c + 1) / channels + 0.01 * rng.standard_normal(num_samples) for c in range(channels)], axis=1
    )  # (S, C)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data.astype(np.float32), sample_rate, subtype="FLOAT")
    return path


def make_cut(
    root: Path,
    cut_id: str,
    seconds: float,
    *,
    emotion: str = "neu",
    emotion_raw: str | None = None,
    speaker: str | None = "spk1",
    gender: str | None = "female",
    text: str | None = "hello world",
    sample_rate: int = 16000,
    channels: int = 1,
    seed: int = 0,
    **custom: Any,
):
    """Write ``root/<cut_id>.wav`` and return its cut, built by the manifest's own ``make_cut``.

    ``custom`` holds further fields (``style``, ``session``...); None values are left out.
    A mono file gives a ``MonoCut``, more channels a ``MultiCut`` (the manifest contract).
    """
    num_samples = int(round(seconds * sample_rate))
    path = write_wav(
        root / f"{cut_id}.wav",
        num_samples,
        sample_rate=sample_rate,
        channels=channels,
        freq=150.0 + 10 * (seed % 20),
        seed=seed,
    )
    return manifest.make_cut(
        cut_id,
        path,
        emotion=emotion,
        emotion_raw=emotion_raw or emotion,
        speaker=speaker,
        gender=gender,
        text=text,
        custom=custom,
    )


def tiny_corpus(
    root: Path,
    *,
    sessions: int = 3,
    per_speaker: int = 8,
    with_session: bool = True,
    min_seconds: float = 0.2,
    max_seconds: float = 0.6,
    seed: int = 0,
) -> CutSet:
    """IEMOCAP-shaped corpus: per session one female and one male speaker.

    Speakers are ``Ses0<n>F`` / ``Ses0<n>M``; emotions cycle through ``EMOTIONS``, styles
    alternate impro/script, durations are spread evenly over [min_seconds, max_seconds].
    """
    rng = np.random.default_rng(seed)
    cuts = []
    k = 0
    for s in range(1, sessions + 1):
        for g, gender in (("F", "female"), ("M", "male")):
            speaker = f"Ses{s:02d}{g}"
            for u in range(per_speaker):
                emo = EMOTIONS[u % len(EMOTIONS)]
                secs = float(np.round(rng.uniform(min_seconds, max_seconds), 3))
                cuts.append(
                    make_cut(
                        root,
                        f"{speaker}_{u:03d}",
                        secs,
                        speaker=speaker,
                        gender=gender,
                        text=TEXTS[u % len(TEXTS)],
                        seed=k,
                        emotion=emo,
                        emotion_raw=emo.upper(),
                        style="impro" if u % 2 == 0 else "script",
                        session=str(s) if with_session else None,
                    )
                )
                k += 1
    return CutSet.from_cuts(cuts)


def summary_corpus(root: Path) -> list:
    """Three 0.5 s cuts for the summary tests: sessions 1, 1, 2; speakers s1-s3; the third
    8 kHz stereo; fields text, text_raw, session, style (not on c), valence."""
    common = {"text": "hello there", "text_raw": "Hello  there", "valence": 2.5, "empty": None}
    return [
        make_cut(
            root,
            "a",
            0.5,
            emotion="neu",
            emotion_raw="NEU",
            speaker="s1",
            gender="female",
            session="1",
            style="impro",
            seed=1,
            **common,
        ),
        make_cut(
            root,
            "b",
            0.5,
            emotion="ang",
            emotion_raw="ANG",
            speaker="s2",
            gender="male",
            session="1",
            style="script",
            seed=2,
            **common,
        ),
        make_cut(
            root,
            "c",
            0.5,
            emotion="neu",
            emotion_raw="NEU",
            speaker="s3",
            gender="female",
            session="2",
            style="impro",
            sample_rate=8000,
            channels=2,
            seed=3,
            **common,
        ),
    ]
