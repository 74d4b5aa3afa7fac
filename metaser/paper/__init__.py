"""The reference paper's reported numbers (arXiv 2412.20707, Tables I-IV) as package data.

A base module: it imports nothing of metaser above :mod:`metaser.config` / :mod:`metaser.errors`,
so every layer (reports, ablation plans, the CLI) may use it.

>>> from metaser.paper import paper_encoder, paper_row
>>> paper_row("II", "full", paper_encoder("microsoft/wavlm-base"))
{'ua': 77.74, 'wa': 76.33}
>>> paper_row("tasks", "speaker_asr", "hubert")["ua"]
76.48
>>> paper_row("modules", "baseline", paper_encoder("tiny-wavlm")) is None
True

Row ids. Table I (``comparison``): ``shen``, ``ye``, ``chen``, ``he``, ``gao`` (prior art, one
system each), ``baseline``, ``proposed`` (per encoder). Table II (``modules``): ``baseline``,
``wo_ari_co``, ``wo_ari``, ``wo_co``, ``full``. Table III (``fusion``): ``weighted_sum``, ``ari``.
Table IV (``tasks``): ``none`` ("SER only") and the task names joined with ``_`` in the order
gender, speaker, style, asr (:func:`tasks_slug`), e.g. ``gender_speaker_style_asr``.
Figure keys: ``ua``, ``wa``; Table III also ``cer``, ``wer``, ``gr_acc``, ``styr_acc``.
"""

from __future__ import annotations

from metaser.paper.encoders import HUB_IDS, paper_encoder
from metaser.paper.markdown import render_markdown
from metaser.paper.tables import (
    ENCODER_NAMES,
    ENCODERS,
    STUDY_TABLES,
    TABLES,
    TASK_ORDER,
    PaperRow,
    PaperTable,
    load_tables,
    paper_row,
    paper_table,
    row_ids,
    tasks_slug,
)

__all__ = [
    "ENCODERS",
    "ENCODER_NAMES",
    "HUB_IDS",
    "STUDY_TABLES",
    "TABLES",
    "TASK_ORDER",
    "PaperRow",
    "PaperTable",
    "load_tables",
    "paper_encoder",
    "paper_row",
    "paper_table",
    "render_markdown",
    "row_ids",
    "tasks_slug",
]
