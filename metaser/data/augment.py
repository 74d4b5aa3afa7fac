"""Training-time augmentation: TDSA speed perturbation, band dropping, chunk dropping.

* :class:`SpeedPerturb` is the paper's TDSA: per utterance a factor is drawn from
  ``{0.8, 1.0, 1.2}`` and the cut is resampled with lhotse's ``cut.perturb_speed`` (pitch and
  tempo change together; factor ``f`` gives ``1/f`` times the samples, so 0.8 -> 1.25x).
  Lhotse resamples with scipy here (torchaudio is deliberately not installed).
* :func:`band_drop` zeroes one random frequency band with an FFT mask (exact: the band's
  bins are set to zero, everything else is untouched), :func:`chunk_drop` zeroes random time
  chunks. Both operate on a waveform tensor ``(S,)`` and are off by default.

All randomness comes from a ``numpy.random.Generator`` passed in by the caller, so a run is
reproducible (the dataset seeds one per utterance).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from metaser.data.config import AugmentConfig

__all__ = ["SpeedPerturb", "WaveformAugment", "band_drop", "chunk_drop"]


class SpeedPerturb:
    """TDSA: speed-perturb a cut by a factor drawn per utterance (training only).

    speeds: candidate factors, drawn uniformly; prob: chance to draw one at all (else 1.0).
    """

    def __init__(self, speeds: Sequence[float] = (0.8, 1.0, 1.2), prob: float = 1.0):
        self.speeds = [float(s) for s in speeds]
        self.prob = float(prob)

    @classmethod
    def from_config(cls, cfg: AugmentConfig) -> "SpeedPerturb":
        return cls(cfg.speeds, cfg.speed_prob)

    def draw(self, rng: np.random.Generator) -> float:
        """The factor for one utterance."""
        if self.prob <= 0 or rng.random() >= self.prob:
            return 1.0
        return self.speeds[int(rng.integers(len(self.speeds)))]

    @staticmethod
    def apply(cut: Any, factor: float) -> Any:
        """``cut`` resampled by ``factor`` (the cut itself when ``factor == 1``).

        The returned cut's id carries lhotse's ``_sp<factor>`` suffix; callers that report
        ids keep the original cut's id.
        """
        if factor == 1.0:
            return cut
        return cut.perturb_speed(factor)

    def __call__(self, cut: Any, rng: np.random.Generator) -> Any:
        return self.apply(cut, self.draw(rng))


def band_drop(wave: torch.Tensor, sample_rate: int, rng: np.random.Generator,
              min_hz: float = 100.0, max_hz: float = 1000.0) -> torch.Tensor:
    """Zero one random frequency band of width U[min_hz, max_hz] (FFT mask).

    wave: (S,) float. Returns a new (S,) tensor of the same dtype.
    """
    n = wave.shape[-1]
    if n < 2:
        return wave.clone()
    nyquist = sample_rate / 2
    width = min(float(rng.uniform(min_hz, max_hz)), nyquist)
    low = float(rng.uniform(0.0, nyquist - width))
    spec = torch.fft.rfft(wave.double(), n=n)  # (S // 2 + 1,) complex
    freqs = torch.fft.rfftfreq(n, d=1.0 / sample_rate)  # (S // 2 + 1,)
    spec[(freqs >= low) & (freqs < low + width)] = 0
    return torch.fft.irfft(spec, n=n).to(wave.dtype)  # (S,)


def chunk_drop(wave: torch.Tensor, sample_rate: int, rng: np.random.Generator,
               max_count: int = 2, max_seconds: float = 0.1) -> torch.Tensor:
    """Zero 1..max_count random chunks, each 1..max_seconds*sample_rate samples long.

    wave: (S,). Returns a new (S,) tensor.
    """
    out = wave.clone()
    n = out.shape[-1]
    if n == 0:
        return out
    max_len = max(1, min(n, int(round(max_seconds * sample_rate))))
    for _ in range(int(rng.integers(1, max_count + 1))):
        length = int(rng.integers(1, max_len + 1))
        start = int(rng.integers(0, n - length + 1))
        out[start:start + length] = 0
    return out


class WaveformAugment:
    """Band and chunk dropping on a loaded waveform, each with its own probability."""

    def __init__(self, cfg: AugmentConfig, sample_rate: int = 16000):
        self.cfg = cfg
        self.sample_rate = sample_rate

    @property
    def enabled(self) -> bool:
        return self.cfg.band_drop_prob > 0 or self.cfg.chunk_drop_prob > 0

    def __call__(self, wave: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """wave: (S,) -> (S,)."""
        c = self.cfg
        if c.band_drop_prob > 0 and rng.random() < c.band_drop_prob:
            wave = band_drop(wave, self.sample_rate, rng, c.band_drop_min_hz, c.band_drop_max_hz)
        if c.chunk_drop_prob > 0 and rng.random() < c.chunk_drop_prob:
            wave = chunk_drop(wave, self.sample_rate, rng, c.chunk_drop_max_count,
                              c.chunk_drop_max_seconds)
        return wave
