"""Content keys of stages: a stage whose key is already trained in the output tree is reused.

A stage's key hashes everything that decides its result: the config fields it reads
(:meth:`~metaser.training.stages.StageSpec.key_fields`), the manifest's sha256, the key of the
stage it starts from, and :data:`KEY_SCHEMA`, the version of what a stage computes. The fold is
not part of the key; a stage's folds live under it (``<store>/<stage>-<key>/fold<K>``), so one key
names the same computation on every fold.

Every field of :class:`~metaser.training.config.RunConfig` is either read by some stage (and so
in its key) or listed in :data:`RESULT_NEUTRAL` with the reason it cannot change a result; a test
walks the config and fails on a field that is neither, so a new field cannot silently reuse a
stale stage. Stage 1 reads no co-attention or emotion-head setting: the Table II variants "w/o Co"
and the full model share their stage 1, and so do "w/o ARI & Co" and "w/o ARI".
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

__all__ = ["manifest_digest", "stage_keys", "stage_material", "KEY_LENGTH", "KEY_SCHEMA", "RESULT_NEUTRAL"]

KEY_LENGTH = 16

#: The version of what a stage computes for a given config. Bump it whenever an upgrade of
#: metaser changes a trained stage (a different loss, init, data order, numerics), so a store
#: never hands out a stage trained by older code.
#: 1: up to the one-boundary training core. 2: ``cache.mode=auto`` computes every utterance as if
#: alone (group-norm CNNs with a masked group norm, every encoder with an attention mask, also in
#: the trainable layers); feature stores built in batches; CPU dropout / FFT convolution switches.
KEY_SCHEMA = 2

#: RunConfig fields that cannot change a trained stage, with the reason (dotted paths).
RESULT_NEUTRAL: dict[str, str] = {
    "name": "names the run folder only",
    "output_dir": "where the run is written",
    "data.manifest": "its content's sha256 is in the key instead of its path",
    "data.sampler.num_workers": "loader processes; the data order and augmentation do not depend on them",
    "trainer.log_every_n_steps": "logging frequency",
    "trainer.enable_progress_bar": "console output",
    "trainer.num_threads": "torch's intra-op threads: the same computation (float rounding may move on CPU, "
    "as on another machine)",
    "cache.dir": "where feature stores are written",
    "cache.storage": "stores read from RAM or memory-mapped: the same values",
    "cache.max_memory_gb": "the RAM / memory-map choice only",
    "folds": "which folds run; each fold has its own directory under the key",
    "store_dir": "where stages are stored",
    "reuse": "whether a stored stage is reused",
}


def manifest_digest(cfg: RunConfig) -> str:
    """sha256 of the manifest file, or ``missing:<path>`` when it does not exist (plans only)."""
    p = manifest_file(cfg.data.manifest) if cfg.data.manifest else None
    if p is None or not Path(p).is_file():
        return f"missing:{p}"
    return sha256_file(p)


def _value(tree: dict[str, Any], path: str) -> Any:
    node: Any = tree
    for part in path.split("."):
        node = node[part]
    return node


def stage_material(cfg: RunConfig, spec: StageSpec, manifest: str, parent_key: str | None) -> dict[str, Any]:
    """What a stage's key hashes: its config fields' values, the manifest, the parent, the schema."""
    tree = to_dict(cfg)
    fields = {path: _value(tree, path) for path in spec.key_fields(cfg)}
    if "aux_tasks" in fields:  # the active tasks with their weights (the baseline has none)
        fields["aux_tasks"] = dict(spec.aux_weights)
    return {
        "schema": KEY_SCHEMA,
        "stage": spec.name,
        "manifest_sha256": manifest,
        "parent": parent_key,
        "fields": fields,
    }


def stage_keys(cfg: RunConfig, manifest: str | None = None) -> dict[str, str]:
    """Stage name -> key, for every stage of ``stage_plan(cfg)``."""
    manifest = manifest_digest(cfg) if manifest is None else manifest
    keys: dict[str, str] = {}
    for spec in stage_plan(cfg):
        material = stage_material(cfg, spec, manifest, keys.get(spec.parent) if spec.parent else None)
        blob = json.dumps(material, sort_keys=True, ensure_ascii=True)
        keys[spec.name] = hashlib.sha256(blob.encode()).hexdigest()[:KEY_LENGTH]
    return keys
