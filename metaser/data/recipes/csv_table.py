"""Any corpus described by a CSV / TSV table -> manifest.

Columns (names are case-insensitive; the delimiter is sniffed among ``,`` tab ``;`` ``|``):

* required: ``path`` (audio file; relative paths resolve against ``audio_root``, else the
  table's folder) and ``emotion`` (the training label);
* optional: ``id`` (utterance id, else the file stem; must be unique), ``emotion_raw``
  (else = emotion), ``speaker``, ``gender`` (f / female / woman / m / male / man ...),
  ``text`` (cleaned into ``text``, kept raw in ``text_raw``), ``style``, ``session``, ``fold``;
* any other column is kept as a categorical custom field (string values), except the
  ``regression`` columns: those are stored as numbers (floats); a cell that is not a number
  is an error naming its line, an empty cell leaves the field absent.

``session`` becomes ``custom["session"]``; a ``fold`` column is kept as ``custom["fold"]`` and,
when the table has no ``session`` column, also used as ``custom["session"]`` so that
session-grouped folds follow it. Empty cells leave the field absent.

Checks against data that would leak across folds (each an error, listing the offenders, with
a flag to accept it): the same audio file under two ids (``allow_duplicate_audio``), a speaker
in two sessions or two folds (``allow_speaker_overlap``). An emotion class with a single
utterance is a warning (``summary["warnings"]``, printed by ``metaser prepare``).

Encoding: ``utf-8`` by default (a byte-order mark is skipped); a file that is not valid in
the encoding is an error naming the line, with a hint to pass ``encoding`` (``--encoding``).
"""

from __future__ import annotations

import codecs
import csv
import io
import math
from collections import Counter, defaultdict
from pathlib import Path

from metaser.data.manifest import SESSION, STYLE, TEXT_RAW, clean_text, make_cut
from metaser.data.prepare import PrepareResult, SkippedItem, finish_prepare, probe_or_skip
from metaser.errors import DataError

__all__ = ["prepare_csv", "read_table", "read_table_lines", "normalize_gender", "GENDER_ALIASES"]

REQUIRED = ("path", "emotion")
GENDER_ALIASES = {
    "f": "female",
    "female": "female",
    "woman": "female",
    "w": "female",
    "women": "female",
    "m": "male",
    "male": "male",
    "man": "male",
    "men": "male",
}
_KNOWN = ("id", "path", "emotion", "emotion_raw", "speaker", "gender", "text", STYLE, SESSION, "fold")
_SHOW = 5  # offenders listed per error


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


def _decode(path: Path, encoding: str) -> str:
    try:
        codec = codecs.lookup(encoding).name
    except LookupError:
        raise DataError(f"unknown encoding {encoding!r}", hint="e.g. utf-8, latin-1, cp1252") from None
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read table {path}: {e}") from None
    try:
        return raw.decode("utf-8-sig" if codec == "utf-8" else codec)
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise DataError(
            f"{path}:{line}: not valid {encoding} text (byte 0x{raw[e.start]:02x} at column {column})",
            hint="pass the table's encoding, e.g. --encoding latin-1 (or cp1252)",
        ) from None


def read_table_lines(path: Path, encoding: str = "utf-8") -> tuple[list[str], list[dict[str, str]], list[int]]:
    """Read a CSV / TSV with a header row: (lower-cased column names, rows as dicts, the line
    number each row ends on). Blank rows are left out.

    Raises DataError when the file is missing, unreadable, not valid in ``encoding``, empty,
    has duplicate columns or a row with a different number of cells.
    """
    if not path.is_file():
        raise DataError(f"table not found: {path}")
    text = _decode(path, encoding)
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
    rows, lines = [], []
    for cells in reader:
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            raise DataError(f"{path}:{reader.line_num}: {len(cells)} cells, the header has {len(header)}")
        rows.append({h: c.strip() for h, c in zip(header, cells)})
        lines.append(reader.line_num)
    return header, rows, lines


def read_table(path: Path, encoding: str = "utf-8") -> tuple[list[str], list[dict[str, str]]]:
    """(lower-cased column names, rows as dicts): :func:`read_table_lines` without line numbers."""
    header, rows, _ = read_table_lines(path, encoding)
    return header, rows


def _listing(groups: dict[str, list], what: str) -> str:
    shown = [
        f"{k} ({what} {', '.join(map(str, v[:_SHOW]))}{', ...' if len(v) > _SHOW else ''})"
        for k, v in list(groups.items())[:_SHOW]
    ]
    more = f"; and {len(groups) - _SHOW} more" if len(groups) > _SHOW else ""
    return "; ".join(shown) + more


def _check_genders(file: Path, rows: list[dict], lines: list[int]) -> None:
    bad: dict[str, list[int]] = {}
    for row, line in zip(rows, lines):
        try:
            normalize_gender(row.get("gender"))
        except ValueError:
            bad.setdefault(row["gender"], []).append(line)
    if bad:
        listed = "; ".join(
            f"{v!r} (line {', '.join(map(str, ls[:5]))}{', ...' if len(ls) > 5 else ''})" for v, ls in bad.items()
        )
        raise DataError(
            f"table {file}: unknown gender value(s): {listed}", hint="use female / male (or f, m, woman, man)"
        )


def _regression_values(
    file: Path, header: list[str], rows: list[dict], lines: list[int], columns: list[str]
) -> list[dict[str, float]]:
    """Per row: regression column -> float (empty cells left out). DataError for unknown or
    reserved columns and for cells that are not finite numbers (all listed at once)."""
    unknown = [c for c in columns if c not in header]
    if unknown:
        raise DataError(
            f"table {file}: regression column(s) not in the table: {', '.join(unknown)} (found: {', '.join(header)})"
        )
    reserved = [c for c in columns if c in _KNOWN]
    if reserved:
        raise DataError(
            f"table {file}: column(s) {', '.join(reserved)} cannot be regression targets (they have a fixed meaning)"
        )
    out: list[dict[str, float]] = []
    bad: dict[str, list[str]] = defaultdict(list)
    for row, line in zip(rows, lines):
        values = {}
        for col in columns:
            cell = row[col]
            if not cell:
                continue
            try:
                value = float(cell)
            except ValueError:
                value = math.nan
            if not math.isfinite(value):
                bad[col].append(f"{line} {cell!r}")
            else:
                values[col] = value
        out.append(values)
    if bad:
        raise DataError(
            f"table {file}: regression column(s) hold cells that are not numbers: " + _listing(dict(bad), "line"),
            hint="use numbers such as 3.5 (a dot for decimals); leave a cell empty when the value is unknown",
        )
    return out


def _audio_paths(rows: list[dict], base: Path) -> list[Path | None]:
    out = []
    for row in rows:
        if not row["path"]:
            out.append(None)
            continue
        audio = Path(row["path"])
        out.append(audio if audio.is_absolute() else base / audio)
    return out


def _check_duplicate_audio(file: Path, ids: list[str], paths: list[Path | None], lines: list[int]) -> None:
    by_file: dict[str, list[str]] = defaultdict(list)
    for utt_id, path, line in zip(ids, paths, lines):
        if path is not None:
            by_file[str(path.resolve())].append(f"{utt_id} (line {line})")
    dups = {p: u for p, u in by_file.items() if len(u) > 1}
    if dups:
        raise DataError(
            f"table {file}: {len(dups)} audio file(s) listed under more than one id, so "
            f"the same recording could be trained on and tested on: " + _listing(dups, "as"),
            hint="remove the duplicates, or pass --allow-duplicate-audio if they are meant",
        )


def _check_speaker_overlap(file: Path, rows: list[dict], lines: list[int]) -> None:
    for key in (SESSION, "fold"):
        where: dict[str, dict[str, int]] = defaultdict(dict)
        for row, line in zip(rows, lines):
            spk, group = row.get("speaker"), row.get(key)
            if spk and group:
                where[spk].setdefault(group, line)
        shared = {s: [f"{g} (line {ln})" for g, ln in gs.items()] for s, gs in where.items() if len(gs) > 1}
        if shared:
            raise DataError(
                f"table {file}: {len(shared)} speaker(s) occur in more than one {key}, so "
                f"{key}-grouped folds would test on speakers seen in training: " + _listing(shared, f"{key}s"),
                hint="fix the speaker / " + key + " columns, or pass --allow-speaker-overlap "
                "(then prefer split.group_by=speaker)",
            )


def prepare_csv(
    file: str | Path,
    out_dir: str | Path,
    *,
    audio_root: str | Path | None = None,
    strict: bool = False,
    min_duration: float | None = None,
    regression: list[str] | tuple[str, ...] = (),
    encoding: str = "utf-8",
    allow_duplicate_audio: bool = False,
    allow_speaker_overlap: bool = False,
) -> PrepareResult:
    """Prepare the corpus listed in ``file`` into ``out_dir/cuts.jsonl.gz`` + ``summary.json``.

    regression: columns stored as float custom fields (see the module docstring).
    Raises DataError for missing required columns, unknown gender values, duplicate utterance
    ids, non-numeric regression cells, and (unless allowed) duplicate audio files and speakers
    in several sessions / folds, all listed at once. Rows with an empty path / emotion and bad
    audio are skipped and listed; ``strict=True`` raises instead.
    """
    file = Path(file)
    header, rows, lines = read_table_lines(file, encoding)
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise DataError(f"table {file}: required column(s) missing: {', '.join(missing)} (found: {', '.join(header)})")
    base = Path(audio_root) if audio_root is not None else file.parent
    if audio_root is not None and not base.is_dir():
        raise DataError(f"audio root not found: {base}")
    regression = list(dict.fromkeys(c.strip().lower() for c in regression if c.strip()))
    extra = [h for h in header if h not in _KNOWN and h and h not in regression]
    _check_genders(file, rows, lines)
    numbers = _regression_values(file, header, rows, lines, regression)

    ids = [row.get("id") or Path(row["path"]).stem for row in rows]
    dups = {u: n for u, n in Counter(ids).items() if n > 1 and u}
    if dups:
        raise DataError(
            f"table {file}: utterance ids must be unique; duplicated: "
            + ", ".join(f"{u} (x{n})" for u, n in list(dups.items())[:20]),
            hint="add an 'id' column with unique values" if "id" not in header else None,
        )
    paths = _audio_paths(rows, base)
    if not allow_duplicate_audio:
        _check_duplicate_audio(file, ids, paths, lines)
    if not allow_speaker_overlap:
        _check_speaker_overlap(file, rows, lines)

    cuts = []
    skipped: list[SkippedItem] = []
    for row, utt_id, audio, line, values in zip(rows, ids, paths, lines, numbers):
        if not row["path"] or not row["emotion"]:
            what = "path" if not row["path"] else "emotion"
            skipped.append(
                SkippedItem(utt_id or f"line {line}", row["path"] or None, f"empty {what}", f"{file.name} line {line}")
            )
            continue
        info = probe_or_skip(utt_id, audio, skipped)
        if info is None:
            continue
        raw_text = row.get("text") or None
        custom = {
            TEXT_RAW: raw_text,
            STYLE: row.get(STYLE) or None,
            SESSION: row.get(SESSION) or row.get("fold") or None,
            "fold": row.get("fold") or None,
        }
        custom.update({h: row[h] or None for h in extra})
        custom.update(values)
        cuts.append(
            make_cut(
                utt_id,
                audio,
                info=info,
                emotion=row["emotion"],
                emotion_raw=row.get("emotion_raw") or row["emotion"],
                speaker=row.get("speaker") or None,
                gender=normalize_gender(row.get("gender")),
                text=clean_text(raw_text),
                custom=custom,
            )
        )
    notes = [f"table: {file} ({len(rows)} rows); audio paths relative to {base}"]
    if extra:
        notes.append(f"extra columns kept as fields: {', '.join(extra)}")
    if regression:
        notes.append(f"regression columns stored as numbers: {', '.join(regression)}")
    if allow_duplicate_audio or allow_speaker_overlap:
        allowed = [
            n
            for n, on in (("duplicate audio", allow_duplicate_audio), ("speaker overlap", allow_speaker_overlap))
            if on
        ]
        notes.append(f"checks switched off: {', '.join(allowed)}")
    return finish_prepare(
        cuts,
        skipped,
        corpus=file.stem,
        out_dir=out_dir,
        strict=strict,
        min_duration=min_duration,
        notes=notes,
    )
