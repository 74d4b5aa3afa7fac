"""Named encoder presets and the config settings metaser forces on every encoder.

``tiny-*``: small widths but 12 layers and the standard 7-layer CNN (20 ms frames), for tests
and the offline demo. ``base-random-*``: the real base sizes with random init, for CPU shape
tests and benchmarks.
"""

from __future__ import annotations

from typing import Any

from metaser.constants import CONV_KERNEL, CONV_STRIDE
from metaser.errors import ConfigError
from metaser.models.config import EncoderConfig

__all__ = ["PRESETS", "PRESET_SEED", "FORCED", "preset_config", "config_overrides"]

#: Overrides applied to every encoder config (pretrained, preset or rebuilt from a saved model):
#: layer fusion needs every layer at every step, and HF's SpecAugment masking stays off.
FORCED: dict[str, float] = {"layerdrop": 0.0, "mask_time_prob": 0.0, "mask_feature_prob": 0.0}

#: Seed of a preset's random weights (the global RNG is left alone).
PRESET_SEED = 1234

_DROPOUT_KEYS = ("hidden_dropout", "attention_dropout", "activation_dropout", "feat_proj_dropout")

_TINY = dict(
    hidden_size=32,
    num_hidden_layers=12,
    num_attention_heads=2,
    intermediate_size=64,
    conv_dim=(32,) * 7,
    conv_kernel=CONV_KERNEL,
    conv_stride=CONV_STRIDE,
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=4,
)

#: name -> (HF model_type, config overrides).
PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "tiny-wav2vec2": ("wav2vec2", {**_TINY, "feat_extract_norm": "group"}),
    "tiny-hubert": ("hubert", {**_TINY, "feat_extract_norm": "group"}),
    "tiny-wavlm": ("wavlm", {**_TINY, "feat_extract_norm": "layer", "conv_bias": True}),
    # data2vec-audio: layer-norm CNN; num_conv_pos_embeddings is its number of pos-conv layers.
    "tiny-data2vec": (
        "data2vec-audio",
        {**_TINY, "feat_extract_norm": "layer", "num_conv_pos_embeddings": 2, "conv_pos_kernel_size": 5},
    ),
    "base-random-wav2vec2": ("wav2vec2", {}),
    "base-random-hubert": ("hubert", {}),
    "base-random-wavlm": ("wavlm", {}),
    "base-random-data2vec": ("data2vec-audio", {}),
}


def config_overrides(cfg: EncoderConfig) -> dict[str, Any]:
    """Forced settings plus the user's dropout override, applied before the model is built."""
    out: dict[str, Any] = dict(FORCED)
    if cfg.dropout is not None:
        out.update({k: float(cfg.dropout) for k in _DROPOUT_KEYS})
    return out


def preset_config(name: str):
    """The transformers config of preset ``name`` (with layerdrop / masking forced off)."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    if name not in PRESETS:
        raise ConfigError(f"encoder.name_or_path: unknown preset {name!r}", hint=f"presets: {', '.join(PRESETS)}")
    model_type, overrides = PRESETS[name]
    return CONFIG_MAPPING[model_type](**{**overrides, **FORCED})
