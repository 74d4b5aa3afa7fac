"""The exact frozen-prefix cache: what the frozen part of the encoder computes, computed once.

Frozen modules run in eval mode, so their output is a pure function of the (speed-perturbed)
waveform:

* stage 1 (and the emotion-only stage) freeze the CNN: its output is cached once per corpus,
  encoder checkpoint and speed factor, shared by every fold and variant (``cnn-<digest>``);
* stage 2 also freezes the feature projection, the positional convolution and the first n
  transformer layers: their n outputs (all needed by ARI / the weighted sum) are cached once
  per fold, right after stage 1 (``layer<n>-<digest>``), and deleted when the stage is done
  (it serves that stage alone; IEMOCAP at base size: about 4 x 5.8 GB in fp16 per fold).

Training reads the entry of the speed factor it draws (the same per-utterance draw as for
audio); validation and test read speed 1.0. The digest covers the frozen weights themselves,
the manifest, the speed set and convention, the receptive-field padding and the stored dtype,
so a changed checkpoint never reads a stale cache. Stores are written atomically
(:mod:`metaser.data.feature_store`), in bf16 / fp16 only when training runs in that precision.

Exactness: an utterance's frozen output must not depend on the batch it is padded into.
That holds for layer-norm CNNs that get an attention mask (``SSLEncoder.batch_independent``,
``batch_independent_layers``): there the store is built in length-sorted batches and training
from it gives the audio path's per-step losses (within 1e-5). Group-norm CNNs (wav2vec2-base,
HuBERT-base, WavLM-base) normalise over the padded time axis, so in the audio path an
utterance's features depend on how much padding its batch gives it. For them
``cache.mode=auto`` (metaser's choice, docs/method.md) computes each utterance *alone*: its
features are those of batch size 1, the same as single-file inference, and no longer change
with the batch. ``cache.mode=strict`` keeps the cache only where it equals the padded-batch
audio path (group-norm encoders then train from audio); ``none`` never caches. The cache is
also off, and says so, with any waveform augmentation besides the discrete speed set.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch.nn.utils.rnn import pad_sequence

from metaser.config import to_dict
from metaser.constants import MIN_SAMPLES, SAMPLE_RATE
from metaser.data.dataset import SERDataset
from metaser.data.feature_store import FeatureStore, FeatureStoreWriter
from metaser.training.config import RunConfig

__all__ = ["cache_layer", "stage_features", "STORE_DTYPES"]

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


def cache_layer(cfg: RunConfig, encoder, freeze_layers: int) -> tuple[int | None, str]:
    """(layer, reason): the layer a stage can start from its cache (0 = the CNN output, n = the
    outputs of the first n layers), or None (no cache) with the reason."""
    c, aug = cfg.cache, cfg.data.augment
    if c.mode == "none":
        return None, "cache.mode=none"
    if aug.band_drop_prob > 0 or aug.chunk_drop_prob > 0 or cfg.data.sampler.max_utterance_seconds:
        return None, "a waveform augmentation other than the speed set is on (band / chunk drop, cropping)"
    strict = c.mode == "strict"
    if strict and not encoder.batch_independent:
        return None, (
            "cache.mode=strict and the encoder's CNN normalises over the padded time axis (group norm): "
            "its per-utterance features differ from padded-batch ones"
        )
    n = int(freeze_layers)
    layer = n if n > 0 and (encoder.batch_independent_layers or not strict) else 0
    what = f"the CNN and the first {n} layers" if layer else "the CNN"
    if not _batch_exact(encoder, layer):
        what += (
            ", each utterance computed alone (in a padded batch its frames would depend on the padding: "
            "as at batch size 1; cache.mode=strict trains from padded audio instead)"
        )
    return layer, what


def _batch_exact(encoder, layer: int) -> bool:
    """Whether the frozen output up to ``layer`` (0 = the CNN) of an utterance is the same in any
    padded batch, so a store can be built in batches; else each utterance is computed alone."""
    return encoder.batch_independent_layers if layer > 0 else encoder.batch_independent


def _digest(parts: dict[str, Any], modules: list[torch.nn.Module]) -> str:
    h = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode())
    for m in modules:
        for name, t in sorted(m.state_dict().items()):
            h.update(name.encode())
            h.update(t.detach().to("cpu").contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def _factors(cfg: RunConfig) -> list[float]:
    aug = cfg.data.augment
    out = {1.0}
    if aug.speed_prob > 0:
        out |= {float(f) for f in aug.speeds}
    return sorted(out)


def stage_features(
    cfg: RunConfig,
    model,
    freeze_layers: int,
    parts: dict[str, Any],
    labels,
    manifest_sha: str,
    *,
    all_cuts=None,
    console=None,
) -> FeatureStore | None:
    """The feature store a stage trains from (built if absent), or None when the cache is off.

    parts: the fold's "train" / "valid" / "test" CutSets; ``all_cuts``: the whole manifest
    (a CNN store covers every utterance, so all folds share it).
    """
    enc = model.encoder
    layer, why = cache_layer(cfg, enc, freeze_layers)
    say = console.print if console is not None else log.info
    if layer is None:
        say(f"feature cache off: {why}")
        return None
    dtype = STORE_DTYPES.get(str(cfg.trainer.precision), "float32")
    factors = _factors(cfg)
    if layer == 0:
        wanted = {c.id: factors for c in (all_cuts if all_cuts is not None else [c for p in parts.values() for c in p])}
        frozen = [enc.model.feature_extractor]
    else:
        wanted = {c.id: factors for c in parts["train"]}
        wanted.update({c.id: [1.0] for name in ("valid", "test") for c in parts[name]})
        frozen = enc.frozen_modules()
    exact = _batch_exact(enc, layer)
    ident = {
        "layer": layer,
        "dtype": dtype,
        "alone": not exact,
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
    path = root / f"{'cnn' if layer == 0 else f'layer{layer}'}-{_digest(ident, frozen)}"
    if not FeatureStore.exists(path):
        say(
            f"feature cache: computing {why} for {sum(len(v) for v in wanted.values())} (utterance, speed) "
            f"pairs -> {path}"
        )
        _build(path, cfg, model, layer, wanted, labels, dtype, ident, all_cuts, parts, exact=exact)
    store = FeatureStore.open(path)
    if cfg.cache.storage == "memory" or (
        cfg.cache.storage == "auto" and store.nbytes < cfg.cache.max_memory_gb * 2**30
    ):
        store = FeatureStore.open(path, in_memory=True)
    return store


def _build(
    path: Path,
    cfg: RunConfig,
    model,
    layer: int,
    wanted: dict[str, list[float]],
    labels,
    dtype: str,
    ident: dict,
    all_cuts,
    parts,
    *,
    exact: bool,
    batch_seconds: float = 60.0,
) -> None:
    """Compute and write the store. Utterances of similar length are batched (at most
    ``batch_seconds`` of padded audio per forward) where ``exact``: there the valid frames do
    not depend on the batch. Elsewhere (group-norm CNNs; data2vec-audio's layers) every
    utterance runs alone, so its features are those of batch size 1."""
    enc = model.encoder
    cuts = {c.id: c for c in (all_cuts if all_cuts is not None else [])}
    for p in parts.values():
        cuts.update({c.id: c for c in p})
    ds = SERDataset(labels, [], train=True, augment=cfg.data.augment, seed=cfg.data.sampler.seed)
    device = (
        torch.device("cuda")
        if torch.cuda.is_available() and cfg.trainer.accelerator in ("auto", "gpu", "cuda")
        else torch.device("cpu")
    )
    budget = int(batch_seconds * SAMPLE_RATE) if exact else 0
    home = next(model.parameters()).device
    was_training = model.training
    model.to(device).eval()
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16)
        if dtype == "bfloat16"
        else (torch.autocast(device.type, dtype=torch.float16) if dtype == "float16" else contextlib.nullcontext())
    )
    writer = FeatureStoreWriter(path, dtype=dtype, meta={"layer": layer, **ident})

    def flush(group: list[tuple[str, float, torch.Tensor]]) -> None:
        lengths = torch.tensor([w.numel() for _, _, w in group], device=device)  # (B,)
        x = pad_sequence([w for _, _, w in group], batch_first=True).to(device)  # (B, S)
        feats, fl = enc.features(x, lengths)  # (B, T, C), (B,)
        outs = (feats,) if layer == 0 else enc.prefix(feats, fl, layer)  # n x (B, T, D)
        for i, (cut_id, f, w) in enumerate(group):
            writer.add(cut_id, f, [o[i, : int(fl[i])] for o in outs], w.numel())

    try:
        items = [(cut_id, f, ds.waveform(cuts[cut_id], f)) for cut_id, factors in wanted.items() for f in factors]
        items.sort(key=lambda it: it[2].numel())
        with torch.no_grad(), autocast:
            group: list = []
            for it in items:
                if group and (len(group) + 1) * it[2].numel() > budget:
                    flush(group)
                    group = []
                group.append(it)
            if group:
                flush(group)
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    finally:
        model.to(home).train(was_training)
