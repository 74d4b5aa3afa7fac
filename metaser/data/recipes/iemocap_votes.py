"""IEMOCAP's per-annotator categorical lines -> a vote distribution over the 4 classes.

Under each turn line of an EmoEvaluation file come the annotators' lines::

    [6.2901 - 8.2357]	Ses01F_impro01_F000	neu	[2.5000, 2.5000, 2.5000]
    C-E2:	Neutral state;	()
    C-E3:	Frustration; Anger;	(mildly annoyed)
    C-E4:	Neutral state;	()
    C-F1:	Neutral state;	(curious)
    A-E3:	val 3; act 2; dom  2;	()

``C-E<n>`` lines are the evaluators' categories (one or several, ``;``-separated, then a
comment in parentheses); ``C-F<n>`` / ``C-M<n>`` are the actors' self-evaluations; ``A-...``
lines are dimensional ratings (valence / activation / dominance), not categories, and are
ignored here.

The rule (metaser's; the corpus documentation gives none for soft labels):

* each annotator line has weight 1, split equally over the categories it lists (a line
  "Frustration; Anger;" gives 0.5 to each), so every annotator counts the same;
* categories map to the 4 classes as the paper's protocol does: Neutral (state) -> neu,
  Happiness -> hap, Excited -> hap (IEMOCAP's merge), Anger -> ang, Sadness -> sad; the
  weight of any other category (Frustration, Surprise, Fear, Disgust, Other...) is dropped
  and counted;
* only the evaluators (``C-E``) vote by default: the corpus' own labels are the evaluators'
  majority, and the self-evaluations exist for part of the corpus only. ``self_evaluations=True``
  adds the ``C-F`` / ``C-M`` lines with the same weight.

Each cut then carries the numeric fields ``vote_ang``, ``vote_hap``, ``vote_neu``, ``vote_sad``
(the summed weights) and ``votes_dropped`` (the dropped weight). A turn without any categorical
line gets none of these fields.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

__all__ = [
    "VOTE_CLASSES",
    "VOTE_PREFIX",
    "VOTES_DROPPED",
    "CATEGORY_CLASSES",
    "AnnotatorLine",
    "TurnVotes",
    "parse_annotator_line",
    "count_votes",
    "vote_fields",
    "summarize_votes",
]

#: the classes votes are counted for; the field of class ``c`` is ``vote_<c>``
VOTE_CLASSES: tuple[str, ...] = ("ang", "hap", "neu", "sad")
VOTE_PREFIX = "vote_"
VOTES_DROPPED = "votes_dropped"

#: annotator category (lower case) -> class
CATEGORY_CLASSES: dict[str, str] = {
    "neutral state": "neu",
    "neutral": "neu",
    "happiness": "hap",
    "happy": "hap",
    "excited": "hap",
    "excitement": "hap",
    "anger": "ang",
    "angry": "ang",
    "sadness": "sad",
    "sad": "sad",
}

_LINE_RE = re.compile(r"^C-(?P<who>[A-Za-z])(?P<num>\d+)\s*:\s*(?P<body>.*)$")


@dataclass(frozen=True)
class AnnotatorLine:
    """One ``C-<who><n>:`` line: who (``E`` evaluator, ``F`` / ``M`` self), and its categories."""

    annotator: str  # "E2", "F1", ...
    categories: tuple[str, ...]

    @property
    def is_self(self) -> bool:
        return not self.annotator.upper().startswith("E")


def parse_annotator_line(line: str) -> AnnotatorLine | None:
    """An annotator's categorical line, or None for any other line (turn, ``A-`` ratings...).

    The comment in parentheses is cut off; categories are split on ``;`` and stripped; an
    ``Other:<text>`` category keeps only ``Other``.
    """
    m = _LINE_RE.match(line.strip())
    if m is None:
        return None
    body = m.group("body")
    if "(" in body:
        body = body[: body.index("(")]
    cats = tuple(c.split(":", 1)[0].strip() for c in body.split(";"))
    return AnnotatorLine(m.group("who").upper() + m.group("num"), tuple(c for c in cats if c))


@dataclass
class TurnVotes:
    """The votes of one turn: class -> weight, the dropped weight per category."""

    votes: dict[str, float] = field(default_factory=lambda: dict.fromkeys(VOTE_CLASSES, 0.0))
    dropped: Counter = field(default_factory=Counter)  # category -> dropped weight
    lines: int = 0  # annotator lines counted

    @property
    def dropped_total(self) -> float:
        return float(sum(self.dropped.values()))


def count_votes(lines: list[AnnotatorLine], *, self_evaluations: bool = False) -> TurnVotes | None:
    """The weighted votes of one turn's annotator lines (see the module docstring), or None
    when no line counts (none present, or only self-evaluations that are not counted)."""
    out = TurnVotes()
    for line in lines:
        if (line.is_self and not self_evaluations) or not line.categories:
            continue
        out.lines += 1
        weight = 1.0 / len(line.categories)
        for cat in line.categories:
            cls = CATEGORY_CLASSES.get(re.sub(r"\s+", " ", cat).lower())
            if cls is None:
                out.dropped[cat] += weight
            else:
                out.votes[cls] += weight
    return out if out.lines else None


def vote_fields(votes: TurnVotes | None) -> dict[str, float]:
    """The cut's custom fields: ``vote_<class>`` for each class and ``votes_dropped``
    (rounded to 6 decimals: 1/3 stays 0.333333); {} for None."""
    if votes is None:
        return {}
    out = {f"{VOTE_PREFIX}{c}": round(votes.votes[c], 6) for c in VOTE_CLASSES}
    out[VOTES_DROPPED] = round(votes.dropped_total, 6)
    return out


def summarize_votes(per_cut: list[TurnVotes | None], *, self_evaluations: bool) -> dict:
    """The ``votes`` entry of the summary: cuts with / without votes, kept and dropped weight
    (dropped per category), the weight of each class, the rule."""
    have = [v for v in per_cut if v is not None]
    dropped: Counter = Counter()
    for v in have:
        dropped.update(v.dropped)
    per_class = {c: round(sum(v.votes[c] for v in have), 4) for c in VOTE_CLASSES}
    return {
        "cuts_with_votes": len(have),
        "cuts_without_votes": len(per_cut) - len(have),
        "annotator_lines": sum(v.lines for v in have),
        "votes_kept": round(sum(per_class.values()), 4),
        "votes_by_class": per_class,
        "votes_dropped": round(sum(dropped.values()), 4),
        "dropped_by_category": {k: round(dropped[k], 4) for k in sorted(dropped)},
        "self_evaluations": "counted" if self_evaluations else "not counted",
        "rule": "each annotator line weighs 1, split equally over its categories; exc -> hap",
    }
