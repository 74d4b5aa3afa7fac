"""Typed configs of the data pipeline: folds, augmentation, sampling (``data:`` in YAML).

Every class is a plain ``@dataclass`` loaded by :func:`metaser.config.from_dict`; invalid
values raise :class:`~metaser.errors.ConfigError` naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from metaser.errors import ConfigError

__all__ = ["PAPER_SPEEDS", "SplitConfig", "AugmentConfig", "SamplerConfig", "DataConfig"]

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
        speakers) or ``speaker`` (corpora without sessions, e.g. EmoDB).
    num_folds: ``None`` = one fold per group (leave-one-group-out); ``k`` = the groups are
        assigned to ``k`` folds, balancing utterance counts deterministically.
    valid_fraction: fraction of the training part held out for validation (0 = none).
    valid_by: ``utterance`` (stratified by emotion) or ``speaker`` (whole speakers held out,
        at least one, about ``valid_fraction`` of the utterances).
    seed: makes the validation split reproducible.
    """

    group_by: Literal["session", "speaker"] = "session"
    num_folds: int | None = None
    valid_fraction: float = 0.1
    valid_by: Literal["utterance", "speaker"] = "utterance"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_folds is not None and self.num_folds < 2:
            raise ConfigError(f"split.num_folds: needs at least 2 folds (or null for one per group), "
                              f"got {self.num_folds}")
        if not 0.0 <= self.valid_fraction < 1.0:
            raise ConfigError(f"split.valid_fraction: must be in [0, 1), got {self.valid_fraction!r}")


@dataclass
class AugmentConfig:
    """Training-time augmentation.

    speeds / speed_prob: TDSA, the paper's speed perturbation. With probability
        ``speed_prob`` a factor is drawn uniformly from ``speeds`` per utterance (else 1.0).
    speed_convention: how a factor ``f`` is read.
        ``length`` (default): the paper's and SpeechBrain's reading of "rates (80, 100, and
        120)": ``f`` times the samples, so 0.8 keeps 0.8x of the samples (faster, higher) and
        1.2 gives 1.2x (slower, lower). Applied as lhotse ``perturb_speed(1 / f)``.
        ``lhotse``: lhotse's own reading, ``perturb_speed(f)``: ``1 / f`` times the samples
        (0.8 -> 1.25x). Either way the resampling rate is rounded to one lhotse can build
        cheaply (:func:`metaser.data.augment.lhotse_speed_factor`: 1.2 -> 1.20048x at 16 kHz).
    band_drop_prob: probability to zero one random frequency band (FFT mask) whose width
        is drawn uniformly in [``band_drop_min_hz``, ``band_drop_max_hz``].
    chunk_drop_prob: probability to zero 1..``chunk_drop_max_count`` random time chunks,
        each up to ``chunk_drop_max_seconds`` long.
    Band and chunk dropping are off by default (the paper uses speed perturbation only).
    """

    speeds: list[float] = field(default_factory=lambda: list(PAPER_SPEEDS))
    speed_prob: float = 1.0
    speed_convention: Literal["length", "lhotse"] = "length"
    band_drop_prob: float = 0.0
    band_drop_min_hz: float = 100.0
    band_drop_max_hz: float = 1000.0
    chunk_drop_prob: float = 0.0
    chunk_drop_max_count: int = 2
    chunk_drop_max_seconds: float = 0.1

    def __post_init__(self) -> None:
        if not self.speeds:
            raise ConfigError("augment.speeds: needs at least one factor (use [1.0] to disable)")
        for i, s in enumerate(self.speeds):
            _check_positive(f"augment.speeds[{i}]", s)
        _check_prob("augment.speed_prob", self.speed_prob)
        _check_prob("augment.band_drop_prob", self.band_drop_prob)
        _check_prob("augment.chunk_drop_prob", self.chunk_drop_prob)
        _check_positive("augment.band_drop_min_hz", self.band_drop_min_hz)
        if self.band_drop_max_hz < self.band_drop_min_hz:
            raise ConfigError(f"augment.band_drop_max_hz: must be >= band_drop_min_hz "
                              f"({self.band_drop_min_hz}), got {self.band_drop_max_hz}")
        _check_positive("augment.chunk_drop_max_count", self.chunk_drop_max_count)
        _check_positive("augment.chunk_drop_max_seconds", self.chunk_drop_max_seconds)

    @property
    def enabled(self) -> bool:
        """True when any augmentation can change an utterance."""
        speed = self.speed_prob > 0 and any(s != 1.0 for s in self.speeds)
        return speed or self.band_drop_prob > 0 or self.chunk_drop_prob > 0


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
