"""Filling a feature store with the frozen prefix's output, once per key.

The training side decides what a stage's frozen prefix is (which layer, computed how: see
:mod:`metaser.training.frozen`) and hands this module a ``prefix`` function; everything about
the store itself lives here, beside the store (:mod:`metaser.data.feature_store`):

* :func:`store_key` names a store by a digest of what decides its content: the frozen weights
  themselves, the manifest, the speed set and convention, the receptive-field padding, the dtype
  and the way padding is treated. A changed checkpoint never reads a stale store.
* :func:`build_store` decodes every wanted (utterance, speed factor) pair exactly as the collating
  dataset would (:class:`~metaser.data.sources.UtteranceAudio`), runs the prefix on length-sorted
  batches of at most ``batch_seconds`` of padded audio, and writes the valid frames of each
  utterance atomically. The prefix must give every utterance what it would give it alone (the
  caller only caches such a prefix), so batching changes nothing.
* :func:`open_store` opens it memory-mapped, or in RAM when it fits.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pad_sequence

from metaser.constants import SAMPLE_RATE
from metaser.data.feature_store import FeatureStore, FeatureStoreWriter, cleanup_on_sigterm
from metaser.data.sources import UtteranceAudio

__all__ = ["store_key", "build_store", "open_store", "Prefix"]

#: waveforms (B, S) zero-padded, lengths (B,) -> (n tensors (B, T, C), frame lengths (B,))
Prefix = Callable[[torch.Tensor, torch.Tensor], tuple[Sequence[torch.Tensor], torch.Tensor]]


def store_key(ident: dict[str, Any], modules: Sequence[nn.Module]) -> str:
    """16 hex digits of sha256 over ``ident`` (JSON) and every tensor of ``modules``' state dicts."""
    h = hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode())
    for m in modules:
        for name, t in sorted(m.state_dict().items()):
            h.update(name.encode())
            h.update(t.detach().to("cpu").contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def build_store(
    path: Path,
    wanted: dict[str, Sequence[float]],
    cuts: dict[str, Any],
    audio: UtteranceAudio,
    prefix: Prefix,
    *,
    dtype: str,
    meta: dict[str, Any],
    device: torch.device,
    batch_seconds: float = 60.0,
) -> None:
    """Compute and write the store ``path``: the prefix's output for every ``(cut id, factor)`` of
    ``wanted`` (``cuts``: id -> cut). On any error or interrupt (SIGTERM included) nothing is left
    behind."""
    budget = int(batch_seconds * SAMPLE_RATE)
    writer = FeatureStoreWriter(path, dtype=dtype, meta=meta)

    def flush(group: list[tuple[str, float, torch.Tensor]]) -> None:
        lengths = torch.tensor([w.numel() for _, _, w in group], device=device)  # (B,)
        x = pad_sequence([w for _, _, w in group], batch_first=True).to(device)  # (B, S)
        outs, frame_lengths = prefix(x, lengths)  # n x (B, T, C), (B,)
        for i, (cut_id, f, w) in enumerate(group):
            writer.add(cut_id, f, [o[i, : int(frame_lengths[i])] for o in outs], w.numel())

    try:
        with cleanup_on_sigterm():
            items = [(cut_id, f, audio(cuts[cut_id], f)) for cut_id, factors in wanted.items() for f in factors]
            items.sort(key=lambda it: it[2].numel())
            group: list[tuple[str, float, torch.Tensor]] = []
            for it in items:
                if group and (len(group) + 1) * it[2].numel() > budget:
                    flush(group)
                    group = []
                group.append(it)
            if group:
                flush(group)
            writer.commit()
    except BaseException:
        writer.abort()
        raise


def open_store(path: Path, *, storage: str = "auto", max_memory_gb: float = 8.0) -> FeatureStore:
    """The store at ``path``: in RAM for ``storage="memory"`` (or ``auto`` when it fits in
    ``max_memory_gb``), else memory-mapped."""
    store = FeatureStore.open(path)
    if storage == "memory" or (storage == "auto" and store.nbytes < max_memory_gb * 2**30):
        store = FeatureStore.open(path, in_memory=True)
    return store
