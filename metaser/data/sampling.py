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

Durations seen by the sampler: in training with bucketing and TDSA,
:func:`metaser.data.dataset.make_dataloader` speed-perturbs each cut lazily *before* the
sampler (the same per-utterance draw the dataset makes), so buckets and ``max_duration`` see
the perturbed durations. Otherwise (fixed batches, evaluation) they are the manifest's.
Cropping to ``max_utterance_seconds`` happens later, in the dataset, and only shortens (the
dataset's zero-padding of clips under 400 samples to 400 adds at most 25 ms per clip).

Progress: lhotse samplers have no length. :func:`count_batches` dry-runs a copy of a sampler
over the cuts' metadata (no audio is loaded) and returns how many batches an epoch yields,
so a progress bar can show a total.
"""

from __future__ import annotations

import copy
import types
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from lhotse import CutSet
from lhotse.dataset import DynamicBucketingSampler, SimpleCutSampler
from lhotse.dataset.sampling.base import CutSampler

from metaser.data.batch import Batch
from metaser.data.config import SamplerConfig
from metaser.errors import DataError

__all__ = ["make_sampler", "padding_ratio", "set_epoch", "count_batches"]


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
        return SimpleCutSampler(
            cuts,
            max_cuts=cfg.batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            world_size=world_size,
            rank=rank,
            seed=seed,
        )
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
        return [int(x) for x in batch.inputs.num_samples]
    if isinstance(batch, CutSet):
        return [int(c.num_samples) for c in batch]
    if isinstance(batch, torch.Tensor):
        return [int(x) for x in batch.reshape(-1)]
    return [int(x) for x in batch]


def padding_ratio(batches: Iterable[Batch | CutSet | Sequence[int] | torch.Tensor]) -> float:
    """Padding samples / real samples over ``batches`` (0 = no padding at all).

    This is metaser's one definition of the padding ratio: ``sum(B x S - real) / sum(real)``
    (not total / real, which would be 1 + this). Each batch is a :class:`Batch`, a lhotse
    CutSet (lengths = ``num_samples``), or the sequence of its utterance lengths. A batch is
    padded to its longest utterance.
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


def _lhotse_sampler(sampler: Any, what: str) -> Any:
    """The lhotse sampler itself, or the one a DataLoader was built on."""
    target = sampler
    if isinstance(sampler, torch.utils.data.DataLoader):
        target = getattr(sampler, "sampler", None)
    if target is None or not hasattr(target, "set_epoch"):
        raise TypeError(f"{what}: {type(sampler).__name__} has no lhotse sampler")
    return target


def set_epoch(sampler: Any, epoch: int) -> None:
    """Reshuffle for ``epoch``: accepts a lhotse sampler or a DataLoader built on one."""
    _lhotse_sampler(sampler, "set_epoch").set_epoch(epoch)


def _generators(obj: Any, depth: int = 2) -> list[Any]:
    """Generators held by ``obj``'s attributes, or by its attributes' attributes (a lhotse
    sampler keeps its running iteration there: ``cuts_iter``, ``data_source._iter``)."""
    found = []
    for value in vars(obj).values():
        if isinstance(value, types.GeneratorType):
            found.append(value)
        elif depth > 1 and hasattr(value, "__dict__") and not isinstance(value, type):
            found += _generators(value, depth - 1)
    return found


def count_batches(sampler: Any, epoch: int | None = None) -> int:
    """The number of batches ``sampler`` yields in ``epoch`` (default: its current epoch).

    Accepts a lhotse sampler or a DataLoader built on one. The count is exact, not an
    estimate: a deep copy of the sampler is run through the epoch, which reads only the cuts'
    metadata (durations; lazily speed-perturbed cuts included) and loads no audio. Under DDP
    the count is this rank's. The sampler itself is left untouched (its position and
    a state restored from a checkpoint included); the copy always counts a whole epoch.
    """
    target = _lhotse_sampler(sampler, "count_batches")
    # Iteration state (generators, which cannot be copied) is left out of the copy: iter()
    # builds it anew. Deep-copying also makes references back to the sampler (the lazy TDSA
    # transform reads its epoch) point to the copy.
    memo: dict[int, Any] = {id(g): None for g in _generators(target)}
    dry = copy.deepcopy(target, memo)
    dry.allow_iter_to_reset_state()  # a just-restored sampler would resume mid-epoch
    dry.set_epoch(target.epoch if epoch is None else int(epoch))
    return sum(1 for _ in dry)
