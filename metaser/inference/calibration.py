"""Calibration audio for ``--int8``: the exported fold's validation part, or a directory of files.

The validation part is recomputed exactly as training made it: the fold's ``config.yaml``
gives the manifest and the split settings (``data.split``), and
:func:`metaser.data.folds.make_folds` rebuilds the folds from the manifest. The count is checked
against the ``num_valid`` that training wrote to ``run_info.json``, so a changed manifest or split
is caught here and does not go unnoticed. The test part is never read.

Every item is mono float32 at 16 kHz, cut to its first :data:`MAX_SECONDS` (the recognizer's
default segment length); files shorter than the encoder's receptive field are skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from metaser.constants import MIN_SAMPLES, SAMPLE_RATE
from metaser.errors import MetaserError
from metaser.rundir import fold_number, manifest_file

__all__ = ["CalibrationSet", "validation_set", "directory_set", "run_of_model", "MAX_SECONDS"]

MAX_SECONDS = 30.0  # longer items are cut (predict splits them into segments of this length)


@dataclass
class CalibrationSet:
    """Audio to calibrate and check an int8 graph on.

    source: ``validation`` (a fold's validation part) or ``directory`` (``--calib DIR``);
    description: where it came from, for messages and ``config.json``;
    ids: one name per item (cut id or file path); audio: (S,) float32 at 16 kHz each.
    """

    source: str
    description: str
    ids: list[str] = field(default_factory=list)
    audio: list[np.ndarray] = field(default_factory=list)
    skipped: int = 0

    def __len__(self) -> int:
        return len(self.audio)

    def add(self, name: str, x: np.ndarray) -> None:
        if x.shape[0] < MIN_SAMPLES:
            self.skipped += 1
            return
        self.ids.append(name)
        self.audio.append(np.ascontiguousarray(x[: int(MAX_SECONDS * SAMPLE_RATE)], dtype=np.float32))

    def summary(self) -> dict[str, Any]:
        """What ``config.json`` records about the set."""
        seconds = sum(x.shape[0] for x in self.audio) / SAMPLE_RATE
        return {"set": self.source, "description": self.description, "size": len(self), "seconds": round(seconds, 2)}


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise MetaserError(f"cannot read {path}: {e}") from None
    return raw if isinstance(raw, dict) else {}


def validation_set(fold_dir: str | Path) -> CalibrationSet:
    """The validation part of the fold in ``fold_dir`` (``runs/<name>/fold<K>``), as training split it.

    Raises MetaserError (hint: ``--calib DIR``) when the fold's config, its manifest or its
    validation part is missing, or when the recomputed split does not match ``run_info.json``.
    """
    from metaser.config import from_dict
    from metaser.data.config import DataConfig
    from metaser.data.folds import make_folds
    from metaser.data.manifest import load_cut_audio, load_manifest

    fold_dir = Path(fold_dir)
    hint = "give calibration audio with --calib DIR"
    k = fold_number(fold_dir)
    cfg_file = fold_dir / "config.yaml"
    if k is None or not cfg_file.is_file():
        raise MetaserError(f"{fold_dir}: no fold config.yaml to rebuild the validation part from", hint=hint)
    raw = _read_yaml(cfg_file).get("data")
    if not isinstance(raw, dict) or not raw.get("manifest"):
        raise MetaserError(f"{cfg_file}: no data.manifest (cannot rebuild the validation part)", hint=hint)
    data = from_dict(DataConfig, raw)
    info = _run_info(fold_dir)
    mpath = manifest_file(data.manifest)
    if not mpath.is_file() and info.get("manifest"):
        mpath = manifest_file(info["manifest"])  # the absolute path training resolved
    if not mpath.is_file():
        raise MetaserError(f"{fold_dir}: the training manifest {data.manifest} is not found", hint=hint)
    cuts = load_manifest(mpath)
    folds = make_folds(cuts, data.split)
    if k > len(folds):
        raise MetaserError(f"{fold_dir}: the manifest {mpath} gives only {len(folds)} folds", hint=hint)
    split = folds[k - 1]
    if isinstance(info.get("num_valid"), int) and info["num_valid"] != len(split.valid_ids):
        raise MetaserError(
            f"{fold_dir}: the recomputed validation part has {len(split.valid_ids)} utterances, training had "
            f"{info['num_valid']} (manifest or split settings changed since)",
            hint=hint,
        )
    if not split.valid_ids:
        raise MetaserError(f"{fold_dir}: the fold has no validation part (data.split.valid_fraction = 0)", hint=hint)
    out = CalibrationSet("validation", f"validation part of fold {k} ({fold_dir.parent})")
    keep = set(split.valid_ids)
    for cut in cuts:
        if cut.id in keep:
            out.add(cut.id, load_cut_audio(cut, SAMPLE_RATE))
    return out


def _run_info(fold_dir: Path) -> dict[str, Any]:
    try:
        info = json.loads((fold_dir / "run_info.json").read_text())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def directory_set(path: str | Path) -> CalibrationSet:
    """Every audio file under ``path`` (recursive, sorted), or the one file ``path`` names."""
    from metaser.data.audio import AudioError, load_audio
    from metaser.inference.predict import expand_inputs

    path = Path(path)
    if not path.exists():
        raise MetaserError(f"--calib {path}: not found", hint="give a directory of audio files")
    files = [p for p in expand_inputs([path]) if isinstance(p, Path)]
    out = CalibrationSet("directory", str(path))
    for f in files:
        try:
            out.add(str(f), load_audio(f, SAMPLE_RATE))
        except AudioError:
            out.skipped += 1
    if not len(out):
        raise MetaserError(
            f"--calib {path}: no usable audio files", hint="give a directory of audio files (wav, flac, ...)"
        )
    return out


def run_of_model(model_dir: str | Path) -> Path | None:
    """The fold directory a model directory was exported from (``export.json``), if it still exists."""
    try:
        info = json.loads((Path(model_dir) / "export.json").read_text())
        d = Path(info["run_dir"]) / f"fold{int(info['fold'])}"
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return d if d.is_dir() else None
