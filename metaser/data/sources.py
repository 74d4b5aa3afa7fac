"""Where a batch's input comes from: decoded audio, or a store of frozen-prefix features.

* :class:`UtteranceAudio` decodes one cut at a TDSA speed factor to (S,) float32 audio at 16 kHz,
  zero-padded to the CNN's receptive field when shorter. The collating dataset and the builder of
  the feature store (:mod:`metaser.data.feature_cache`) both decode through it, so the store holds
  exactly what the audio path would feed the encoder.
* :class:`AudioSource` collates :class:`~metaser.boundary.Waveforms` (with band / chunk dropping
  and cropping when training); :class:`StoreSource` collates
  :class:`~metaser.boundary.FrozenFeatures` from a :class:`~metaser.data.feature_store.FeatureStore`.
  Both take the same per-utterance speed factors and generators, drawn by the dataset.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

from metaser.boundary import FrozenFeatures, Waveforms
from metaser.constants import MIN_SAMPLES, SAMPLE_RATE
from metaser.data.augment import SpeedPerturb, WaveformAugment
from metaser.data.feature_store import FeatureStore
from metaser.data.manifest import load_cut_audio
from metaser.errors import DataError

__all__ = ["SPEED_KEY", "UtteranceAudio", "AudioSource", "StoreSource"]

logger = logging.getLogger(__name__)

SPEED_KEY = "metaser_speed"  # a cut's custom field: the TDSA factor already applied (before bucketing)


class UtteranceAudio:
    """(S,) float32 audio of a cut at a speed factor; see the module docstring.

    speed: the TDSA resampler (None: factors other than 1 are refused); min_samples: shorter
    audio is zero-padded at the end to this length (counted in ``num_padded_short``; 0 = never).
    """

    def __init__(self, speed: SpeedPerturb | None, *, sample_rate: int = SAMPLE_RATE, min_samples: int = MIN_SAMPLES):
        if min_samples < 0:
            raise DataError(f"min_samples must be >= 0, got {min_samples}")
        self.speed = speed
        self.sample_rate = sample_rate
        self.min_samples = int(min_samples)
        self.num_padded_short = 0  # per process (each DataLoader worker counts its own share)

    def at_speed(self, cut: Any, factor: float) -> Any:
        """``cut`` resampled by ``factor``, unless the bucketing sampler already did it (the
        same draw, except for lhotse's "_dup" padding copies under DDP, whose ids differ)."""
        if factor == 1.0 or (getattr(cut, "custom", None) or {}).get(SPEED_KEY) is not None:
            return cut
        if self.speed is None:
            raise DataError(f"cut {cut.id!r}: speed factor {factor} asked for without a speed perturbation")
        return self.speed.apply(cut, factor)

    def decode(self, cut: Any, factor: float = 1.0) -> torch.Tensor:
        """(S,) float32 audio of ``cut`` at speed ``factor`` (not padded)."""
        audio = load_cut_audio(self.at_speed(cut, factor), self.sample_rate)  # (S,); AudioError is a DataError
        wave = torch.as_tensor(np.asarray(audio, dtype=np.float32)).reshape(-1)  # (S,)
        if wave.numel() == 0:
            raise DataError(f"cut {cut.id!r} has no audio samples")
        return wave

    def pad_short(self, wave: torch.Tensor, cut_id: str) -> torch.Tensor:
        """``wave`` (S,), zero-padded at the end to ``min_samples`` when shorter."""
        if wave.numel() < self.min_samples:
            n = wave.numel()
            wave = torch.nn.functional.pad(wave, (0, self.min_samples - n))  # (min_samples,)
            self.num_padded_short += 1
            if self.num_padded_short == 1:
                logger.warning(
                    "cut %s has %d samples, fewer than min_samples=%d: zero-padded (further ones are counted only)",
                    cut_id,
                    n,
                    self.min_samples,
                )
        return wave

    def __call__(self, cut: Any, factor: float = 1.0) -> torch.Tensor:
        """What the encoder sees of ``cut`` at ``factor`` without band / chunk dropping or cropping."""
        return self.pad_short(self.decode(cut, factor), cut.id)


class AudioSource:
    """Batches of :class:`Waveforms`: each utterance decoded at its factor, then (training only)
    band / chunk dropped and randomly cropped to ``max_samples`` with its own generator."""

    def __init__(self, audio: UtteranceAudio, wave_aug: WaveformAugment | None = None, max_samples: int | None = None):
        self.audio = audio
        self.wave_aug = wave_aug if wave_aug is not None and wave_aug.enabled else None
        self.max_samples = max_samples
        self.num_cropped = 0

    def _load(self, cut: Any, factor: float, rng: np.random.Generator) -> torch.Tensor:
        wave = self.audio.decode(cut, factor)  # (S,)
        if self.wave_aug is not None:
            wave = self.wave_aug(wave, rng)
        if self.max_samples is not None and wave.numel() > self.max_samples:
            start = int(rng.integers(0, wave.numel() - self.max_samples + 1))
            wave = wave[start : start + self.max_samples]
            self.num_cropped += 1
        return self.audio.pad_short(wave, cut.id)

    def collate(self, cuts: list[Any], factors: list[float], rngs: list[np.random.Generator]) -> Waveforms:
        waves = [self._load(c, f, r) for c, f, r in zip(cuts, factors, rngs)]
        lengths = torch.tensor([w.numel() for w in waves], dtype=torch.int64)  # (B,)
        return Waveforms(pad_sequence(waves, batch_first=True), lengths)  # (B, S) zero-padded


class StoreSource:
    """Batches of :class:`FrozenFeatures` read from ``store`` (per cut and speed factor)."""

    def __init__(self, store: FeatureStore):
        self.store = store
        self.layer = int(store.meta.get("layer", 0))
        self.independent = bool(store.meta.get("independent", False))

    def collate(self, cuts: list[Any], factors: list[float], rngs: list[np.random.Generator]) -> FrozenFeatures:
        entries = [self.store.get(c.id, f) for c, f in zip(cuts, factors)]  # B x n x (T_i, C)
        num_samples = torch.tensor([self.store.num_samples(c.id, f) for c, f in zip(cuts, factors)], dtype=torch.int64)
        frame_lengths = torch.tensor([e[0].shape[0] for e in entries], dtype=torch.int64)  # (B,)
        hidden = tuple(
            pad_sequence([e[j] for e in entries], batch_first=True)  # (B, T, C)
            for j in range(len(entries[0]))
        )
        return FrozenFeatures(hidden, frame_lengths, num_samples, layer=self.layer, independent=self.independent)
