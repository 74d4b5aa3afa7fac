"""Planning the corpus before any audio exists: labels, speakers, texts and prosody of each turn.

:func:`plan_corpus` is deterministic for ``SynthConfig.seed``; :func:`assign_prosody` draws
each turn's jitter from ``(seed, turn index)`` alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from metaser.experiments.demo.corpus.config import SynthConfig
from metaser.experiments.demo.corpus.design import (
    DIALOGS,
    IMPRO_LINES,
    NON_TARGET_CYCLE,
    SCRIPT_LINES,
    SPEAKERS,
    TARGET_LABELS,
)
from metaser.experiments.demo.corpus.espeak import PARAM_LIMITS

__all__ = ["PlannedTurn", "plan_corpus", "assign_prosody"]


@dataclass
class PlannedTurn:
    """One labelled turn before audio exists (text, label, speaker and prosody settings)."""

    index: int  # position in the whole corpus, 0-based
    session: int
    dialog: str
    utt_id: str
    speaker: str  # Ses01F
    gender: str  # "F" | "M" (the speaker's, = first letter of the id's last token)
    style: str  # "impro" | "script"
    label: str
    text: str  # transcript, may contain [LAUGHTER] / [BREATHING]
    rate: int = 0
    pitch: int = 0
    pitch_range: int = 0
    volume: int = 0


def _label_list(cfg: SynthConfig, rng: np.random.Generator) -> list[str]:
    """Exact label quota for ``cfg.size`` turns, shuffled."""
    n = cfg.size
    n_non = max(1, round(n * cfg.non_target_fraction)) if cfg.non_target_fraction > 0 else 0
    rest = n - n_non
    counts = {k: rest // 4 for k in TARGET_LABELS}
    for k in TARGET_LABELS[: rest % 4]:
        counts[k] += 1
    n_exc = max(1, round(counts["hap"] * cfg.exc_fraction)) if cfg.exc_fraction > 0 else 0
    labels = [k for k in TARGET_LABELS for _ in range(counts[k] - (n_exc if k == "hap" else 0))]
    labels += ["exc"] * n_exc
    labels += [NON_TARGET_CYCLE[i % len(NON_TARGET_CYCLE)] for i in range(n_non)]
    order = rng.permutation(len(labels))
    return [labels[i] for i in order]


def _turn_counts(size: int) -> list[tuple[int, str, int]]:
    """(session, dialog, number of turns) with ``size`` turns spread evenly."""
    per_session = [size // 5 + (1 if s < size % 5 else 0) for s in range(5)]
    out = []
    for s, n_sess in zip(range(1, 6), per_session):
        dialogs = DIALOGS[s]
        for j, dialog in enumerate(dialogs):
            out.append((s, dialog, n_sess // len(dialogs) + (1 if j < n_sess % len(dialogs) else 0)))
    return out


def _clamp(value: float, key: str) -> int:
    lo, hi = PARAM_LIMITS[key]
    return int(min(hi, max(lo, round(value))))


def plan_corpus(cfg: SynthConfig) -> list[PlannedTurn]:
    """Every labelled turn of the corpus, in writing order (deterministic for ``cfg.seed``)."""
    cfg.validate()
    rng = np.random.default_rng([cfg.seed, 1])
    labels = _label_list(cfg, rng)
    turns: list[PlannedTurn] = []
    n_laugh = n_breath = 0
    for dialog_no, (session, dialog, n_turns) in enumerate(_turn_counts(cfg.size)):
        kind = dialog.split("_")[1]
        style = "script" if kind.startswith("script") else "impro"
        dialog_letter = dialog[5]
        # Alternate speakers; every other dialog opens with the *other* half's actor, so even
        # one-turn dialogs put women in M dialogs and men in F dialogs.
        first = dialog_letter if dialog_no % 2 == 0 else ("M" if dialog_letter == "F" else "F")
        counters = {"F": 0, "M": 0}
        script: tuple[str, ...] = SCRIPT_LINES.get(kind[:8], ())
        offset = 6 if style == "script" and dialog.split("_")[2].startswith("2") else 0
        for k in range(n_turns):
            gender = first if k % 2 == 0 else ("M" if first == "F" else "F")
            label = labels[len(turns)]
            if style == "script":
                text = script[(offset + k) % len(script)]
            else:
                text = IMPRO_LINES[int(rng.integers(len(IMPRO_LINES)))]
            if label in ("hap", "exc"):
                if n_laugh % 3 == 0:
                    text = f"{text} [LAUGHTER]"
                n_laugh += 1
            elif label == "sad":
                if n_breath % 4 == 0:
                    text = f"[BREATHING] {text}"
                n_breath += 1
            utt_id = f"{dialog}_{gender}{counters[gender]:03d}"
            counters[gender] += 1
            turns.append(
                PlannedTurn(
                    len(turns), session, dialog, utt_id, f"Ses{session:02d}{gender}", gender, style, label, text
                )
            )
    for t in turns:
        assign_prosody(t, cfg)
    return turns


def assign_prosody(turn: PlannedTurn, cfg: SynthConfig) -> PlannedTurn:
    """Fill in the eSpeak settings of ``turn``: emotion x speaker x style, plus jitter.

    The jitter is drawn from ``(cfg.seed, turn.index)`` alone, so it does not depend on the
    other turns. Returns ``turn`` (modified in place).
    """
    rng = np.random.default_rng([cfg.seed, 2, turn.index])
    p = cfg.prosody[turn.label]
    spk = SPEAKERS[turn.speaker]
    j = cfg.jitter
    script = turn.style == "script"
    rate = cfg.base_rate * spk.rate_factor * p.rate * (cfg.scripted_rate if script else 1.0)
    turn.rate = _clamp(rate * rng.uniform(1 - 0.06 * j, 1 + 0.06 * j), "rate")
    turn.pitch = _clamp(50 + spk.pitch_offset + p.pitch + rng.uniform(-4 * j, 4 * j), "pitch")
    prange = p.pitch_range * (cfg.scripted_range if script else 1.0)
    turn.pitch_range = _clamp(prange + rng.uniform(-6 * j, 6 * j), "pitch_range")
    turn.volume = _clamp(p.volume * rng.uniform(1 - 0.08 * j, 1 + 0.08 * j), "volume")
    return turn
