"""A store of precomputed per-utterance feature sequences, keyed by (cut id, speed factor).

What the frozen-prefix cache (:mod:`metaser.data.feature_cache`, for :mod:`metaser.training.frozen`) writes and the
collating dataset reads. One store is a directory holding ``data.bin`` (every sequence,
contiguous, ``dtype``) and ``index.json`` (per entry: offset, frames, number of stacked
tensors, width, and the utterance's sample count). An entry is ``n`` tensors of shape (T, C)
(stage 1: n = 1, the CNN output; stage 2: n = frozen layers, their outputs).

Writing is atomic: the store is built in a temporary sibling directory
(``.<name>.tmp-<host>-<pid>-<random>``) and renamed into place, so a reader never sees half a
store, and two writers of the same key leave one complete copy. A writer that fails or is
interrupted (Ctrl-C, and SIGTERM while :func:`cleanup_on_sigterm` is active) removes its
temporary directory; one left by a killed process is removed by the next writer in that folder
(:func:`sweep_stale`: same host, process gone). ``open`` memory-maps ``data.bin``
(``in_memory=True`` reads it into RAM).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metaser.rundir import shared_mode

__all__ = ["FeatureStore", "FeatureStoreWriter", "entry_key", "DTYPES", "sweep_stale", "cleanup_on_sigterm"]

DTYPES = {
    "float32": (torch.float32, np.float32),
    "float16": (torch.float16, np.float16),
    "bfloat16": (torch.bfloat16, np.uint16),
}  # numpy has no bfloat16: its bits as uint16


def entry_key(cut_id: str, factor: float) -> str:
    return f"{cut_id}|{float(factor):g}"


_TMP_RE = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<host>[^-]+)-(?P<pid>\d+)-[^/]+$")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname()) or "host"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def sweep_stale(folder: str | Path) -> list[Path]:
    """Remove the temporary store directories in ``folder`` left by dead processes of this host
    (a writer killed by SIGKILL or a crash); returns what was removed."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    host = _host()
    for p in folder.iterdir():
        m = _TMP_RE.match(p.name)
        if m and p.is_dir() and m["host"] == host and not _alive(int(m["pid"])):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


@contextlib.contextmanager
def cleanup_on_sigterm() -> Iterator[None]:
    """While active (main thread only), SIGTERM raises ``SystemExit(143)`` in this process instead
    of killing it on the spot, so writers run their cleanup (``except BaseException: abort()``)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class FeatureStoreWriter:
    """Append entries, then :meth:`commit` (atomic rename into ``path``)."""

    def __init__(self, path: str | Path, dtype: str = "float32", meta: dict[str, Any] | None = None):
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        self.path = Path(path)
        self.dtype = dtype
        self.meta = dict(meta or {})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        sweep_stale(self.path.parent)
        prefix = f".{self.path.name}.tmp-{_host()}-{os.getpid()}-"
        self._tmp = Path(tempfile.mkdtemp(dir=self.path.parent, prefix=prefix))
        shared_mode(self._tmp)
        self._f = open(self._tmp / "data.bin", "wb")  # noqa: SIM115 - kept open across add() calls, closed by commit/abort
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

    def commit(self) -> FeatureStore:
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
    def open(cls, path: str | Path, *, in_memory: bool = False) -> FeatureStore:
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
        flat = np.asarray(self._data[off : off + n * t * c]).reshape(n, t, c)
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
