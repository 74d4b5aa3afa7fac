"""Metadata that metaser's own recipes read from file names, for lists that carry only labels.

EmoBox's fold files and track-2 lists name the audio and its emotion, and little else; for the
corpora metaser has a recipe for, the file name says more. :func:`name_metadata` returns what
the recipe of ``corpus`` would store for a file of that name:

* ``emodb`` (``03a01Fa``): speaker, gender, text (+ ``text_raw``, ``text_id``, ``version``, ``age``);
* ``ravdess`` (``03-01-05-02-01-01-12``): speaker (the actor), gender, text (+ ``text_raw``,
  ``intensity``, ``statement``, ``repetition``);
* ``iemocap`` (``Ses01F_impro01_M003``): speaker, gender, ``session``, ``style``, ``dialog``.

Other corpora, and names that do not parse, give nothing.
"""

from __future__ import annotations

from typing import Any

from metaser.data.manifest import SESSION, STYLE, TEXT_RAW, clean_text
from metaser.data.recipes.emodb import SPEAKERS as EMODB_SPEAKERS
from metaser.data.recipes.emodb import TEXTS as EMODB_TEXTS
from metaser.data.recipes.emodb import parse_emodb_name
from metaser.data.recipes.iemocap import parse_iemocap_id
from metaser.data.recipes.ravdess import INTENSITIES, STATEMENTS, parse_ravdess_name
from metaser.errors import DataError

__all__ = ["name_metadata", "NAME_CORPORA"]

#: corpora whose file names :func:`name_metadata` reads
NAME_CORPORA = ("emodb", "ravdess", "iemocap")


def _emodb(stem: str) -> dict[str, Any]:
    parsed = parse_emodb_name(stem)
    if parsed is None:
        return {}
    gender, age = EMODB_SPEAKERS[parsed["speaker"]]
    text = EMODB_TEXTS[parsed["text_id"]]
    return {
        "speaker": parsed["speaker"],
        "gender": gender,
        "text": clean_text(text),
        TEXT_RAW: text,
        "text_id": parsed["text_id"],
        "version": parsed["version"],
        "age": age,
    }


def _ravdess(stem: str) -> dict[str, Any]:
    try:
        codes = parse_ravdess_name(stem)
    except DataError:
        return {}
    text = STATEMENTS[codes["statement"]]
    return {
        "speaker": codes["actor"],
        "gender": "male" if int(codes["actor"]) % 2 else "female",
        "text": clean_text(text),
        TEXT_RAW: text,
        "intensity": INTENSITIES[codes["intensity"]],
        "statement": codes["statement"],
        "repetition": codes["repetition"],
    }


def _iemocap(stem: str) -> dict[str, Any]:
    try:
        meta = parse_iemocap_id(stem)
    except DataError:
        return {}
    return {
        "speaker": meta.speaker,
        "gender": meta.gender,
        SESSION: meta.session,
        STYLE: meta.style,
        "dialog": meta.dialog,
    }


_READERS = {"emodb": _emodb, "ravdess": _ravdess, "iemocap": _iemocap}


def name_metadata(corpus: str, stem: str) -> dict[str, Any]:
    """The fields the ``corpus`` recipe reads from the file name ``stem``; {} when none."""
    reader = _READERS.get(corpus.strip().lower())
    return reader(stem) if reader is not None else {}
