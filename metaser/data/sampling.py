"""Batch samplers (lhotse) and the padding-ratio measure.

* ``bucketing``: :class:`lhotse.dataset.DynamicBucketingSampler` groups utterances of similar
  duration, at most ``max_duration`` seconds of audio per batch: little padding.
* ``fixed``: :class:`lhotse.dataset.SimpleCutSampler` with ``max_cuts=batch_size``: the
  paper's fixed batches of 4 in random order.

Evaluation samplers never shuffle and never drop (deterministic order and batches).

Distributed training: both samplers shard by ``world_size`` / ``rank`` (taken from
``torch.distributed`` when initialised and not given). Every rank draws the same global
sequence of batches and keeps every ``world_size``-th one, so the ranks' batches are
disjoint. When the number of batches is not a multiple of ``world_size`` and
``drop_last=False``, lhotse splits the last round's cuts over the ranks so that every rank
gets a batch; only when fewer cuts than ranks remain does it *duplicate* the first cuts,
with ids suffixed ``_dup<k>`` (evaluation code should drop those ids). With
``drop_last=True`` the incomplete last round is dropped on all ranks instead.

Durations seen by the sampler are the manifest's: speed perturbation (up to 1/0.8 = 1.25x
longer) and cropping happen later, in the dataset, so a training batch can hold up to
``max_duration / min(speeds)`` seconds of audio.
"""

from __future__ import annotations

import warnings
from typing import Any, Iterable, Sequence

import torch
from lhotse import CutSet
from lhotse.dataset import DynamicBucketingSampler, SimpleCutSampler
from lhotse.dataset.sampling.base import CutSampler

from metaser.data.batch import Batch
from metaser.data.config import SamplerConfig
from metaser.errors import DataError

__all__ = ["make_sampler", "padding_ratio", "set_epoch"]


def make_sampler(
    cuts: CutSet,
    cfg: SamplerConfig,
    *,
    train: bool,
    world_size: int | None = None,
    rank: int | None = None,
    seed: int | None = None,
    max_duration: float | None = None,
) -> CutSampler:
    """A lhotse sampler yielding CutSet mini-batches of ``cuts``.

    train: shuffle / drop_last follow ``cfg``; otherwise no shuffling, nothing dropped.
    seed: shuffling seed (default ``cfg.seed``); identical on all ranks.
    max_duration: overrides ``cfg.max_duration`` (bucketing), e.g. ``eval_max_duration``.
    """
    n = len(cuts)
    if n == 0:
        raise DataError(f"cannot batch an empty set of utterances ({'train' if train else 'eval'})")
    shuffle = cfg.shuffle if train else False
    drop_last = cfg.drop_last if train else False
    seed = cfg.seed if seed is None else seed
    if cfg.mode == "fixed":
        return SimpleCutSampler(cuts, max_cuts=cfg.batch_size, shuffle=shuffle,
                                drop_last=drop_last, world_size=world_size, rank=rank, seed=seed)
    with warnings.catch_warnings():
        # Our manifests are small and read eagerly; lhotse's "no memory benefit" note is noise.
        warnings.filterwarnings("ignore", message=".*eagerly read CutSet.*")
        return DynamicBucketingSampler(
            cuts,
            max_duration=cfg.max_duration if max_duration is None else max_duration,
            num_buckets=min(cfg.num_buckets, n),  # lhotse needs at least one cut per bucket
            shuffle=shuffle,
            drop_last=drop_last,
            world_size=world_size,
            rank=rank,
            seed=seed,
        )


def _lengths(batch: Any) -> list[int]:
    if isinstance(batch, Batch):
        return [int(x) for x in batch.lengths]
    if isinstance(batch, CutSet):
        return [int(c.num_samples) for c in batch]
    if isinstance(batch, torch.Tensor):
        return [int(x) for x in batch.reshape(-1)]
    return [int(x) for x in batch]


def padding_ratio(batches: Iterable[Batch | CutSet | Sequence[int] | torch.Tensor]) -> float:
    """Padding samples / real samples over ``batches`` (0 = no padding at all).

    Each batch is a :class:`Batch`, a lhotse CutSet (lengths = ``num_samples``), or the
    sequence of its utterance lengths. A batch is padded to its longest utterance.
    """
    real = padded = 0
    for batch in batches:
        lengths = _lengths(batch)
        if not lengths:
            continue
        real += sum(lengths)
        padded += max(lengths) * len(lengths) - sum(lengths)
    if real == 0:
        raise ValueError("padding_ratio: the batches hold no samples")
    return padded / real


def set_epoch(sampler: Any, epoch: int) -> None:
    """Reshuffle for ``epoch``: accepts a lhotse sampler or a DataLoader built on one."""
    target = sampler
    if isinstance(sampler, torch.utils.data.DataLoader):
        target = getattr(sampler, "sampler", None)
    if target is None or not hasattr(target, "set_epoch"):
        raise TypeError(f"set_epoch: {type(sampler).__name__} has no lhotse sampler")
    target.set_epoch(epoch)
