"""Speaker-independent cross-validation folds with a validation split inside each.

Two schemes (:class:`~metaser.data.config.SplitConfig`):

* ``group_by="session"`` (IEMOCAP): leave-one-session-out; fold ``fold1`` tests session
  ``"1"`` (one pair of speakers) and trains on the others.
* ``group_by="speaker"`` (corpora without sessions, e.g. EmoDB): each speaker its own test
  group, or with ``num_folds=k`` the speakers spread over ``k`` folds balancing the
  utterance counts (greedy, largest group first; deterministic).
* ``group_by="fold"`` (folds made elsewhere: EmoBox, a CSV ``fold`` column): the folds are the
  manifest's, never re-split. Fold k (in the natural order of the values of ``custom["fold"]``)
  tests the cuts whose ``fold`` is its value; cuts whose ``valid_fold`` is that value are its
  validation part (EmoBox's official valid files); every other cut trains. Without a
  ``valid_fold`` for the fold, the validation part is split from the training part as for the
  other schemes. Such folds are only as speaker-independent as their maker made them
  (EmoBox's EmoDB folds are not): the speaker check is not applied.

The function that builds the folds also checks them (:func:`check_fold`): the test speakers
never occur in train or valid, the three parts are disjoint and together hold every cut. A
violation (e.g. a speaker recorded in two sessions) raises :class:`~metaser.errors.DataError`.
"""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from lhotse import CutSet

from metaser.data.config import SplitConfig
from metaser.data.manifest import get_field
from metaser.errors import ConfigError, DataError

__all__ = ["FoldSplit", "make_folds", "check_fold", "describe_folds", "FOLD_FIELD", "VALID_FOLD_FIELD"]

#: the custom fields of ``group_by="fold"``: the test fold of a cut, and its validation fold
FOLD_FIELD = "fold"
VALID_FOLD_FIELD = "valid_fold"


@dataclass
class FoldSplit:
    """One cross-validation fold: cut ids of its train, valid and test parts."""

    index: int
    name: str
    test_group: str
    train_ids: list[str] = field(default_factory=list)
    valid_ids: list[str] = field(default_factory=list)
    test_ids: list[str] = field(default_factory=list)

    def subsets(self, cuts: CutSet) -> tuple[CutSet, CutSet, CutSet]:
        """(train, valid, test) CutSets, each in manifest order."""
        known = {c.id for c in cuts}
        missing = [i for i in self.train_ids + self.valid_ids + self.test_ids if i not in known]
        if missing:
            raise DataError(
                f"{self.name}: {len(missing)} cut ids of the fold are not in the manifest (first: {missing[0]!r})",
                hint="the folds were built from a different manifest; rebuild them",
            )
        parts = []
        for ids in (self.train_ids, self.valid_ids, self.test_ids):
            keep = set(ids)
            parts.append(CutSet.from_cuts(c for c in cuts if c.id in keep))
        return parts[0], parts[1], parts[2]


def _natural_key(text: str) -> list[Any]:
    """ "Ses2" < "Ses10": digits compare as numbers."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", text) if t]


def _require(cuts: list[Any], name: str, hint: str | None = None) -> dict[str, str]:
    """cut id -> value of field ``name``; every cut must have it."""
    values: dict[str, str] = {}
    missing = []
    for c in cuts:
        v = get_field(c, name)
        if v is None:
            missing.append(c.id)
        else:
            values[c.id] = str(v)
    if missing:
        raise DataError(
            f"{len(missing)} of {len(cuts)} cuts have no '{name}' field "
            f"(first: {missing[0]!r}); speaker-independent folds need it on every cut",
            hint=hint,
        )
    return values


def _assign_groups(counts: dict[str, int], num_folds: int | None) -> list[list[str]]:
    """Groups per fold: one each (None), or greedily balanced over ``num_folds`` folds."""
    groups = sorted(counts, key=_natural_key)
    if num_folds is None:
        return [[g] for g in groups]
    if num_folds > len(groups):
        raise ConfigError(
            f"split.num_folds: {num_folds} folds need at least {num_folds} groups, the corpus has {len(groups)}"
        )
    folds: list[list[str]] = [[] for _ in range(num_folds)]
    sizes = [0] * num_folds
    for g in sorted(groups, key=lambda g: (-counts[g], _natural_key(g))):
        i = min(range(num_folds), key=lambda k: (sizes[k], k))
        folds[i].append(g)
        sizes[i] += counts[g]
    return [sorted(f, key=_natural_key) for f in folds]


def _largest_remainder(sizes: dict[Any, int], total: int) -> dict[Any, int]:
    """Split ``total`` over strata proportionally to ``sizes`` (exact sum, deterministic)."""
    n = sum(sizes.values())
    if n == 0 or total == 0:
        return {k: 0 for k in sizes}
    quotas = {k: total * s / n for k, s in sizes.items()}
    alloc = {k: int(q) for k, q in quotas.items()}
    rest = total - sum(alloc.values())
    order = sorted(sizes, key=lambda k: (-(quotas[k] - alloc[k]), str(k)))
    for k in order[:rest]:
        alloc[k] += 1
    return alloc


def _split_valid(
    train: list[Any], split: SplitConfig, rng: random.Random, speakers: dict[str, str], fold: str
) -> tuple[list[str], list[str]]:
    """(train ids, valid ids) of the training part of one fold."""
    ids = [c.id for c in train]
    if split.valid_fraction == 0 or not ids:
        return ids, []
    target = round(split.valid_fraction * len(ids))
    if split.valid_by == "utterance":
        strata: dict[Any, list[str]] = defaultdict(list)
        for c in train:
            strata[str(get_field(c, "emotion"))].append(c.id)
        alloc = _largest_remainder({k: len(v) for k, v in strata.items()}, max(target, 1))
        valid: set[str] = set()
        for key in sorted(strata):
            members = sorted(strata[key])
            rng.shuffle(members)
            valid.update(members[: alloc[key]])
    else:
        per_speaker = Counter(speakers[i] for i in ids)
        if len(per_speaker) < 2:
            raise DataError(
                f"{fold}: valid_by=speaker needs at least two training speakers, found {len(per_speaker)}",
                hint="use split.valid_by=utterance",
            )
        order = sorted(per_speaker, key=_natural_key)
        rng.shuffle(order)
        chosen: list[str] = []
        held = 0
        for spk in order[:-1]:  # always leave at least one speaker for training
            if chosen and held + per_speaker[spk] / 2 > target:
                break  # adding this speaker would overshoot more than it helps
            chosen.append(spk)
            held += per_speaker[spk]
        held_out = set(chosen)
        valid = {i for i in ids if speakers[i] in held_out}
    return [i for i in ids if i not in valid], [i for i in ids if i in valid]


def check_fold(
    fold: FoldSplit,
    speakers: dict[str, str],
    all_ids: list[str],
    *,
    sessions: dict[str, str] | None = None,
    valid_by: str = "utterance",
    speaker_independent: bool = True,
) -> None:
    """Raise DataError unless ``fold`` is a speaker-independent partition of ``all_ids``.

    speakers: cut id -> speaker; sessions: cut id -> session (only to explain a failure).
    speaker_independent: False checks the partition only (folds made elsewhere).
    """
    parts = {"train": fold.train_ids, "valid": fold.valid_ids, "test": fold.test_ids}
    for name, ids in parts.items():
        if len(set(ids)) != len(ids):
            raise DataError(f"{fold.name}: the {name} part lists a cut twice")
    names = list(parts)
    for a in range(3):
        for b in range(a + 1, 3):
            both = set(parts[names[a]]) & set(parts[names[b]])
            if both:
                raise DataError(
                    f"{fold.name}: {len(both)} cuts are in both {names[a]} and {names[b]} (first: {sorted(both)[0]!r})"
                )
    union = set(fold.train_ids) | set(fold.valid_ids) | set(fold.test_ids)
    if union != set(all_ids) or len(all_ids) != len(set(all_ids)):
        raise DataError(
            f"{fold.name}: train + valid + test hold {len(union)} cuts, "
            f"the manifest has {len(set(all_ids))} distinct ids of {len(all_ids)}"
        )
    if not speaker_independent:
        return
    spk = {k: {speakers[i] for i in ids} for k, ids in parts.items()}
    leaked = spk["test"] & (spk["train"] | spk["valid"])
    if leaked:
        where = ""
        if sessions is not None:
            s = sorted(leaked)[0]
            found = sorted({sessions[i] for i in all_ids if speakers[i] == s}, key=_natural_key)
            where = f"; speaker {s!r} occurs in sessions {', '.join(found)}"
        raise DataError(
            f"{fold.name}: test speakers {sorted(leaked)} also occur in train/valid, "
            f"the fold is not speaker-independent{where}",
            hint="fix the speaker/session fields of the manifest, or use split.group_by=speaker",
        )
    if valid_by == "speaker" and spk["valid"] & spk["train"]:
        raise DataError(
            f"{fold.name}: validation speakers {sorted(spk['valid'] & spk['train'])} "
            "also occur in train (valid_by=speaker)"
        )


def _given_folds(cut_list: list[Any], split: SplitConfig) -> list[FoldSplit]:
    """``group_by="fold"``: the folds the manifest's ``fold`` / ``valid_fold`` fields name."""
    all_ids = [c.id for c in cut_list]
    fold_of = {c.id: str(v) for c in cut_list if (v := get_field(c, FOLD_FIELD)) is not None}
    valid_of = {c.id: str(v) for c in cut_list if (v := get_field(c, VALID_FOLD_FIELD)) is not None}
    if not fold_of:
        raise DataError(
            f"the manifest has no '{FOLD_FIELD}' field: split.group_by=fold uses the folds it names",
            hint="prepare the corpus with `metaser prepare emobox` (or a CSV with a fold column), "
            "or use split.group_by=speaker / session",
        )
    values = sorted(set(fold_of.values()), key=_natural_key)
    if split.num_folds is not None and split.num_folds != len(values):
        raise ConfigError(
            f"split.num_folds: {split.num_folds}, but the manifest's '{FOLD_FIELD}' field names "
            f"{len(values)} folds ({', '.join(values)})",
            hint="set split.num_folds=null with split.group_by=fold",
        )
    both = sorted(i for i in valid_of if i in fold_of and fold_of[i] == valid_of[i])
    if both:
        raise DataError(
            f"{len(both)} cut(s) are in the test and the validation part of the same fold "
            f"(first: {both[0]!r}, fold {fold_of[both[0]]})"
        )
    speakers = {c.id: str(get_field(c, "speaker")) for c in cut_list}
    if split.valid_by == "speaker":
        speakers = _require(cut_list, "speaker", hint="use split.valid_by=utterance")
    folds = []
    for index, value in enumerate(values):
        name = f"fold{index + 1}"
        test = [i for i in all_ids if fold_of.get(i) == value]
        official = [i for i in all_ids if valid_of.get(i) == value]
        rest = [c for c in cut_list if fold_of.get(c.id) != value and valid_of.get(c.id) != value]
        if official:
            train, valid = [c.id for c in rest], official
        else:
            train, valid = _split_valid(rest, split, random.Random(f"{split.seed}:{name}"), speakers, name)
        fold = FoldSplit(index=index, name=name, test_group=value, train_ids=train, valid_ids=valid, test_ids=test)
        check_fold(fold, speakers, all_ids, valid_by=split.valid_by, speaker_independent=False)
        folds.append(fold)
    return folds


def make_folds(cuts: CutSet, split: SplitConfig) -> list[FoldSplit]:
    """Build (and check) the cross-validation folds of ``cuts``; see the module docstring."""
    cut_list = list(cuts)
    if not cut_list:
        raise DataError("cannot build folds from an empty manifest")
    if split.group_by == "fold":
        return _given_folds(cut_list, split)
    all_ids = [c.id for c in cut_list]
    speakers = _require(cut_list, "speaker")
    sessions = None
    if split.group_by == "session":
        have = [c for c in cut_list if get_field(c, "session") is not None]
        if not have:
            raise DataError(
                "the manifest has no 'session' field: cannot make leave-one-session-out folds",
                hint="use split.group_by=speaker (optionally split.num_folds=k)",
            )
        sessions = _require(cut_list, "session", hint="use split.group_by=speaker")
        groups = sessions
    else:
        groups = speakers
    counts = Counter(groups[i] for i in all_ids)
    folds = []
    for index, test_groups in enumerate(_assign_groups(counts, split.num_folds)):
        name = f"fold{index + 1}"
        in_test = set(test_groups)
        test = [c.id for c in cut_list if groups[c.id] in in_test]
        train_part = [c for c in cut_list if groups[c.id] not in in_test]
        rng = random.Random(f"{split.seed}:{name}")
        train, valid = _split_valid(train_part, split, rng, speakers, name)
        fold = FoldSplit(
            index=index, name=name, test_group="+".join(test_groups), train_ids=train, valid_ids=valid, test_ids=test
        )
        check_fold(fold, speakers, all_ids, sessions=sessions, valid_by=split.valid_by)
        folds.append(fold)
    return folds


def describe_folds(folds: list[FoldSplit], cuts: CutSet) -> list[dict[str, Any]]:
    """Per fold: utterance counts, counts per emotion and the speakers of each part."""
    by_id = {c.id: c for c in cuts}
    out = []
    for f in folds:
        row: dict[str, Any] = {
            "fold": f.name,
            "test_group": f.test_group,
            "utterances": {},
            "emotions": {},
            "speakers": {},
        }
        for part, ids in (("train", f.train_ids), ("valid", f.valid_ids), ("test", f.test_ids)):
            emos = Counter(str(get_field(by_id[i], "emotion")) for i in ids)
            spks = {str(get_field(by_id[i], "speaker")) for i in ids}
            row["utterances"][part] = len(ids)
            row["emotions"][part] = dict(sorted(emos.items()))
            row["speakers"][part] = sorted(spks, key=_natural_key)
        out.append(row)
    return out
