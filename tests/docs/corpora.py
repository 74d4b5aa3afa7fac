"""Small corpora in the layouts the docs' commands expect, made from the synthetic demo corpus.

The docs point at real corpora (IEMOCAP, Berlin EmoDB, RAVDESS, a user's CSV table) that a test
machine does not have. The stand-ins hold the synthetic demo corpus's utterances (eSpeak NG,
``synthesize_demo_corpus``) under each corpus's own file layout and naming, so the docs'
``metaser prepare <recipe> ...`` commands run unchanged and the corpora train like the real ones
(several speakers of both genders, four emotions, transcripts).
"""

from __future__ import annotations

import csv
import gzip
import json
import shutil
from pathlib import Path

__all__ = ["labelled_utterances", "write_emodb", "write_ravdess", "write_csv_corpus"]

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


def labelled_utterances(manifest: Path) -> list[dict]:
    """The four-class utterances of a prepared IEMOCAP-recipe manifest (``cuts.jsonl.gz``):
    ``{"id", "path", "emotion", "speaker", "gender", "text", "style", "session"}`` each."""
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


def write_csv_corpus(manifest: Path, table: Path, audio_root: Path) -> Path:
    """A tab-separated table (path relative to ``audio_root``, emotion, speaker, gender, text,
    style, session) and its audio under ``audio_root``."""
    audio_root.mkdir(parents=True, exist_ok=True)
    rows = []
    for u in labelled_utterances(manifest):
        shutil.copyfile(u["path"], audio_root / f"{u['id']}.wav")
        rows.append({**{k: u[k] for k in ("emotion", "speaker", "gender", "text", "style", "session")}})
        rows[-1] = {"path": f"{u['id']}.wav", **rows[-1]}
    with table.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)
    return table
