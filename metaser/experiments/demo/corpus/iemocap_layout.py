"""Writing the demo corpus in the ``IEMOCAP_full_release`` layout, and what was written.

``Session{n}/dialog/EmoEvaluation/<dialog>.txt`` (+ ``Categorical/``),
``Session{n}/dialog/transcriptions/<dialog>.txt`` and ``Session{n}/sentences/wav/<dialog>/``,
a README.txt that says the corpus is synthetic, and a marker file present only while writing.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from metaser.errors import DataError
from metaser.experiments.demo.corpus.annotators import evaluator_lines
from metaser.experiments.demo.corpus.config import SynthConfig
from metaser.experiments.demo.corpus.design import (
    CATEGORY,
    DIALOGS,
    IMPRO_LINES,
    SCRIPT_LINES,
    SPEAKERS,
    TARGET_LABELS,
    UNLABELLED_TEXTS,
    XXX_CATEGORIES,
)
from metaser.experiments.demo.corpus.espeak import EspeakSynth
from metaser.experiments.demo.corpus.plan import PlannedTurn
from metaser.experiments.demo.corpus.render import render_turn

__all__ = ["SynthUtterance", "SynthReport", "README_MARKER", "INCOMPLETE_MARKER", "prepare_out_root", "write_corpus"]

README_MARKER = "metaser synthetic demo corpus"
INCOMPLETE_MARKER = ".synth-demo-incomplete"  # present only while the corpus is being written


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
    path: str  # relative to the corpus root
    rate: int
    pitch: int
    pitch_range: int
    volume: int
    # the categorical annotator lines written under the turn: [(annotator, categories)], e.g.
    # [("E1", ["Anger"]), ("E3", ["Anger", "Frustration"]), ("F1", ["Anger"])]
    annotations: list[tuple[str, list[str]]] = field(default_factory=list)


@dataclass
class SynthReport:
    """What :func:`synthesize_demo_corpus` wrote."""

    out_root: str
    seed: int
    size: int
    n_utterances: int = 0
    n_unlabelled_lines: int = 0  # transcript-only ..XX0 lines (no label, no wav)
    per_label: dict[str, int] = field(default_factory=dict)  # raw labels, exc and xxx included
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
        return (
            f"{self.n_utterances} utterances ({self.total_duration_s / 60:.1f} min of audio) "
            f"in {self.seconds_taken:.1f} s -> {self.out_root}\n"
            f"labels: {labels}\nper session: {sessions}; "
            f"{self.n_unlabelled_lines} unlabelled transcript lines"
        )


def _fmt_time(x: float) -> str:
    return f"{x:.4f}"


def _annotations(
    label: str, gender: str, rng: np.random.Generator, votes_rng: np.random.Generator
) -> tuple[list[str], list[float], list[str], list[tuple[str, list[str]]]]:
    """Annotator lines of one turn, the mean [V, A, D], the categories (for Categorical/) and
    the categorical lines' (annotator, categories).

    ``rng`` (the dialog's: times, ratings) is drawn from exactly as before the evaluators'
    categorical lines existed, so the turn lines and everything else stay byte-identical;
    the ``C-`` lines come from ``votes_rng`` alone (:func:`evaluator_lines`).
    """
    if label == "xxx":
        picks = rng.choice(len(XXX_CATEGORIES), size=3, replace=False)
        cats = [XXX_CATEGORIES[i] for i in picks]
        base = (3, 3, 3)
    else:
        name, base = CATEGORY[label]
        other = XXX_CATEGORIES[int(rng.integers(len(XXX_CATEGORIES)))]
        cats = [name, name, name if rng.random() < 0.6 else other]
    lines, records = evaluator_lines(label, gender, votes_rng)
    dims = []
    for i in range(3):
        v, a, d = (int(min(5, max(1, b + rng.integers(-1, 2)))) for b in base)
        dims.append((v, a, d))
        lines.append(f"A-E{i + 1}:\tval {v}; act {a}; dom  {d};\t()")
    mean = [float(np.mean([x[k] for x in dims])) for k in range(3)]  # [V, A, D]
    return lines, mean, cats, records


def prepare_out_root(out_root: Path, overwrite: bool) -> None:
    """Refuse a non-empty folder unless ``overwrite`` and it holds an earlier synth-demo corpus.

    A corpus is recognised by its README.txt, or (when an earlier run was interrupted) by the
    ``INCOMPLETE_MARKER`` file written first and removed last. Only what this module writes
    (Session1..5, README.txt, the marker) is removed.
    """
    if out_root.exists() and not out_root.is_dir():
        raise DataError(f"synth-demo output is not a directory: {out_root}")
    if out_root.is_dir() and any(out_root.iterdir()):
        readme = out_root / "README.txt"
        ours = (readme.is_file() and README_MARKER in readme.read_text(errors="replace")) or (
            out_root / INCOMPLETE_MARKER
        ).is_file()
        if not overwrite:
            raise DataError(
                f"synth-demo output directory is not empty: {out_root}",
                hint="choose a new directory, or overwrite a previous synth-demo corpus",
            )
        if not ours:
            raise DataError(
                f"refusing to overwrite {out_root}: it is not a synth-demo corpus (no README.txt from metaser)"
            )
        for s in DIALOGS:
            shutil.rmtree(out_root / f"Session{s}", ignore_errors=True)
        readme.unlink(missing_ok=True)
    out_root.mkdir(parents=True, exist_ok=True)
    (out_root / INCOMPLETE_MARKER).write_text(f"{README_MARKER}: being written (or interrupted)\n")


def _readme(cfg: SynthConfig, report: SynthReport) -> str:
    voices = "\n".join(
        f"  {v.speaker}: eSpeak NG variant {v.variant}, "
        f"pitch offset {v.pitch_offset:+d}, "
        f"rate x{v.rate_factor:.2f}, formants x{v.formant_scale:.2f}"
        for v in SPEAKERS.values()
    )
    labels = ", ".join(f"{k} {v}" for k, v in sorted(report.per_label.items()))
    seconds = report.total_duration_s
    n_sentences = sum(map(len, SCRIPT_LINES.values())) + len(IMPRO_LINES)
    return f"""{README_MARKER.upper()} -- NOT REAL SPEECH DATA

This folder is a SYNTHETIC stand-in for IEMOCAP_full_release, written by
`metaser synth-demo` (metaser.experiments.demo.corpus.synthesize_demo_corpus) so that the
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


def write_corpus(
    out_root: Path,
    turns: list[PlannedTurn],
    cfg: SynthConfig,
    tts: EspeakSynth,
    progress: Callable[[str], object] | None = None,
) -> SynthReport:
    """Render and write every dialog (labels, transcripts, wavs) and the README.

    ``progress`` (e.g. ``console.print``) receives one line per finished session.
    """
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
        votes_rng = np.random.default_rng([cfg.seed, 5, dialog_no])  # the C- lines only
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
            ann, (v, a, d), cats, records = _annotations(turn.label, turn.gender, rng, votes_rng)
            emo_lines += [
                f"[{_fmt_time(start)} - {_fmt_time(end)}]\t{turn.utt_id}\t{turn.label}\t[{v:.4f}, {a:.4f}, {d:.4f}]",
                *ann,
                "",
            ]
            cat_lines.append(f"{turn.utt_id} :{cats[0]}; ()")
            trans_lines.append((start, f"{turn.utt_id} [{start:08.4f}-{end:08.4f}]: {turn.text}"))
            clock = end + float(rng.uniform(0.3, 1.5))
            if k == 0:  # one unlabelled back-channel per dialog, in the gap after the first turn
                other = "M" if turn.gender == "F" else "F"
                u_start, u_end = clock, clock + 0.8
                text = UNLABELLED_TEXTS[dialog_no % len(UNLABELLED_TEXTS)]
                trans_lines.append((u_start, f"{dialog}_{other}XX0 [{u_start:08.4f}-{u_end:08.4f}]: {text}"))
                report.n_unlabelled_lines += 1
                clock = u_end + float(rng.uniform(0.3, 1.0))
            report.utterances.append(
                SynthUtterance(
                    turn.utt_id,
                    session,
                    dialog,
                    turn.speaker,
                    turn.gender,
                    SPEAKERS[turn.speaker].voice_name,
                    turn.style,
                    turn.label,
                    turn.text,
                    round(start, 4),
                    round(end, 4),
                    duration,
                    str(path.relative_to(out_root)),
                    turn.rate,
                    turn.pitch,
                    turn.pitch_range,
                    turn.volume,
                    records,
                )
            )
            report.total_duration_s += duration
        emo_dir = sess_dir / "dialog" / "EmoEvaluation"
        (emo_dir / f"{dialog}.txt").write_text("\n".join(emo_lines) + "\n", encoding="utf-8")
        (emo_dir / "Categorical" / f"{dialog}_e1_cat.txt").write_text("\n".join(cat_lines) + "\n", encoding="utf-8")
        trans = [line for _, line in sorted(trans_lines, key=lambda x: x[0])]
        (sess_dir / "dialog" / "transcriptions" / f"{dialog}.txt").write_text("\n".join(trans) + "\n", encoding="utf-8")
        if progress is not None and dialog == DIALOGS[session][-1]:
            progress(f"synth-demo: Session{session} done")

    report.n_utterances = len(report.utterances)
    report.per_label = dict(sorted(Counter(u.label for u in report.utterances).items()))
    report.per_session = {f"Session{s}": sum(u.session == s for u in report.utterances) for s in DIALOGS}
    report.per_speaker = dict(sorted(Counter(u.speaker for u in report.utterances).items()))
    report.total_duration_s = round(report.total_duration_s, 3)
    (out_root / "README.txt").write_text(_readme(cfg, report), encoding="utf-8")
    (out_root / INCOMPLETE_MARKER).unlink()
    return report
