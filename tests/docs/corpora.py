"""Small corpora in the layouts the docs' commands expect, made from the synthetic demo corpus.

The docs point at real corpora (IEMOCAP, Berlin EmoDB, RAVDESS, a user's CSV table) that a test
machine does not have. The stand-ins hold the synthetic demo corpus's utterances (eSpeak NG,
``synthesize_demo_corpus``) under each corpus's own file layout and naming, so the docs'
``metaser prepare <recipe> ...`` commands run unchanged and the corpora train like the real ones
(several speakers of both genders, four emotions, transcripts). EmoBox's lists are written by
the EmoBox recipe tests' own writer (``tests/data/emobox_fixture.py``).
"""

from __future__ import annotations

import csv
import gzip
import json
import shutil
from pathlib import Path

from tests.data.emobox_fixture import emobox_entry, write_lists

__all__ = [
    "labelled_utterances",
    "write_emodb",
    "write_ravdess",
    "write_csv_corpus",
    "write_cp1252_table",
    "write_emobox_iemocap",
    "write_track2_list",
    "CP1252_TEXT",
]

#: synthetic speaker -> (EmoDB speaker code, RAVDESS actor); EmoDB codes keep each speaker's gender,
#: RAVDESS actors too (odd = male)
_SPEAKERS = {
    "Ses01F": ("08", "02"),
    "Ses01M": ("03", "01"),
    "Ses02F": ("09", "04"),
    "Ses02M": ("10", "03"),
    "Ses03F": ("13", "06"),
    "Ses03M": ("11", "05"),
    "Ses04F": ("14", "08"),
    "Ses04M": ("12", "07"),
    "Ses05F": ("16", "10"),
    "Ses05M": ("15", "09"),
}
_EMODB_EMOTION = {"ang": "W", "hap": "F", "neu": "N", "sad": "T"}
_EMODB_TEXTS = ("a01", "a02", "a04", "a05", "a07", "b01", "b02", "b03", "b09", "b10")
_RAVDESS_EMOTION = {"neu": "01", "hap": "03", "sad": "04", "ang": "05"}
#: RAVDESS emotion code -> the label of EmoBox's track-2 lists
_TRACK2_LABEL = {"01": "neutral", "03": "happy", "04": "sad", "05": "angry"}
#: IEMOCAP class -> EmoBox's label_map.json name (its IEMOCAP lists carry the 4 classes, exc in hap)
_EMOBOX_IEMOCAP_MAP = {"ang": "Angry", "hap": "Happy", "neu": "Neutral", "sad": "Sad"}
#: what the cp1252 table's text column holds: a right single quote, 0x92 in cp1252 (a control
#: character in latin-1, invalid in utf-8), as a Windows export writes "it's"
CP1252_TEXT = "it\u2019s the caf\u00e9"


def labelled_utterances(manifest: Path) -> list[dict]:
    """The four-class utterances of a prepared IEMOCAP-recipe manifest (``cuts.jsonl.gz``):
    ``{"id", "path", "emotion", "speaker", "gender", "text", "style", "session", "valence",
    "arousal"}`` each."""
    out = []
    with gzip.open(manifest, "rt") as f:
        for line in f:
            cut = json.loads(line)
            sup = cut["supervisions"][0]
            emotion = sup["custom"]["emotion"]
            if emotion not in _EMODB_EMOTION:
                continue
            out.append(
                {
                    "id": cut["id"],
                    "path": cut["recording"]["sources"][0]["source"],
                    "emotion": emotion,
                    "speaker": sup["speaker"],
                    "gender": sup["gender"],
                    "text": sup.get("text") or "",
                    "style": sup["custom"].get("style", ""),
                    "session": sup["custom"].get("session", ""),
                    "valence": sup["custom"].get("valence"),
                    "arousal": sup["custom"].get("activation"),  # IEMOCAP's name for arousal
                }
            )
    return out


def write_emodb(manifest: Path, root: Path) -> Path:
    """``root/wav/SSTTTEV.wav`` (speaker, text id, emotion letter, version), as Berlin EmoDB."""
    per_speaker: dict[str, int] = {}
    for u in labelled_utterances(manifest):
        code = _SPEAKERS[u["speaker"]][0]
        i = per_speaker[code] = per_speaker.get(code, -1) + 1
        text = _EMODB_TEXTS[i % len(_EMODB_TEXTS)]
        version = "abcdefghij"[i // len(_EMODB_TEXTS)]
        dst = root / "wav" / f"{code}{text}{_EMODB_EMOTION[u['emotion']]}{version}.wav"
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(u["path"], dst)
    return root


def write_ravdess(manifest: Path, root: Path) -> Path:
    """``root/Actor_XX/03-01-EE-II-SS-RR-XX.wav`` (speech, emotion, intensity, statement, repetition)."""
    per_actor: dict[str, int] = {}
    for u in labelled_utterances(manifest):
        actor = _SPEAKERS[u["speaker"]][1]
        i = per_actor[actor] = per_actor.get(actor, -1) + 1
        intensity, statement, repetition = i % 2 + 1, (i // 2) % 2 + 1, (i // 4) % 2 + 1
        if i >= 8:  # every (intensity, statement, repetition) of one emotion is taken: skip
            continue
        name = f"03-01-{_RAVDESS_EMOTION[u['emotion']]}-{intensity:02d}-{statement:02d}-{repetition:02d}-{actor}"
        dst = root / f"Actor_{actor}" / f"{name}.wav"
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(u["path"], dst)
    return root


def write_csv_corpus(
    manifest: Path, table: Path, audio_root: Path, delimiter: str = "\t", regression: bool = False
) -> Path:
    """A table (path relative to ``audio_root``, emotion, speaker, gender, text, style, session;
    with ``regression`` also the numeric ``valence`` and ``arousal`` of IEMOCAP's evaluators) and
    its audio under ``audio_root``."""
    audio_root.mkdir(parents=True, exist_ok=True)
    keys = ("emotion", "speaker", "gender", "text", "style", "session") + (("valence", "arousal") if regression else ())
    rows = []
    for u in labelled_utterances(manifest):
        shutil.copyfile(u["path"], audio_root / f"{u['id']}.wav")
        rows.append({"path": f"{u['id']}.wav", **{k: u[k] for k in keys}})
    with table.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return table


def write_cp1252_table(manifest: Path, table: Path, audio_dir: Path) -> Path:
    """A comma-separated table encoded in cp1252, as an old Windows export: paths relative to the
    table's folder (audio copied to ``audio_dir`` next to it), every text :data:`CP1252_TEXT`."""
    audio_dir.mkdir(parents=True, exist_ok=True)
    lines = ["path,emotion,speaker,text"]
    for u in labelled_utterances(manifest):
        shutil.copyfile(u["path"], audio_dir / f"{u['id']}.wav")
        rel = (audio_dir / f"{u['id']}.wav").relative_to(table.parent).as_posix()
        lines.append(f"{rel},{u['emotion']},{u['speaker']},{CP1252_TEXT}")
    table.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252"))
    return table


def write_emobox_iemocap(manifest: Path, corpus: Path, out: Path) -> Path:
    """EmoBox's ``data/iemocap`` for the IEMOCAP-layout ``corpus`` that ``manifest`` was prepared
    from: leave-one-session-out folds (fold N tests session N), keys ``iemocap-<utterance id>``,
    wav paths ``downloads/iemocap/Session<N>/sentences/wav/...``."""
    entries = []
    for u in labelled_utterances(manifest):
        wav = Path(u["path"])
        rel = Path(*wav.parts[[p.startswith("Session") for p in wav.parts].index(True) :])
        entries.append((u["session"], emobox_entry("iemocap", f"iemocap-{u['id']}", rel.as_posix(), u["emotion"], wav)))
    sessions = sorted({s for s, _ in entries})
    folds = {
        n: {"train": [e for s, e in entries if s != session], "test": [e for s, e in entries if s == session]}
        for n, session in enumerate(sessions, start=1)
    }
    return write_lists(out, "iemocap", folds, _EMOBOX_IEMOCAP_MAP)


def write_track2_list(ravdess_root: Path, out: Path) -> Path:
    """An EmoBox track-2 list (JSON lines: wav_filename, label, speaker) of the RAVDESS-named
    files under ``ravdess_root`` (as :func:`write_ravdess` writes them)."""
    lines = []
    for wav in sorted(ravdess_root.rglob("*.wav")):
        parts = wav.stem.split("-")
        entry = {"wav_filename": f"{wav.parent.name}/{wav.name}", "label": _TRACK2_LABEL[parts[2]], "speaker": parts[6]}
        lines.append(json.dumps(entry))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    return out
