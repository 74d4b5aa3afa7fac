"""Corpus recipes: each turns a corpus on disk into ``OUT/cuts.jsonl.gz`` + ``OUT/summary.json``.

Every ``prepare_<name>(root, out_dir, *, strict=False, min_duration=None)`` writes those two
files and returns a :class:`~metaser.data.prepare.PrepareResult` (the cuts, the summary dict,
the output directory); ``prepare_csv``, ``prepare_emobox`` and ``prepare_emobox_track2`` also
take ``audio_root``. As lhotse's recipes, they
print nothing: render ``result.summary`` with :func:`metaser.data.summary.print_summary`.
``min_duration`` (seconds, default :data:`~metaser.data.prepare.DEFAULT_MIN_DURATION` =
0.03125) drops shorter clips, listed in the summary with reason ``too_short``.
See :mod:`metaser.data.manifest` for the manifest contract.
"""

from __future__ import annotations

from metaser.data.recipes.csv_table import prepare_csv
from metaser.data.recipes.emobox import prepare_emobox
from metaser.data.recipes.emobox_track2 import prepare_emobox_track2
from metaser.data.recipes.emodb import prepare_emodb
from metaser.data.recipes.iemocap import prepare_iemocap
from metaser.data.recipes.ravdess import prepare_ravdess

__all__ = [
    "prepare_iemocap",
    "prepare_emodb",
    "prepare_ravdess",
    "prepare_csv",
    "prepare_emobox",
    "prepare_emobox_track2",
    "RECIPES",
]

RECIPES = {
    "iemocap": prepare_iemocap,
    "emodb": prepare_emodb,
    "ravdess": prepare_ravdess,
    "csv": prepare_csv,
    "emobox": prepare_emobox,
    "emobox-track2": prepare_emobox_track2,
}
