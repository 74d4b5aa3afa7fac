"""Find the audio files a metadata list names, under a root whose layout may differ a little.

Lists made elsewhere (EmoBox's ``downloads/<corpus>/...`` paths, its track-2 lists) name files
relative to a layout the user's copy may not follow exactly: another case
(``Audio_Speech_Actors_01-24`` vs ``audio_speech_actors_01-24``), another folder depth, the
files of one corpus gathered in one folder. :class:`AudioIndex` walks the root once and
resolves each relative path in this order:

1. ``exact``: ``root / path`` is a file;
2. ``case``: the one file whose relative path equals ``path`` ignoring case;
3. ``name``: the one file of that name anywhere under the root (or, among several, the one
   sharing the most trailing path components with ``path``, when that is more than the name);
4. ``name-case``: the same, ignoring the case of the name.

Otherwise the path is ``missing`` (no file of that name) or ``ambiguous`` (several, none
closer than the others), with the candidates, for the recipe to list as skipped.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

__all__ = ["AudioIndex", "Resolved", "MISSING", "AMBIGUOUS"]

MISSING = "missing"
AMBIGUOUS = "ambiguous audio"


@dataclass(frozen=True)
class Resolved:
    """Where a listed path was found: ``path`` (None when not found), ``how`` (``exact``,
    ``case``, ``name``, ``name-case``, :data:`MISSING` or :data:`AMBIGUOUS`) and, when
    ambiguous, the candidates."""

    path: Path | None
    how: str
    candidates: tuple[Path, ...] = field(default=())

    @property
    def found(self) -> bool:
        return self.path is not None


def _parts(rel: str) -> tuple[str, ...]:
    return tuple(p for p in PurePosixPath(rel.replace("\\", "/")).parts if p not in ("", ".", "/"))


def _common_tail(a: tuple[str, ...], b: tuple[str, ...]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[-1 - n].lower() == b[-1 - n].lower():
        n += 1
    return n


class AudioIndex:
    """Every file under ``root`` (hidden files and folders left out), indexed once."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._files: set[tuple[str, ...]] = set()
        self._by_rel_lower: dict[tuple[str, ...], list[tuple[str, ...]]] = defaultdict(list)
        self._by_name: dict[str, list[tuple[str, ...]]] = defaultdict(list)
        self._by_name_lower: dict[str, list[tuple[str, ...]]] = defaultdict(list)
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            base = Path(dirpath).relative_to(self.root).parts
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                rel = (*base, name)
                self._files.add(rel)
                self._by_rel_lower[tuple(p.lower() for p in rel)].append(rel)
                self._by_name[name].append(rel)
                self._by_name_lower[name.lower()].append(rel)

    def __len__(self) -> int:
        return len(self._files)

    def _path(self, rel: tuple[str, ...]) -> Path:
        return self.root.joinpath(*rel)

    def _by_tail(self, want: tuple[str, ...], found: list[tuple[str, ...]], how: str) -> Resolved:
        if len(found) == 1:
            return Resolved(self._path(found[0]), how)
        scores = [_common_tail(want, f) for f in found]
        best = max(scores)
        winners = [f for f, s in zip(found, scores) if s == best]
        if best > 1 and len(winners) == 1:
            return Resolved(self._path(winners[0]), how)
        return Resolved(None, AMBIGUOUS, tuple(self._path(f) for f in sorted(found)))

    def resolve(self, rel_path: str) -> Resolved:
        """Find ``rel_path`` (``/`` or ``\\`` separated) under the root; see the module docstring."""
        want = _parts(rel_path)
        if not want:
            return Resolved(None, MISSING)
        if want in self._files:
            return Resolved(self._path(want), "exact")
        same = self._by_rel_lower.get(tuple(p.lower() for p in want), [])
        if len(same) == 1:
            return Resolved(self._path(same[0]), "case")
        name = want[-1]
        if self._by_name.get(name):
            return self._by_tail(want, self._by_name[name], "name")
        if self._by_name_lower.get(name.lower()):
            return self._by_tail(want, self._by_name_lower[name.lower()], "name-case")
        return Resolved(None, MISSING)
