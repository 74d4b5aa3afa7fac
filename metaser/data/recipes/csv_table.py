"""Any corpus described by a CSV / TSV table -> manifest.

Columns (names are case-insensitive; the delimiter is sniffed among ``,`` tab ``;`` ``|``):

* required: ``path`` (audio file; relative paths resolve against ``audio_root``, else the
  table's folder) and ``emotion`` (the training label);
* optional: ``id`` (utterance id, else the file stem; must be unique), ``emotion_raw``
  (else = emotion), ``speaker``, ``gender`` (f / female / woman / m / male / man ...),
  ``text`` (cleaned into ``text``, kept raw in ``text_raw``), ``style``, ``session``, ``fold``;
* any other column is kept as a categorical custom field (string values).

``session`` becomes ``custom["session"]``; a ``fold`` column is kept as ``custom["fold"]`` and,
when the table has no ``session`` column, also used as ``custom["session"]`` so that
session-grouped folds follow it. Empty cells leave the field absent.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path

from metaser.data.manifest import SESSION, STYLE, TEXT_RAW, clean_text, make_cut
from metaser.data.prepare import PrepareResult, SkippedItem, finish_prepare, probe_or_skip
from metaser.errors import DataError

__all__ = ["prepare_csv", "read_table", "normalize_gender", "GENDER_ALIASES"]

REQUIRED = ("path", "emotion")
GENDER_ALIASES = {
    "f": "female", "female": "female", "woman": "female", "w": "female", "women": "female",
    "m": "male", "male": "male", "man": "male", "men": "male",
}
_KNOWN = ("id", "path", "emotion", "emotion_raw", "speaker", "gender", "text", STYLE, SESSION,
          "fold")


def normalize_gender(value: str | None) -> str | None:
    """``"F"`` / ``"woman"`` -> ``"female"``, ``"m"`` / ``"Male"`` -> ``"male"``, blank -> None.

    Raises ValueError for anything else (the caller lists all bad values at once).
    """
    if value is None or not value.strip():
        return None
    try:
        return GENDER_ALIASES[value.strip().lower()]
    except KeyError:
        raise ValueError(value) from None


def read_table(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Read a CSV / TSV with a header row: (lower-cased column names, rows as dicts).

    Raises DataError when the file is missing, unreadable, empty or has duplicate columns.
    """
    if not path.is_file():
        raise DataError(f"table not found: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read table {path}: {e}") from None
    if not text.strip():
        raise DataError(f"table {path} is empty")
    first = text.splitlines()[0]
    try:
        dialect = csv.Sniffer().sniff("\n".join(text.splitlines()[:20]), delimiters=",\t;|")
    except csv.Error:
        dialect = csv.excel_tab if path.suffix.lower() == ".tsv" or "\t" in first else csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    header = [h.strip().lower() for h in next(reader)]
    dup = [h for h, n in Counter(header).items() if n > 1]
    if dup:
        raise DataError(f"table {path}: duplicate column(s): {', '.join(dup)}")
    rows = []
    for lineno, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            raise DataError(f"{path}:{lineno}: {len(cells)} cells, the header has {len(header)}")
        rows.append({h: c.strip() for h, c in zip(header, cells)})
    return header, rows


def prepare_csv(file: str | Path, out_dir: str | Path, *, audio_root: str | Path | None = None,
                strict: bool = False, min_duration: float | None = None,
                console=None) -> PrepareResult:
    """Prepare the corpus listed in ``file`` into ``out_dir/cuts.jsonl.gz`` + ``summary.json``.

    Raises DataError for missing required columns, unknown gender values or duplicate
    utterance ids (all listed at once). Rows with an empty path / emotion and bad audio are
    skipped and listed; ``strict=True`` raises instead.
    """
    file = Path(file)
    header, rows = read_table(file)
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise DataError(f"table {file}: required column(s) missing: {', '.join(missing)} "
                        f"(found: {', '.join(header)})")
    base = Path(audio_root) if audio_root is not None else file.parent
    if audio_root is not None and not base.is_dir():
        raise DataError(f"audio root not found: {base}")
    extra = [h for h in header if h not in _KNOWN and h]

    bad_genders: dict[str, list[int]] = {}
    for i, row in enumerate(rows, start=2):
        try:
            normalize_gender(row.get("gender"))
        except ValueError:
            bad_genders.setdefault(row["gender"], []).append(i)
    if bad_genders:
        listed = "; ".join(f"{v!r} (line {', '.join(map(str, ls[:5]))}"
                           f"{', ...' if len(ls) > 5 else ''})" for v, ls in bad_genders.items())
        raise DataError(f"table {file}: unknown gender value(s): {listed}",
                        hint="use female / male (or f, m, woman, man)")

    ids = [row.get("id") or Path(row["path"]).stem for row in rows]
    dups = {u: n for u, n in Counter(ids).items() if n > 1 and u}
    if dups:
        raise DataError(f"table {file}: utterance ids must be unique; duplicated: "
                        + ", ".join(f"{u} (x{n})" for u, n in list(dups.items())[:20]),
                        hint="add an 'id' column with unique values" if "id" not in header
                        else None)

    cuts = []
    skipped: list[SkippedItem] = []
    for lineno, (row, utt_id) in enumerate(zip(rows, ids), start=2):
        if not row["path"] or not row["emotion"]:
            what = "path" if not row["path"] else "emotion"
            skipped.append(SkippedItem(utt_id or f"line {lineno}", row["path"] or None,
                                       f"empty {what}", f"{file.name} line {lineno}"))
            continue
        audio = Path(row["path"])
        if not audio.is_absolute():
            audio = base / audio
        info = probe_or_skip(utt_id, audio, skipped)
        if info is None:
            continue
        raw_text = row.get("text") or None
        custom = {TEXT_RAW: raw_text, STYLE: row.get(STYLE) or None,
                  SESSION: row.get(SESSION) or row.get("fold") or None,
                  "fold": row.get("fold") or None}
        custom.update({h: row[h] or None for h in extra})
        cuts.append(make_cut(
            utt_id, audio, info=info, emotion=row["emotion"],
            emotion_raw=row.get("emotion_raw") or row["emotion"],
            speaker=row.get("speaker") or None, gender=normalize_gender(row.get("gender")),
            text=clean_text(raw_text), custom=custom,
        ))
    notes = [f"table: {file} ({len(rows)} rows); audio paths relative to {base}"]
    if extra:
        notes.append(f"extra columns kept as fields: {', '.join(extra)}")
    return finish_prepare(cuts, skipped, corpus=file.stem, out_dir=out_dir, strict=strict,
                          min_duration=min_duration, console=console, notes=notes)
