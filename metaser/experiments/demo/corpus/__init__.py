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

Modules, one job each: :mod:`~metaser.experiments.demo.corpus.espeak` (the eSpeak NG binding),
:mod:`~metaser.experiments.demo.corpus.design` (speakers, sessions, dialogs, sentences),
:mod:`~metaser.experiments.demo.corpus.config` (:class:`SynthConfig`), :mod:`~metaser.experiments.demo.corpus.plan`
(which turn says what, how), :mod:`~metaser.experiments.demo.corpus.render` (audio of one turn),
:mod:`~metaser.experiments.demo.corpus.iemocap_layout` (the files), :mod:`~metaser.experiments.demo.corpus.corpus` (all
of it).
"""

from __future__ import annotations

from metaser.experiments.demo.corpus.config import EmotionProsody, SynthConfig
from metaser.experiments.demo.corpus.corpus import synthesize_demo_corpus
from metaser.experiments.demo.corpus.design import (
    DIALOGS,
    IMPRO_LINES,
    SCRIPT_LINES,
    SPEAKERS,
    TARGET_LABELS,
    SpeakerVoice,
)
from metaser.experiments.demo.corpus.iemocap_layout import SynthReport, SynthUtterance
from metaser.experiments.demo.corpus.plan import PlannedTurn, assign_prosody, plan_corpus
from metaser.experiments.demo.corpus.render import render_turn

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
