"""Reading and checking EmoBox's fold files (``fold_N/<corpus>_{train,test,valid}_fold_N.jsonl``).

:func:`read_emobox_folds` reads one corpus folder and refuses files whose folds do not
partition the corpus (the rules are in :mod:`metaser.data.recipes.emobox`); the recipe turns
the result into cuts.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metaser.errors import DataError

__all__ = ["EmoboxRecord", "EmoboxFolds", "read_emobox_folds", "parse_json_lines"]

_FILE_RE = re.compile(r"^(?P<corpus>.+)_(?P<part>train|test|valid)_fold_(?P<num>\d+)\.jsonl$")
_LEGACY_RE = re.compile(r"^.+_(train|test|valid)_fold\d+\.jsonl$")
_FOLD_DIR_RE = re.compile(r"^fold_(\d+)$")
_SHOW = 5


@dataclass
class EmoboxRecord:
    """One utterance of the fold files: its first line (``file:line``) and its fields."""

    key: str
    wav: str
    emo: str
    where: str
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class EmoboxFolds:
    """What the fold files say: the records, and for each key its test / valid fold."""

    corpus: str
    records: dict[str, EmoboxRecord]
    test_fold: dict[str, str]
    valid_fold: dict[str, str]
    folds: list[str]
    label_map: dict[str, str]
    notes: list[str] = field(default_factory=list)


def parse_json_lines(path: Path, text: str) -> list[tuple[int, dict]]:
    """(line number, object) of each non-empty line of ``text`` (read from ``path``); DataError
    names the line that is not a JSON object."""
    out = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{lineno}: not a JSON object ({e.msg})") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
        out.append((lineno, obj))
    return out


def _read_jsonl(path: Path) -> list[tuple[int, dict]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {path}: {e}") from None
    return parse_json_lines(path, text)


def _label_map(root: Path) -> dict[str, str]:
    path = root / "label_map.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"cannot read {path}: {e}") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise DataError(f"{path}: expected a JSON object of label -> class names")
    return {str(k): v for k, v in data.items()}


def _fold_files(root: Path) -> tuple[dict[str, dict[str, Path]], str | None, list[str]]:
    """fold number -> {"train"/"test"/"valid": path}, the corpus name of the files, notes."""
    files: dict[str, dict[str, Path]] = {}
    corpora, legacy = set(), []
    dirs = sorted(
        (p for p in root.iterdir() if p.is_dir() and _FOLD_DIR_RE.match(p.name)),
        key=lambda p: int(_FOLD_DIR_RE.match(p.name).group(1)),
    )
    for d in dirs:
        num = str(int(_FOLD_DIR_RE.match(d.name).group(1)))
        for f in sorted(d.iterdir()):
            m = _FILE_RE.match(f.name)
            if m is None:
                legacy += [f.name] if _LEGACY_RE.match(f.name) else []
                continue
            if str(int(m.group("num"))) != num:
                raise DataError(f"{f}: the file names fold {m.group('num')} but lies in {d.name}")
            corpora.add(m.group("corpus"))
            files.setdefault(num, {})[m.group("part")] = f
    if len(corpora) > 1:
        raise DataError(
            f"{root}: fold files of several corpora: {', '.join(sorted(corpora))}",
            hint="pass the folder of one corpus, e.g. EmoBox/data/emodb",
        )
    notes = [f"older fold files not read: {', '.join(sorted(set(legacy))[:_SHOW])}"] if legacy else []
    return files, (corpora.pop() if corpora else None), notes


def _fail(root: Path, what: str, keys: list[str]) -> None:
    shown = ", ".join(keys[:_SHOW]) + (f" and {len(keys) - _SHOW} more" if len(keys) > _SHOW else "")
    raise DataError(
        f"{root}: EmoBox's folds do not partition the corpus: {what}: {shown}",
        hint="metaser rebuilds a fold as 'its test file, its valid file, everything else "
        "for training'; restore EmoBox's files or fix the lists",
    )


def read_emobox_folds(root: str | Path) -> EmoboxFolds:
    """Read and check the fold files of one EmoBox corpus folder (see the module docstring)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"EmoBox corpus folder not found: {root}")
    files, corpus, notes = _fold_files(root)
    if not files:
        raise DataError(
            f"{root}: no fold_N/<corpus>_test_fold_N.jsonl files",
            hint="pass one corpus folder of EmoBox's data/, e.g. EmoBox/data/emodb",
        )
    records: dict[str, EmoboxRecord] = {}
    members: dict[str, dict[str, set[str]]] = {}
    test_fold: dict[str, list[str]] = defaultdict(list)
    valid_fold: dict[str, list[str]] = defaultdict(list)
    for num, parts in files.items():
        missing = [p for p in ("train", "test") if p not in parts]
        if missing:
            raise DataError(
                f"{root}/fold_{num}: no {' and no '.join(missing)} file (<corpus>_{missing[0]}_fold_{num}.jsonl)"
            )
        members[num] = {}
        for part, path in parts.items():
            keys: set[str] = set()
            for lineno, obj in _read_jsonl(path):
                where = f"{path}:{lineno}"
                key, wav, emo = obj.get("key"), obj.get("wav", obj.get("audio")), obj.get("emo", obj.get("label"))
                if not isinstance(key, str) or not key.strip() or not isinstance(wav, str) or emo is None:
                    raise DataError(f"{where}: needs 'key', 'wav' and 'emo' fields")
                if key in keys:
                    raise DataError(f"{where}: key {key!r} listed twice in {path.name}")
                keys.add(key)
                rec = EmoboxRecord(key, wav, str(emo), where, obj)
                old = records.setdefault(key, rec)
                if (old.wav, old.emo) != (rec.wav, rec.emo):
                    raise DataError(
                        f"{where}: key {key!r} has wav {rec.wav!r} / emo {rec.emo!r} here but "
                        f"{old.wav!r} / {old.emo!r} in {old.where}"
                    )
                if part == "test":
                    test_fold[key].append(num)
                elif part == "valid":
                    valid_fold[key].append(num)
            members[num][part] = keys
    for num, parts in members.items():
        for a, b in (("train", "test"), ("train", "valid"), ("test", "valid")):
            both = sorted(parts.get(a, set()) & parts.get(b, set()))
            if both:
                _fail(root, f"fold {num} lists {len(both)} key(s) in both {a} and {b}", both)
    for name, where in (("test", test_fold), ("valid", valid_fold)):
        several = sorted(k for k, ns in where.items() if len(ns) > 1)
        if several:
            _fail(
                root,
                f"{len(several)} key(s) are in the {name} files of several folds "
                f"(e.g. {several[0]}: folds {', '.join(where[several[0]])})",
                several,
            )
    for num, parts in members.items():
        left = sorted(set(records) - set().union(*parts.values()))
        if left:
            _fail(root, f"fold {num}'s files leave out {len(left)} key(s) that other folds list", left)
    return EmoboxFolds(
        corpus=corpus or root.name,
        records=records,
        test_fold={k: v[0] for k, v in test_fold.items()},
        valid_fold={k: v[0] for k, v in valid_fold.items()},
        folds=list(files),
        label_map=_label_map(root),
        notes=notes,
    )
