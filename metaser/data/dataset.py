"""Label spaces from the training cuts, the collating dataset and the DataLoader factory.

Lhotse pattern: the sampler (main process) yields CutSet mini-batches, the
:class:`SERDataset` (in the DataLoader workers) loads mono audio at ``SAMPLE_RATE`` (16 kHz),
augments it when training and collates a :class:`~metaser.data.batch.Batch` (zero padding by
``torch.nn.utils.rnn.pad_sequence``). A waveform shorter than ``min_samples`` (default the CNN
receptive field, :data:`metaser.constants.MIN_SAMPLES`) is zero-padded to that length and
counted, so no single short clip stops training.

Reproducibility: every utterance gets its own ``numpy`` generator seeded from
``(seed, epoch, crc32(cut id))``, so speed factors, crops and drops depend neither on the
number of workers nor on which batch an utterance lands in. The epoch travels with the
batch: :func:`make_dataloader` tags each sampled cut with the sampler's epoch (persistent
workers never see ``set_epoch`` calls made in the main process).
"""

from __future__ import annotations

import logging
import zlib
from typing import Any

import numpy as np
import torch
from lhotse import CutSet
from lhotse.lazy import LazyMapper
from lhotse.utils import fastcopy
from torch.nn.utils.rnn import pad_sequence

from metaser.constants import MIN_SAMPLES, SAMPLE_RATE
from metaser.data.augment import SpeedPerturb, WaveformAugment
from metaser.data.batch import Batch
from metaser.data.config import AugmentConfig, DataConfig
from metaser.data.feature_store import FeatureStore
from metaser.data.labels import IGNORE_INDEX, CharVocab, LabelSpace
from metaser.data.manifest import get_field
from metaser.data.sampling import make_sampler
from metaser.data.sources import SPEED_KEY, AudioSource, StoreSource, UtteranceAudio
from metaser.errors import DataError

__all__ = ["build_label_space", "SERDataset", "make_dataloader", "classification_tasks"]

logger = logging.getLogger(__name__)

ASR_TASK = "asr"
_EPOCH_KEY = "metaser_epoch"


def classification_tasks(tasks: list[str]) -> list[str]:
    """ "emotion" first, then every classification task of ``tasks`` (all but "asr")."""
    return ["emotion"] + [t for t in dict.fromkeys(tasks) if t not in ("emotion", ASR_TASK)]


def _category(cut: Any, task: str) -> str | None:
    """The class name of ``cut`` for a classification task (values are strings)."""
    value = get_field(cut, task)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return str(value)


def _available_fields(cuts: list[Any]) -> list[str]:
    names: set[str] = set()
    for c in cuts:
        for sup in c.supervisions[:1]:
            names.update(f for f in ("speaker", "gender", "text") if getattr(sup, f, None))
            names.update(k for k, v in (sup.custom or {}).items() if v not in (None, ""))
    return sorted(names)


def build_label_space(train_cuts: CutSet, tasks: list[str], *, emotion_classes: list[str] | None = None) -> LabelSpace:
    """Class names of "emotion" and of each task in ``tasks`` from the training cuts.

    Classes are sorted (stable across runs) unless ``emotion_classes`` fixes the emotion
    order. ``"asr"`` in ``tasks`` builds the CTC :class:`CharVocab` from the transcripts.
    A task whose field no training cut has raises DataError; single cuts lacking a value
    get ``IGNORE_INDEX`` at collation time.
    """
    cuts = list(train_cuts)
    if not cuts:
        raise DataError("cannot build a label space from an empty training set")
    classes: dict[str, list[str]] = {}
    for task in classification_tasks(tasks):
        values = {v for v in (_category(c, task) for c in cuts) if v is not None}
        if not values:
            raise DataError(
                f"task '{task}': no training utterance has a '{task}' field",
                hint=f"available fields: {', '.join(_available_fields(cuts)) or 'none'}",
            )
        if task == "emotion" and emotion_classes is not None:
            unknown = sorted(values - set(emotion_classes))
            if unknown:
                raise DataError(
                    f"training emotions {unknown} are not in the given emotion classes {list(emotion_classes)}",
                    hint="map or filter them when preparing the manifest",
                )
            classes[task] = list(emotion_classes)
        else:
            classes[task] = sorted(values)
    vocab = None
    if ASR_TASK in tasks:
        texts = [t for t in (get_field(c, "text") for c in cuts) if t is not None]
        if not texts:
            raise DataError(
                "task 'asr': no training utterance has a transcript ('text')",
                hint=f"available fields: {', '.join(_available_fields(cuts)) or 'none'}",
            )
        vocab = CharVocab.build(texts)
    return LabelSpace(classes=classes, vocab=vocab)


class SERDataset(torch.utils.data.Dataset):
    """Lhotse-style dataset: ``dataset[cuts] -> Batch``.

    labels: the fold's label space; tasks: enabled aux tasks ("gender", "speaker", "style",
    any custom field, "asr"); train: enables augmentation and cropping.
    augment: speed / band / chunk settings (used only when ``train``).
    max_utterance_seconds: training crop length (None = no crop).
    min_samples: a waveform shorter than this (after augmentation and cropping, in train and
        eval alike) is zero-padded at the end to ``min_samples``: the CNN sees enough input for
        one frame (:class:`~metaser.data.sources.UtteranceAudio`). 0 = never pad.
    store: a :class:`~metaser.data.feature_store.FeatureStore` of frozen-prefix features per
        (cut, speed factor). When given, a batch's input is the stored features
        (:class:`~metaser.boundary.FrozenFeatures`) instead of audio; the speed factor is drawn
        exactly as for audio. Only valid without band / chunk dropping and cropping (the store
        holds what the audio path would give the encoder for each factor).
    """

    def __init__(
        self,
        labels: LabelSpace,
        tasks: list[str],
        *,
        train: bool = False,
        augment: AugmentConfig | None = None,
        max_utterance_seconds: float | None = None,
        sample_rate: int = SAMPLE_RATE,
        seed: int = 0,
        min_samples: int = MIN_SAMPLES,
        store: FeatureStore | None = None,
    ):
        self.labels = labels
        self.tasks = classification_tasks(tasks)
        missing = [t for t in self.tasks if t not in labels.classes]
        if missing:
            raise DataError(f"tasks {missing} have no classes in the label space (it has {list(labels.classes)})")
        self.asr = ASR_TASK in tasks
        if self.asr and labels.vocab is None:
            raise DataError("task 'asr' is enabled but the label space has no CTC vocabulary")
        self.train = train
        augment = augment if (train and augment is not None) else None
        self.speed = SpeedPerturb.from_config(augment, sample_rate) if augment else None
        wave_aug = WaveformAugment(augment, sample_rate) if augment else None
        max_samples = int(round(max_utterance_seconds * sample_rate)) if train and max_utterance_seconds else None
        if store is not None:
            if max_samples is not None or (wave_aug is not None and wave_aug.enabled):
                raise DataError("precomputed features cannot be used with band / chunk dropping or cropping")
            self.source: AudioSource | StoreSource = StoreSource(store)
        else:
            audio = UtteranceAudio(self.speed, sample_rate=sample_rate, min_samples=min_samples)
            self.source = AudioSource(audio, wave_aug, max_samples)
        self.sample_rate = sample_rate
        self.seed = seed
        self.epoch = 0  # used when a cut carries no epoch tag (dataset called directly)
        self.unknown_labels: dict[str, int] = {}  # per process (each DataLoader worker counts its own)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _rng(self, cut: Any) -> np.random.Generator:
        epoch = (getattr(cut, "custom", None) or {}).get(_EPOCH_KEY, self.epoch)
        return _utterance_rng(self.seed, epoch, cut.id)

    def _factor(self, rng: np.random.Generator) -> float:
        """An utterance's TDSA factor in this epoch (1.0 outside training)."""
        return self.speed.draw(rng) if self.speed is not None else 1.0  # always drawn first: same rng stream

    def _target(self, cut: Any, task: str) -> int:
        value = _category(cut, task)
        index = self.labels.index(task, value)
        if value is not None and index == IGNORE_INDEX:
            self.unknown_labels[task] = self.unknown_labels.get(task, 0) + 1
            # Unseen values are expected outside training (a speaker-independent test fold
            # has no training speaker), so only training data warns.
            if self.unknown_labels[task] == 1 and self.train:
                logger.warning(
                    "task %s: value %r of cut %s is not in the training label space; "
                    "it is ignored (IGNORE_INDEX), further ones are counted only",
                    task,
                    value,
                    cut.id,
                )
        return index

    def __getitem__(self, cuts: CutSet) -> Batch:
        cuts = list(cuts)
        if not cuts:
            raise DataError("SERDataset received an empty batch")
        rngs = [self._rng(c) for c in cuts]
        factors = [self._factor(r) for r in rngs]
        inputs = self.source.collate(cuts, factors, rngs)
        targets = {
            t: torch.tensor([self._target(c, t) for c in cuts], dtype=torch.int64)  # (B,)
            for t in self.tasks
        }
        ctc_targets = ctc_lengths = None
        if self.asr:
            vocab = self.labels.vocab
            encoded = [torch.tensor(vocab.encode(get_field(c, "text") or ""), dtype=torch.int64) for c in cuts]
            ctc_lengths = torch.tensor([e.numel() for e in encoded], dtype=torch.int64)  # (B,)
            ctc_targets = pad_sequence(encoded, batch_first=True)  # (B, U), 0-padded
        return Batch(
            inputs=inputs,
            targets=targets,
            ctc_targets=ctc_targets,
            ctc_target_lengths=ctc_lengths,
            ids=[c.id for c in cuts],
        )


def _utterance_rng(seed: int, epoch: int, cut_id: str) -> np.random.Generator:
    return np.random.default_rng([seed, int(epoch), zlib.crc32(cut_id.encode())])


class _SpeedBeforeBucketing:
    """Lazy CutSet transform in front of a bucketing sampler: each cut gets its TDSA factor for
    the sampler's current epoch (the same draw the dataset makes), so length buckets see the
    perturbed durations instead of the original ones. The dataset then skips resampling twice.
    Re-evaluated at every epoch, because lhotse iterates the CutSet anew each epoch."""

    def __init__(self, speed: SpeedPerturb, seed: int):
        self.speed, self.seed = speed, seed
        self.sampler: Any = None  # set once the sampler exists; epoch 0 before that

    def __call__(self, cut: Any) -> Any:
        epoch = int(getattr(self.sampler, "epoch", 0))
        factor = self.speed.draw(_utterance_rng(self.seed, epoch, cut.id))
        out = self.speed.apply(cut, factor, affix_id=False)
        return fastcopy(out, custom={**(out.custom or {}), SPEED_KEY: factor})


class _TagEpoch:
    """Sampler transform: copy each sampled cut with the sampler's current epoch attached."""

    def __init__(self, sampler: Any):
        self.sampler = sampler

    def __call__(self, cuts: CutSet) -> CutSet:
        epoch = int(getattr(self.sampler, "epoch", 0))
        return CutSet.from_cuts(fastcopy(c, custom={**(c.custom or {}), _EPOCH_KEY: epoch}) for c in cuts)


def make_dataloader(
    cuts: CutSet,
    labels: LabelSpace,
    tasks: list[str],
    data_cfg: DataConfig,
    *,
    train: bool,
    epoch_seed: int = 0,
    world_size: int | None = None,
    rank: int | None = None,
    store: FeatureStore | None = None,
) -> torch.utils.data.DataLoader:
    """A DataLoader yielding :class:`Batch` es of ``cuts``.

    train: shuffled (per ``data_cfg.sampler``), augmented, cropped; else deterministic with
        ``data_cfg.eval_max_duration`` seconds per batch in bucketing mode.
    epoch_seed: the epoch the sampler starts at (resume: pass the epoch to continue from);
        shuffling and augmentation of epoch ``e`` depend only on ``(sampler.seed, e)``.
        Call :func:`metaser.data.sampling.set_epoch` (loader, e) before each epoch.
    world_size / rank: DDP sharding (default: from torch.distributed when initialised).
    store: a FeatureStore of frozen-prefix features (see :class:`SERDataset`).
    """
    scfg = data_cfg.sampler
    sampler_cuts, pre = cuts, None
    if (
        train
        and scfg.mode == "bucketing"
        and data_cfg.augment.speed_prob > 0
        and any(f != 1.0 for f in data_cfg.augment.speeds)
    ):
        pre = _SpeedBeforeBucketing(SpeedPerturb.from_config(data_cfg.augment, SAMPLE_RATE), scfg.seed)
        sampler_cuts = CutSet(LazyMapper(cuts, pre))
    sampler = make_sampler(
        sampler_cuts,
        scfg,
        train=train,
        world_size=world_size,
        rank=rank,
        max_duration=None if train else data_cfg.eval_max_duration,
    )
    if pre is not None:
        pre.sampler = sampler
    sampler.set_epoch(epoch_seed)
    sampler.map(_TagEpoch(sampler))
    dataset = SERDataset(
        labels,
        tasks,
        train=train,
        augment=data_cfg.augment if train else None,
        max_utterance_seconds=scfg.max_utterance_seconds if train else None,
        seed=scfg.seed,
        store=store,
    )
    if train and scfg.max_utterance_seconds:
        longer = sum(1 for c in cuts if c.duration > scfg.max_utterance_seconds)
        if longer:
            logger.info(
                "%d of %d training utterances are longer than max_utterance_seconds=%g and are randomly cropped",
                longer,
                len(cuts),
                scfg.max_utterance_seconds,
            )
    return torch.utils.data.DataLoader(
        dataset,
        sampler=sampler,
        batch_size=None,
        num_workers=scfg.num_workers,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=scfg.num_workers > 0,
    )
