"""Run-folder I/O shared by training, inference and the reports (imports nothing above it).

A cross-validation run folder holds one ``fold<K>/`` directory per fold. :func:`fold_dirs`
is the one place that finds them: only names matching ``^fold(\\d+)$`` count, so stray
entries such as ``fold2.bak/`` or ``folds/`` are ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = [
    "FOLD_RE",
    "fold_number",
    "fold_dirs",
    "read_jsonl",
    "write_jsonl",
    "sha256_file",
    "manifest_file",
    "write_json_atomic",
    "write_text_atomic",
    "shared_mode",
]

FOLD_RE = re.compile(r"^fold(\d+)$")


def fold_number(path: str | Path) -> int | None:
    """K for a directory named ``fold<K>``, else None."""
    m = FOLD_RE.match(Path(path).name)
    return int(m.group(1)) if m else None


def fold_dirs(run_dir: str | Path, *, finished: bool = False) -> list[Path]:
    """The ``fold<K>`` directories of ``run_dir`` sorted by K (``finished``: with metrics.json)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    dirs = [(fold_number(p), p) for p in run_dir.iterdir() if p.is_dir()]
    out = [p for k, p in sorted((k, p) for k, p in dirs if k is not None)]
    return [p for p in out if (p / "metrics.json").is_file()] if finished else out


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Every JSON object of a ``.jsonl`` file (lhotse's reader; blank lines are skipped)."""
    from lhotse.serialization import load_jsonl

    return list(load_jsonl(Path(path)))


def write_jsonl(rows: Iterable[dict[str, Any]], path: str | Path) -> None:
    """Write ``rows`` as JSON lines (UTF-8, non-ASCII kept), atomically."""
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    _write_atomic(Path(path), text)


def write_json_atomic(obj: Any, path: str | Path) -> None:
    """``json.dump`` to a temporary file in the same directory, then rename: never half-written."""
    _write_atomic(Path(path), json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def shared_mode(path: str | Path) -> None:
    """Give ``path`` the mode a plain ``open()`` / ``mkdir()`` would (0666 / 0777 minus the umask).

    ``tempfile`` creates files 0600 and directories 0700; a file renamed into place keeps that,
    and collaborators on shared cluster storage could not read it.
    """
    mask = os.umask(0)
    os.umask(mask)
    base = 0o777 if Path(path).is_dir() else 0o666
    os.chmod(path, base & ~mask)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to a temporary file beside ``path``, then rename: never half-written;
    the mode respects the umask (:func:`shared_mode`)."""
    _write_atomic(Path(path), text)


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        shared_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def manifest_file(path: str | Path) -> Path:
    """A manifest path as given (a directory means its ``cuts.jsonl.gz``)."""
    p = Path(path)
    return p / "cuts.jsonl.gz" if p.is_dir() else p
