"""The paper's Tables I-IV as data: load ``tables.yaml`` and look rows up by stable id.

Tables are named by the paper's Roman numerals; the ablation studies of ``metaser ablate``
name the same tables too (``modules`` = II, ``fusion`` = III, ``tasks`` = IV, ``comparison``
= I). Values are floats in percent, exactly as printed (``72.70`` is stored as ``72.7``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import Any

import yaml

from metaser.errors import ConfigError, MetaserError

__all__ = [
    "ENCODERS",
    "ENCODER_NAMES",
    "TABLES",
    "STUDY_TABLES",
    "TASK_ORDER",
    "PaperRow",
    "PaperTable",
    "load_tables",
    "paper_table",
    "paper_row",
    "row_ids",
    "tasks_slug",
]

#: The paper's three encoders, in its column order: metaser key -> the paper's name.
ENCODER_NAMES: dict[str, str] = {"wav2vec2": "Wav2Vec-2.0", "hubert": "HuBert", "wavlm": "WavLM"}
ENCODERS: tuple[str, ...] = tuple(ENCODER_NAMES)

TABLES: tuple[str, ...] = ("I", "II", "III", "IV")

#: ``metaser ablate --study`` name -> the paper's table.
STUDY_TABLES: dict[str, str] = {"comparison": "I", "modules": "II", "fusion": "III", "tasks": "IV"}

#: The order of the auxiliary tasks in Table IV's row names and in the ``tasks`` row ids.
TASK_ORDER: tuple[str, ...] = ("gender", "speaker", "style", "asr")

_DATA_FILE = "tables.yaml"


@dataclass(frozen=True)
class PaperRow:
    """One row of a paper table.

    ``values`` maps an encoder key to that encoder's figures (``{"ua": 77.74, ...}``); a row
    that is one system whatever the encoder (Table I's prior art) has the single key ``"*"``.
    ``name`` is the paper's row label; ``{encoder}`` in it stands for the paper's encoder name.
    """

    id: str
    name: str
    group: str | None
    cv: str | None
    values: Mapping[str, Mapping[str, float]]

    @property
    def per_encoder(self) -> bool:
        return "*" not in self.values

    def label(self, encoder: str | None = None) -> str:
        """The paper's row label, with ``{encoder}`` filled in for a per-encoder row."""
        if "{encoder}" in self.name:
            if encoder is None:
                return self.name.replace("{encoder}", "<encoder>")
            return self.name.replace("{encoder}", ENCODER_NAMES[encoder])
        return self.name


@dataclass(frozen=True)
class PaperTable:
    """One table: its Roman numeral, the paper's title, its figure keys in column order
    (``metric_names`` gives the paper's column labels), its rows in the paper's order and the
    paper's footnote, if any. Read-only: the tables are loaded once and shared."""

    id: str
    title: str
    metrics: tuple[str, ...]
    metric_names: Mapping[str, str]
    rows: tuple[PaperRow, ...]
    note: str | None = None

    def row(self, row_id: str) -> PaperRow:
        for r in self.rows:
            if r.id == row_id:
                return r
        raise ConfigError(
            f"paper Table {self.id} has no row {row_id!r}", hint=f"rows: {', '.join(r.id for r in self.rows)}"
        )


def _bad(msg: str) -> MetaserError:
    return MetaserError(f"metaser/paper/{_DATA_FILE}: {msg}")


def _figures(raw: Any, metrics: tuple[str, ...], where: str) -> dict[str, float]:
    if not isinstance(raw, Mapping) or set(raw) != set(metrics):
        got = sorted(raw) if isinstance(raw, Mapping) else raw
        raise _bad(f"{where}: expected the figures {list(metrics)}, got {got!r}")
    out = {}
    for m in metrics:
        v = raw[m]
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _bad(f"{where}.{m}: expected a number, got {v!r}")
        out[m] = float(v)
    return out


def _parse_row(raw: Any, table: str, metrics: tuple[str, ...]) -> PaperRow:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("id"), str) or not isinstance(raw.get("name"), str):
        raise _bad(f"Table {table}: every row needs a string id and name, got {raw!r}")
    where = f"Table {table} row {raw['id']}"
    present = [e for e in ENCODERS if e in raw]
    if present:
        if len(present) != len(ENCODERS):
            raise _bad(f"{where}: has {present}, needs all of {list(ENCODERS)}")
        values = {e: MappingProxyType(_figures(raw[e], metrics, f"{where}.{e}")) for e in ENCODERS}
    else:
        values = {"*": MappingProxyType(_figures({m: raw[m] for m in metrics if m in raw}, metrics, where))}
    known = {"id", "name", "group", "cv", *ENCODERS, *metrics}
    extra = sorted(set(raw) - known)
    if extra:
        raise _bad(f"{where}: unknown keys {extra}")
    return PaperRow(
        id=raw["id"], name=raw["name"], group=raw.get("group"), cv=raw.get("cv"), values=MappingProxyType(values)
    )


def _parse(doc: Any) -> Mapping[str, PaperTable]:
    if not isinstance(doc, Mapping) or not isinstance(doc.get("tables"), Mapping):
        raise _bad("expected a mapping with 'tables'")
    if doc.get("encoders") != ENCODER_NAMES:
        raise _bad(f"encoders: expected {ENCODER_NAMES}, got {doc.get('encoders')!r}")
    metric_names = dict(doc.get("metrics") or {})
    if list(doc["tables"]) != list(TABLES):
        raise _bad(f"tables: expected {list(TABLES)} in that order, got {list(doc['tables'])}")
    out = {}
    for tid, raw in doc["tables"].items():
        metrics = tuple(raw.get("metrics") or ())
        unknown = [m for m in metrics if m not in metric_names]
        if not metrics or unknown:
            raise _bad(f"Table {tid}: metrics {list(metrics)} (unknown: {unknown})")
        rows = tuple(_parse_row(r, tid, metrics) for r in raw.get("rows") or ())
        ids = [r.id for r in rows]
        if not rows or len(set(ids)) != len(ids):
            raise _bad(f"Table {tid}: rows missing or ids repeated: {ids}")
        out[tid] = PaperTable(
            id=tid,
            title=str(raw.get("title", "")),
            metrics=metrics,
            metric_names=MappingProxyType({m: metric_names[m] for m in metrics}),
            rows=rows,
            note=raw.get("note"),
        )
    return MappingProxyType(out)


@functools.lru_cache(maxsize=1)
def load_tables() -> Mapping[str, PaperTable]:
    """All four tables, ``{"I": PaperTable, ..., "IV": PaperTable}``, read from the package data.

    Raises :class:`MetaserError` if the data file is missing or malformed.
    """
    try:
        text = resources.files("metaser.paper").joinpath(_DATA_FILE).read_text(encoding="utf-8")
    except (FileNotFoundError, OSError) as e:
        raise _bad(f"cannot be read ({e}); is metaser installed with its package data?") from e
    return _parse(yaml.safe_load(text))


def _table_id(table: str) -> str:
    tid = STUDY_TABLES.get(table, table)
    if tid not in TABLES:
        raise ConfigError(
            f"unknown paper table {table!r}", hint=f"tables: {', '.join(TABLES)}; studies: {', '.join(STUDY_TABLES)}"
        )
    return tid


def paper_table(table: str) -> PaperTable:
    """Table ``table``: a Roman numeral (``"II"``) or a study name (``"modules"``)."""
    return load_tables()[_table_id(table)]


def row_ids(table: str) -> tuple[str, ...]:
    """The row ids of ``table`` in the paper's order."""
    return tuple(r.id for r in paper_table(table).rows)


def paper_row(table: str, row: str, encoder: str | None) -> dict[str, float] | None:
    """The paper's figures for ``row`` of ``table`` with ``encoder``, e.g. ``{"ua": 77.74, "wa": 76.33}``.

    ``encoder`` is a key of :data:`ENCODERS` (see :func:`metaser.paper.paper_encoder`) or None.
    Returns None for a per-encoder row when ``encoder`` is None: the paper has no figure for
    other encoders. A prior-art row of Table I is one system and is returned for any encoder.
    Unknown tables, rows or encoder keys raise :class:`ConfigError`.
    """
    r = paper_table(table).row(row)
    if encoder is not None and encoder not in ENCODER_NAMES:
        raise ConfigError(f"unknown paper encoder {encoder!r}", hint=f"encoders: {', '.join(ENCODERS)}")
    if not r.per_encoder:
        return dict(r.values["*"])
    if encoder is None:
        return None
    return dict(r.values[encoder])


def tasks_slug(tasks: Iterable[str]) -> str:
    """The Table IV row id of a set of auxiliary tasks: ``{"asr", "gender"}`` -> ``"gender_asr"``.

    Tasks are ordered as in the paper (gender, speaker, style, asr); no task gives ``"none"``
    (the "SER only" row). A task outside the paper's four raises :class:`ConfigError`.
    """
    chosen = set(tasks)
    unknown = sorted(chosen - set(TASK_ORDER))
    if unknown:
        raise ConfigError(
            f"Table IV has no row with the task(s) {unknown}", hint=f"the paper's tasks: {', '.join(TASK_ORDER)}"
        )
    return "_".join(t for t in TASK_ORDER if t in chosen) or "none"
