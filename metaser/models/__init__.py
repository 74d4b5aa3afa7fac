"""Model layer: SSL encoder, layer fusion (ARI), task heads, co-attention, the two architectures
(MetaSER, the baseline) and their saved form.

Knows nothing of stages, folds or corpora: it maps the frozen boundary's features (or, for
inference, waveforms) to per-task outputs.
"""

from __future__ import annotations

import importlib

# Lazy exports: `metaser.models.config` is imported by the CLI's config parsing, which must not
# pull in torch / transformers.
_EXPORTS = {
    "SSLEncoder": "metaser.models.encoder",
    "EncoderOutput": "metaser.models.encoder",
    "PRESETS": "metaser.models.encoder",
    "AugmentedResidualIntegration": "metaser.models.fusion",
    "WeightedLayerSum": "metaser.models.fusion",
    "LastLayer": "metaser.models.fusion",
    "build_layer_fusion": "metaser.models.fusion",
    "masked_mean": "metaser.models.heads",
    "ClassificationHead": "metaser.models.heads",
    "CTCHead": "metaser.models.heads",
    "BaselineHead": "metaser.models.heads",
    "CoAttentionFusion": "metaser.models.coattention",
    "ConcatTaskFusion": "metaser.models.coattention",
    "PooledFramesFusion": "metaser.models.coattention",
    "EmotionHead": "metaser.models.coattention",
    "build_task_fusion": "metaser.models.coattention",
    "MetaSERModel": "metaser.models.metaser",
    "BaselineModel": "metaser.models.baseline",
    "SERModel": "metaser.models.base",
    "MetaSEROutput": "metaser.models.output",
    "SavedModelConfig": "metaser.models.saved",
    "build_ser_model": "metaser.models.factory",
    "load_ser_model": "metaser.models.factory",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'metaser.models' has no attribute {name!r}")
