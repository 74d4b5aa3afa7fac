"""Berlin EmoDB -> manifest.

Layout: ``ROOT/wav/SSTTTEV.wav`` (e.g. ``03a01Fa.wav``: speaker 03, text a01, emotion F,
version a) and, optionally, ``ROOT/erkennung.txt`` (Latin-1, tab-separated: number, file,
recognition rate %, naturalness %, decimal commas, non-breaking-space padding).

Fields: emotion (English name), emotion_raw (the German letter), speaker ("03"), gender and
``age`` (int) from the speaker table, text (the German sentence, lower-cased), ``text_raw``,
``text_id`` ("a01"), ``version`` ("a"), and ``recognition_rate`` / ``naturalness`` (floats, %)
when erkennung.txt lists the file. There are no sessions: folds group by speaker.
"""

from __future__ import annotations

import re
from pathlib import Path

from metaser.data.manifest import TEXT_RAW, clean_text, make_cut
from metaser.data.prepare import PrepareResult, SkippedItem, finish_prepare, probe_or_skip
from metaser.errors import DataError

__all__ = ["prepare_emodb", "parse_erkennung", "parse_emodb_name", "EMOTIONS", "SPEAKERS", "TEXTS"]

EMOTIONS = {"W": "anger", "L": "boredom", "E": "disgust", "A": "fear", "F": "happiness", "T": "sadness", "N": "neutral"}

# speaker code -> (gender, age)
SPEAKERS = {
    "03": ("male", 31),
    "08": ("female", 34),
    "09": ("female", 21),
    "10": ("male", 32),
    "11": ("male", 26),
    "12": ("male", 30),
    "13": ("female", 32),
    "14": ("female", 35),
    "15": ("male", 25),
    "16": ("female", 31),
}

TEXTS = {
    "a01": "Der Lappen liegt auf dem Eisschrank.",
    "a02": "Das will sie am Mittwoch abgeben.",
    "a04": "Heute abend könnte ich es ihm sagen.",
    "a05": "Das schwarze Stück Papier befindet sich da oben neben dem Holzstück.",
    "a07": "In sieben Stunden wird es soweit sein.",
    "b01": "Was sind denn das für Tüten, die da unter dem Tisch stehen?",
    "b02": "Sie haben es gerade hochgetragen und jetzt gehen sie wieder runter.",
    "b03": "An den Wochenenden bin ich jetzt immer nach Hause gefahren und habe Agnes besucht.",
    "b09": "Ich will das eben wegbringen und dann mit Karl was trinken gehen.",
    "b10": "Die wird auf dem Platz sein, wo wir sie immer hinlegen.",
}

_NAME_RE = re.compile(r"^(\d{2})([ab]\d{2})([A-Z])([a-z])$")


def _number(s: str) -> float:
    return float(s.replace("\xa0", "").strip().replace(",", "."))


def parse_emodb_name(stem: str) -> dict[str, str] | None:
    """``03a01Fa`` -> {"speaker": "03", "text_id": "a01", "emotion": "F", "version": "a"}, or
    None when the name does not follow ``SSTTTEV`` or names an unknown speaker / text / emotion."""
    m = _NAME_RE.match(stem)
    if m is None:
        return None
    spk, text_id, letter, version = m.groups()
    if spk not in SPEAKERS or text_id not in TEXTS or letter not in EMOTIONS:
        return None
    return {"speaker": spk, "text_id": text_id, "emotion": letter, "version": version}


def parse_erkennung(path: Path) -> dict[str, tuple[float, float]]:
    """file name -> (recognition rate %, naturalness %) from erkennung.txt.

    Raises DataError naming the line when a row cannot be parsed.
    """
    out: dict[str, tuple[float, float]] = {}
    lines = path.read_text(encoding="latin-1").splitlines()
    for i, line in enumerate(lines, start=1):
        cells = [c.replace("\xa0", " ").strip() for c in line.split("\t")]
        if not any(cells) or (i == 1 and not cells[0].replace(" ", "").isdigit()):
            continue  # blank line / header "Nr. Satz erkannt natuerlich"
        if len(cells) < 4:
            raise DataError(f"{path}:{i}: expected 4 tab-separated columns, got {len(cells)}")
        try:
            out[cells[1]] = (_number(cells[2]), _number(cells[3]))
        except ValueError:
            raise DataError(f"{path}:{i}: cannot read the rates {cells[2]!r}, {cells[3]!r}") from None
    return out


def prepare_emodb(
    root: str | Path, out_dir: str | Path, *, strict: bool = False, min_duration: float | None = None
) -> PrepareResult:
    """Prepare EmoDB into ``out_dir/cuts.jsonl.gz`` and ``out_dir/summary.json``.

    Files whose name does not follow ``SSTTTEV.wav`` (or with an unknown speaker, text or
    emotion code) and bad audio are skipped and listed; ``strict=True`` raises instead.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"EmoDB root not found: {root}")
    wav_dir = root / "wav"
    if not wav_dir.is_dir():
        raise DataError(
            f"EmoDB directory missing: {wav_dir}", hint="pass the EmoDB root (it holds wav/ and erkennung.txt)"
        )
    notes = []
    rates_file = root / "erkennung.txt"
    rates = parse_erkennung(rates_file) if rates_file.is_file() else {}
    if not rates_file.is_file():
        notes.append(f"{rates_file} not found: no recognition_rate / naturalness fields")
    elif not rates:
        notes.append(f"{rates_file} lists no files: no recognition_rate / naturalness fields")
    cuts = []
    skipped: list[SkippedItem] = []
    wavs = sorted(p for p in wav_dir.iterdir() if p.suffix.lower() == ".wav" and not p.name.startswith("."))
    if not wavs:
        raise DataError(f"no .wav files in {wav_dir}")
    no_rate = 0
    for wav in wavs:
        utt_id = wav.stem
        m = _NAME_RE.match(utt_id)
        if m is None:
            skipped.append(
                SkippedItem(utt_id, str(wav), "malformed file name", "expected SSTTTEV.wav, e.g. 03a01Fa.wav")
            )
            continue
        spk, text_id, letter, version = m.groups()
        problem = (
            "unknown speaker"
            if spk not in SPEAKERS
            else "unknown text"
            if text_id not in TEXTS
            else "unknown emotion"
            if letter not in EMOTIONS
            else None
        )
        if problem:
            skipped.append(SkippedItem(utt_id, str(wav), problem, f"speaker {spk}, text {text_id}, emotion {letter}"))
            continue
        info = probe_or_skip(utt_id, wav, skipped)
        if info is None:
            continue
        gender, age = SPEAKERS[spk]
        rate = rates.get(wav.name)
        no_rate += rates != {} and rate is None
        cuts.append(
            make_cut(
                utt_id,
                wav,
                info=info,
                emotion=EMOTIONS[letter],
                emotion_raw=letter,
                speaker=spk,
                gender=gender,
                text=clean_text(TEXTS[text_id]),
                custom={
                    TEXT_RAW: TEXTS[text_id],
                    "text_id": text_id,
                    "version": version,
                    "age": age,
                    "recognition_rate": rate[0] if rate else None,
                    "naturalness": rate[1] if rate else None,
                },
            )
        )
    if no_rate:
        notes.append(f"{no_rate} file(s) not listed in {rates_file.name}: no recognition_rate / naturalness for them")
    return finish_prepare(
        cuts,
        skipped,
        corpus="emodb",
        out_dir=out_dir,
        strict=strict,
        min_duration=min_duration,
        notes=notes,
    )
