"""Typed configs of the data pipeline: folds, augmentation, sampling (``data:`` in YAML).

Every class is a plain ``@dataclass`` loaded by :func:`metaser.config.from_dict`; invalid
values raise :class:`~metaser.errors.ConfigError` naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from metaser.errors import ConfigError

__all__ = ["PAPER_SPEEDS", "AUGMENT_PRESETS", "SplitConfig", "AugmentConfig", "SamplerConfig", "DataConfig"]

#: The paper's TDSA set: "resampling the waveform at varying rates (80, 100, and 120)".
PAPER_SPEEDS: tuple[float, ...] = (0.8, 1.0, 1.2)


def _check_prob(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name}: must be a probability in [0, 1], got {value!r}")


def _check_positive(name: str, value: float | int | None, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if value is None or value <= 0:
        raise ConfigError(f"{name}: must be > 0, got {value!r}")


@dataclass
class SplitConfig:
    """Speaker-independent cross-validation folds and the validation split inside each.

    group_by: ``session`` (IEMOCAP: leave-one-session-out, each session is one pair of
        speakers), ``speaker`` (corpora without sessions, e.g. EmoDB) or ``fold`` (the folds
        the manifest's ``fold`` field names, e.g. EmoBox's, never re-split; cuts whose
        ``valid_fold`` names a fold are its validation part: :mod:`metaser.data.folds`).
    num_folds: ``None`` = one fold per group (leave-one-group-out); ``k`` = the groups are
        assigned to ``k`` folds, balancing utterance counts deterministically. With
        ``group_by: fold`` it must be ``None`` or the number of folds the manifest names.
    valid_fraction: fraction of the training part held out for validation (0 = none).
    valid_by: ``utterance`` (stratified by emotion) or ``speaker`` (whole speakers held out,
        at least one, about ``valid_fraction`` of the utterances).
    seed: makes the validation split reproducible.
    """

    group_by: Literal["session", "speaker", "fold"] = "session"
    num_folds: int | None = None
    valid_fraction: float = 0.1
    valid_by: Literal["utterance", "speaker"] = "utterance"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_folds is not None and self.num_folds < 2:
            raise ConfigError(
                f"split.num_folds: needs at least 2 folds (or null for one per group), got {self.num_folds}"
            )
        if not 0.0 <= self.valid_fraction < 1.0:
            raise ConfigError(f"split.valid_fraction: must be in [0, 1), got {self.valid_fraction!r}")


#: What each augmentation preset sets for the fields left at ``None`` / ``"preset"``.
#: ``paper``: TDSA as the paper states it, speed perturbation only, a factor per utterance.
#: ``speechbrain``: the paper builds on SpeechBrain, whose ``TimeDomainSpecAugment`` also drops
#: 0-3 frequency bands and 0-5 chunks of 1000-2000 samples, with one speed per batch.
AUGMENT_PRESETS: dict[str, dict[str, object]] = {
    "paper": {"speed_per": "utterance", "drop_freq_prob": 0.0, "drop_chunk_prob": 0.0},
    "speechbrain": {"speed_per": "batch", "drop_freq_prob": 1.0, "drop_chunk_prob": 1.0},
}


def _check_range(name: str, low: float, high: float, minimum: float) -> None:
    if low < minimum or high < low:
        raise ConfigError(f"augment.{name}_low / {name}_high: need {minimum} <= low <= high, got {low} and {high}")


@dataclass
class AugmentConfig:
    """Training-time augmentation.

    preset: how the paper's TDSA ("Time Domain Spectral Augmentation") is read.
        ``paper`` (default): speed perturbation only, one factor per utterance, as the paper
        states it. ``speechbrain``: SpeechBrain's ``TimeDomainSpecAugment``, which the paper
        builds on: speed perturbation with one factor per batch, plus :func:`drop_freq` (0-3
        notch filters) and :func:`drop_chunk` (0-5 zeroed chunks of 1000-2000 samples) on
        every utterance. The preset fills the fields left at ``None`` / ``"preset"``
        (:data:`AUGMENT_PRESETS`); a value given explicitly wins. Read the effective values
        with :meth:`resolved`.
    speeds / speed_prob: TDSA, the paper's speed perturbation. With probability
        ``speed_prob`` a factor is drawn uniformly from ``speeds`` (else 1.0).
    speed_per: ``utterance`` (a factor per utterance) or ``batch`` (one factor for the whole
        batch, SpeechBrain's ``SpeedPerturb``: see :func:`metaser.data.augment.batch_rng`);
        ``preset`` = the preset's choice.
    speed_convention: how a factor ``f`` is read.
        ``length`` (default): the paper's and SpeechBrain's reading of "rates (80, 100, and
        120)": ``f`` times the samples, so 0.8 keeps 0.8x of the samples (faster, higher) and
        1.2 gives 1.2x (slower, lower). Applied as lhotse ``perturb_speed(1 / f)``.
        ``lhotse``: lhotse's own reading, ``perturb_speed(f)``: ``1 / f`` times the samples
        (0.8 -> 1.25x). Either way the resampling rate is rounded to one lhotse can build
        cheaply (:func:`metaser.data.augment.lhotse_speed_factor`: 1.2 -> 1.20048x at 16 kHz).
    band_drop_prob: probability to zero one random frequency band (FFT mask) whose width
        is drawn uniformly in [``band_drop_min_hz``, ``band_drop_max_hz``] (metaser's own).
    chunk_drop_prob: probability to zero 1..``chunk_drop_max_count`` random time chunks,
        each up to ``chunk_drop_max_seconds`` long (metaser's own).
    drop_freq_prob: probability (per utterance) of SpeechBrain's frequency drop: between
        ``drop_freq_count_low`` and ``drop_freq_count_high`` notch filters (101 taps) at
        frequencies drawn uniformly over (0, Nyquist], each rejecting a band of
        2 x ``drop_freq_width`` x Nyquist above it. ``None`` = the preset's value.
    drop_chunk_prob: probability (per utterance) of SpeechBrain's chunk drop: between
        ``drop_chunk_count_low`` and ``drop_chunk_count_high`` chunks, each
        ``drop_chunk_length_low``..``drop_chunk_length_high`` samples long, set to zero.
        ``None`` = the preset's value.
    The band / chunk / frequency / chunk drops are all off under the ``paper`` preset.
    """

    preset: Literal["paper", "speechbrain"] = "paper"
    speeds: list[float] = field(default_factory=lambda: list(PAPER_SPEEDS))
    speed_prob: float = 1.0
    speed_per: Literal["preset", "utterance", "batch"] = "preset"
    speed_convention: Literal["length", "lhotse"] = "length"
    band_drop_prob: float = 0.0
    band_drop_min_hz: float = 100.0
    band_drop_max_hz: float = 1000.0
    chunk_drop_prob: float = 0.0
    chunk_drop_max_count: int = 2
    chunk_drop_max_seconds: float = 0.1
    drop_freq_prob: float | None = None
    drop_freq_count_low: int = 0
    drop_freq_count_high: int = 3
    drop_freq_width: float = 0.05
    drop_chunk_prob: float | None = None
    drop_chunk_count_low: int = 0
    drop_chunk_count_high: int = 5
    drop_chunk_length_low: int = 1000
    drop_chunk_length_high: int = 2000

    def __post_init__(self) -> None:
        if self.preset not in AUGMENT_PRESETS:
            raise ConfigError(f"augment.preset: must be one of {', '.join(AUGMENT_PRESETS)}, got {self.preset!r}")
        if not self.speeds:
            raise ConfigError("augment.speeds: needs at least one factor (use [1.0] to disable)")
        for i, s in enumerate(self.speeds):
            _check_positive(f"augment.speeds[{i}]", s)
        _check_prob("augment.speed_prob", self.speed_prob)
        _check_prob("augment.band_drop_prob", self.band_drop_prob)
        _check_prob("augment.chunk_drop_prob", self.chunk_drop_prob)
        for name in ("drop_freq_prob", "drop_chunk_prob"):
            if getattr(self, name) is not None:
                _check_prob(f"augment.{name}", getattr(self, name))
        _check_positive("augment.band_drop_min_hz", self.band_drop_min_hz)
        if self.band_drop_max_hz < self.band_drop_min_hz:
            raise ConfigError(
                f"augment.band_drop_max_hz: must be >= band_drop_min_hz "
                f"({self.band_drop_min_hz}), got {self.band_drop_max_hz}"
            )
        _check_positive("augment.chunk_drop_max_count", self.chunk_drop_max_count)
        _check_positive("augment.chunk_drop_max_seconds", self.chunk_drop_max_seconds)
        _check_range("drop_freq_count", self.drop_freq_count_low, self.drop_freq_count_high, 0)
        if not 0.0 < self.drop_freq_width < 0.5:
            raise ConfigError(
                f"augment.drop_freq_width: a fraction of the Nyquist frequency in "
                f"(0, 0.5), got {self.drop_freq_width!r}"
            )
        _check_range("drop_chunk_count", self.drop_chunk_count_low, self.drop_chunk_count_high, 0)
        _check_range("drop_chunk_length", self.drop_chunk_length_low, self.drop_chunk_length_high, 1)

    def resolved(self) -> AugmentConfig:
        """A copy with the preset's values in every field left at ``None`` / ``"preset"``."""
        values = AUGMENT_PRESETS[self.preset]
        changes = {k: v for k, v in values.items() if getattr(self, k) in (None, "preset")}
        return replace(self, **changes) if changes else self

    @property
    def speed_enabled(self) -> bool:
        """True when speed perturbation can change an utterance."""
        return self.speed_prob > 0 and any(s != 1.0 for s in self.speeds)

    @property
    def waveform_enabled(self) -> bool:
        """True when a waveform augmentation other than speed (band / chunk / frequency drop)
        can change an utterance: features of such a run cannot be cached."""
        r = self.resolved()
        return any(p > 0 for p in (r.band_drop_prob, r.chunk_drop_prob, r.drop_freq_prob, r.drop_chunk_prob))

    @property
    def enabled(self) -> bool:
        """True when any augmentation can change an utterance."""
        return self.speed_enabled or self.waveform_enabled


@dataclass
class SamplerConfig:
    """How utterances are grouped into batches.

    mode: ``bucketing`` (lhotse DynamicBucketingSampler: similar durations together, at most
        ``max_duration`` seconds of audio per batch) or ``fixed`` (``batch_size`` utterances in
        random order, the paper's setting of 4).
    shuffle / drop_last: training only; evaluation never shuffles and never drops.
    num_workers: DataLoader worker processes (0 = load in the main process).
    max_utterance_seconds: training only; longer utterances are randomly cropped to this
        length (counted and logged). ``None`` = never crop.
    seed: shuffling and per-utterance augmentation randomness.
    """

    mode: Literal["bucketing", "fixed"] = "bucketing"
    batch_size: int = 4
    max_duration: float = 120.0
    num_buckets: int = 8
    shuffle: bool = True
    drop_last: bool = False
    num_workers: int = 2
    max_utterance_seconds: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        _check_positive("sampler.batch_size", self.batch_size)
        _check_positive("sampler.max_duration", self.max_duration)
        _check_positive("sampler.num_buckets", self.num_buckets)
        _check_positive("sampler.max_utterance_seconds", self.max_utterance_seconds, allow_none=True)
        if self.num_workers < 0:
            raise ConfigError(f"sampler.num_workers: must be >= 0, got {self.num_workers}")


@dataclass
class DataConfig:
    """The ``data:`` section: the manifest, folds, augmentation and batching.

    manifest: path of the lhotse CutSet (``.jsonl.gz``) written by ``metaser prepare``.
    eval_max_duration: seconds of audio per valid/test batch in bucketing mode
        (``None`` = ``sampler.max_duration``).
    """

    manifest: str = ""
    split: SplitConfig = field(default_factory=SplitConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    eval_max_duration: float | None = None

    def __post_init__(self) -> None:
        _check_positive("data.eval_max_duration", self.eval_max_duration, allow_none=True)
