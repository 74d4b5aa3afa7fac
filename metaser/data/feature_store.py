"""A store of precomputed per-utterance feature sequences, keyed by (cut id, speed factor).

What the frozen-prefix cache of training (:mod:`metaser.training.cache`) writes and the
collating dataset reads. One store is a directory holding ``data.bin`` (every sequence,
contiguous, ``dtype``) and ``index.json`` (per entry: offset, frames, number of stacked
tensors, width, and the utterance's sample count). An entry is ``n`` tensors of shape (T, C)
(stage 1: n = 1, the CNN output; stage 2: n = frozen layers, their outputs).

Writing is atomic: the store is built in a temporary sibling directory and renamed into
place, so a reader never sees half a store, and two writers of the same key leave one
complete copy. ``open`` memory-maps ``data.bin`` (``in_memory=True`` reads it into RAM).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

__all__ = ["FeatureStore", "FeatureStoreWriter", "entry_key", "DTYPES"]

DTYPES = {"float32": (torch.float32, np.float32), "float16": (torch.float16, np.float16),
          "bfloat16": (torch.bfloat16, np.uint16)}  # numpy has no bfloat16: its bits as uint16


def entry_key(cut_id: str, factor: float) -> str:
    return f"{cut_id}|{float(factor):g}"


class FeatureStoreWriter:
    """Append entries, then :meth:`commit` (atomic rename into ``path``)."""

    def __init__(self, path: str | Path, dtype: str = "float32", meta: dict[str, Any] | None = None):
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        self.path = Path(path)
        self.dtype = dtype
        self.meta = dict(meta or {})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(tempfile.mkdtemp(dir=self.path.parent, prefix=f".{self.path.name}.tmp-"))
        self._f = open(self._tmp / "data.bin", "wb")
        self._offset = 0
        self.entries: dict[str, list[int]] = {}

    def add(self, cut_id: str, factor: float, tensors: Iterable[torch.Tensor], num_samples: int) -> None:
        """tensors: n tensors (T, C) of one utterance (the valid frames only)."""
        stack = torch.stack([t.detach() for t in tensors]).to("cpu", DTYPES[self.dtype][0]).contiguous()  # (n, T, C)
        arr = stack.view(torch.uint16).numpy() if self.dtype == "bfloat16" else stack.numpy()
        self._f.write(arr.tobytes())
        n, t, c = stack.shape
        self.entries[entry_key(cut_id, factor)] = [self._offset, t, n, c, int(num_samples)]
        self._offset += arr.size

    def commit(self) -> "FeatureStore":
        self._f.close()
        index = {"dtype": self.dtype, "meta": self.meta, "entries": self.entries}
        (self._tmp / "index.json").write_text(json.dumps(index))
        try:
            os.rename(self._tmp, self.path)
        except OSError:  # another writer of the same key finished first: keep theirs
            shutil.rmtree(self._tmp, ignore_errors=True)
        return FeatureStore.open(self.path)

    def abort(self) -> None:
        self._f.close()
        shutil.rmtree(self._tmp, ignore_errors=True)


class FeatureStore:
    """Read access: ``get(cut_id, factor) -> tuple of n tensors (T, C)`` and the sample count."""

    def __init__(self, path: Path, index: dict[str, Any], data: np.ndarray):
        self.path = path
        self.dtype = index["dtype"]
        self.meta = index.get("meta", {})
        self.entries: dict[str, list[int]] = index["entries"]
        self._data = data

    @classmethod
    def exists(cls, path: str | Path) -> bool:
        return (Path(path) / "index.json").is_file()

    @classmethod
    def open(cls, path: str | Path, *, in_memory: bool = False) -> "FeatureStore":
        path = Path(path)
        index = json.loads((path / "index.json").read_text())
        np_dtype = DTYPES[index["dtype"]][1]
        size = (path / "data.bin").stat().st_size
        if size == 0:
            data = np.zeros(0, dtype=np_dtype)
        elif in_memory:
            data = np.fromfile(path / "data.bin", dtype=np_dtype)
        else:
            data = np.memmap(path / "data.bin", dtype=np_dtype, mode="r")
        return cls(path, index, data)

    def __contains__(self, item: tuple[str, float]) -> bool:
        return entry_key(*item) in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def nbytes(self) -> int:
        return int(self._data.nbytes)

    @property
    def total_samples(self) -> int:
        """Waveform samples behind every entry (all utterances, all speed factors)."""
        return sum(e[4] for e in self.entries.values())

    def num_samples(self, cut_id: str, factor: float) -> int:
        return self.entries[entry_key(cut_id, factor)][4]

    def get(self, cut_id: str, factor: float) -> tuple[torch.Tensor, ...]:
        """The entry's n tensors, each (T, C) float32 (a bf16 / fp16 store is widened)."""
        off, t, n, c, _ = self.entries[entry_key(cut_id, factor)]
        flat = np.asarray(self._data[off:off + n * t * c]).reshape(n, t, c)
        x = torch.from_numpy(flat.copy())
        if self.dtype == "bfloat16":
            x = x.view(torch.bfloat16)
        return tuple(x.float())  # n x (T, C)


def _reduce(store: FeatureStore):
    """Pickle by path (DataLoader workers reopen the memory map instead of copying it)."""
    return (_reopen, (str(store.path), not isinstance(store._data, np.memmap)))


def _reopen(path: str, in_memory: bool) -> FeatureStore:
    return FeatureStore.open(path, in_memory=in_memory)


FeatureStore.__reduce__ = _reduce  # type: ignore[assignment]
