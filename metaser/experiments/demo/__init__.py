"""``metaser demo`` and its corpus: demo tooling, not corpus handling.

:mod:`.corpus` synthesizes the offline, synthetic IEMOCAP-shaped demo corpus with eSpeak NG;
:mod:`.run` runs the whole pipeline on it (synthesize, prepare, 5-fold two-stage training,
report, export).
"""

from __future__ import annotations

from metaser.experiments.demo.run import run_demo

__all__ = ["run_demo"]
