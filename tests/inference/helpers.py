"""Tiny fixtures for the inference tests: a random tiny model, speech-like audio, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16000
EMOTIONS = ["ang", "hap", "neu", "sad"]
VOWELS = (
    ((700, 80), (1220, 90), (2600, 120)),
    ((300, 60), (2300, 100), (3000, 120)),
    ((500, 70), (900, 80), (2400, 120)),
    ((350, 60), (800, 80), (2300, 120)),
)


def build_tiny_model():
    """The random tiny-wavlm model with gender, style and a CTC head (4 emotions)."""
    from metaser.models.config import EncoderConfig, ModelConfig, TaskSpec
    from metaser.models.metaser import MetaSERModel

    return MetaSERModel.build(
        ModelConfig(encoder=EncoderConfig(name_or_path="tiny-wavlm")),
        EMOTIONS,
        [
            TaskSpec("gender", "classification", ["female", "male"]),
            TaskSpec("style", "classification", ["impro", "script"]),
            TaskSpec("asr", "ctc", list("abc '")),
        ],
    )


def babble(seconds: float, f0: float = 140.0, seed: int = 0, level: float = 0.3) -> np.ndarray:
    """Speech-like audio silero-vad takes for speech: syllables of formant-filtered glottal
    pulses (random vowels, falling pitch) with short noisy gaps. (S,) float32 at 16 kHz."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    out, total = [], 0.0
    while total < seconds:
        d = rng.uniform(0.15, 0.3)
        n = int(d * SR)
        t = np.arange(n) / SR
        f = f0 * rng.uniform(0.9, 1.1) * (1 + 0.08 * np.sin(2 * np.pi * 2 * t)) * (1 - 0.15 * t / d)
        ph = np.cumsum(f / SR)
        y = (np.diff(np.floor(ph), prepend=0) > 0).astype(float) + 0.02 * rng.standard_normal(n)
        for fc, bw in VOWELS[rng.integers(len(VOWELS))]:
            r, th = np.exp(-np.pi * bw / SR), 2 * np.pi * fc / SR
            y = lfilter([1], [1, -2 * r * np.cos(th), r * r], y)
        out.append(y * np.sin(np.pi * t / d) ** 0.5 / np.abs(y).max())
        g = int(rng.uniform(0.02, 0.06) * SR)
        out.append(0.01 * rng.standard_normal(g))
        total += d + g / SR
    x = np.concatenate(out)[: int(seconds * SR)]
    return (level * x).astype(np.float32)


def tone(seconds: float, freq: float = 220.0, level: float = 0.3, sr: int = SR, seed: int = 0) -> np.ndarray:
    """A sine plus a little noise. (S,) float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sr))) / sr
    return (level * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(round(seconds * SR)), dtype=np.float32)


def write(path: Path, x: np.ndarray, sr: int = SR, subtype: str = "FLOAT") -> Path:
    """x: (S,) or (S, C)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x, sr, subtype=subtype)
    return path


def bad_files(root: Path) -> dict[str, Path]:
    """One file per failure reason: name -> path (see the expected reasons in the tests)."""
    root.mkdir(parents=True, exist_ok=True)
    files = {"missing": root / "missing.wav"}
    (root / "empty.wav").write_bytes(b"")
    files["empty"] = root / "empty.wav"
    (root / "unreadable.wav").write_text("this is not audio\n" * 20)
    files["unreadable"] = root / "unreadable.wav"
    good = write(root / "tmp_full.wav", tone(0.5), subtype="PCM_16")
    data = good.read_bytes()
    (root / "corrupt.wav").write_bytes(data[: len(data) // 2])  # header promises twice the data
    good.unlink()
    files["corrupt"] = root / "corrupt.wav"
    files["too_short"] = write(root / "short.wav", tone(200 / SR))  # 200 samples < 400
    files["silent"] = write(root / "silent.wav", silence(1.0))
    x = tone(0.5)
    x[100] = np.nan
    x[200] = np.inf
    files["nonfinite"] = write(root / "nan.wav", x)
    return files


def fake_run(
    root: Path,
    models: list,
    valid_ua: list[float],
    test_ua: list[float],
    *,
    unfinished: tuple[int, ...] = (),
    synthetic: bool = False,
) -> Path:
    """A run directory as metaser.training.fold writes it: fold<K>/{model/, metrics.json,
    labels.json, config.yaml, run_info.json} per model, plus results.json."""
    root.mkdir(parents=True, exist_ok=True)
    for k, (m, v, t) in enumerate(zip(models, valid_ua, test_ua), start=1):
        d = root / f"fold{k}"
        d.mkdir()
        (d / "run_info.json").write_text(
            json.dumps(
                {
                    "fold": k,
                    "test_group": f"Ses{k:02d}",
                    "seed": 0,
                    "manifest": "data/cuts.jsonl.gz",
                    "num_train": 10,
                    "num_valid": 2,
                    "num_test": 3,
                }
            )
        )
        (d / "labels.json").write_text(json.dumps({"classes": {"emotion": EMOTIONS}, "vocab": list("abc '")}))
        (d / "config.yaml").write_text("name: fake\n")
        if k in unfinished:
            continue
        m.save_pretrained(d / "model")
        (d / "metrics.json").write_text(
            json.dumps({"fold": k, "valid": {"ua": v, "wa": v + 0.01}, "test": {"ua": t, "wa": t + 0.01}})
        )
    (root / "results.json").write_text(
        json.dumps(
            {
                "folds": [{"fold": k} for k in range(1, len(models) + 1)],
                "test": {"ua": {"mean": 0.5, "std": 0.1}, "wa": {"mean": 0.55, "std": 0.1}},
            }
        )
    )
    if synthetic:
        (root / "SYNTHETIC").write_text("synthetic\n")
    return root
