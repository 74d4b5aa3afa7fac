"""RAVDESS (audio-speech release) -> manifest.

Layout: ``ROOT/Actor_XX/MM-VV-EE-II-SS-RR-AA.wav``: modality (03 = audio only), vocal
channel (01 speech, 02 song), emotion, intensity (01 normal, 02 strong), statement,
repetition, actor (01-24, odd = male). Files are 48 kHz, a few stereo (mixed down at load).

Only speech is kept: song files are counted in the summary's ``excluded`` ("song"), files of
another modality as "modality MM". Malformed names are skipped with a reason.

Fields: emotion (``neutral``, ``calm``, ``happy``, ``sad``, ``angry``, ``fearful``,
``disgust``, ``surprised``), emotion_raw (the two-digit code), speaker ("01".."24"), gender,
text (the statement, lower-cased), ``text_raw``, and the categorical ``intensity``
("normal" / "strong"), ``statement`` ("01" / "02") and ``repetition`` ("01" / "02").
There are no sessions: folds group by speaker.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from metaser.data.manifest import TEXT_RAW, clean_text, make_cut
from metaser.data.prepare import PrepareResult, SkippedItem, finish_prepare, probe_or_skip
from metaser.errors import DataError

__all__ = ["prepare_ravdess", "parse_ravdess_name", "EMOTIONS", "INTENSITIES", "STATEMENTS"]

EMOTIONS = {
    "01": "neutral",
    "02": "calm",
    "03": "happy",
    "04": "sad",
    "05": "angry",
    "06": "fearful",
    "07": "disgust",
    "08": "surprised",
}
INTENSITIES = {"01": "normal", "02": "strong"}
STATEMENTS = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
REPETITIONS = ("01", "02")
SPEECH, SONG = "01", "02"
AUDIO_ONLY = "03"

_NAME_RE = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")
_ACTOR_DIR_RE = re.compile(r"^Actor_(\d{2})$")


def parse_ravdess_name(stem: str) -> dict[str, str]:
    """``03-01-05-02-01-01-12`` -> the seven codes by name; DataError naming the bad part."""
    m = _NAME_RE.match(stem)
    if m is None:
        raise DataError(f"{stem!r}: expected seven two-digit codes MM-VV-EE-II-SS-RR-AA")
    keys = ("modality", "channel", "emotion", "intensity", "statement", "repetition", "actor")
    codes = dict(zip(keys, m.groups()))
    checks = (
        ("modality", ("01", "02", "03")),
        ("channel", (SPEECH, SONG)),
        ("emotion", tuple(EMOTIONS)),
        ("intensity", tuple(INTENSITIES)),
        ("statement", tuple(STATEMENTS)),
        ("repetition", REPETITIONS),
    )
    for key, allowed in checks:
        if codes[key] not in allowed:
            raise DataError(f"{stem!r}: {key} code {codes[key]} is not one of {', '.join(allowed)}")
    if not 1 <= int(codes["actor"]) <= 24:
        raise DataError(f"{stem!r}: actor code {codes['actor']} is not in 01..24")
    return codes


def _resolve_root(root: Path) -> tuple[Path, list[Path]]:
    if not root.is_dir():
        raise DataError(f"RAVDESS root not found: {root}")
    actors = sorted(p for p in root.iterdir() if p.is_dir() and _ACTOR_DIR_RE.match(p.name))
    if not actors:  # e.g. the parent of Audio_Speech_Actors_01-24/
        for sub in sorted(p for p in root.iterdir() if p.is_dir()):
            actors = sorted(p for p in sub.iterdir() if p.is_dir() and _ACTOR_DIR_RE.match(p.name))
            if actors:
                return sub, actors
        raise DataError(
            f"{root} does not look like RAVDESS: no Actor_XX directories found",
            hint="pass the folder of Audio_Speech_Actors_01-24 (it holds Actor_01..24)",
        )
    return root, actors


def prepare_ravdess(
    root: str | Path, out_dir: str | Path, *, strict: bool = False, min_duration: float | None = None
) -> PrepareResult:
    """Prepare RAVDESS speech into ``out_dir/cuts.jsonl.gz`` and ``out_dir/summary.json``."""
    root, actor_dirs = _resolve_root(Path(root))
    cuts = []
    skipped: list[SkippedItem] = []
    excluded: Counter = Counter()
    for actor_dir in actor_dirs:
        folder_actor = _ACTOR_DIR_RE.match(actor_dir.name).group(1)
        for wav in sorted(actor_dir.iterdir()):
            if wav.suffix.lower() != ".wav" or wav.name.startswith("."):
                continue
            utt_id = wav.stem
            try:
                codes = parse_ravdess_name(utt_id)
            except DataError as e:
                skipped.append(SkippedItem(utt_id, str(wav), "malformed file name", e.message))
                continue
            if codes["actor"] != folder_actor:
                skipped.append(
                    SkippedItem(utt_id, str(wav), "actor mismatch", f"actor {codes['actor']} in {actor_dir.name}")
                )
                continue
            if codes["modality"] != AUDIO_ONLY:
                excluded[f"modality {codes['modality']}"] += 1
                continue
            if codes["channel"] == SONG:
                excluded["song"] += 1
                continue
            info = probe_or_skip(utt_id, wav, skipped)
            if info is None:
                continue
            statement = STATEMENTS[codes["statement"]]
            cuts.append(
                make_cut(
                    utt_id,
                    wav,
                    info=info,
                    emotion=EMOTIONS[codes["emotion"]],
                    emotion_raw=codes["emotion"],
                    speaker=codes["actor"],
                    gender="male" if int(codes["actor"]) % 2 == 1 else "female",
                    text=clean_text(statement),
                    custom={
                        TEXT_RAW: statement,
                        "intensity": INTENSITIES[codes["intensity"]],
                        "statement": codes["statement"],
                        "repetition": codes["repetition"],
                    },
                )
            )
    notes = [f"actors found: {len(actor_dirs)}"]
    return finish_prepare(
        cuts,
        skipped,
        corpus="ravdess",
        out_dir=out_dir,
        strict=strict,
        min_duration=min_duration,
        excluded=dict(excluded),
        notes=notes,
    )
