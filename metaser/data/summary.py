"""The summary of a prepared corpus: built from its cuts, written as ``summary.json``, rendered.

* :func:`summarize` counts what a recipe kept, excluded and skipped (a JSON-serialisable
  dict; its keys are listed in the function's docstring);
* :func:`write_summary` writes ``OUT/summary.json`` atomically;
* :func:`render_summary` turns a summary into rich renderables and :func:`print_summary`
  prints them. Recipes never print: the CLI (``metaser prepare``) calls these.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metaser.data.manifest import EMOTION, EMOTION_RAW, SESSION, STYLE, SUMMARY_NAME, SUPERVISION_ATTRS, get_field
from metaser.rundir import write_json_atomic

if TYPE_CHECKING:
    from rich.console import Console, Group

__all__ = [
    "SkippedItem",
    "summarize",
    "write_summary",
    "render_summary",
    "print_summary",
    "format_counts",
    "sorted_counts",
]


@dataclass
class SkippedItem:
    """An utterance a recipe could not use.

    reason: a short category used for counting (``"missing"``, ``"corrupt"``,
        ``"malformed file name"``, ``"too_short"``...); detail: the message for this item.
    """

    utt_id: str
    path: str | None
    reason: str
    detail: str = ""


#: skipped items listed one by one when a summary is rendered (all are in summary.json)
SHOWN_SKIPPED = 10


def _natural_key(s: Any) -> tuple:
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", str(s)) if t)


def sorted_counts(counter: Counter) -> dict[str, int]:
    """``{str(key): count}`` in natural order ("2" before "10")."""
    return {str(k): counter[k] for k in sorted(counter, key=_natural_key)}


def format_counts(d: dict[str, int]) -> str:
    """``"a 1, b 2"``, or ``"-"`` when empty."""
    return ", ".join(f"{k} {v}" for k, v in d.items()) or "-"


def summarize(
    cuts,
    skipped: list[SkippedItem],
    corpus: str,
    *,
    excluded: dict[str, int] | None = None,
    notes: list[str] | None = None,
    group_by: str | None = None,
    warnings: list[str] | None = None,
) -> dict:
    """Counts describing a prepared corpus (JSON-serialisable).

    excluded: utterances left out on purpose, counted per label / rule (e.g. IEMOCAP's
        ``fru``, RAVDESS' ``song``); skipped: utterances that could not be used (bad audio,
        clips shorter than ``--min-duration`` with reason ``too_short``...), each listed.
    group_by: the field the emotion table is broken down by; default ``session`` when cuts
        have one, else ``speaker``.
    warnings: problems that do not stop the recipe but the user should see (e.g. a class
        with a single utterance); printed with the summary.

    Keys: corpus, utterances, seconds, hours, emotions, emotion_raw, group_by,
    emotion_by_group, speakers, num_speakers, genders, styles, sample_rates, channels,
    fields, numeric_fields (custom fields whose every value is a number), excluded,
    num_excluded, skipped_by_reason, num_skipped, skipped, notes, warnings.
    """
    cuts = list(cuts)
    if group_by is None:
        if any(get_field(c, SESSION) is not None for c in cuts):
            group_by = SESSION
        elif any(get_field(c, "speaker") is not None for c in cuts):
            group_by = "speaker"
    emotions: Counter = Counter()
    raw: Counter = Counter()
    by_group: dict[str, Counter] = defaultdict(Counter)
    speakers: Counter = Counter()
    genders: Counter = Counter()
    styles: Counter = Counter()
    rates: Counter = Counter()
    channels: Counter = Counter()
    fields: set[str] = set()
    not_numeric: set[str] = set()
    seconds = 0.0
    for c in cuts:
        emo = get_field(c, EMOTION)
        emotions[emo] += 1
        raw[get_field(c, EMOTION_RAW)] += 1
        if group_by is not None:
            by_group[str(get_field(c, group_by))][emo] += 1
        for name, counter in (("speaker", speakers), ("gender", genders), (STYLE, styles)):
            value = get_field(c, name)
            if value is not None:
                counter[value] += 1
        rates[c.sampling_rate] += 1
        channels[c.num_channels] += 1
        seconds += c.duration
        sup = c.supervisions[0]
        fields.update(k for k in (sup.custom or {}) if k not in (EMOTION, EMOTION_RAW))
        not_numeric.update(
            k for k, v in (sup.custom or {}).items() if isinstance(v, bool) or not isinstance(v, (int, float))
        )
        fields.update(a for a in SUPERVISION_ATTRS if getattr(sup, a) is not None)
    excluded = {str(k): int(v) for k, v in (excluded or {}).items() if v}
    skipped_by_reason = Counter(s.reason for s in skipped)
    return {
        "corpus": corpus,
        "utterances": len(cuts),
        "seconds": round(seconds, 3),
        "hours": round(seconds / 3600, 4),
        "emotions": sorted_counts(emotions),
        "emotion_raw": sorted_counts(raw),
        "group_by": group_by,
        "emotion_by_group": {g: sorted_counts(by_group[g]) for g in sorted(by_group, key=_natural_key)},
        "speakers": sorted_counts(speakers),
        "num_speakers": len(speakers),
        "genders": sorted_counts(genders),
        "styles": sorted_counts(styles),
        "sample_rates": sorted_counts(rates),
        "channels": sorted_counts(channels),
        "fields": sorted(fields),
        "numeric_fields": sorted(f for f in fields if f not in not_numeric and f not in SUPERVISION_ATTRS),
        "excluded": {k: excluded[k] for k in sorted(excluded, key=_natural_key)},
        "num_excluded": sum(excluded.values()),
        "skipped_by_reason": sorted_counts(skipped_by_reason),
        "num_skipped": len(skipped),
        "skipped": [asdict(s) for s in skipped],
        "notes": list(notes or []),
        "warnings": list(warnings or []),
    }


def write_summary(summary: dict, out_dir: str | Path) -> Path:
    """Write ``out_dir/summary.json`` (atomically: never half-written)."""
    path = Path(out_dir) / SUMMARY_NAME
    write_json_atomic(summary, path)
    return path


def render_summary(summary: dict) -> Group:
    """A summary as rich renderables: the emotion x group table, then metadata, skip counts,
    the first skipped items and the notes (plain text: paths and ids are not markup)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    groups = list(summary["emotion_by_group"])
    title = f"{summary['corpus']}: {summary['utterances']} utterances, {summary['hours']:.2f} h"
    table = Table(title=title)
    table.add_column(f"emotion \\ {summary['group_by']}" if groups else "emotion", no_wrap=True)
    for g in groups:
        table.add_column(g, justify="right", no_wrap=True)
    table.add_column("total", justify="right", no_wrap=True)
    for emo, n in summary["emotions"].items():
        table.add_row(emo, *[str(summary["emotion_by_group"][g].get(emo, 0)) for g in groups], str(n))
    table.add_row(
        "total",
        *[str(sum(summary["emotion_by_group"][g].values())) for g in groups],
        str(summary["utterances"]),
        style="bold",
    )
    lines = [f"speakers: {summary['num_speakers']}", f"genders: {format_counts(summary['genders'])}"]
    if summary["styles"]:
        lines.append(f"styles: {format_counts(summary['styles'])}")
    lines += [
        f"sample rates: {format_counts(summary['sample_rates'])}; channels: {format_counts(summary['channels'])}",
        f"fields: {', '.join(summary['fields']) or '-'}",
    ]
    if summary["num_excluded"]:
        lines.append(f"excluded by label/rule: {summary['num_excluded']} ({format_counts(summary['excluded'])})")
    lines.append(
        f"skipped: {summary['num_skipped']}"
        + (f" ({format_counts(summary['skipped_by_reason'])})" if summary["num_skipped"] else "")
    )
    shown = summary["skipped"][:SHOWN_SKIPPED]
    lines += [f"  {s['utt_id']}: {s['reason']}" + (f" - {s['detail']}" if s["detail"] else "") for s in shown]
    if summary["num_skipped"] > len(shown):
        lines.append(f"  ... and {summary['num_skipped'] - len(shown)} more (all listed in {SUMMARY_NAME})")
    lines += [f"note: {note}" for note in summary["notes"]]
    texts = [Text(line) for line in lines]
    texts += [Text(f"warning: {w}", style="yellow") for w in summary.get("warnings", [])]
    return Group(table, *texts)


def print_summary(summary: dict, console: Console | None = None) -> None:
    """Print :func:`render_summary` to ``console`` (default: a new stdout console)."""
    from rich.console import Console

    (console or Console()).print(render_summary(summary))
