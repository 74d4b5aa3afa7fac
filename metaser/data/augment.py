"""Training-time augmentation: TDSA speed perturbation, band dropping, chunk dropping.

* :class:`SpeedPerturb` is the paper's TDSA: per utterance a factor is drawn from
  ``{0.8, 1.0, 1.2}`` and the cut is resampled with lhotse's ``cut.perturb_speed`` (pitch and
  tempo change together). ``AugmentConfig.speed_convention`` says how a factor reads:
  ``length`` (default, the paper's / SpeechBrain's "rates 80, 100, 120"): factor ``f`` gives
  ``f`` times the samples, applied as ``perturb_speed(1 / f)``; ``lhotse``: ``1 / f`` times
  the samples (``perturb_speed(f)``, 0.8 -> 1.25x). lhotse's ``Speed`` transform resamples
  with its own copy of torchaudio's sinc resampler (torch; torchaudio itself is deliberately
  not installed), see :func:`lhotse_speed_factor` for the rates it can build.
* :func:`band_drop` zeroes one random frequency band with an FFT mask (exact: the band's
  bins are set to zero, everything else is untouched), :func:`chunk_drop` zeroes random time
  chunks. Both operate on a waveform tensor ``(S,)`` and are off by default.
* :func:`drop_freq` and :func:`drop_chunk` are SpeechBrain's ``DropFreq`` / ``DropChunk`` (the
  frequency and chunk drops of its ``TimeDomainSpecAugment``), on by the
  ``augment.preset: speechbrain`` reading of TDSA, with :func:`notch_filter` their kernel.
* One speed per batch (``speed_per: batch``, SpeechBrain's ``SpeedPerturb``):
  :meth:`SpeedPerturb.draw_batch_factor` with the generator of :func:`batch_rng`.

All randomness comes from a ``numpy.random.Generator`` passed in by the caller, so a run is
reproducible (the dataset seeds one per utterance, and one per batch from :func:`batch_rng`).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from math import gcd
from typing import Any, Literal

import numpy as np
import torch

from metaser.constants import SAMPLE_RATE
from metaser.data.config import AugmentConfig

__all__ = [
    "SpeedPerturb",
    "WaveformAugment",
    "band_drop",
    "chunk_drop",
    "drop_freq",
    "drop_chunk",
    "notch_filter",
    "batch_rng",
    "lhotse_speed_factor",
    "MAX_RATE_DENOMINATOR",
    "NOTCH_TAPS",
]

SpeedConvention = Literal["length", "lhotse"]

#: Largest ``sample_rate / gcd(rate, sample_rate)`` accepted for a speed factor's resampling
#: (the size of lhotse's sinc kernel, see :func:`lhotse_speed_factor`).
MAX_RATE_DENOMINATOR = 1000


def lhotse_speed_factor(factor: float, convention: SpeedConvention = "length", sample_rate: int = SAMPLE_RATE) -> float:
    """The argument of lhotse's ``perturb_speed`` that realises ``factor`` under ``convention``.

    ``length``: ``factor`` times the samples, i.e. ``perturb_speed(1 / factor)``; ``lhotse``:
    ``perturb_speed(factor)`` (``1 / factor`` times the samples).

    lhotse's ``Speed(s)`` resamples from ``r = round(sample_rate * s)`` Hz to ``sample_rate``
    (the rate the cut is loaded at) with a polyphase sinc kernel of about
    ``(sample_rate / g) x (r / g)`` taps, ``g = gcd(r, sample_rate)``. For ``s = 1 / 1.2`` at
    16 kHz, ``r = 13333`` and ``g = 1``: a 16000 x 13333 float kernel (about 850 MB, and several
    GB of peak memory while it is built, in every loader worker). So ``s`` is rounded to the nearest
    ``r / sample_rate`` with ``sample_rate / g <= MAX_RATE_DENOMINATOR``; it is exact whenever
    the factor allows (0.8 -> ``s = 1.25`` = 20000/16000; 1.2 under ``lhotse`` = 19200/16000).
    At 16 kHz the ``length`` factor 1.2 becomes ``s = 13328/16000 = 0.833``, i.e. 1.20048x
    the samples (0.04 % longer than 1.2x, 8 samples on a 1 s clip).
    """
    if factor <= 0:
        raise ValueError(f"speed factor must be > 0, got {factor}")
    if convention not in ("length", "lhotse"):
        raise ValueError(f"speed convention must be 'length' or 'lhotse', got {convention!r}")
    target = sample_rate * (1.0 / factor if convention == "length" else factor)  # Hz
    base = max(1, round(target))
    for k in range(sample_rate + 1):
        for rate in sorted({base - k, base + k}, key=lambda r: (abs(r - target), r)):
            if rate > 0 and sample_rate // gcd(rate, sample_rate) <= MAX_RATE_DENOMINATOR:
                return rate / sample_rate
    return 1.0 / factor if convention == "length" else factor  # unreachable: rate = sample_rate fits


class SpeedPerturb:
    """TDSA: speed-perturb a cut by a factor drawn per utterance (training only).

    speeds: candidate factors, drawn uniformly; prob: chance to draw one at all (else 1.0).
    convention: ``length`` (factor ``f`` -> ``f`` times the samples, the paper's reading) or
    ``lhotse`` (``1 / f`` times the samples); see :func:`lhotse_speed_factor`.
    sample_rate: the rate cuts are loaded at (lhotse's ``Speed`` resamples at that rate).
    """

    def __init__(
        self,
        speeds: Sequence[float] = (0.8, 1.0, 1.2),
        prob: float = 1.0,
        convention: SpeedConvention = "length",
        sample_rate: int = SAMPLE_RATE,
    ):
        self.speeds = [float(s) for s in speeds]
        self.prob = float(prob)
        self.convention = convention
        self.sample_rate = sample_rate
        # factor -> perturb_speed argument (validates the convention)
        self._lhotse = {f: lhotse_speed_factor(f, convention, sample_rate) for f in self.speeds}

    @classmethod
    def from_config(cls, cfg: AugmentConfig, sample_rate: int = SAMPLE_RATE) -> SpeedPerturb:
        return cls(cfg.speeds, cfg.speed_prob, cfg.speed_convention, sample_rate)

    def draw(self, rng: np.random.Generator) -> float:
        """The factor for one utterance (a value of ``speeds``, or 1.0)."""
        if self.prob <= 0 or rng.random() >= self.prob:
            return 1.0
        return self.speeds[int(rng.integers(len(self.speeds)))]

    def draw_batch_factor(self, rng: np.random.Generator) -> float:
        """The one factor of a whole batch (``speed_per: batch``, SpeechBrain's ``SpeedPerturb``:
        with probability ``prob`` a factor drawn uniformly from ``speeds``, else 1.0).

        ``rng``: :func:`batch_rng` of the batch, so that the factor depends on the batch's
        cuts, the seed and the epoch only. Every cut of the batch is then resampled by it.
        """
        return self.draw(rng)

    def lhotse_factor(self, factor: float) -> float:
        """The ``perturb_speed`` argument used for ``factor``."""
        if factor not in self._lhotse:
            self._lhotse[factor] = lhotse_speed_factor(factor, self.convention, self.sample_rate)
        return self._lhotse[factor]

    def length_factor(self, factor: float) -> float:
        """How many times the samples ``factor`` really gives (after the rate rounding)."""
        return 1.0 / self.lhotse_factor(factor)

    def apply(self, cut: Any, factor: float, *, affix_id: bool = True) -> Any:
        """``cut`` resampled for ``factor`` (the cut itself when ``factor == 1``).

        With ``affix_id`` the returned cut's id carries lhotse's ``_sp<s>`` suffix
        (``s`` = :meth:`lhotse_factor`); callers that report ids keep the original cut's id.
        """
        if factor == 1.0:
            return cut
        return cut.perturb_speed(self.lhotse_factor(factor), affix_id=affix_id)

    def __call__(self, cut: Any, rng: np.random.Generator) -> Any:
        return self.apply(cut, self.draw(rng))


def band_drop(
    wave: torch.Tensor, sample_rate: int, rng: np.random.Generator, min_hz: float = 100.0, max_hz: float = 1000.0
) -> torch.Tensor:
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


def chunk_drop(
    wave: torch.Tensor, sample_rate: int, rng: np.random.Generator, max_count: int = 2, max_seconds: float = 0.1
) -> torch.Tensor:
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
        out[start : start + length] = 0
    return out


#: taps of SpeechBrain's notch kernel (``DropFreq``'s ``filter_length``)
NOTCH_TAPS = 101
_BATCH_STREAM = 0xBA7C4  # keeps batch generators apart from the per-utterance ones


def batch_rng(seed: int, epoch: int, cut_ids: Iterable[str]) -> np.random.Generator:
    """The generator of one batch: seeded from ``(seed, epoch, crc32 of its sorted cut ids)``.

    The same batch gets the same draws in any worker, process or order of loading; a
    different batch, epoch or seed gets others. Used for the batch's speed factor
    (:meth:`SpeedPerturb.draw_batch_factor`).
    """
    key = "\n".join(sorted(str(i) for i in cut_ids)).encode()
    return np.random.default_rng([int(seed), int(epoch), _BATCH_STREAM, zlib.crc32(key)])


def _windowed_sinc(cutoff: float, taps: int) -> np.ndarray:
    """(taps,) low-pass kernel, cutoff a fraction of Nyquist, unit DC gain (Blackman window)."""
    n = np.arange(taps) - taps // 2
    h = np.sinc(cutoff * n)  # numpy's sinc is sin(pi x) / (pi x)
    h *= np.blackman(taps)  # symmetric: zero phase (SpeechBrain's periodic window is not)
    return h / h.sum()


def notch_filter(freq: float, width: float, taps: int = NOTCH_TAPS) -> np.ndarray:
    """(taps,) band-reject kernel: keeps below ``freq`` and above ``freq + 2 * width``.

    SpeechBrain's construction (``notch_filter``): a windowed-sinc low-pass at ``freq`` plus a
    high-pass (delta minus low-pass) at ``freq + 2 * width``, both fractions of the Nyquist
    frequency. SpeechBrain's kernel writes ``sinc(3 f n)`` where the windowed sinc of cutoff
    ``f`` is ``sin(pi f n) / (pi f n)``, so its cutoffs sit at 3/pi = 0.955 of the drawn ones,
    and windows with ``torch.blackman_window(taps)`` (periodic: half a sample off centre);
    metaser uses the exact cutoffs and the symmetric Blackman window (a zero-phase kernel).
    A high cutoff at or above Nyquist leaves only the low-pass.
    """
    if taps % 2 != 1:
        raise ValueError(f"notch filter taps must be odd, got {taps}")
    low = _windowed_sinc(min(max(freq, 0.0), 1.0), taps)
    high_cut = freq + 2 * width
    if high_cut >= 1.0:
        return low
    high = -_windowed_sinc(high_cut, taps)
    high[taps // 2] += 1.0
    return low + high


def drop_freq(
    wave: torch.Tensor,
    rng: np.random.Generator,
    count_low: int = 0,
    count_high: int = 3,
    width: float = 0.05,
    taps: int = NOTCH_TAPS,
) -> torch.Tensor:
    """SpeechBrain's ``DropFreq``: ``count_low..count_high`` notches at random frequencies.

    The count is drawn uniformly (inclusive), then each frequency uniformly in (0, 1) x Nyquist;
    the notch kernels are convolved into one ``taps``-long filter (centre part, as SpeechBrain)
    and the waveform is filtered with it, zero-padded at both ends so the length stays.
    wave: (S,). Returns a new (S,) tensor of the same dtype (a copy when the count is 0).
    """
    count = int(rng.integers(count_low, count_high + 1))
    if count == 0 or wave.numel() == 0:
        return wave.clone()
    freqs = rng.uniform(1e-14, 1.0, size=count)
    kernel = np.zeros(taps)
    kernel[taps // 2] = 1.0
    for f in freqs:
        kernel = np.convolve(kernel, notch_filter(float(f), width, taps), mode="same")
    x = wave.detach().to("cpu", torch.float64).numpy()
    y = np.convolve(x, kernel, mode="full")[taps // 2 : taps // 2 + x.shape[0]]  # (S,)
    return torch.from_numpy(np.ascontiguousarray(y)).to(wave.dtype)


def drop_chunk(
    wave: torch.Tensor,
    rng: np.random.Generator,
    count_low: int = 0,
    count_high: int = 5,
    length_low: int = 1000,
    length_high: int = 2000,
) -> torch.Tensor:
    """SpeechBrain's ``DropChunk`` (zeros, no noise): ``count_low..count_high`` chunks of
    ``length_low..length_high`` samples (both inclusive), each starting uniformly in
    ``[0, max(0, S - longest chunk)]``; chunks may overlap and are cut at the end.

    wave: (S,). Returns a new (S,) tensor.
    """
    out = wave.clone()
    count = int(rng.integers(count_low, count_high + 1))
    if count == 0 or out.numel() == 0:
        return out
    lengths = rng.integers(length_low, length_high + 1, size=count)
    start_max = max(0, out.shape[-1] - int(lengths.max()))
    starts = rng.integers(0, start_max + 1, size=count)
    for start, length in zip(starts.tolist(), lengths.tolist()):
        out[start : start + length] = 0
    return out


class WaveformAugment:
    """The waveform drops of one utterance, each with its own probability, in this order:
    band drop (FFT), frequency drop (notches), chunk drop, SpeechBrain's chunk drop.

    cfg is read through :meth:`AugmentConfig.resolved` (the preset's values). An augmentation
    whose probability is 0 draws nothing from the generator, so adding one never changes the
    draws of the others when it is off.
    """

    def __init__(self, cfg: AugmentConfig, sample_rate: int = SAMPLE_RATE):
        self.cfg = cfg.resolved()
        self.sample_rate = sample_rate

    @property
    def enabled(self) -> bool:
        return self.cfg.waveform_enabled

    def __call__(self, wave: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """wave: (S,) -> (S,)."""
        c = self.cfg
        if c.band_drop_prob > 0 and rng.random() < c.band_drop_prob:
            wave = band_drop(wave, self.sample_rate, rng, c.band_drop_min_hz, c.band_drop_max_hz)
        if c.drop_freq_prob > 0 and rng.random() < c.drop_freq_prob:
            wave = drop_freq(wave, rng, c.drop_freq_count_low, c.drop_freq_count_high, c.drop_freq_width)
        if c.chunk_drop_prob > 0 and rng.random() < c.chunk_drop_prob:
            wave = chunk_drop(wave, self.sample_rate, rng, c.chunk_drop_max_count, c.chunk_drop_max_seconds)
        if c.drop_chunk_prob > 0 and rng.random() < c.drop_chunk_prob:
            wave = drop_chunk(
                wave,
                rng,
                c.drop_chunk_count_low,
                c.drop_chunk_count_high,
                c.drop_chunk_length_low,
                c.drop_chunk_length_high,
            )
        return wave
