"""Which cells of the paper's Tables I-IV a set of run directories fill (``metaser paper-tables``).

A path may be a cross-validation run (``fold<K>/`` folders), an ablation study root
(``ablate-<study>/``, one run per variant) or the run folder of a base config that holds several
study roots (``metaser ablate --study all``) and perhaps its own folds. Each run is placed by its
saved config (the first finished fold's config.yaml and run_info.json):

- the table row from :func:`metaser.experiments.paper_compare.paper_reference`; the full model
  (ARI + co-attention, all four tasks) is one experiment that the paper prints four times, so it
  fills Table I "Ours", Table II "Our", Table III "ARI" and the last row of Table IV; the baseline
  fills Tables I and II;
- the encoder column from :func:`metaser.paper.paper_encoder`, or from an explicit mapping
  (``--encoder-as tiny-wavlm=wavlm``) for encoders that are not the paper's. A mapped run is
  placed but not comparable: it gets no Δ.

Runs that cannot be placed are returned with the reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from metaser.errors import ConfigError, MetaserError
from metaser.experiments.paper_compare import paper_reference
from metaser.experiments.report import aggregate
from metaser.paper import ENCODER_NAMES, ENCODERS, STUDY_TABLES, paper_encoder
from metaser.rundir import fold_dirs, fold_number

__all__ = ["PlacedRun", "cells_for", "find_runs", "parse_encoder_as", "place_runs"]

#: (study, row) of paper_reference -> the (table, row) cells that experiment fills
_SHARED_CELLS: dict[tuple[str, str], list[tuple[str, str]]] = {
    ("modules", "baseline"): [("I", "baseline"), ("II", "baseline")],
    ("modules", "full"): [("I", "proposed"), ("II", "full"), ("III", "ari"), ("IV", "gender_speaker_style_asr")],
}

#: folders never searched for runs (the stage store, the feature cache, exported models, sweeps)
_SKIP = {"stages", "cache", "model", "sweep"}

#: how deep below a given path runs are looked for: <all-root>/ablate-<study>/<variant>
_DEPTH = 2


@dataclass
class PlacedRun:
    """A run and the cells it fills. ``encoder``: the paper encoder key of its column;
    ``comparable``: its encoder is that paper encoder (False when placed by ``--encoder-as``);
    ``study``: the ablation study of its folder (``ablate-<study>``), None for a cv run."""

    path: Path
    study: str | None
    encoder_name: str
    encoder: str
    comparable: bool
    reference: tuple[str, str]
    cells: list[tuple[str, str]]
    result: dict[str, Any] = field(repr=False)

    @property
    def n_folds(self) -> int:
        return len(self.result["folds"])


def cells_for(reference: tuple[str, str]) -> list[tuple[str, str]]:
    """The (table, row) cells a paper_reference (study, row) fills, e.g. ("tasks", "asr") -> [("IV", "asr")]."""
    return list(_SHARED_CELLS.get(reference, [(STUDY_TABLES[reference[0]], reference[1])]))


def parse_encoder_as(items: Iterable[str]) -> dict[str, str]:
    """``["tiny-wavlm=wavlm"]`` -> {"tiny-wavlm": "wavlm"}: place runs of an encoder in a paper column.

    The value is a paper encoder key (wav2vec2, hubert, wavlm) or the paper's name of it.
    """
    by_name = {**{k: k for k in ENCODERS}, **{v.lower(): k for k, v in ENCODER_NAMES.items()}}
    out: dict[str, str] = {}
    for item in items:
        name, sep, key = item.partition("=")
        name, key = name.strip(), key.strip()
        if not sep or not name or key.lower() not in by_name:
            raise ConfigError(
                f"--encoder-as {item!r}: expected NAME=ENCODER with ENCODER one of {', '.join(ENCODERS)}",
                hint="NAME is the run's model.encoder.name_or_path, e.g. --encoder-as tiny-wavlm=wavlm",
            )
        out[name] = by_name[key.lower()]
    return out


def _is_run(path: Path) -> bool:
    """A run folder: some ``fold<K>/`` that metaser's training wrote (run_info.json or metrics.json)."""
    return any((d / "run_info.json").is_file() or (d / "metrics.json").is_file() for d in fold_dirs(path))


def _search(path: Path, depth: int, out: list[Path]) -> None:
    if _is_run(path):
        out.append(path)
    if depth == 0:
        return
    for child in sorted(path.iterdir()):
        if child.is_dir() and not child.is_symlink() and child.name not in _SKIP and fold_number(child) is None:
            _search(child, depth - 1, out)


def find_runs(path: str | Path) -> list[Path]:
    """Every run folder at ``path`` or up to two levels below it (study roots, ``--study all`` roots).

    Raises :class:`MetaserError` when ``path`` is not a directory or holds no run.
    """
    path = Path(path)
    if not path.is_dir():
        raise MetaserError(f"run directory not found: {path}")
    out: list[Path] = []
    _search(path, _DEPTH, out)
    if not out:
        raise MetaserError(
            f"{path}: no run found (no fold<K>/ folder with run_info.json or metrics.json, here or up to "
            f"{_DEPTH} levels below)",
            hint="pass a `metaser cv` run folder, an ablate-<study>/ folder or the folder holding them",
        )
    return out


def _study_of(run: Path) -> str | None:
    parent = run.parent.name
    if parent.startswith("ablate-") and parent.removeprefix("ablate-") in STUDY_TABLES:
        return parent.removeprefix("ablate-")
    return None


def _read_config(fold: Path) -> tuple[dict[str, Any], list[str]]:
    cfg = yaml.safe_load((fold / "config.yaml").read_text()) or {}
    info = json.loads((fold / "run_info.json").read_text())
    if not isinstance(cfg, dict) or not isinstance(info, dict):
        raise ValueError("not a mapping")
    return cfg, list(info.get("aux_tasks") or [])


def _place_one(run: Path, encoder_as: dict[str, str]) -> PlacedRun | str:
    """The placed run, or why it cannot be placed."""
    folds = fold_dirs(run, finished=True)
    if not folds:
        return "no finished fold (fold<K>/metrics.json)"
    try:
        cfg, aux = _read_config(folds[0])
    except (OSError, ValueError, yaml.YAMLError) as e:
        return f"{folds[0].name}/config.yaml or run_info.json cannot be read ({e})"
    model = cfg.get("model") or {}
    name = str((model.get("encoder") or {}).get("name_or_path", ""))
    ref = paper_reference(model, aux)
    if ref is None:
        fusion = model.get("fusion") or {}
        return (
            f"its config is no row of the paper's tables (aux tasks {aux}, fusion.layers="
            f"{fusion.get('layers')}, fusion.tasks={fusion.get('tasks')}, architecture={model.get('architecture')})"
        )
    key = paper_encoder(name)
    mapped = encoder_as.get(name.strip())
    if mapped is None and key is None:
        return (
            f"encoder {name!r} is not one of the paper's (facebook/wav2vec2-base, facebook/hubert-base-ls960, "
            f"microsoft/wavlm-base); place it anyway with --encoder-as {name}=wavlm (no Δ is computed)"
        )
    encoder = mapped or key
    assert encoder is not None
    try:
        result = aggregate(run)
    except MetaserError as e:
        return f"its results cannot be rebuilt: {e.message}"
    return PlacedRun(
        path=run,
        study=_study_of(run),
        encoder_name=name,
        encoder=encoder,
        comparable=key == encoder,
        reference=ref,
        cells=cells_for(ref),
        result=result,
    )


def place_runs(
    paths: Iterable[str | Path], encoder_as: dict[str, str] | None = None
) -> tuple[list[PlacedRun], list[dict[str, str]]]:
    """(placed runs, unplaced runs as {"path", "reason"}) for every run found under ``paths``,
    in the order found (a run reached twice is taken once)."""
    placed: list[PlacedRun] = []
    unplaced: list[dict[str, str]] = []
    seen: set[Path] = set()
    for p in paths:
        for run in find_runs(p):
            real = run.resolve()
            if real in seen:
                continue
            seen.add(real)
            got = _place_one(run, encoder_as or {})
            if isinstance(got, str):
                unplaced.append({"path": str(run), "reason": got})
            else:
                placed.append(got)
    return placed, unplaced
