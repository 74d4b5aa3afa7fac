"""Label spaces: class names per task, the regression tasks and the CTC character vocabulary;
what a cut's target is for a task (:func:`task_value`, :func:`vote_distribution`).

A label space is built from the *training* part of a fold and stored with the run
(``labels.json``) so that train, valid, test and a later exported model agree on every index.

**The regression rule** (metaser's): a task whose training values are all numbers (int or float,
not bool) is a regression task; one whose values are all strings (or bools) is a classification
task; a field that mixes numbers and strings is a :class:`~metaser.errors.DataError`
(:func:`task_kind`). ``emotion`` is always a classification task.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from metaser.data.manifest import get_field
from metaser.errors import DataError

IGNORE_INDEX = -100  # target value for "label unknown for this utterance" (ignored by CE)

# Tasks whose value is read from the supervision itself rather than from supervision.custom.
SUPERVISION_FIELDS = ("speaker", "gender")

#: task name -> the manifest fields it reads, the first present one wins. IEMOCAP's evaluators
#: rate "activation", which the literature calls arousal: the task ``arousal`` reads either.
FIELD_ALIASES: dict[str, tuple[str, ...]] = {"arousal": ("arousal", "activation")}

#: the custom field holding the annotators' (summed) weight for emotion class ``c``: ``vote_<c>``
VOTE_PREFIX = "vote_"


def is_number(value: Any) -> bool:
    """An int or float (a bool is not a number here: it is a category)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _missing(value: Any) -> bool:
    """None, a blank string or a non-finite number: no value."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    return is_number(value) and not math.isfinite(value)


def task_fields(task: str) -> tuple[str, ...]:
    """The manifest fields task ``task`` reads, in order (:data:`FIELD_ALIASES`)."""
    return FIELD_ALIASES.get(task, (task,))


def task_value(cut: Any, task: str) -> Any:
    """The raw value of ``cut`` for ``task`` (its first present field), or None."""
    for name in task_fields(task):
        value = get_field(cut, name)
        if not _missing(value):
            return value
    return None


def task_kind(task: str, values: list[tuple[str, Any]]) -> str:
    """``"regression"`` or ``"classification"`` for ``task`` from its training values ((cut id,
    value) pairs, none missing): regression when every value is a number. DataError when the
    values mix numbers and strings."""
    numbers = [(i, v) for i, v in values if is_number(v)]
    if task == "emotion" or not numbers:
        return "classification"
    if len(numbers) == len(values):
        return "regression"
    other = next((i, v) for i, v in values if not is_number(v))
    raise DataError(
        f"task '{task}': its training values mix numbers ({numbers[0][1]!r} in cut {numbers[0][0]}) and "
        f"strings ({other[1]!r} in cut {other[0]}); a task is regression when all its values are numbers, "
        "classification when none is",
        hint="fix the manifest (the csv recipe's --regression COLUMN stores a column as numbers and refuses "
        "cells that are not)",
    )


def vote_distribution(cut: Any, classes: list[str]) -> list[float] | None:
    """The annotators' distribution over ``classes``: vote_c / sum_c vote_c from the numeric
    custom fields ``vote_<c>`` (a class without its field counts 0), or None when the cut has
    no such field or they sum to 0 (the caller falls back to the hard label). DataError for a
    vote that is not a number or is negative."""
    votes = []
    for c in classes:
        v = get_field(cut, f"{VOTE_PREFIX}{c}")
        if v is not None and (not is_number(v) or not math.isfinite(v) or v < 0):
            raise DataError(f"cut {cut.id}: field '{VOTE_PREFIX}{c}' = {v!r} is not a vote weight (a number >= 0)")
        votes.append(None if v is None else float(v))
    total = sum(v for v in votes if v is not None)
    if all(v is None for v in votes) or total <= 0:
        return None
    return [(v or 0.0) / total for v in votes]


@dataclass
class CharVocab:
    """Character vocabulary for CTC. Index 0 is the blank; ``tokens[i]`` is index ``i + 1``.

    Space is a token (written ``" "``) so greedy decoding yields words directly.
    """

    tokens: list[str] = field(default_factory=list)

    BLANK: ClassVar[int] = 0

    @staticmethod
    def normalize(text: str) -> str:
        """Lower-case, strip accents-free punctuation except apostrophes, squeeze spaces."""
        text = unicodedata.normalize("NFC", text).lower()
        text = re.sub(r"[^\w' ]+", " ", text)
        text = text.replace("_", " ")
        return re.sub(r"\s+", " ", text).strip()

    @classmethod
    def build(cls, texts: Iterable[str]) -> CharVocab:
        chars: set[str] = set()
        for t in texts:
            chars.update(cls.normalize(t))
        return cls(tokens=sorted(chars))

    @property
    def size(self) -> int:
        """Number of CTC outputs including the blank."""
        return len(self.tokens) + 1

    def encode(self, text: str) -> list[int]:
        """Characters unseen in training are dropped (and so never targets)."""
        index = {c: i + 1 for i, c in enumerate(self.tokens)}
        return [index[c] for c in self.normalize(text) if c in index]

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.tokens[i - 1] for i in ids if 0 < i <= len(self.tokens))

    def greedy_decode(self, frame_ids: Iterable[int]) -> str:
        """Collapse repeats, drop blanks (standard greedy CTC)."""
        out: list[int] = []
        prev = -1
        for i in frame_ids:
            i = int(i)
            if i != prev and i != self.BLANK:
                out.append(i)
            prev = i
        return re.sub(r"\s+", " ", self.decode(out)).strip()


@dataclass
class LabelSpace:
    """Class names per classification task (``"emotion"`` first when it is the main task), the
    regression tasks (values, no classes) and the CTC vocabulary."""

    classes: dict[str, list[str]] = field(default_factory=dict)
    vocab: CharVocab | None = None
    regression: list[str] = field(default_factory=list)

    def index(self, task: str, value: str | None) -> int:
        if value is None:
            return IGNORE_INDEX
        try:
            return self.classes[task].index(value)
        except ValueError:
            return IGNORE_INDEX

    def num_classes(self, task: str) -> int:
        return len(self.classes[task])

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"classes": self.classes, "vocab": self.vocab.tokens if self.vocab else None}
        if self.regression:  # written only when there is one: label files without them stay as they were
            d["regression"] = list(self.regression)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> LabelSpace:
        vocab = d.get("vocab")
        return cls(
            classes={k: list(v) for k, v in d["classes"].items()},
            vocab=CharVocab(tokens=list(vocab)) if vocab is not None else None,
            regression=list(d.get("regression") or []),
        )

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False))

    @classmethod
    def load(cls, path: str | Path) -> LabelSpace:
        p = Path(path)
        if not p.is_file():
            raise DataError(f"label file not found: {p}")
        return cls.from_dict(json.loads(p.read_text()))
