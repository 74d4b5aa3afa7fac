"""A writer of EmoBox's per-corpus data format, for the EmoBox recipe's tests (metaser's own).

:func:`write_emobox_emodb` lists EmoDB-named wavs (the real corpus, or tones named like it)
the way EmoBox's ``data/emodb`` does: ``fold_N/emodb_{train,test}_fold_N.jsonl`` with the
fields key / dataset / wav / type / sample_rate / num_frame / task / length / emo / channel,
and a ``label_map.json`` whose "Neutral" key differs in case from the "neutral" of the lists,
as in EmoBox's. The folds group speakers (speaker k of the sorted speakers goes to fold
k mod K); the returned dict says which key each test file holds.
"""

from __future__ import annotations

import json
from pathlib import Path

import soundfile as sf

EMODB_EMO = {"W": "anger", "L": "boredem", "E": "disgust", "A": "fear", "F": "happy", "T": "sad", "N": "neutral"}
EMODB_LABEL_MAP = {
    "anger": "Angry",
    "boredem": "Boredom",
    "disgust": "Disgust",
    "fear": "Fear",
    "happy": "Happy",
    "Neutral": "Neutral",
    "sad": "Sad",
}


def emobox_entry(corpus: str, key: str, wav_rel: str, emo: str, wav: Path, **extra) -> dict:
    """One line of an EmoBox list for the audio file ``wav`` (listed as ``downloads/<corpus>/<wav_rel>``)."""
    info = sf.info(str(wav))
    entry = {
        "key": key,
        "dataset": corpus,
        "wav": f"downloads/{corpus}/{wav_rel}",
        "type": "raw",
        "sample_rate": info.samplerate,
        "num_frame": float(info.frames),
        "task": "category",
        "length": info.frames / info.samplerate,
        "emo": emo,
        "channel": info.channels,
    }
    entry.update(extra)
    return entry


def write_lists(
    out: Path, corpus: str, folds: dict[int, dict[str, list[dict]]], label_map: dict[str, str] | None = None
) -> Path:
    """folds: N -> {"train"/"test"/"valid": entries}; writes ``out/fold_N/<corpus>_<part>_fold_N.jsonl``."""
    for n, parts in folds.items():
        d = out / f"fold_{n}"
        d.mkdir(parents=True, exist_ok=True)
        for part, entries in parts.items():
            (d / f"{corpus}_{part}_fold_{n}.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries))
    if label_map is not None:
        (out / "label_map.json").write_text(json.dumps(label_map, indent=4))
    return out


def write_emobox_emodb(out: Path, wav_dir: Path, num_folds: int = 5) -> dict[int, set[str]]:
    """Write an EmoBox-format ``data/emodb`` for the EmoDB-named wavs of ``wav_dir``, speaker-grouped
    folds; returns fold number -> the keys of its test file."""
    wavs = sorted(p for p in wav_dir.glob("*.wav"))
    speakers = sorted({p.stem[:2] for p in wavs})
    fold_of_speaker = {s: i % num_folds + 1 for i, s in enumerate(speakers)}
    entries = [
        (
            fold_of_speaker[p.stem[:2]],
            emobox_entry("emodb", f"emodb-{p.stem}", f"wav/{p.name}", EMODB_EMO[p.stem[5]], p),
        )
        for p in wavs
    ]
    folds = {
        n: {"train": [e for f, e in entries if f != n], "test": [e for f, e in entries if f == n]}
        for n in range(1, num_folds + 1)
    }
    write_lists(out, "emodb", folds, EMODB_LABEL_MAP)
    return {n: {e["key"] for e in parts["test"]} for n, parts in folds.items()}
