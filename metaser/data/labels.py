"""Label spaces: class names per task and the CTC character vocabulary.

Both are built from the *training* part of a fold and stored with the run (``labels.json``)
so that train, valid, test and a later exported model agree on every index.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from metaser.errors import DataError

IGNORE_INDEX = -100  # target value for "label unknown for this utterance" (ignored by CE)

# Tasks whose value is read from the supervision itself rather than from supervision.custom.
SUPERVISION_FIELDS = ("speaker", "gender")


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
    """Class names per classification task (``"emotion"`` first) and the CTC vocabulary."""

    classes: dict[str, list[str]] = field(default_factory=dict)
    vocab: CharVocab | None = None

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
        return {"classes": self.classes, "vocab": self.vocab.tokens if self.vocab else None}

    @classmethod
    def from_dict(cls, d: dict) -> LabelSpace:
        vocab = d.get("vocab")
        return cls(
            classes={k: list(v) for k, v in d["classes"].items()},
            vocab=CharVocab(tokens=list(vocab)) if vocab is not None else None,
        )

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False))

    @classmethod
    def load(cls, path: str | Path) -> LabelSpace:
        p = Path(path)
        if not p.is_file():
            raise DataError(f"label file not found: {p}")
        return cls.from_dict(json.loads(p.read_text()))
