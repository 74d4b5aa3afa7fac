"""Tiny corpus fixtures for the recipe / manifest / audio tests (tones written with soundfile).

The builders are plain functions (importable as ``tests.data.conftest``) wrapped by fixtures.
Each builder returns the root it wrote; the expected facts are module constants next to it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO_ROOT = Path(__file__).resolve().parents[2]
EMODB_ROOT = REPO_ROOT.parent / "shared" / "data" / "emodb"


# ------------------------------------------------------------------------------------------
# audio files


def tone(seconds: float = 0.25, sr: int = 16000, channels: int = 1, freq: float = 220.0) -> np.ndarray:
    """(S, C) float32 sine; channel c has amplitude 0.5 / (c + 1) so a mix-down is checkable."""
    t = np.arange(int(round(seconds * sr))) / sr
    x = np.sin(2 * np.pi * freq * t)
    return np.stack([0.5 / (c + 1) * x for c in range(channels)], axis=1).astype(np.float32)


def write_tone(
    path: Path, seconds: float = 0.25, sr: int = 16000, channels: int = 1, subtype: str = "PCM_16", freq: float = 220.0
) -> np.ndarray:
    """Write a tone and return the (S, C) float32 samples written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    x = tone(seconds, sr, channels, freq)
    sf.write(str(path), x, sr, subtype=subtype)
    return x


def write_empty(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


def write_garbage(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not audio at all " * 8)


def write_truncated(path: Path, seconds: float = 0.25, sr: int = 16000) -> None:
    """A valid WAV cut to 60% of its bytes (the header still declares the full length)."""
    write_tone(path, seconds, sr)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])


# ------------------------------------------------------------------------------------------
# IEMOCAP

_HEADER = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"

# dialog -> [(utt_id, label, (v, a, d), audio kind)]; kinds: ok, 8k, stereo, missing, empty,
# corrupt, garbage
IEMOCAP_TURNS = {
    "1": {
        "Ses01F_impro01": [
            ("Ses01F_impro01_F000", "neu", (2.5, 2.5, 2.5), "ok"),
            ("Ses01F_impro01_M000", "ang", (1.5, 3.5, 4.0), "ok"),
            ("Ses01F_impro01_F001", "xxx", (2.0, 2.0, 2.0), "ok"),
            ("Ses01F_impro01_M001", "fru", (2.0, 3.0, 3.0), "ok"),
        ],
        "Ses01M_script01_1": [
            ("Ses01M_script01_1_F000", "exc", (4.0, 4.0, 3.0), "8k"),
            ("Ses01M_script01_1_M000", "sad", (1.5, 2.0, 2.0), "stereo"),
        ],
    },
    "2": {
        "Ses02M_impro01": [
            ("Ses02M_impro01_F000", "hap", (4.5, 3.0, 3.0), "ok"),
            ("Ses02M_impro01_M000", "neu", (3.0, 2.0, 2.0), "missing"),
            ("Ses02M_impro01_F001", "sad", (1.0, 2.0, 1.5), "empty"),
            ("Ses02M_impro01_M001", "ang", (1.5, 4.0, 4.0), "corrupt"),
        ],
    },
    "3": {
        "Ses03M_impro05a": [
            ("Ses03M_impro05a_F000", "neu", (3.0, 2.5, 2.5), "ok"),
            ("Ses03M_impro05a_M000", "hap", (4.0, 3.0, 3.0), "garbage"),
        ],
    },
    "5": {
        "Ses05M_script01_1b": [
            ("Ses05M_script01_1b_F003", "ang", (2.0, 4.5, 4.0), "ok"),
        ],
    },
}

IEMOCAP_TEXTS = {
    "Ses01F_impro01_F000": "Excuse me.",
    "Ses01F_impro01_M000": "Do you have your forms? [LAUGHTER]  Yeah.",
    "Ses01F_impro01_F001": "Yeah.",
    "Ses01F_impro01_M001": "No.",
    "Ses01M_script01_1_F000": "[BREATHING] I'm SO excited!",
    "Ses01M_script01_1_M000": "Oh.",
    "Ses02M_impro01_F000": "Great [GARBAGE] news.",
    "Ses03M_impro05a_F000": "Okay.",
    "Ses05M_script01_1b_F003": "Get out.",
}

IEMOCAP_KEPT = {  # utt_id -> (emotion, emotion_raw, speaker, gender, session, style, dialog)
    "Ses01F_impro01_F000": ("neu", "neu", "Ses01F", "female", "1", "impro", "Ses01F_impro01"),
    "Ses01F_impro01_M000": ("ang", "ang", "Ses01M", "male", "1", "impro", "Ses01F_impro01"),
    "Ses01M_script01_1_F000": ("hap", "exc", "Ses01F", "female", "1", "script", "Ses01M_script01_1"),
    "Ses01M_script01_1_M000": ("sad", "sad", "Ses01M", "male", "1", "script", "Ses01M_script01_1"),
    "Ses02M_impro01_F000": ("hap", "hap", "Ses02F", "female", "2", "impro", "Ses02M_impro01"),
    "Ses03M_impro05a_F000": ("neu", "neu", "Ses03F", "female", "3", "impro", "Ses03M_impro05a"),
    "Ses05M_script01_1b_F003": ("ang", "ang", "Ses05F", "female", "5", "script", "Ses05M_script01_1b"),
}

# utt_id -> the categorical annotator lines under its turn (default: one "C-E1: Neutral state")
IEMOCAP_ANNOTATIONS = {
    "Ses01F_impro01_F000": [
        "C-E1:\tNeutral state;\t()",
        "C-E2:\tNeutral state;\t()",
        "C-E3:\tFrustration; Neutral state;\t(a bit (tired); bored)",
        "C-F1:\tAnger;\t()",
    ],
    "Ses01F_impro01_M000": ["C-E2:\tAnger;\t()", "C-E3:\tAnger;\t()", "C-E4:\tOther:annoyed;\t()"],
    "Ses01M_script01_1_F000": ["C-E1:\tExcited;\t()", "C-E2:\tHappiness; Excited;\t()", "C-E3:\tSurprise;\t()"],
    "Ses01M_script01_1_M000": ["C-E1:\tSadness;\t()", "C-M1:\tSadness;\t()"],
    "Ses02M_impro01_F000": [],
}
# utt_id -> (vote_ang, vote_hap, vote_neu, vote_sad, votes_dropped) without self-evaluations;
# None: no annotator line, no vote fields
IEMOCAP_VOTES = {
    "Ses01F_impro01_F000": (0.0, 0.0, 2.5, 0.0, 0.5),
    "Ses01F_impro01_M000": (2.0, 0.0, 0.0, 0.0, 1.0),
    "Ses01M_script01_1_F000": (0.0, 2.0, 0.0, 0.0, 1.0),
    "Ses01M_script01_1_M000": (0.0, 0.0, 0.0, 1.0, 0.0),
    "Ses02M_impro01_F000": None,
    "Ses03M_impro05a_F000": (0.0, 0.0, 1.0, 0.0, 0.0),
    "Ses05M_script01_1b_F003": (0.0, 0.0, 1.0, 0.0, 0.0),
}

IEMOCAP_SKIPPED = {  # utt_id -> reason
    "Ses02M_impro01_M000": "missing",
    "Ses02M_impro01_F001": "empty",
    "Ses02M_impro01_M001": "corrupt",
    "Ses03M_impro05a_M000": "unreadable",
}


def build_iemocap(root: Path) -> Path:
    """Write a tiny IEMOCAP_full_release tree (sessions 1, 2, 3, 5) under ``root``."""
    for sess, dialogs in IEMOCAP_TURNS.items():
        sdir = root / f"Session{sess}"
        emo_dir = sdir / "dialog" / "EmoEvaluation"
        trans_dir = sdir / "dialog" / "transcriptions"
        for d in (emo_dir, trans_dir, sdir / "sentences" / "wav"):
            d.mkdir(parents=True, exist_ok=True)
        for dialog, turns in dialogs.items():
            lines = [_HEADER]
            trans = []
            t = 1.0
            for utt, label, (v, a, d), kind in turns:
                lines.append(f"[{t:.4f} - {t + 1.5:.4f}]\t{utt}\t{label}\t[{v:.4f}, {a:.4f}, {d:.4f}]\n")
                lines += [f"{a}\n" for a in IEMOCAP_ANNOTATIONS.get(utt, ["C-E1:\tNeutral state;\t()"])]
                lines.append("A-E1:\tval 3; act 2; dom  2;\t()\n\n")
                if utt in IEMOCAP_TEXTS:
                    trans.append(f"{utt} [{t:08.4f}-{t + 1.5:08.4f}]: {IEMOCAP_TEXTS[utt]}\n")
                t += 2.0
                wav = sdir / "sentences" / "wav" / dialog / f"{utt}.wav"
                if kind == "ok":
                    write_tone(wav)
                elif kind == "8k":
                    write_tone(wav, sr=8000)
                elif kind == "stereo":
                    write_tone(wav, sr=48000, channels=2)
                elif kind == "empty":
                    write_empty(wav)
                elif kind == "corrupt":
                    write_truncated(wav)
                elif kind == "garbage":
                    write_garbage(wav)
                else:
                    assert kind == "missing"
                    wav.parent.mkdir(parents=True, exist_ok=True)
            # unlabelled turns and lines without timing: must be ignored
            trans.append(f"{dialog}_MXX0 [010.0000-011.0000]: Hmm.\n")
            trans.append("M: [BREATHING] some line without timing\n")
            (emo_dir / f"{dialog}.txt").write_text("".join(lines))
            (trans_dir / f"{dialog}.txt").write_text("".join(trans))
    # Sub-folders of EmoEvaluation hold other annotations in a turn-like format: never read.
    cat = root / "Session1" / "dialog" / "EmoEvaluation" / "Categorical"
    cat.mkdir(parents=True, exist_ok=True)
    (cat / "Ses01F_impro01_e2_cat.txt").write_text(
        "[1.0000 - 2.5000]\tSes01F_impro01_F099\tang\t[1.0000, 1.0000, 1.0000]\n"
        "Ses01F_impro01_F000 :Neutral state; ()\n"
    )
    write_tone(root / "Session1" / "sentences" / "wav" / "Ses01F_impro01" / "Ses01F_impro01_F099.wav")
    return root


# ------------------------------------------------------------------------------------------
# EmoDB

EMODB_FILES = {  # name -> (recognition rate, naturalness) in erkennung.txt, or None if unlisted
    "03a01Fa": (90.0, 75.0),
    "08a02Wb": (100.0, 95.5),
    "16b10Lc": (62.5, 40.0),
    "13b03Ta": None,
}
EMODB_BAD = {
    "not_emodb": "malformed file name",
    "99a01Fa": "unknown speaker",
    "03z01Fa": "malformed file name",
    "03a03Fa": "unknown text",
}


def build_emodb(root: Path) -> Path:
    """Write a tiny EmoDB-named corpus (wav/ + a Latin-1 erkennung.txt) under ``root``."""
    for name in list(EMODB_FILES) + list(EMODB_BAD):
        write_tone(root / "wav" / f"{name}.wav", seconds=0.2)
    rows = ["Nr.\tSatz\terkannt\tnatuerlich"]
    for i, (name, rates) in enumerate(EMODB_FILES.items(), start=1):
        if rates is None:
            continue
        r, n = (f"{v:.2f}".replace(".", ",") for v in rates)
        rows.append(f"{i}\xa0\xa0\t{name}.wav\t{r}\xa0\xa0\xa0\t{n}\xa0\xa0")
    (root / "erkennung.txt").write_bytes(("\n".join(rows) + "\n").encode("latin-1"))
    return root


# ------------------------------------------------------------------------------------------
# RAVDESS

RAVDESS_KEPT = {  # stem -> (emotion, raw, intensity, statement, repetition, speaker, gender, channels)
    "03-01-05-02-01-01-01": ("angry", "05", "strong", "01", "01", "01", "male", 1),
    "03-01-01-01-02-02-02": ("neutral", "01", "normal", "02", "02", "02", "female", 2),
    "03-01-08-01-01-02-02": ("surprised", "08", "normal", "01", "02", "02", "female", 1),
}
RAVDESS_SKIPPED = {
    "03-01-09-01-01-01-02": "malformed file name",
    "notes": "malformed file name",
    "03-01-03-01-01-01-05": "actor mismatch",
}


def build_ravdess(root: Path) -> Path:
    """Write a tiny Audio_Speech_Actors tree (48 kHz, one stereo file, one song file)."""
    for stem, kept in RAVDESS_KEPT.items():
        write_tone(root / f"Actor_{stem[-2:]}" / f"{stem}.wav", seconds=0.2, sr=48000, channels=kept[-1])
    write_tone(root / "Actor_01" / "03-02-03-01-01-01-01.wav", seconds=0.2, sr=48000)  # song
    for stem in RAVDESS_SKIPPED:
        write_tone(root / "Actor_02" / f"{stem}.wav", seconds=0.2, sr=48000)
    (root / "Actor_02" / "README.txt").write_text("not audio")
    return root


# ------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """One torch thread: on the shared 2-core machine two threads per process spin-wait and
    are several times slower (lhotse's speed perturbation runs torch convolutions)."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture
def iemocap_root(tmp_path: Path) -> Path:
    return build_iemocap(tmp_path / "IEMOCAP_full_release")


@pytest.fixture
def emodb_root(tmp_path: Path) -> Path:
    return build_emodb(tmp_path / "emodb")


@pytest.fixture
def ravdess_root(tmp_path: Path) -> Path:
    return build_ravdess(tmp_path / "ravdess")


@pytest.fixture
def quiet_console():
    """A rich Console writing into a buffer: ``console.file.getvalue()`` is the output."""
    import io

    from rich.console import Console

    return Console(file=io.StringIO(), width=200, color_system=None)
