"""EmoBox's track-2 (cross-corpus) balanced test lists -> manifest.

EmoBox's ``data/track2/<CORPUS>_selected_balenced.jsonl`` (IEMOCAP, MELD, RAVDESS, SAVEE) list
a class-balanced test set, one utterance a line, as JSON objects::

    {"wav_filename": "Actor_15/03-01-03-01-01-02-15.wav", "label": "happy", "speaker": "15"}

The same three columns are accepted as a tab- or comma-separated table, with or without a
header line (``wav_filename``, ``label``, ``speaker``; without a header, in that order).

``wav_filename`` is found under ``audio_root`` with
:class:`~metaser.data.recipes.audio_index.AudioIndex` (the lists use their own folders, e.g.
``happy/Ses02F_impro03_F019.wav`` for a file of IEMOCAP's ``sentences/wav/Ses02F_impro03/``, so
the unique file of that name is used); missing / ambiguous files are skipped and listed.
The cut id is the file's stem (they must be unique); ``emotion`` and ``emotion_raw`` are the
label; ``speaker`` is the list's (for IEMOCAP EmoBox writes the dialog's session half, e.g.
``02F``, not the speaking actor); the file name adds what metaser's recipe of the corpus reads
(:mod:`~metaser.data.recipes.name_metadata`; the corpus is the list's name before ``_``). There
are no folds: it is a test set.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path

from metaser.data.prepare import PrepareResult, SkippedItem, finish_prepare, probe_or_skip
from metaser.data.recipes.audio_index import AudioIndex
from metaser.data.recipes.emobox import emobox_cut
from metaser.data.recipes.emobox_folds import parse_json_lines
from metaser.errors import DataError

__all__ = ["prepare_emobox_track2", "read_track2_list", "TRACK2_COLUMNS"]

TRACK2_COLUMNS = ("wav_filename", "label", "speaker")


def _from_table(path: Path, text: str) -> list[tuple[int, dict[str, str]]]:
    lines = text.splitlines()
    first = next(ln for ln in lines if ln.strip())
    delimiter = "\t" if "\t" in first else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    rows = [(reader.line_num, cells) for cells in reader if any(c.strip() for c in cells)]
    header = [c.strip().lower() for c in rows[0][1]]
    if "wav_filename" in header:
        missing = [c for c in TRACK2_COLUMNS[:2] if c not in header]
        if missing:
            raise DataError(f"{path}: header without column(s) {', '.join(missing)}")
        names, rows = header, rows[1:]
    else:
        names = list(TRACK2_COLUMNS)
    out = []
    for lineno, cells in rows:
        if len(cells) < 2 or (len(cells) != len(names) and "wav_filename" in header):
            raise DataError(
                f"{path}:{lineno}: expected {len(names)} {delimiter!r}-separated cells "
                f"({', '.join(names)}), got {len(cells)}"
            )
        out.append((lineno, {n: c.strip() for n, c in zip(names, cells)}))
    return out


def read_track2_list(path: str | Path) -> list[tuple[int, dict[str, str]]]:
    """(line number, {"wav_filename", "label", "speaker"?}) of each entry of a track-2 list
    (JSON lines, or a tab / comma table with or without a header). DataError names the line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"track-2 list not found: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {path}: {e}") from None
    if not text.strip():
        raise DataError(f"track-2 list {path} is empty")
    if not text.lstrip().startswith("{"):
        return _from_table(path, text)
    out = []
    for lineno, obj in parse_json_lines(path, text):
        if not obj.get("wav_filename") or obj.get("label") in (None, ""):
            raise DataError(f"{path}:{lineno}: needs 'wav_filename' and 'label'")
        out.append((lineno, {k: str(v) for k, v in obj.items() if v is not None}))
    return out


def prepare_emobox_track2(
    file: str | Path,
    out_dir: str | Path,
    *,
    audio_root: str | Path,
    strict: bool = False,
    min_duration: float | None = None,
) -> PrepareResult:
    """Prepare one track-2 list into ``out_dir/cuts.jsonl.gz`` + ``summary.json``."""
    file, audio_root = Path(file), Path(audio_root)
    entries = read_track2_list(file)
    if not audio_root.is_dir():
        raise DataError(f"audio root not found: {audio_root}")
    ids = [Path(e["wav_filename"].replace("\\", "/")).stem for _, e in entries]
    dups = sorted(k for k, n in Counter(ids).items() if n > 1)
    if dups:
        raise DataError(
            f"{file}: {len(dups)} file name(s) listed twice (the cut id is the name): " + ", ".join(dups[:5])
        )
    corpus = file.stem.split("_")[0].lower()
    index = AudioIndex(audio_root)
    cuts, skipped = [], []
    how: Counter = Counter()
    for (lineno, entry), utt_id in zip(entries, ids):
        found = index.resolve(entry["wav_filename"])
        if not found.found:
            detail = f"{file.name} line {lineno}" + (
                f": {len(found.candidates)} candidates: " + ", ".join(map(str, found.candidates[:3]))
                if found.candidates
                else ""
            )
            skipped.append(SkippedItem(utt_id, entry["wav_filename"], found.how, detail))
            continue
        how[found.how] += 1
        info = probe_or_skip(utt_id, found.path, skipped)
        if info is None:
            continue
        extra = {k: v for k, v in entry.items() if k not in ("wav_filename", "label")}
        cuts.append(
            emobox_cut(
                utt_id, found.path, info, emotion=entry["label"], emotion_raw=entry["label"], extra=extra, corpus=corpus
            )
        )
    notes = [
        f"track-2 list {file} ({len(entries)} entries); audio under {audio_root} ({len(index)} files) "
        f"found by " + ", ".join(f"{k} {v}" for k, v in sorted(how.items()))
    ]
    return finish_prepare(
        cuts,
        skipped,
        corpus=file.stem,
        out_dir=out_dir,
        strict=strict,
        min_duration=min_duration,
        notes=notes,
    )
