"""What every corpus recipe shares: skipped items, the too-short filter and the common end.

A recipe builds one cut per usable utterance (:func:`metaser.data.manifest.make_cut`), lists
what it could not use as :class:`SkippedItem`, and ends with :func:`finish_prepare`, which
drops clips shorter than ``min_duration`` (reason ``too_short``), writes
``OUT/cuts.jsonl.gz`` + ``OUT/summary.json`` and returns a :class:`PrepareResult`. Recipes
print nothing: the caller renders ``result.summary`` (:func:`metaser.data.summary.print_summary`).

Short clips. The CNN of every SSL encoder needs :data:`~metaser.constants.MIN_SAMPLES` (400)
samples for one frame, and TDSA can shorten a clip to ``min(speeds)`` = 0.8 times its samples
(the paper's set, ``length`` convention; 1 / 1.2 under the ``lhotse`` convention). A clip
shorter than :data:`DEFAULT_MIN_DURATION` = 400 / 0.8 / 16000 = 0.03125 s could therefore reach
the encoder below its receptive field, so prepare drops it by default. The dataset also
zero-pads anything shorter than 400 samples (``SERDataset(min_samples=...)``), so a clip
kept with a smaller ``min_duration`` never stops training either.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metaser.constants import MIN_SAMPLES, SAMPLE_RATE
from metaser.data.audio import AudioError, AudioInfo, probe_audio
from metaser.data.config import PAPER_SPEEDS
from metaser.data.manifest import EMOTION, MANIFEST_NAME, SUMMARY_NAME, get_field, save_manifest
from metaser.data.summary import SkippedItem, format_counts, sorted_counts, summarize, write_summary
from metaser.errors import DataError

__all__ = [
    "SkippedItem",
    "PrepareResult",
    "DEFAULT_MIN_DURATION",
    "TOO_SHORT",
    "probe_or_skip",
    "drop_too_short",
    "finish_prepare",
]

#: Shortest clip kept by default (seconds): MIN_SAMPLES / min(PAPER_SPEEDS) at SAMPLE_RATE
#: = 400 / 0.8 / 16000 = 0.03125 s (500 samples).
DEFAULT_MIN_DURATION: float = MIN_SAMPLES / min(PAPER_SPEEDS) / SAMPLE_RATE

#: the skip reason of clips shorter than ``min_duration``
TOO_SHORT = "too_short"


@dataclass
class PrepareResult:
    """What a recipe returns: the cuts it wrote, their summary and the output directory."""

    cuts: Any  # lhotse.CutSet
    summary: dict
    out_dir: Path

    @property
    def cuts_path(self) -> Path:
        """``out_dir/cuts.jsonl.gz``."""
        return self.out_dir / MANIFEST_NAME

    @property
    def summary_path(self) -> Path:
        """``out_dir/summary.json``."""
        return self.out_dir / SUMMARY_NAME


def probe_or_skip(utt_id: str, path: str | Path, skipped: list[SkippedItem]) -> AudioInfo | None:
    """Probe ``path``; on an :class:`AudioError` record a :class:`SkippedItem` and return None."""
    try:
        return probe_audio(path)
    except AudioError as e:
        skipped.append(SkippedItem(utt_id, str(path), e.reason, e.message))
        return None


def _cut_path(cut) -> str | None:
    sources = getattr(getattr(cut, "recording", None), "sources", None) or []
    return str(sources[0].source) if sources else None


def drop_too_short(cuts: list, min_duration: float) -> tuple[list, list[SkippedItem]]:
    """Split ``cuts`` into those at least ``min_duration`` seconds long and the
    :class:`SkippedItem` (reason ``too_short``) of the others, in their order."""
    if min_duration < 0:
        raise DataError(f"min_duration must be >= 0 seconds, got {min_duration}")
    kept, short = [], []
    for cut in cuts:
        if cut.duration < min_duration:
            short.append(
                SkippedItem(
                    cut.id,
                    _cut_path(cut),
                    TOO_SHORT,
                    f"{1000 * cut.duration:.2f} ms < min_duration {1000 * min_duration:.2f} ms",
                )
            )
        else:
            kept.append(cut)
    return kept, short


def _format_skipped(skipped: list[SkippedItem], limit: int = 30) -> str:
    lines = [f"  {s.utt_id} ({s.path}): {s.reason}" + (f" - {s.detail}" if s.detail else "") for s in skipped[:limit]]
    if len(skipped) > limit:
        lines.append(f"  ... and {len(skipped) - limit} more")
    return "\n".join(lines)


def finish_prepare(
    cuts: list,
    skipped: list[SkippedItem],
    *,
    corpus: str,
    out_dir: str | Path,
    strict: bool = False,
    min_duration: float | None = None,
    excluded: dict[str, int] | None = None,
    notes: list[str] | None = None,
    warnings: list[str] | None = None,
    extra: dict[str, Any] | None = None,
    group_by: str | None = None,
) -> PrepareResult:
    """The common end of every recipe: drop short clips, strict check, write manifest + summary.

    min_duration: clips shorter than this many seconds are dropped and listed as skipped with
        reason ``too_short`` (None = :data:`DEFAULT_MIN_DURATION`, 0 = keep everything).
    strict: any other skipped utterance (bad audio, bad name...) raises DataError listing
        them, and nothing is written. ``too_short`` drops never fail strict mode: they are a
        policy, not broken files (use ``min_duration=0`` to keep such clips).
    Raises DataError too when no utterance is usable.
    warnings: shown with the summary (``summary["warnings"]``); an emotion class with a single
        kept utterance is added here (it cannot be in both a training and a test part).
    extra: further keys merged into the summary (a recipe's own counts).
    group_by: the field the summary's emotion table is broken down by (default: session, else
        speaker).
    Nothing is printed: render ``result.summary`` with :func:`metaser.data.summary.print_summary`.
    """
    from lhotse import CutSet

    if strict and skipped:
        raise DataError(
            f"{corpus}: {len(skipped)} utterance(s) cannot be used (strict mode):\n" + _format_skipped(skipped),
            hint="fix or remove these files, or run without --strict to skip them",
        )
    min_duration = DEFAULT_MIN_DURATION if min_duration is None else float(min_duration)
    cuts, short = drop_too_short(list(cuts), min_duration)
    skipped = [*skipped, *short]
    if not cuts:
        reasons = format_counts(sorted_counts(Counter(s.reason for s in skipped)))
        raise DataError(
            f"{corpus}: no usable utterances found (skipped: {len(skipped)}"
            + (f": {reasons}" if skipped else "")
            + ", excluded: "
            + f"{sum((excluded or {}).values())})"
        )
    notes = list(notes or [])
    if short:
        notes.append(f"{len(short)} clip(s) shorter than min_duration {min_duration:g} s dropped (reason {TOO_SHORT})")
    warnings = list(warnings or [])
    singles = sorted(k for k, n in Counter(str(get_field(c, EMOTION)) for c in cuts).items() if n == 1)
    if singles:
        warnings.append(
            f"{len(singles)} emotion class(es) with a single utterance: {', '.join(singles)} "
            f"(it can be in a training or a test part, never both)"
        )
    cutset = CutSet.from_cuts(cuts)
    out = Path(out_dir)
    save_manifest(cutset, out)
    summary = summarize(cuts, skipped, corpus, excluded=excluded, notes=notes, warnings=warnings, group_by=group_by)
    summary.update(extra or {})
    summary["min_duration"] = min_duration
    write_summary(summary, out)
    return PrepareResult(cuts=cutset, summary=summary, out_dir=out)
