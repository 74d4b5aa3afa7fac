"""An offline, synthetic IEMOCAP-shaped demo corpus spoken by eSpeak NG.

:func:`synthesize_demo_corpus` writes a small corpus in the ``IEMOCAP_full_release`` layout
(``Session{1..5}/dialog/EmoEvaluation``, ``dialog/transcriptions``, ``sentences/wav``) so the
whole pipeline (prepare -> train -> evaluate -> infer) runs without the licensed corpus.

What a model can learn from it:

* emotion -- through prosody, the same way for every speaker, with per-utterance jitter:
  ``ang`` loud, fast, wide range and a little saturated; ``hap`` (and ``exc``) high pitch,
  wide range, fast-ish; ``sad`` slow, low, monotone, quiet, muffled and trembling; ``neu``
  medium everything (see :class:`EmotionProsody` and ``SynthConfig.prosody``);
* gender and speaker -- 10 voices (5 sessions x one woman and one man), each an eSpeak NG
  variant with its own base pitch, formant scaling and speaking rate;
* style -- scripted dialogs speak the shared script lines (the same scripts in every
  session, as in IEMOCAP) a little slower and flatter than the improvised ones;
* words -- 54 short English sentences (characters for a tiny CTC head).

The label files follow the real format, including its traps: dialog ids with extra tokens
(``Ses03M_impro05a``, ``Ses05M_script01_1b``), turns of the woman inside dialogs recorded in
the man's half of the session (``Ses01M_impro01_F000``), ``exc`` (merged into ``hap`` by the
reader), non-target labels (``fru``, ``sur``, ``xxx``), transcript lines of unlabelled turns
(``..._MXX0``), ``[LAUGHTER]`` / ``[BREATHING]`` tags, and a ``Categorical/`` sub-folder.

Same seed and size -> byte-identical files.
"""

from __future__ import annotations

import dataclasses
import math
import re
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import lfilter, resample_poly

from metaser.data.espeak import PARAM_LIMITS, EspeakSynth, VoiceSpec
from metaser.errors import ConfigError, DataError

__all__ = [
    "EmotionProsody",
    "SynthConfig",
    "SpeakerVoice",
    "SynthUtterance",
    "SynthReport",
    "PlannedTurn",
    "SPEAKERS",
    "DIALOGS",
    "SCRIPT_LINES",
    "IMPRO_LINES",
    "TARGET_LABELS",
    "plan_corpus",
    "assign_prosody",
    "render_turn",
    "synthesize_demo_corpus",
]

README_MARKER = "metaser synthetic demo corpus"
INCOMPLETE_MARKER = ".synth-demo-incomplete"  # present only while the corpus is being written
TARGET_LABELS = ("neu", "hap", "ang", "sad")
NON_TARGET_CYCLE = ("fru", "xxx", "sur")
MIN_SIZE = 20  # one utterance per dialog

# --------------------------------------------------------------------------- configuration


@dataclass
class EmotionProsody:
    """How one label is spoken (before speaker offsets and per-utterance jitter).

    ``rate`` multiplies the speaker's words per minute; ``pitch`` is added to eSpeak's base
    pitch (50 = the voice's own); ``pitch_range`` (0-99) and ``volume`` (0-100) are eSpeak
    values. Post-processing: ``drive`` > 0 saturates (``tanh``), ``tremolo`` is the depth of a
    5.5 Hz amplitude modulation, ``lowpass`` (0-1) the pole of a one-pole low-pass filter.
    """

    rate: float = 1.0
    pitch: int = 0
    pitch_range: int = 40
    volume: int = 70
    drive: float = 0.0
    tremolo: float = 0.0
    lowpass: float = 0.0


def _default_prosody() -> dict[str, EmotionProsody]:
    return {
        "neu": EmotionProsody(rate=1.00, pitch=0, pitch_range=40, volume=68),
        "hap": EmotionProsody(rate=1.10, pitch=12, pitch_range=85, volume=80),
        "exc": EmotionProsody(rate=1.18, pitch=16, pitch_range=95, volume=88),
        "ang": EmotionProsody(rate=1.22, pitch=6, pitch_range=90, volume=100, drive=2.5),
        "sad": EmotionProsody(rate=0.72, pitch=-12, pitch_range=8, volume=42,
                              tremolo=0.25, lowpass=0.6),
        "fru": EmotionProsody(rate=1.08, pitch=2, pitch_range=60, volume=86, drive=1.2),
        "sur": EmotionProsody(rate=1.00, pitch=18, pitch_range=99, volume=84),
        "xxx": EmotionProsody(rate=1.05, pitch=4, pitch_range=55, volume=76),
    }


@dataclass
class SynthConfig:
    """Knobs of the synthetic demo corpus (``metaser synth-demo``)."""

    seed: int = 0
    size: int = 400                  # labelled utterances in total (>= 20)
    sample_rate: int = 16000         # output rate of the wav files
    base_rate: int = 165             # words per minute of a neutral, improvised turn
    jitter: float = 1.0              # scale of the per-utterance prosody jitter (0 = none)
    scripted_rate: float = 0.93      # rate factor of scripted turns
    scripted_range: float = 0.85     # pitch-range factor of scripted turns
    non_target_fraction: float = 0.08  # share of fru / xxx / sur labels
    exc_fraction: float = 0.10       # share of exc inside the hap group
    noise_db: float = -60.0          # level of the added noise floor (dBFS)
    prosody: dict[str, EmotionProsody] = field(default_factory=_default_prosody)

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first bad field."""
        if self.seed < 0:
            raise ConfigError(f"synth.seed: {self.seed} must be >= 0")
        if self.size < MIN_SIZE:
            raise ConfigError(f"synth.size: {self.size} is too small, need at least {MIN_SIZE} "
                              f"(one utterance per dialog)")
        if self.sample_rate not in (8000, 16000, 22050, 44100, 48000):
            raise ConfigError(f"synth.sample_rate: {self.sample_rate} not one of 8000, 16000, "
                              f"22050, 44100, 48000")
        lo, hi = PARAM_LIMITS["rate"]
        if not lo <= self.base_rate <= hi:
            raise ConfigError(f"synth.base_rate: {self.base_rate} outside [{lo}, {hi}]")
        for name in ("jitter", "scripted_rate", "scripted_range"):
            if not 0.0 <= getattr(self, name) <= 2.0:
                raise ConfigError(f"synth.{name}: {getattr(self, name)} outside [0, 2]")
        for name in ("non_target_fraction", "exc_fraction"):
            if not 0.0 <= getattr(self, name) < 0.5:
                raise ConfigError(f"synth.{name}: {getattr(self, name)} outside [0, 0.5)")
        missing = [k for k in (*TARGET_LABELS, "exc", *NON_TARGET_CYCLE) if k not in self.prosody]
        if missing:
            raise ConfigError(f"synth.prosody: no entry for label(s) {', '.join(missing)}")
        for label, p in self.prosody.items():
            if not (0.3 <= p.rate <= 2.5 and 0 <= p.pitch_range <= 99 and 0 <= p.volume <= 100
                    and -50 <= p.pitch <= 50 and p.drive >= 0 and 0 <= p.tremolo < 1
                    and 0 <= p.lowpass < 1):
                raise ConfigError(f"synth.prosody.{label}: a value is out of range ({p})",
                                  hint="rate 0.3-2.5, pitch -50..50, pitch_range 0-99, "
                                       "volume 0-100, drive >= 0, tremolo and lowpass in [0, 1)")


# --------------------------------------------------------------------------- corpus design


@dataclass(frozen=True)
class SpeakerVoice:
    """One of the 10 fixed speakers: ``Ses0<n><F|M>`` and how its voice is made."""

    session: int
    gender: str          # "F" | "M"
    variant: str         # eSpeak NG variant (voices/!v)
    pitch_offset: int    # added to eSpeak's base pitch
    rate_factor: float   # multiplies the words per minute
    formant_scale: float

    @property
    def speaker(self) -> str:
        return f"Ses{self.session:02d}{self.gender}"

    @property
    def voice_name(self) -> str:
        return f"metaser_ses{self.session:02d}{self.gender.lower()}"

    def spec(self) -> VoiceSpec:
        return VoiceSpec(self.voice_name, variant=self.variant, formant_scale=self.formant_scale,
                         gender="female" if self.gender == "F" else "male")


SPEAKERS: dict[str, SpeakerVoice] = {v.speaker: v for v in (
    SpeakerVoice(1, "F", "f1", 0, 1.00, 1.00),
    SpeakerVoice(1, "M", "m1", 0, 1.00, 1.00),
    SpeakerVoice(2, "F", "f2", -4, 1.06, 0.97),
    SpeakerVoice(2, "M", "m2", 5, 0.95, 1.03),
    SpeakerVoice(3, "F", "f3", 4, 0.94, 1.02),
    SpeakerVoice(3, "M", "m3", -5, 1.05, 0.97),
    SpeakerVoice(4, "F", "f4", -2, 1.08, 1.04),
    SpeakerVoice(4, "M", "m4", 3, 0.92, 0.98),
    SpeakerVoice(5, "F", "f5", 6, 0.97, 0.96),
    SpeakerVoice(5, "M", "m6", -3, 1.03, 1.02),
)}

# 4 dialogs per session; the 'a'/'b' and '_1b' ids are traps of the real corpus.
DIALOGS: dict[int, tuple[str, ...]] = {
    1: ("Ses01F_impro01", "Ses01M_impro02", "Ses01F_script01_1", "Ses01M_script02_1"),
    2: ("Ses02M_impro01", "Ses02F_impro03", "Ses02M_script01_2", "Ses02F_script02_2"),
    3: ("Ses03M_impro05a", "Ses03M_impro05b", "Ses03F_script01_1", "Ses03M_script02_2"),
    4: ("Ses04F_impro04", "Ses04M_impro06", "Ses04F_script02_1", "Ses04M_script01_2"),
    5: ("Ses05F_impro02", "Ses05M_impro07", "Ses05M_script01_1b", "Ses05F_script02_1"),
}

# Scripts are the same in every session (as in IEMOCAP); part _1 / _1b speak lines 0-5 first,
# part _2 lines 6-11 first.
SCRIPT_LINES: dict[str, tuple[str, ...]] = {
    "script01": (
        "Excuse me, is this the right line?",
        "I have been waiting here all morning.",
        "You need to fill out this form first.",
        "Nobody told me about any form.",
        "It is printed on the sign by the door.",
        "Can I just ask you one question?",
        "Please take a number and sit down.",
        "I already have a number.",
        "Then wait until they call it.",
        "How long will that take?",
        "About an hour, maybe more.",
        "Fine, I'll wait.",
    ),
    "script02": (
        "Did you remember to call your mother?",
        "I called her this afternoon.",
        "What did she say about the trip?",
        "She wants us to come in June.",
        "June is too early for me.",
        "Then tell her we can come in July.",
        "You tell her, she listens to you.",
        "That's not true at all.",
        "We can talk about it at dinner.",
        "Dinner is almost ready.",
        "I will set the table.",
        "Thank you, that would help.",
    ),
}

IMPRO_LINES: tuple[str, ...] = (
    "I got the job offer today.",
    "They moved the meeting again.",
    "Where did you put the car keys?",
    "The train was late this morning.",
    "My brother is coming to visit.",
    "We lost the game last night.",
    "I can't find my phone anywhere.",
    "She said yes to the proposal.",
    "The rent is going up next month.",
    "Let's go to the beach this weekend.",
    "I think I left the stove on.",
    "He never returned my call.",
    "The weather is lovely today.",
    "I finished the whole project.",
    "They cancelled my flight.",
    "Do you want some coffee?",
    "The dog ran away again.",
    "I passed the final exam.",
    "You promised you would be here.",
    "It's just another ordinary day.",
    "My old friend is getting married.",
    "The store closes at nine.",
    "I have to work late tonight.",
    "We won a trip to the mountains.",
    "The doctor called with the results.",
    "I waited for you for two hours.",
    "Let me check the schedule.",
    "This is the best news all year.",
    "I'm moving to a new city.",
    "Nothing ever works out for me.",
)

UNLABELLED_TEXTS = ("Hmm.", "[LAUGHTER]", "Uh huh.", "[BREATHING] Okay.")

# label -> (category name written by the evaluators, base [valence, activation, dominance])
_CATEGORY = {
    "neu": ("Neutral state", (3, 2, 3)),
    "hap": ("Happiness", (4, 3, 3)),
    "exc": ("Excited", (4, 4, 3)),
    "ang": ("Anger", (2, 4, 4)),
    "sad": ("Sadness", (2, 2, 2)),
    "fru": ("Frustration", (2, 3, 3)),
    "sur": ("Surprise", (4, 4, 3)),
}
_XXX_CATEGORIES = ("Neutral state", "Frustration", "Anger", "Happiness", "Sadness")
_TAG_RE = re.compile(r"\[[A-Z]+\]")


@dataclass
class PlannedTurn:
    """One labelled turn before audio exists (text, label, speaker and prosody settings)."""

    index: int           # position in the whole corpus, 0-based
    session: int
    dialog: str
    utt_id: str
    speaker: str         # Ses01F
    gender: str          # "F" | "M" (the speaker's, = first letter of the id's last token)
    style: str           # "impro" | "script"
    label: str
    text: str            # transcript, may contain [LAUGHTER] / [BREATHING]
    rate: int = 0
    pitch: int = 0
    pitch_range: int = 0
    volume: int = 0


@dataclass
class SynthUtterance:
    """One written utterance (what the label files say, plus how it was made)."""

    utt_id: str
    session: int
    dialog: str
    speaker: str
    gender: str
    voice: str
    style: str
    label: str
    text: str
    start: float
    end: float
    duration: float
    path: str            # relative to the corpus root
    rate: int
    pitch: int
    pitch_range: int
    volume: int


@dataclass
class SynthReport:
    """What :func:`synthesize_demo_corpus` wrote."""

    out_root: str
    seed: int
    size: int
    n_utterances: int = 0
    n_unlabelled_lines: int = 0      # transcript-only ..XX0 lines (no label, no wav)
    per_label: dict[str, int] = field(default_factory=dict)    # raw labels, exc and xxx included
    per_session: dict[str, int] = field(default_factory=dict)  # "Session1" -> utterances
    per_speaker: dict[str, int] = field(default_factory=dict)  # "Ses01F" -> utterances
    total_duration_s: float = 0.0
    seconds_taken: float = 0.0
    utterances: list[SynthUtterance] = field(default_factory=list)

    def target_counts(self) -> dict[str, int]:
        """Counts a 4-class reader should find: exc merged into hap, non-targets dropped."""
        out = {k: self.per_label.get(k, 0) for k in TARGET_LABELS}
        out["hap"] += self.per_label.get("exc", 0)
        return out

    def summary(self) -> str:
        labels = ", ".join(f"{k} {v}" for k, v in sorted(self.per_label.items()))
        sessions = ", ".join(f"{k[-1]}:{v}" for k, v in self.per_session.items())
        return (f"{self.n_utterances} utterances ({self.total_duration_s / 60:.1f} min of audio) "
                f"in {self.seconds_taken:.1f} s -> {self.out_root}\n"
                f"labels: {labels}\nper session: {sessions}; "
                f"{self.n_unlabelled_lines} unlabelled transcript lines")


# --------------------------------------------------------------------------- planning


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
            turns.append(PlannedTurn(len(turns), session, dialog, utt_id, f"Ses{session:02d}{gender}",
                                     gender, style, label, text))
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


# --------------------------------------------------------------------------- audio


def _nonverbal(tag: str, sr: int, level: float, rng: np.random.Generator) -> np.ndarray:
    """A short noise event for a transcript tag: breathing or three laughter bursts."""
    if tag == "[BREATHING]":
        n = int(0.35 * sr)
        noise = lfilter([0.15], [1, -0.85], rng.standard_normal(n))
        return (noise * np.hanning(n) * level).astype(np.float32)  # (n,)
    if tag == "[LAUGHTER]":
        parts = []
        for _ in range(3):
            n_on, n_off = int(0.11 * sr), int(0.07 * sr)
            t = np.arange(n_on) / sr
            burst = np.sin(2 * np.pi * 280 * t) * 0.5 + rng.standard_normal(n_on) * 0.5
            parts += [burst * np.hanning(n_on) * level, np.zeros(n_off)]
        return np.concatenate(parts).astype(np.float32)
    return np.zeros(0, dtype=np.float32)


def render_turn(tts: EspeakSynth, turn: PlannedTurn, cfg: SynthConfig) -> np.ndarray:
    """Speak one planned turn; returns float32 samples in [-1, 1) at ``cfg.sample_rate``."""
    spk = SPEAKERS[turn.speaker]
    voice = tts.register_voice(spk.spec())
    p = cfg.prosody[turn.label]
    rng = np.random.default_rng([cfg.seed, 3, turn.index])
    sr_in = tts.sample_rate
    pieces: list[np.ndarray | None] = []  # None = a tag's non-verbal sound, filled in below
    speech_rms = []
    tags = _TAG_RE.findall(turn.text)
    segments = _TAG_RE.split(turn.text)
    for i, seg in enumerate(segments):
        if re.search(r"[A-Za-z]", seg):
            wav, _ = tts.synth(seg.strip(), voice, rate=turn.rate, pitch=turn.pitch,
                               pitch_range=turn.pitch_range, volume=turn.volume,
                               seed=cfg.seed * 100_003 + turn.index * 7 + i)
            x = wav.astype(np.float32) / 32768.0  # (T,)
            pieces.append(x)
            speech_rms.append(float(np.sqrt(np.mean(x ** 2))) if len(x) else 0.0)
        if i < len(tags):
            pieces.append(None)  # placeholder, level known after all speech is rendered
    level = 2.0 * (max(speech_rms) if speech_rms else 0.05)
    tag_iter = iter(tags)
    audio = np.concatenate([
        piece if piece is not None else _nonverbal(next(tag_iter), sr_in, level, rng)
        for piece in pieces
    ]) if pieces else np.zeros(0, dtype=np.float32)  # (T,) at 22050 Hz
    g = math.gcd(cfg.sample_rate, sr_in)
    y = resample_poly(audio, cfg.sample_rate // g, sr_in // g).astype(np.float64)  # (T',)
    sr = cfg.sample_rate
    if p.drive > 0:
        y = np.tanh(p.drive * y) / math.tanh(p.drive)
    if p.lowpass > 0:
        y = lfilter([1 - p.lowpass], [1, -p.lowpass], y)
    if p.tremolo > 0:
        t = np.arange(len(y)) / sr
        y = y * (1 - p.tremolo * (0.5 + 0.5 * np.sin(2 * np.pi * 5.5 * t + rng.uniform(0, 2 * np.pi))))
    pad_l, pad_r = (np.zeros(int(rng.uniform(0.05, 0.2) * sr)) for _ in range(2))
    y = np.concatenate([pad_l, y, pad_r])
    y = y + rng.standard_normal(len(y)) * 10 ** (cfg.noise_db / 20)
    return np.clip(y, -1.0, 32767 / 32768).astype(np.float32)


# --------------------------------------------------------------------------- writing


def _fmt_time(x: float) -> str:
    return f"{x:.4f}"


def _annotations(label: str, rng: np.random.Generator) -> tuple[list[str], list[float], list[str]]:
    """Evaluator lines of one turn, the mean [V, A, D], and the categories (for Categorical/)."""
    if label == "xxx":
        picks = rng.choice(len(_XXX_CATEGORIES), size=3, replace=False)
        cats = [_XXX_CATEGORIES[i] for i in picks]
        base = (3, 3, 3)
    else:
        name, base = _CATEGORY[label]
        other = _XXX_CATEGORIES[int(rng.integers(len(_XXX_CATEGORIES)))]
        cats = [name, name, name if rng.random() < 0.6 else other]
    lines = [f"C-E{i + 1}:\t{c};\t()" for i, c in enumerate(cats)]
    dims = []
    for i in range(3):
        v, a, d = (int(min(5, max(1, b + rng.integers(-1, 2)))) for b in base)
        dims.append((v, a, d))
        lines.append(f"A-E{i + 1}:\tval {v}; act {a}; dom  {d};\t()")
    mean = [float(np.mean([x[k] for x in dims])) for k in range(3)]  # [V, A, D]
    return lines, mean, cats


def _prepare_out_root(out_root: Path, overwrite: bool) -> None:
    """Refuse a non-empty folder unless ``overwrite`` and it holds an earlier synth-demo corpus.

    A corpus is recognised by its README.txt, or (when an earlier run was interrupted) by the
    ``INCOMPLETE_MARKER`` file written first and removed last. Only what this module writes
    (Session1..5, README.txt, the marker) is removed.
    """
    if out_root.exists() and not out_root.is_dir():
        raise DataError(f"synth-demo output is not a directory: {out_root}")
    if out_root.is_dir() and any(out_root.iterdir()):
        readme = out_root / "README.txt"
        ours = (readme.is_file() and README_MARKER in readme.read_text(errors="replace")) \
            or (out_root / INCOMPLETE_MARKER).is_file()
        if not overwrite:
            raise DataError(f"synth-demo output directory is not empty: {out_root}",
                            hint="choose a new directory, or overwrite a previous synth-demo corpus")
        if not ours:
            raise DataError(f"refusing to overwrite {out_root}: it is not a synth-demo corpus "
                            f"(no README.txt from metaser)")
        for s in DIALOGS:
            shutil.rmtree(out_root / f"Session{s}", ignore_errors=True)
        readme.unlink(missing_ok=True)
    out_root.mkdir(parents=True, exist_ok=True)
    (out_root / INCOMPLETE_MARKER).write_text(f"{README_MARKER}: being written (or interrupted)\n")


def _readme(cfg: SynthConfig, report: SynthReport) -> str:
    voices = "\n".join(f"  {v.speaker}: eSpeak NG variant {v.variant}, "
                       f"pitch offset {v.pitch_offset:+d}, "
                       f"rate x{v.rate_factor:.2f}, formants x{v.formant_scale:.2f}"
                       for v in SPEAKERS.values())
    labels = ", ".join(f"{k} {v}" for k, v in sorted(report.per_label.items()))
    seconds = report.total_duration_s
    n_sentences = sum(map(len, SCRIPT_LINES.values())) + len(IMPRO_LINES)
    return f"""{README_MARKER.upper()} -- NOT REAL SPEECH DATA

This folder is a SYNTHETIC stand-in for IEMOCAP_full_release, written by
`metaser synth-demo` (metaser.data.synth.synthesize_demo_corpus) so that the
pipeline can be demonstrated and tested offline. It contains no recordings of
people: every utterance was spoken by the eSpeak NG formant synthesiser
(espeakng-loader wheel, driven through ctypes), resampled to {cfg.sample_rate} Hz.
Do not report results on it as speech emotion recognition results.

{README_MARKER}
seed: {cfg.seed}
size: {cfg.size} labelled utterances ({report.n_utterances} written, {seconds:.1f} s of audio)
labels: {labels}

How it was made
- 5 sessions x 2 speakers (one female, one male voice each):
{voices}
- Emotion is carried by prosody (eSpeak rate, pitch, pitch range, volume, plus
  light post-processing), the same way for every speaker, with per-utterance
  jitter: ang loud/fast/wide range/saturated, hap and exc high/wide/fast-ish,
  sad slow/low/flat/quiet/muffled with tremolo, neu medium.
- Scripted dialogs speak shared script lines slightly slower and flatter than
  improvised ones; texts come from a fixed pool of {n_sentences} sentences.
- Layout and label formats follow IEMOCAP_full_release, including exc (read as
  hap), non-target labels (fru, sur, xxx), unlabelled ..XX0 transcript lines,
  [LAUGHTER]/[BREATHING] tags and an EmoEvaluation/Categorical/ folder.
- The same seed and size give byte-identical files.
"""


def synthesize_demo_corpus(out_root: str | Path, *, seed: int | None = None, size: int | None = None,
                           config: SynthConfig | None = None, overwrite: bool = False,
                           console=None) -> SynthReport:
    """Write the synthetic IEMOCAP-shaped corpus to ``out_root``; return what was written.

    ``seed`` and ``size`` override ``config`` (default :class:`SynthConfig`: seed 0, 400
    utterances). ``out_root`` must be empty or absent; ``overwrite=True`` replaces a corpus
    written earlier by this function (recognised by its README.txt) and nothing else.
    ``console`` (a ``rich`` console) receives progress lines and the summary.
    """
    t0 = time.perf_counter()
    cfg = config if config is not None else SynthConfig()
    if seed is not None:
        cfg = dataclasses.replace(cfg, seed=seed)
    if size is not None:
        cfg = dataclasses.replace(cfg, size=size)
    turns = plan_corpus(cfg)  # validates cfg
    out_root = Path(out_root)
    tts = EspeakSynth()
    try:
        _prepare_out_root(out_root, overwrite)
        report = _write_corpus(out_root, turns, cfg, tts, console)
    except OSError as e:
        raise DataError(f"synth-demo: cannot write the corpus under {out_root}: {e}") from e
    report.seconds_taken = round(time.perf_counter() - t0, 3)
    if console is not None:
        console.print(report.summary())
    return report


def _write_corpus(out_root: Path, turns: list[PlannedTurn], cfg: SynthConfig, tts: EspeakSynth,
                  console) -> SynthReport:
    """Render and write every dialog (labels, transcripts, wavs) and the README."""
    report = SynthReport(out_root=str(out_root), seed=cfg.seed, size=cfg.size)

    by_dialog: dict[str, list[PlannedTurn]] = {}
    for t in turns:
        by_dialog.setdefault(t.dialog, []).append(t)
    for s in DIALOGS:
        for sub in ("dialog/EmoEvaluation/Categorical", "dialog/transcriptions", "sentences/wav"):
            (out_root / f"Session{s}" / sub).mkdir(parents=True, exist_ok=True)

    for dialog_no, (dialog, dturns) in enumerate(by_dialog.items()):
        session = dturns[0].session
        sess_dir = out_root / f"Session{session}"
        wav_dir = sess_dir / "sentences" / "wav" / dialog
        wav_dir.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng([cfg.seed, 4, dialog_no])
        clock = float(rng.uniform(2.0, 8.0))
        emo_lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
        trans_lines: list[tuple[float, str]] = []
        cat_lines: list[str] = []
        for k, turn in enumerate(dturns):
            audio = render_turn(tts, turn, cfg)  # (T,) float32
            pcm = np.round(audio * 32767).astype(np.int16)
            path = wav_dir / f"{turn.utt_id}.wav"
            sf.write(path, pcm, cfg.sample_rate, subtype="PCM_16")
            duration = len(pcm) / cfg.sample_rate
            start, end = clock, clock + duration
            ann, (v, a, d), cats = _annotations(turn.label, rng)
            emo_lines += [f"[{_fmt_time(start)} - {_fmt_time(end)}]\t{turn.utt_id}\t{turn.label}\t"
                          f"[{v:.4f}, {a:.4f}, {d:.4f}]", *ann, ""]
            cat_lines.append(f"{turn.utt_id} :{cats[0]}; ()")
            trans_lines.append((start, f"{turn.utt_id} [{start:08.4f}-{end:08.4f}]: {turn.text}"))
            clock = end + float(rng.uniform(0.3, 1.5))
            if k == 0:  # one unlabelled back-channel per dialog, in the gap after the first turn
                other = "M" if turn.gender == "F" else "F"
                u_start, u_end = clock, clock + 0.8
                text = UNLABELLED_TEXTS[dialog_no % len(UNLABELLED_TEXTS)]
                trans_lines.append(
                    (u_start, f"{dialog}_{other}XX0 [{u_start:08.4f}-{u_end:08.4f}]: {text}"))
                report.n_unlabelled_lines += 1
                clock = u_end + float(rng.uniform(0.3, 1.0))
            report.utterances.append(SynthUtterance(
                turn.utt_id, session, dialog, turn.speaker, turn.gender,
                SPEAKERS[turn.speaker].voice_name, turn.style, turn.label, turn.text,
                round(start, 4), round(end, 4), duration,
                str(path.relative_to(out_root)), turn.rate, turn.pitch, turn.pitch_range, turn.volume))
            report.total_duration_s += duration
        emo_dir = sess_dir / "dialog" / "EmoEvaluation"
        (emo_dir / f"{dialog}.txt").write_text("\n".join(emo_lines) + "\n", encoding="utf-8")
        (emo_dir / "Categorical" / f"{dialog}_e1_cat.txt").write_text("\n".join(cat_lines) + "\n",
                                                                      encoding="utf-8")
        trans = [line for _, line in sorted(trans_lines, key=lambda x: x[0])]
        (sess_dir / "dialog" / "transcriptions" / f"{dialog}.txt").write_text("\n".join(trans) + "\n",
                                                                             encoding="utf-8")
        if console is not None and dialog == DIALOGS[session][-1]:
            console.print(f"synth-demo: Session{session} done")

    report.n_utterances = len(report.utterances)
    report.per_label = dict(sorted(Counter(u.label for u in report.utterances).items()))
    report.per_session = {f"Session{s}": sum(u.session == s for u in report.utterances) for s in DIALOGS}
    report.per_speaker = dict(sorted(Counter(u.speaker for u in report.utterances).items()))
    report.total_duration_s = round(report.total_duration_s, 3)
    (out_root / "README.txt").write_text(_readme(cfg, report), encoding="utf-8")
    (out_root / INCOMPLETE_MARKER).unlink()
    return report
