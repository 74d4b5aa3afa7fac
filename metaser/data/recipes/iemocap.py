"""IEMOCAP (``IEMOCAP_full_release``) -> manifest, the paper's 4-class setup.

Layout read (``n`` = 1..5; a partial corpus with only some sessions works)::

    Session{n}/dialog/EmoEvaluation/<dialog>.txt       labels (top-level *.txt only)
    Session{n}/dialog/transcriptions/<dialog>.txt      transcripts
    Session{n}/sentences/wav/<dialog>/<utt>.wav        audio

Kept labels: neu, hap, exc, ang, sad, with exc merged into hap (``emotion_raw`` keeps "exc").
The real corpus yields 5531 utterances: neu 1708, hap 1636, ang 1103, sad 1084. Other labels
(fru, sur, fea, dis, oth, xxx) are counted per label in the summary's ``excluded``.

Fields: speaker (``Ses01F``), gender, text (lower-cased, non-speech tags such as
``[LAUGHTER]`` removed), ``text_raw``, ``session`` ("1".."5"), ``style`` ("impro" /
"script"), ``dialog``, and the evaluators' mean ``valence`` / ``activation`` / ``dominance``;
from the annotators' categorical lines, the vote distribution ``vote_ang`` / ``vote_hap`` /
``vote_neu`` / ``vote_sad`` and ``votes_dropped`` (numbers; the rule is in
:mod:`metaser.data.recipes.iemocap_votes`), for soft emotion targets.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from metaser.data.manifest import SESSION, STYLE, TEXT_RAW, clean_text, make_cut
from metaser.data.prepare import (
    DEFAULT_MIN_DURATION,
    PrepareResult,
    SkippedItem,
    drop_too_short,
    finish_prepare,
    probe_or_skip,
)
from metaser.data.recipes.iemocap_votes import (
    AnnotatorLine,
    count_votes,
    parse_annotator_line,
    summarize_votes,
    vote_fields,
)
from metaser.errors import DataError

__all__ = [
    "IemocapId",
    "parse_iemocap_id",
    "prepare_iemocap",
    "LABEL_MAP",
    "parse_emo_evaluation",
    "parse_transcriptions",
    "clean_iemocap_text",
]

# corpus label -> training label
LABEL_MAP = {"neu": "neu", "hap": "hap", "exc": "hap", "ang": "ang", "sad": "sad"}

_TURN_RE = re.compile(
    r"^\[\s*([\d.]+)\s*-\s*([\d.]+)\s*\]\s+(\S+)\s+(\S+)\s+"
    r"\[\s*([-\d.]+)\s*,\s*([-\d.]+)\s*,\s*([-\d.]+)\s*\]"
)
_TRANS_RE = re.compile(r"^(\S+)\s+\[\s*[\d.]+\s*-\s*[\d.]+\s*\]\s*:\s?(.*)$")
_TAG_RE = re.compile(r"\[[^\]]*\]")  # [LAUGHTER], [BREATHING], [GARBAGE], ...
_SESSION_DIR_RE = re.compile(r"^Session(\d+)$")


@dataclass(frozen=True)
class IemocapId:
    """Metadata encoded in an IEMOCAP utterance id such as ``Ses01M_impro01_F000``."""

    utt_id: str
    session: str  # "1".."5"
    dialog: str  # everything before the last "_": Ses01M_impro01
    speaker: str  # session + speaker gender letter: Ses01F
    gender: str  # "female" / "male": the speaker of this turn, NOT the dialog's letter
    style: str  # "impro" / "script"


def parse_iemocap_id(utt_id: str) -> IemocapId:
    """Parse an utterance id by its "_"-separated tokens, never by character positions.

    The F/M after the session number names the dialog's recording session, the first letter
    of the LAST token is the speaker's gender: ``Ses01M_impro01_F000`` is a woman;
    ``Ses03M_impro05a_F000`` and ``Ses05M_script01_1b_F003`` have extra dialog tokens.
    Raises DataError for ids that do not follow this scheme.
    """
    tokens = utt_id.split("_")
    m = re.fullmatch(r"Ses(\d+)[FM]", tokens[0]) if tokens else None
    if len(tokens) < 3 or m is None:
        raise DataError(f"not an IEMOCAP utterance id: {utt_id!r} (expected e.g. Ses01F_impro01_F000)")
    last = tokens[-1]
    if not last or last[0] not in "FM":
        raise DataError(f"IEMOCAP utterance id {utt_id!r}: the last token {last!r} does not start with F or M")
    kind = tokens[1]
    if kind.startswith("impro"):
        style = "impro"
    elif kind.startswith("script"):
        style = "script"
    else:
        raise DataError(f"IEMOCAP utterance id {utt_id!r}: dialog token {kind!r} is neither impro* nor script*")
    digits = m.group(1)
    return IemocapId(
        utt_id=utt_id,
        session=str(int(digits)),
        dialog="_".join(tokens[:-1]),
        speaker=f"Ses{digits}{last[0]}",
        gender="female" if last[0] == "F" else "male",
        style=style,
    )


@dataclass(frozen=True)
class _Turn:
    utt_id: str
    label: str
    valence: float
    activation: float
    dominance: float
    annotators: tuple[AnnotatorLine, ...] = ()


def parse_emo_evaluation(path: Path) -> list[_Turn]:
    """Turns of one EmoEvaluation file, each with the categorical annotator lines under it
    (``C-E2:``, ``C-F1:``...); the header and the ``A-`` rating lines are ignored."""
    turns: list[_Turn] = []
    pending: list[AnnotatorLine] = []

    def close() -> None:
        if turns and pending:
            last = turns[-1]
            turns[-1] = _Turn(last.utt_id, last.label, last.valence, last.activation, last.dominance, tuple(pending))
        pending.clear()

    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        m = _TURN_RE.match(line.strip())
        if m:
            close()
            v, a, d = (float(m.group(i)) for i in (5, 6, 7))
            turns.append(_Turn(m.group(3), m.group(4).lower(), v, a, d))
            continue
        ann = parse_annotator_line(line)
        if ann is not None and turns:
            pending.append(ann)
    close()
    return turns


def parse_transcriptions(path: Path) -> dict[str, str]:
    """utterance id -> raw transcript; lines without timing (or without ``:``) are ignored."""
    out = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        m = _TRANS_RE.match(line.strip())
        if m:
            out[m.group(1)] = m.group(2).strip()
    return out


def clean_iemocap_text(raw: str | None) -> str | None:
    """Drop bracketed non-speech tags, lower-case, squeeze spaces."""
    if raw is None:
        return None
    return clean_text(_TAG_RE.sub(" ", raw))


def _resolve_root(root: Path) -> Path:
    if not root.exists():
        raise DataError(f"IEMOCAP root not found: {root}")
    if not root.is_dir():
        raise DataError(f"IEMOCAP root is not a directory: {root}")
    has_sessions = any(_SESSION_DIR_RE.match(p.name) for p in root.iterdir() if p.is_dir())
    nested = root / "IEMOCAP_full_release"
    if not has_sessions and nested.is_dir():
        return nested
    return root


def _find_sessions(root: Path) -> dict[str, Path]:
    sessions = {}
    for p in root.iterdir():
        m = _SESSION_DIR_RE.match(p.name)
        if m and p.is_dir():
            sessions[str(int(m.group(1)))] = p
    if not sessions:
        raise DataError(
            f"{root} does not look like IEMOCAP_full_release: no Session*/dialog/EmoEvaluation found",
            hint="pass the IEMOCAP_full_release directory (it holds Session1..5)",
        )
    missing = []
    for sess_dir in sessions.values():
        for sub in ("dialog/EmoEvaluation", "dialog/transcriptions", "sentences/wav"):
            if not (sess_dir / sub).is_dir():
                missing.append(str(sess_dir / sub))
    if missing:
        raise DataError("IEMOCAP directories missing:\n  " + "\n  ".join(missing))
    return dict(sorted(sessions.items(), key=lambda kv: int(kv[0])))


def prepare_iemocap(
    root: str | Path,
    out_dir: str | Path,
    *,
    strict: bool = False,
    min_duration: float | None = None,
    self_evaluations: bool = False,
) -> PrepareResult:
    """Prepare IEMOCAP into ``out_dir/cuts.jsonl.gz`` and ``out_dir/summary.json``.

    Bad audio (missing, empty, unreadable, truncated) is skipped and listed; ``strict=True``
    raises DataError instead. Audio of any rate / channel count is accepted as it is.
    self_evaluations: also count the actors' own categorical lines (``C-F`` / ``C-M``) as
    votes (see :mod:`metaser.data.recipes.iemocap_votes`). The summary's ``votes`` entry
    counts the cuts with votes and the dropped vote weight.
    """
    root = _resolve_root(Path(root))
    sessions = _find_sessions(root)
    cuts = []
    skipped: list[SkippedItem] = []
    excluded: Counter = Counter()
    seen: set[str] = set()
    no_text = 0
    votes = {}
    for sess_dir in sessions.values():
        label_files = sorted(
            p
            for p in (sess_dir / "dialog" / "EmoEvaluation").glob("*.txt")
            if p.is_file() and not p.name.startswith(".")
        )
        trans_dir = sess_dir / "dialog" / "transcriptions"
        wav_dir = sess_dir / "sentences" / "wav"
        for label_file in label_files:
            trans_file = trans_dir / label_file.name
            transcripts = parse_transcriptions(trans_file) if trans_file.is_file() else {}
            for turn in parse_emo_evaluation(label_file):
                if turn.label not in LABEL_MAP:
                    excluded[turn.label] += 1
                    continue
                try:
                    meta = parse_iemocap_id(turn.utt_id)
                except DataError as e:
                    skipped.append(SkippedItem(turn.utt_id, str(label_file), "malformed id", e.message))
                    continue
                if turn.utt_id in seen:
                    skipped.append(SkippedItem(turn.utt_id, str(label_file), "duplicate id", "labelled more than once"))
                    continue
                seen.add(turn.utt_id)
                wav = wav_dir / meta.dialog / f"{turn.utt_id}.wav"
                info = probe_or_skip(turn.utt_id, wav, skipped)
                if info is None:
                    continue
                raw_text = transcripts.get(turn.utt_id)
                no_text += raw_text is None
                votes[turn.utt_id] = count_votes(list(turn.annotators), self_evaluations=self_evaluations)
                cuts.append(
                    make_cut(
                        turn.utt_id,
                        wav,
                        info=info,
                        emotion=LABEL_MAP[turn.label],
                        emotion_raw=turn.label,
                        speaker=meta.speaker,
                        gender=meta.gender,
                        text=clean_iemocap_text(raw_text),
                        custom={
                            TEXT_RAW: raw_text,
                            SESSION: meta.session,
                            STYLE: meta.style,
                            "dialog": meta.dialog,
                            "valence": turn.valence,
                            "activation": turn.activation,
                            "dominance": turn.dominance,
                            **vote_fields(votes[turn.utt_id]),
                        },
                    )
                )
    notes = [f"sessions found: {', '.join(sessions)}"]
    if no_text:
        notes.append(f"{no_text} utterance(s) have no transcript line (text left empty)")
    long_enough, _ = drop_too_short(cuts, DEFAULT_MIN_DURATION if min_duration is None else min_duration)
    summary_votes = summarize_votes([votes[c.id] for c in long_enough], self_evaluations=self_evaluations)
    notes.append(
        f"annotator votes: {summary_votes['cuts_with_votes']} of {len(long_enough)} utterance(s) have "
        f"votes; {summary_votes['votes_dropped']:g} vote(s) for other classes dropped; "
        f"self-evaluations {summary_votes['self_evaluations']}"
    )
    return finish_prepare(
        cuts,
        skipped,
        corpus="iemocap",
        out_dir=out_dir,
        strict=strict,
        min_duration=min_duration,
        excluded=dict(excluded),
        notes=notes,
        extra={"votes": summary_votes},
    )
