"""The evaluators' categorical lines of one demo turn (``C-E2:\tAnger;\t()``...), as IEMOCAP has them.

Several evaluators per turn (3, sometimes 4, from a pool ``E1``..``E6``), a majority of whom
choose the turn's own category (the corpus label is the evaluators' majority); the others pick
another of the 4 classes' categories or, less often, a non-target one (Frustration, Surprise,
Fear, Disgust, Other); some lines name two categories; about 40 % of the turns also carry the
actor's self-evaluation (``C-F1`` / ``C-M1``). ``xxx`` turns have no majority: each evaluator a
different category.

Every draw comes from the generator passed in, which the writer seeds apart from the one of
the audio, times and ratings (:mod:`~metaser.experiments.demo.corpus.iemocap_layout`), so these
lines never change any other byte of the corpus.
"""

from __future__ import annotations

import numpy as np

from metaser.experiments.demo.corpus.design import CATEGORY

__all__ = ["EVALUATORS", "TARGET_CATEGORIES", "OTHER_CATEGORIES", "evaluator_lines"]

EVALUATORS = ("E1", "E2", "E3", "E4", "E5", "E6")
TARGET_CATEGORIES = ("Neutral state", "Happiness", "Excited", "Anger", "Sadness")
OTHER_CATEGORIES = ("Frustration", "Surprise", "Fear", "Disgust", "Other")
P_FOUR_EVALUATORS = 0.2
P_MINORITY_AGREES = 0.5  # an evaluator beyond the majority also picks the turn's category
P_OTHER_IS_TARGET = 0.6  # a disagreeing evaluator picks one of the 4 classes (else a non-target)
P_SECOND_CATEGORY = 0.15
P_SELF_EVALUATION = 0.4


def _pick(options: tuple[str, ...], exclude: set[str], rng: np.random.Generator) -> str:
    pool = [c for c in options if c not in exclude]
    return pool[int(rng.integers(len(pool)))]


def _disagree(own: str | None, rng: np.random.Generator) -> str:
    if rng.random() < P_OTHER_IS_TARGET:
        return _pick(TARGET_CATEGORIES, {own} if own else set(), rng)
    return _pick(OTHER_CATEGORIES, {own} if own else set(), rng)


def _line(who: str, cats: list[str]) -> str:
    return f"C-{who}:\t{'; '.join(cats)};\t()"


def evaluator_lines(label: str, gender: str, rng: np.random.Generator) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """(the ``C-`` lines of one turn, in file order; [(annotator, categories)] of the same lines).

    label: the turn's label (``neu``, ``exc``, ``fru``, ``xxx``...); gender: ``F`` / ``M`` of the
    speaking actor (names the self-evaluation line).
    """
    own = CATEGORY[label][0] if label in CATEGORY else None
    n = 4 if rng.random() < P_FOUR_EVALUATORS else 3
    who = [EVALUATORS[i] for i in sorted(rng.choice(len(EVALUATORS), size=n, replace=False))]
    if own is None:  # no majority: every evaluator a different category
        pool = TARGET_CATEGORIES + OTHER_CATEGORIES
        picks = [[pool[i]] for i in rng.choice(len(pool), size=n, replace=False)]
    else:
        majority = n // 2 + 1
        agree = [True] * majority + [bool(rng.random() < P_MINORITY_AGREES) for _ in range(n - majority)]
        agree = [agree[i] for i in rng.permutation(n)]
        picks = [[own] if a else [_disagree(own, rng)] for a in agree]
    for cats in picks:
        if rng.random() < P_SECOND_CATEGORY:
            cats.append(_pick(TARGET_CATEGORIES + OTHER_CATEGORIES, set(cats), rng))
    records = list(zip(who, picks))
    if rng.random() < P_SELF_EVALUATION:
        mine = own if own is not None and rng.random() < 0.7 else _disagree(own, rng)
        records.append((f"{gender}1", [mine]))
    return [_line(w, c) for w, c in records], records
