"""Content keys of stages: a stage whose key is already trained in the output tree is reused.

A stage's key hashes everything that decides its result: the config fields it reads, the
manifest's sha256, the seed and the key of the stage it starts from. The fold is not part of
the key; a stage's folds live under it (``<store>/<stage>-<key>/fold<K>``), so one key names
the same computation on every fold. Fields that only change speed or where files go (the
cache's storage and directory, loader workers, progress bars, output paths, the run name) are
left out. ``cache.mode`` is in: with a group-norm encoder the cache computes each utterance
alone, which changes the result (``force`` counts as ``auto``, which it equals).

Stage 1 reads no co-attention or emotion-head setting: the Table II variants "w/o Co" and the
full model share their stage 1, and so do "w/o ARI & Co" and "w/o ARI".
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from metaser.config import to_dict
from metaser.rundir import manifest_file, sha256_file
from metaser.training.config import RunConfig
from metaser.training.stages import StageSpec, stage_plan

__all__ = ["manifest_digest", "stage_keys", "KEY_LENGTH"]

KEY_LENGTH = 16
_TRAINER_FIELDS = (
    "accelerator",
    "devices",
    "strategy",
    "num_nodes",
    "precision",
    "accumulate_grad_batches",
    "deterministic",
    "limit_train_batches",
    "limit_val_batches",
    "matmul_precision",
    "compile",
    "fast_dropout",
    "fft_conv",
)


def manifest_digest(cfg: RunConfig) -> str:
    """sha256 of the manifest file, or ``missing:<path>`` when it does not exist (plans only)."""
    p = manifest_file(cfg.data.manifest) if cfg.data.manifest else None
    if p is None or not Path(p).is_file():
        return f"missing:{p}"
    return sha256_file(p)


def _material(cfg: RunConfig, spec: StageSpec, manifest: str, parent_key: str | None) -> dict[str, Any]:
    d = to_dict(cfg)
    data = {k: v for k, v in d["data"].items() if k != "manifest"}
    data["sampler"] = {k: v for k, v in data["sampler"].items() if k != "num_workers"}
    model = d["model"]
    out: dict[str, Any] = {
        "stage": spec.name,
        "manifest_sha256": manifest,
        "seed": cfg.seed,
        "data": data,
        "trainer": {k: d["trainer"][k] for k in _TRAINER_FIELDS},
        "encoder": model["encoder"],
        "stage_config": to_dict(spec.config),
        "parent": parent_key,
        "cache_mode": "auto" if cfg.cache.mode == "force" else cfg.cache.mode,
    }
    if spec.name == "stage1":
        out["aux_tasks"] = {t: cfg.aux_tasks[t] for t in cfg.active_aux_tasks}
        out["fusion"] = {k: model["fusion"][k] for k in ("layers", "weights", "normalize")}
        out["aux_head"] = model["aux_head"]
    elif spec.name == "stage2":
        out["aux_tasks"] = {t: cfg.aux_tasks[t] for t in cfg.active_aux_tasks}
        out["fusion"] = model["fusion"]
        out["aux_head"] = model["aux_head"]
        out["emotion_head"] = model["emotion_head"]
    else:  # emotion_only: the baseline reads no fusion / head settings
        out["architecture"] = model["architecture"]
        if not cfg.baseline:
            out["fusion"] = model["fusion"]
            out["emotion_head"] = model["emotion_head"]
    return out


def stage_keys(cfg: RunConfig, manifest: str | None = None) -> dict[str, str]:
    """Stage name -> key, for every stage of ``stage_plan(cfg)``."""
    manifest = manifest_digest(cfg) if manifest is None else manifest
    keys: dict[str, str] = {}
    for spec in stage_plan(cfg):
        material = _material(cfg, spec, manifest, keys.get(spec.parent) if spec.parent else None)
        blob = json.dumps(material, sort_keys=True, ensure_ascii=True)
        keys[spec.name] = hashlib.sha256(blob.encode()).hexdigest()[:KEY_LENGTH]
    return keys
