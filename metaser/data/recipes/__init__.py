"""Corpus recipes: each turns a corpus on disk into ``OUT/cuts.jsonl.gz`` + ``OUT/summary.json``.

Every ``prepare_<name>(root, out_dir, *, strict=False, console=None)`` returns a
:class:`~metaser.data.manifest.PrepareResult` (``prepare_csv`` also takes ``audio_root``).
See :mod:`metaser.data.manifest` for the manifest contract.
"""

from __future__ import annotations

from metaser.data.recipes.csv_table import prepare_csv
from metaser.data.recipes.emodb import prepare_emodb
from metaser.data.recipes.iemocap import prepare_iemocap
from metaser.data.recipes.ravdess import prepare_ravdess

__all__ = ["prepare_iemocap", "prepare_emodb", "prepare_ravdess", "prepare_csv", "RECIPES"]

RECIPES = {
    "iemocap": prepare_iemocap,
    "emodb": prepare_emodb,
    "ravdess": prepare_ravdess,
    "csv": prepare_csv,
}
