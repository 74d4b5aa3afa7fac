"""The demo corpus' entry point: plan, render and write it (:func:`synthesize_demo_corpus`)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

from metaser.errors import DataError
from metaser.experiments.demo.corpus.config import SynthConfig
from metaser.experiments.demo.corpus.espeak import EspeakSynth
from metaser.experiments.demo.corpus.iemocap_layout import SynthReport, prepare_out_root, write_corpus
from metaser.experiments.demo.corpus.plan import plan_corpus

__all__ = ["synthesize_demo_corpus"]


def synthesize_demo_corpus(
    out_root: str | Path,
    *,
    seed: int | None = None,
    size: int | None = None,
    config: SynthConfig | None = None,
    overwrite: bool = False,
    progress: Callable[[str], object] | None = None,
) -> SynthReport:
    """Write the synthetic IEMOCAP-shaped corpus to ``out_root``; return what was written.

    ``seed`` and ``size`` override ``config`` (default :class:`SynthConfig`: seed 0, 400
    utterances). ``out_root`` must be empty or absent; ``overwrite=True`` replaces a corpus
    written earlier by this function (recognised by its README.txt) and nothing else.
    ``progress`` (e.g. ``console.print``) receives one line per finished session; print
    ``report.summary()`` yourself.
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
        prepare_out_root(out_root, overwrite)
        report = write_corpus(out_root, turns, cfg, tts, progress)
    except OSError as e:
        raise DataError(f"synth-demo: cannot write the corpus under {out_root}: {e}") from e
    report.seconds_taken = round(time.perf_counter() - t0, 3)
    return report
