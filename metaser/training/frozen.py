"""A stage's frozen boundary: where it is, how padding is treated, and the store that caches it.

Frozen modules run in eval mode without autograd, so their output is a pure function of the
(speed-perturbed) waveform:

* stage 1 (and the emotion-only stage) freeze the CNN: its output is cached once per corpus,
  encoder checkpoint and speed factor, shared by every fold and variant (``cnn-<key>``);
* stage 2 also freezes the feature projection, the positional convolution and the first n
  transformer layers: their n outputs (ARI / the weighted sum read them too) are cached once per
  fold, right after stage 1 (``layer<n>-<key>``), and deleted when the stage is done.

Padding (``cache.mode``; docs/method.md): ``auto`` (metaser's choice, the fast mode) computes
every utterance as if it were alone (:attr:`FrozenBoundary.independent`: a group-norm CNN
normalises over the valid frames, every encoder gets an attention mask, in the trainable layers
too), so no result depends on the batch and the prefix can always be cached. ``strict`` (the
paper presets: "All sentences in each batch were padded") keeps HF's padded-batch computation
and caches only where that equals the utterance alone (layer-norm CNNs); ``none`` never caches
and computes padded too. The cache is off, and says why, with band / chunk dropping or cropping.

The route of ``stageN.freeze_layers``: RunConfig -> :class:`~metaser.training.stages.StageSpec`
-> :class:`FrozenBoundary` ``.layers`` -> ``model.freeze_encoder_layers``, the store's layer and
the module's ``encoder.prefix(batch.inputs, layers)``, which checks a stored batch against it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from metaser.boundary import Waveforms
from metaser.config import to_dict
from metaser.constants import MIN_SAMPLES
from metaser.data.augment import SpeedPerturb
from metaser.data.feature_cache import build_store, open_store, store_key
from metaser.data.feature_store import FeatureStore
from metaser.data.sources import UtteranceAudio
from metaser.training.config import RunConfig

__all__ = ["FrozenBoundary", "frozen_boundary", "stage_store", "drop_stage_store", "STORE_DTYPES"]

log = logging.getLogger(__name__)

#: trainer precision -> dtype of the stored features
STORE_DTYPES = {
    "bf16-mixed": "bfloat16",
    "bf16-true": "bfloat16",
    "bf16": "bfloat16",
    "16-mixed": "float16",
    "16-true": "float16",
    "16": "float16",
}


@dataclass(frozen=True)
class FrozenBoundary:
    """layers: the stage's frozen transformer layers n (the CNN is always frozen); independent:
    every utterance computed as if alone (``cache.mode=auto``); store_layer: what a feature
    store holds (0 = the CNN output, n = the n frozen layers' outputs), None = the prefix runs
    live on audio; reason: what is cached, or why nothing is."""

    layers: int
    independent: bool
    store_layer: int | None
    reason: str


def frozen_boundary(cfg: RunConfig, freeze_layers: int, encoder) -> FrozenBoundary:
    """The boundary of a stage that freezes ``freeze_layers`` transformer layers of ``encoder``."""
    c, aug = cfg.cache, cfg.data.augment
    n = int(freeze_layers)
    independent = c.mode == "auto"
    if c.mode == "none":
        return FrozenBoundary(n, False, None, "cache.mode=none")
    if aug.band_drop_prob > 0 or aug.chunk_drop_prob > 0 or cfg.data.sampler.max_utterance_seconds:
        why = "a waveform augmentation other than the speed set is on (band / chunk drop, cropping)"
        return FrozenBoundary(n, independent, None, why)
    if independent:
        what = f"the CNN and the first {n} layers" if n else "the CNN"
        if not encoder.padded_layers_exact:
            what += ", each utterance as if alone (metaser's padding; cache.mode=strict keeps the padded batches)"
        return FrozenBoundary(n, True, n, what)
    if not encoder.padded_cnn_exact:
        why = (
            "cache.mode=strict and the encoder's CNN normalises over the padded time axis (group norm): "
            "its per-utterance features differ from padded-batch ones"
        )
        return FrozenBoundary(n, False, None, why)
    layer = n if n > 0 and encoder.padded_layers_exact else 0
    return FrozenBoundary(n, False, layer, f"the CNN and the first {layer} layers" if layer else "the CNN")


def _factors(cfg: RunConfig) -> list[float]:
    aug = cfg.data.augment
    out = {1.0}
    if aug.speed_prob > 0:
        out |= {float(f) for f in aug.speeds}
    return sorted(out)


def _device(cfg: RunConfig) -> torch.device:
    if torch.cuda.is_available() and cfg.trainer.accelerator in ("auto", "gpu", "cuda"):
        return torch.device("cuda")
    return torch.device("cpu")


def stage_store(
    cfg: RunConfig,
    boundary: FrozenBoundary,
    model,
    parts: dict[str, Any],
    manifest_sha: str,
    *,
    all_cuts=None,
    console=None,
) -> FeatureStore | None:
    """The feature store a stage trains from (built if absent), or None when the prefix runs live.

    parts: the fold's "train" / "valid" / "test" cuts; ``all_cuts``: the whole manifest (a CNN
    store covers every utterance, so all folds share it). ``model`` is frozen for the stage.
    """
    say = console.print if console is not None else log.info
    if boundary.store_layer is None:
        say(f"feature cache off: {boundary.reason}")
        return None
    enc, layer = model.encoder, boundary.store_layer
    dtype = STORE_DTYPES.get(str(cfg.trainer.precision), "float32")
    factors = _factors(cfg)
    if layer == 0:
        pool = all_cuts if all_cuts is not None else [c for p in parts.values() for c in p]
        wanted = {c.id: factors for c in pool}
        frozen = [enc.model.feature_extractor]
    else:
        wanted = {c.id: factors for c in parts["train"]}
        wanted.update({c.id: [1.0] for name in ("valid", "test") for c in parts[name]})
        frozen = enc.frozen_modules()
    ident = {
        "layer": layer,
        "dtype": dtype,
        "independent": boundary.independent,
        "manifest": manifest_sha,
        "factors": factors,
        "augment": to_dict(cfg.data.augment),
        "min_samples": MIN_SAMPLES,
        "normalize": enc.normalize_waveform,
        "mask": enc.uses_attention_mask,
        "cuts": hashlib.sha256("\n".join(sorted(wanted)).encode()).hexdigest(),
        "encoder": type(enc.model).__name__,
        "precision": str(cfg.trainer.precision),
    }
    root = Path(cfg.cache.dir) if cfg.cache.dir else cfg.run_dir / "cache"
    path = root / f"{'cnn' if layer == 0 else f'layer{layer}'}-{store_key(ident, frozen)}"
    if not FeatureStore.exists(path):
        pairs = sum(len(v) for v in wanted.values())
        say(f"feature cache: computing {boundary.reason} for {pairs} (utterance, speed) pairs -> {path}")
        cuts = {c.id: c for c in (all_cuts if all_cuts is not None else [])}
        for p in parts.values():
            cuts.update({c.id: c for c in p})
        _build(path, cfg, model, boundary, wanted, cuts, dtype, ident)
    return open_store(path, storage=cfg.cache.storage, max_memory_gb=cfg.cache.max_memory_gb)


def _build(path: Path, cfg: RunConfig, model, boundary: FrozenBoundary, wanted, cuts, dtype: str, ident) -> None:
    enc, layer = model.encoder, boundary.store_layer
    device = _device(cfg)
    home = next(model.parameters()).device
    was_training = model.training
    model.to(device).eval()
    if dtype in ("bfloat16", "float16"):
        autocast = torch.autocast(device.type, dtype=getattr(torch, dtype))
    else:
        autocast = contextlib.nullcontext()

    def prefix(x: torch.Tensor, lengths: torch.Tensor):
        with autocast:
            feats = enc.prefix(Waveforms(x, lengths), layer, independent=boundary.independent)
        return feats.hidden, feats.frame_lengths

    speed = SpeedPerturb.from_config(cfg.data.augment) if cfg.data.augment.speed_prob > 0 else None
    try:
        build_store(path, wanted, cuts, UtteranceAudio(speed), prefix, dtype=dtype, meta=ident, device=device)
    finally:
        model.to(home).train(was_training)


def drop_stage_store(store: FeatureStore | None) -> None:
    """A frozen-layer store serves one stage of one fold: once that is done, it goes (n x a
    layer's size per frame). The CNN store is shared by all folds and stays."""
    if store is not None and store.meta.get("layer", 0) > 0:
        shutil.rmtree(store.path, ignore_errors=True)
