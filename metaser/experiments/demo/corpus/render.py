"""Rendering one planned turn to audio: eSpeak NG speech, non-verbal tags, post-processing."""

from __future__ import annotations

import math
import re

import numpy as np
from scipy.signal import lfilter

from metaser.data.audio import resample
from metaser.experiments.demo.corpus.config import SynthConfig
from metaser.experiments.demo.corpus.design import SPEAKERS
from metaser.experiments.demo.corpus.espeak import EspeakSynth
from metaser.experiments.demo.corpus.plan import PlannedTurn

__all__ = ["render_turn"]

_TAG_RE = re.compile(r"\[[A-Z]+\]")


def _nonverbal(tag: str, sr: int, level: float, rng: np.random.Generator) -> np.ndarray:
    """A short noise event for a transcript tag: breathing or three laughter bursts."""
    if tag == "[BREATHING]":
        n = int(0.35 * sr)
        noise = lfilter([0.15], [1, -0.85], rng.standard_normal(n))
        return (noise * np.hanning(n) * level).astype(np.float32)  # (n,)
    if tag == "[LAUGHTER]":
        parts = []
        for _ in range(3):
            n_on, n_off = int(0.11 * sr), int(0.07 * sr)
            t = np.arange(n_on) / sr
            burst = np.sin(2 * np.pi * 280 * t) * 0.5 + rng.standard_normal(n_on) * 0.5
            parts += [burst * np.hanning(n_on) * level, np.zeros(n_off)]
        return np.concatenate(parts).astype(np.float32)
    return np.zeros(0, dtype=np.float32)


def render_turn(tts: EspeakSynth, turn: PlannedTurn, cfg: SynthConfig) -> np.ndarray:
    """Speak one planned turn; returns float32 samples in [-1, 1) at ``cfg.sample_rate``."""
    spk = SPEAKERS[turn.speaker]
    voice = tts.register_voice(spk.spec())
    p = cfg.prosody[turn.label]
    rng = np.random.default_rng([cfg.seed, 3, turn.index])
    sr_in = tts.sample_rate
    pieces: list[np.ndarray | None] = []  # None = a tag's non-verbal sound, filled in below
    speech_rms = []
    tags = _TAG_RE.findall(turn.text)
    segments = _TAG_RE.split(turn.text)
    for i, seg in enumerate(segments):
        if re.search(r"[A-Za-z]", seg):
            wav, _ = tts.synth(
                seg.strip(),
                voice,
                rate=turn.rate,
                pitch=turn.pitch,
                pitch_range=turn.pitch_range,
                volume=turn.volume,
                seed=cfg.seed * 100_003 + turn.index * 7 + i,
            )
            x = wav.astype(np.float32) / 32768.0  # (T,)
            pieces.append(x)
            speech_rms.append(float(np.sqrt(np.mean(x**2))) if len(x) else 0.0)
        if i < len(tags):
            pieces.append(None)  # placeholder, level known after all speech is rendered
    level = 2.0 * (max(speech_rms) if speech_rms else 0.05)
    tag_iter = iter(tags)
    audio = (
        np.concatenate(
            [piece if piece is not None else _nonverbal(next(tag_iter), sr_in, level, rng) for piece in pieces]
        )
        if pieces
        else np.zeros(0, dtype=np.float32)
    )  # (T,) at 22050 Hz
    # float32 resampling, then the effects in float64: the 16-bit files are the same bytes as
    # with float64 resampling (checked on the seed-0 corpora of 40 and 400 utterances).
    y = resample(audio, sr_in, cfg.sample_rate).astype(np.float64)  # (T',) at cfg.sample_rate
    sr = cfg.sample_rate
    if p.drive > 0:
        y = np.tanh(p.drive * y) / math.tanh(p.drive)
    if p.lowpass > 0:
        y = lfilter([1 - p.lowpass], [1, -p.lowpass], y)
    if p.tremolo > 0:
        t = np.arange(len(y)) / sr
        y = y * (1 - p.tremolo * (0.5 + 0.5 * np.sin(2 * np.pi * 5.5 * t + rng.uniform(0, 2 * np.pi))))
    pad_l, pad_r = (np.zeros(int(rng.uniform(0.05, 0.2) * sr)) for _ in range(2))
    y = np.concatenate([pad_l, y, pad_r])
    y = y + rng.standard_normal(len(y)) * 10 ** (cfg.noise_db / 20)
    return np.clip(y, -1.0, 32767 / 32768).astype(np.float32)
