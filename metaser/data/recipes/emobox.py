"""One corpus folder of EmoBox's ``data/`` -> manifest, with EmoBox's own folds.

EmoBox (Ma et al., Interspeech 2024) ships, for each of its 32 corpora, the partitions of its
benchmark::

    DIR/label_map.json                                   emo -> class (optional)
    DIR/fold_N/<corpus>_train_fold_N.jsonl               one JSON object a line
    DIR/fold_N/<corpus>_test_fold_N.jsonl
    DIR/fold_N/<corpus>_valid_fold_N.jsonl               only where the corpus has one

with the fields ``key`` (``emodb-03a02Wb``: the cut id), ``wav``
(``downloads/emodb/wav/03a02Wb.wav``), ``emo``, ``length``, ``sample_rate``, ``channel``,
``dataset`` and, in some corpora, ``start_time`` / ``end_time`` (a segment of a longer file,
PAVOQUE). Every other field is kept as a custom field (``spk`` / ``speaker`` -> speaker,
``gender`` -> gender). Older files named ``..._fold1.jsonl`` are not read (the summary says so).

**Folds are the files'.** Each cut's supervision records in ``custom["fold"]`` the number N
(``"1"``..) of the test file that lists it, and ``custom["valid_fold"]`` that of the valid file
that lists it, if any; ``split.group_by: fold`` rebuilds exactly these folds
(:func:`metaser.data.folds.make_folds`). That needs the files to partition the corpus, which
the recipe checks and otherwise refuses with the offending keys:

* within a fold, train, valid and test share no key;
* a key is in at most one test file and at most one valid file;
* every fold's three files together list every key any file lists (so fold N's training part
  is everything outside its test and valid files, which is what the fields encode).

EmoBox builds all its folds this way (speaker groups, sessions, a 25 % stratified test split, or
the corpus' official split); the check guards against edited or mixed-up files.

**Labels.** ``emotion`` is ``label_map.json``'s class of ``emo`` (matched exactly, else ignoring
case: EmoBox's emodb map writes "Neutral" for the "neutral" its files hold), ``emotion_raw`` the
``emo`` itself; labels the map does not list keep their own name, with a warning.

**Audio.** ``wav`` loses its leading ``downloads/<corpus>/`` and is looked up under
``audio_root`` with :class:`~metaser.data.recipes.audio_index.AudioIndex` (exact path, then
ignoring case, then the unique file of that name). Missing and ambiguous files are skipped and
listed like every recipe's (``--strict`` refuses them). A file whose length differs from
EmoBox's ``length`` by more than 0.1 s is kept and counted in a warning (another release?).

For the corpora metaser has a recipe for (emodb, ravdess, iemocap) the file name adds
speaker, gender, text... (:mod:`~metaser.data.recipes.name_metadata`).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from metaser.data.audio import AudioInfo
from metaser.data.manifest import SUPERVISION_ATTRS, make_cut
from metaser.data.prepare import PrepareResult, SkippedItem, finish_prepare, probe_or_skip
from metaser.data.recipes.audio_index import AudioIndex
from metaser.data.recipes.csv_table import normalize_gender
from metaser.data.recipes.emobox_folds import EmoboxFolds, EmoboxRecord, read_emobox_folds
from metaser.data.recipes.name_metadata import name_metadata
from metaser.errors import DataError

__all__ = [
    "prepare_emobox",
    "read_emobox_folds",
    "EmoboxFolds",
    "EmoboxRecord",
    "FOLD",
    "VALID_FOLD",
    "emobox_relative_path",
    "emobox_cut",
]

#: custom field: the number of the EmoBox test file that lists the cut ("1", "2", ...)
FOLD = "fold"
#: custom field: the number of the EmoBox valid file that lists the cut, where there is one
VALID_FOLD = "valid_fold"
#: fields of the format itself (read, not stored as custom fields)
FORMAT_FIELDS = frozenset(
    {
        "key",
        "wav",
        "emo",
        "length",
        "sample_rate",
        "channel",
        "num_frame",
        "type",
        "task",
        "start_time",
        "end_time",
        "audio",
        "label",
    }
)
LENGTH_TOLERANCE = 0.1  # seconds between EmoBox's length and the file's before a warning


def emobox_relative_path(wav: str) -> str:
    """``downloads/<corpus>/wav/x.wav`` -> ``wav/x.wav``; any other path unchanged."""
    parts = [p for p in wav.replace("\\", "/").split("/") if p not in ("", ".")]
    if len(parts) > 2 and parts[0] == "downloads":
        parts = parts[2:]
    return "/".join(parts)


def _map_label(emo: str, label_map: dict[str, str], lower: dict[str, str]) -> str | None:
    if emo in label_map:
        return label_map[emo]
    return lower.get(emo.lower())


def _custom_value(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else str(value)
    return json.dumps(value, sort_keys=True)


def emobox_cut(
    utt_id: str,
    audio: Path,
    info: AudioInfo,
    *,
    emotion: str,
    emotion_raw: str,
    extra: dict[str, Any],
    corpus: str,
    segment: tuple[float, float] | None = None,
):
    """The cut of one listed utterance: ``extra`` holds the list's other fields (kept as custom
    fields; ``spk`` / ``speaker`` and ``gender`` go to the supervision), the file name adds
    what :func:`~metaser.data.recipes.name_metadata.name_metadata` reads for ``corpus``; a
    ``segment`` (start, end seconds) makes a cut of that part of the file."""
    fields = dict(name_metadata(corpus, audio.stem))
    for k, v in extra.items():
        k = {"spk": "speaker"}.get(k, k)
        if k == "gender":
            try:
                v = normalize_gender(str(v))
            except ValueError:
                k = "gender_raw"
        fields[k] = _custom_value(v)
    sup = {k: (None if fields.get(k) is None else str(fields.get(k))) for k in SUPERVISION_ATTRS}
    custom = {k: v for k, v in fields.items() if k not in SUPERVISION_ATTRS}
    cut = make_cut(utt_id, audio, info=info, emotion=emotion, emotion_raw=emotion_raw, custom=custom, **sup)
    if segment is None:
        return cut
    from lhotse.utils import fastcopy

    start, end = segment
    seg = cut.truncate(offset=start, duration=end - start, preserve_id=True)
    sup0 = fastcopy(seg.supervisions[0], start=0.0, duration=seg.duration)  # the supervision spans the cut
    return fastcopy(seg, supervisions=[sup0])


def prepare_emobox(
    root: str | Path,
    out_dir: str | Path,
    *,
    audio_root: str | Path,
    strict: bool = False,
    min_duration: float | None = None,
) -> PrepareResult:
    """Prepare one EmoBox corpus folder into ``out_dir/cuts.jsonl.gz`` + ``summary.json``.

    Raises DataError for an unreadable folder or files whose folds are not a partition.
    Missing / ambiguous / bad audio is skipped and listed; ``strict=True`` raises instead.
    The summary's ``emobox`` entry gives the corpus, its folds and the test size of each.
    """
    root, audio_root = Path(root), Path(audio_root)
    folds = read_emobox_folds(root)
    if not audio_root.is_dir():
        raise DataError(f"audio root not found: {audio_root}")
    index = AudioIndex(audio_root)
    lower = {k.lower(): v for k, v in folds.label_map.items()}
    cuts, skipped = [], []
    unmapped: Counter = Counter()
    how: Counter = Counter()
    off_length: list[str] = []
    for key, rec in folds.records.items():
        found = index.resolve(emobox_relative_path(rec.wav))
        if not found.found:
            detail = f"{rec.wav} under {audio_root}" + (
                f": {len(found.candidates)} candidates: " + ", ".join(map(str, found.candidates[:3]))
                if found.candidates
                else ""
            )
            skipped.append(SkippedItem(key, rec.wav, found.how, detail))
            continue
        how[found.how] += 1
        info = probe_or_skip(key, found.path, skipped)
        if info is None:
            continue
        emotion = _map_label(rec.emo, folds.label_map, lower) if folds.label_map else rec.emo
        if emotion is None:
            unmapped[rec.emo] += 1
            emotion = rec.emo
        segment = None
        f = rec.fields
        if f.get("start_time") is not None and f.get("end_time") is not None:
            segment = (float(f["start_time"]), float(f["end_time"]))
            if not 0 <= segment[0] < segment[1] <= info.frames / info.samplerate + 0.01:
                skipped.append(
                    SkippedItem(
                        key,
                        str(found.path),
                        "bad segment",
                        f"{segment[0]}-{segment[1]} s of a {info.frames / info.samplerate:.2f} s file",
                    )
                )
                continue
        elif isinstance(f.get("length"), (int, float)) and (
            abs(f["length"] - info.frames / info.samplerate) > LENGTH_TOLERANCE
        ):
            off_length.append(key)
        extra = {k: v for k, v in f.items() if k not in FORMAT_FIELDS}
        extra[FOLD] = folds.test_fold.get(key)
        extra[VALID_FOLD] = folds.valid_fold.get(key)
        cuts.append(
            emobox_cut(
                key,
                found.path,
                info,
                emotion=emotion,
                emotion_raw=rec.emo,
                extra=extra,
                corpus=str(f.get("dataset") or folds.corpus),
                segment=segment,
            )
        )
    notes = [
        f"EmoBox corpus {folds.corpus}: {len(folds.folds)} fold(s) ({', '.join(folds.folds)}), "
        f"{len(folds.records)} utterances listed; audio under {audio_root} "
        f"({len(index)} files) found by " + ", ".join(f"{k} {v}" for k, v in sorted(how.items())),
        *folds.notes,
    ]
    warnings = []
    if unmapped:
        warnings.append(
            "label(s) not in label_map.json, kept as they are: "
            + ", ".join(f"{k} ({v})" for k, v in sorted(unmapped.items()))
        )
    if off_length:
        warnings.append(
            f"{len(off_length)} file(s) differ from EmoBox's length by more than "
            f"{LENGTH_TOLERANCE} s (another release of the corpus?), e.g. {off_length[0]}"
        )
    test_sizes = Counter(folds.test_fold.values())
    extra_summary = {
        "emobox": {
            "corpus": folds.corpus,
            "folds": folds.folds,
            "test_listed": {n: test_sizes.get(n, 0) for n in folds.folds},
            "valid_files": sorted(set(folds.valid_fold.values()), key=int),
            "label_map": dict(folds.label_map),
        }
    }
    return finish_prepare(
        cuts,
        skipped,
        corpus=folds.corpus,
        out_dir=out_dir,
        strict=strict,
        min_duration=min_duration,
        notes=notes,
        warnings=warnings,
        extra=extra_summary,
        group_by=FOLD,
    )
