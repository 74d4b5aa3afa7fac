"""Tiny replicas of the paper's three hub checkpoints, laid out exactly as on the hub.

Real users start from ``facebook/wav2vec2-base``, ``facebook/hubert-base-ls960`` and
``microsoft/wavlm-base``. Those directories differ from what ``save_pretrained`` writes today,
and each difference has bitten a loader before:

* ``config.json`` is the hub's own field set (written as a plain dict, not by a current
  ``Config.to_dict()``), including ``architectures``, ``feat_extract_norm: "group"``,
  ``do_stable_layer_norm: false``, SpecAugment (``mask_time_prob: 0.05``, which metaser forces
  to 0), LayerDrop, and for wav2vec2-base ``"gradient_checkpointing": true``;
* the weights are ``pytorch_model.bin`` (``torch.save`` of the state dict, not safetensors)
  with the LEGACY weight-norm names of the positional convolution
  (``encoder.pos_conv_embed.conv.weight_g`` / ``weight_v``, not
  ``parametrizations.weight.original0`` / ``original1``);
* wav2vec2-base is a ``Wav2Vec2ForPreTraining`` checkpoint: every encoder key carries the
  ``wav2vec2.`` prefix, and the pretraining heads (``quantizer.*``, ``project_q.*``,
  ``project_hid.*``) come along; HuBERT and WavLM are saved as their base models; all three
  carry ``masked_spec_embed``;
* a ``preprocessor_config.json`` as on the hub (``do_normalize``, ``return_attention_mask``, ...).

Only the sizes are tiny (hidden 32, 2 heads, FFN 64, 12 layers, the standard 7-layer CNN with
32 channels, a 16-tap positional convolution in 4 groups), so a replica loads in well under a
second. Weights are deterministic (fixed seed, global RNG untouched).

The hub field sets are those of the checkpoints' ``config.json`` / ``preprocessor_config.json``
(sizes aside); transformers fills any field it does not find with its default, so a field missing
here would go unnoticed, while one the loader mishandles (like ``gradient_checkpointing``) shows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "KINDS",
    "HUB_IDS",
    "PRETRAINING_HEADS",
    "hub_config",
    "preprocessor_config",
    "write_hub_replica",
    "read_replica_state_dict",
    "encoder_view",
]

#: replica kind -> the hub id it stands in for
HUB_IDS = {
    "wav2vec2-base": "facebook/wav2vec2-base",
    "hubert-base": "facebook/hubert-base-ls960",
    "wavlm-base": "microsoft/wavlm-base",
}
KINDS = tuple(HUB_IDS)

#: key prefixes of wav2vec2's pretraining heads (not part of the base model)
PRETRAINING_HEADS = ("quantizer.", "project_q.", "project_hid.")

_CONV = {
    "conv_dim": [32, 32, 32, 32, 32, 32, 32],
    "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
    "conv_stride": [5, 2, 2, 2, 2, 2, 2],
}
_TINY = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_attention_heads": 2,
    "num_hidden_layers": 12,
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 4,
}

# The hub's config.json of each checkpoint, with the sizes above in place of 768 / 3072 / 12 heads /
# 512 channels / 128-tap positional conv; every other field and value is the hub's.
_HUB_CONFIGS: dict[str, dict[str, Any]] = {
    "wav2vec2-base": {
        "activation_dropout": 0.0,
        "apply_spec_augment": True,
        "architectures": ["Wav2Vec2ForPreTraining"],
        "attention_dropout": 0.1,
        "bos_token_id": 1,
        "codevector_dim": 16,
        "contrastive_logits_temperature": 0.1,
        "conv_bias": False,
        **_CONV,
        "ctc_loss_reduction": "sum",
        "ctc_zero_infinity": False,
        "diversity_loss_weight": 0.1,
        "do_stable_layer_norm": False,
        "eos_token_id": 2,
        "feat_extract_activation": "gelu",
        "feat_extract_norm": "group",
        "feat_proj_dropout": 0.1,
        "feat_quantizer_dropout": 0.0,
        "final_dropout": 0.0,
        "freeze_feat_extract_train": True,
        "gradient_checkpointing": True,
        "hidden_act": "gelu",
        "hidden_dropout": 0.1,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-05,
        "layerdrop": 0.0,
        "mask_channel_length": 10,
        "mask_channel_min_space": 1,
        "mask_channel_other": 0.0,
        "mask_channel_prob": 0.0,
        "mask_channel_selection": "static",
        "mask_feature_length": 10,
        "mask_feature_prob": 0.0,
        "mask_time_length": 10,
        "mask_time_min_space": 1,
        "mask_time_other": 0.0,
        "mask_time_prob": 0.05,
        "mask_time_selection": "static",
        "model_type": "wav2vec2",
        "no_mask_channel_overlap": False,
        "no_mask_time_overlap": False,
        "num_codevector_groups": 2,
        "num_codevectors_per_group": 8,
        "num_feat_extract_layers": 7,
        "num_negatives": 100,
        "pad_token_id": 0,
        "proj_codevector_dim": 16,
        "transformers_version": "4.7.0.dev0",
        "use_weighted_layer_sum": False,
        "vocab_size": 32,
        **_TINY,
    },
    "hubert-base": {
        "activation_dropout": 0.1,
        "apply_spec_augment": True,
        "architectures": ["HubertModel"],
        "attention_dropout": 0.1,
        "bos_token_id": 1,
        "conv_bias": False,
        **_CONV,
        "ctc_loss_reduction": "sum",
        "ctc_zero_infinity": False,
        "do_stable_layer_norm": False,
        "eos_token_id": 2,
        "feat_extract_activation": "gelu",
        "feat_extract_dropout": 0.0,
        "feat_extract_norm": "group",
        "feat_proj_dropout": 0.1,
        "final_dropout": 0.1,
        "gradient_checkpointing": False,
        "hidden_act": "gelu",
        "hidden_dropout": 0.1,
        "hidden_dropout_prob": 0.1,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-05,
        "layerdrop": 0.1,
        "mask_feature_length": 10,
        "mask_feature_prob": 0.0,
        "mask_time_length": 10,
        "mask_time_prob": 0.05,
        "model_type": "hubert",
        "num_feat_extract_layers": 7,
        "pad_token_id": 0,
        "transformers_version": "4.10.0.dev0",
        "vocab_size": 32,
        **_TINY,
    },
    "wavlm-base": {
        "activation_dropout": 0.0,
        "adapter_kernel_size": 3,
        "adapter_stride": 2,
        "add_adapter": False,
        "apply_spec_augment": True,
        "architectures": ["WavLMModel"],
        "attention_dropout": 0.1,
        "bos_token_id": 1,
        "classifier_proj_size": 256,
        "codevector_dim": 256,
        "contrastive_logits_temperature": 0.1,
        "conv_bias": False,
        **_CONV,
        "ctc_loss_reduction": "sum",
        "ctc_zero_infinity": False,
        "diversity_loss_weight": 0.1,
        "do_stable_layer_norm": False,
        "eos_token_id": 2,
        "feat_extract_activation": "gelu",
        "feat_extract_norm": "group",
        "feat_proj_dropout": 0.1,
        "feat_quantizer_dropout": 0.0,
        "final_dropout": 0.0,
        "freeze_feat_extract_train": True,
        "hidden_act": "gelu",
        "hidden_dropout": 0.1,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-05,
        "layerdrop": 0.05,
        "mask_channel_length": 10,
        "mask_channel_min_space": 1,
        "mask_channel_other": 0.0,
        "mask_channel_prob": 0.0,
        "mask_channel_selection": "static",
        "mask_feature_length": 10,
        "mask_feature_min_masks": 0,
        "mask_feature_prob": 0.0,
        "mask_time_length": 10,
        "mask_time_min_masks": 2,
        "mask_time_min_space": 1,
        "mask_time_other": 0.0,
        "mask_time_prob": 0.05,
        "mask_time_selection": "static",
        "max_bucket_distance": 800,
        "model_type": "wavlm",
        "no_mask_channel_overlap": False,
        "no_mask_time_overlap": False,
        "num_adapter_layers": 3,
        "num_buckets": 320,
        "num_codevector_groups": 2,
        "num_codevectors_per_group": 320,
        "num_ctc_classes": 80,
        "num_feat_extract_layers": 7,
        "num_negatives": 100,
        "output_hidden_size": 32,
        "pad_token_id": 0,
        "proj_codevector_dim": 256,
        "replace_prob": 0.5,
        "tokenizer_class": "Wav2Vec2CTCTokenizer",
        "torch_dtype": "float32",
        "transformers_version": "4.15.0.dev0",
        "use_weighted_layer_sum": False,
        "vocab_size": 32,
        **_TINY,
    },
}

_PREPROCESSOR: dict[str, dict[str, Any]] = {
    "wav2vec2-base": {"do_normalize": True, "return_attention_mask": False},
    "hubert-base": {"do_normalize": True, "return_attention_mask": False},
    "wavlm-base": {"do_normalize": False, "return_attention_mask": True},
}

#: the model class each hub checkpoint was saved from, and the prefix of its encoder keys
_SAVED_FROM = {
    "wav2vec2-base": ("Wav2Vec2ForPreTraining", "wav2vec2."),
    "hubert-base": ("HubertModel", ""),
    "wavlm-base": ("WavLMModel", ""),
}

_MODERN_G, _MODERN_V = ".parametrizations.weight.original0", ".parametrizations.weight.original1"


def hub_config(kind: str) -> dict[str, Any]:
    """The replica's ``config.json`` (a fresh dict: the hub's fields, tiny sizes)."""
    return json.loads(json.dumps(_HUB_CONFIGS[_check(kind)]))


def preprocessor_config(kind: str) -> dict[str, Any]:
    """The replica's ``preprocessor_config.json``, the hub's fields."""
    return {
        "feature_extractor_type": "Wav2Vec2FeatureExtractor",
        "feature_size": 1,
        "padding_side": "right",
        "padding_value": 0.0,
        "sampling_rate": 16000,
        **_PREPROCESSOR[_check(kind)],
    }


def _check(kind: str) -> str:
    if kind not in _HUB_CONFIGS:
        raise ValueError(f"unknown replica {kind!r}; one of {', '.join(KINDS)}")
    return kind


def _legacy_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``...parametrizations.weight.original0/1`` -> ``...weight_g`` / ``...weight_v`` (the hub's names)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        key = key.replace(_MODERN_G, ".weight_g").replace(_MODERN_V, ".weight_v")
        out[key] = value.detach().clone().contiguous()
    return out


def write_hub_replica(
    kind: str,
    directory: str | Path,
    *,
    seed: int = 0,
    config_updates: dict[str, Any] | None = None,
    drop_keys: tuple[str, ...] = (),
    extra_tensors: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write a tiny hub-format replica of ``kind`` (``wav2vec2-base``, ``hubert-base`` or
    ``wavlm-base``) into ``directory`` and return it.

    ``config_updates`` changes config.json fields (None removes one); ``drop_keys`` leaves
    tensors out of ``pytorch_model.bin`` and ``extra_tensors`` adds some (hub names, i.e. with the
    checkpoint's prefix), to make a damaged checkpoint.
    """
    import transformers

    kind = _check(kind)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cfg_dict = hub_config(kind)
    class_name, _ = _SAVED_FROM[kind]
    config_cls = transformers.AutoConfig.for_model(cfg_dict["model_type"]).__class__
    build = {k: v for k, v in cfg_dict.items() if k not in ("architectures", "transformers_version", "model_type")}
    build.pop("gradient_checkpointing", None)  # a flag of the loader, not of the architecture
    hf_config = config_cls(**build)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = getattr(transformers, class_name)(hf_config).eval()
    state = _legacy_names(model.state_dict())
    for key in drop_keys:
        if key not in state:
            raise KeyError(f"drop_keys: {key!r} is not a key of the {kind} replica")
        del state[key]
    state.update({k: v.contiguous() for k, v in (extra_tensors or {}).items()})
    torch.save(state, directory / "pytorch_model.bin")
    for key, value in (config_updates or {}).items():
        if value is None:
            cfg_dict.pop(key, None)
        else:
            cfg_dict[key] = value
    (directory / "config.json").write_text(json.dumps(cfg_dict, indent=2, sort_keys=True) + "\n")
    (directory / "preprocessor_config.json").write_text(json.dumps(preprocessor_config(kind), indent=2) + "\n")
    return directory


def read_replica_state_dict(directory: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a replica's ``pytorch_model.bin``, as saved (hub names)."""
    return torch.load(Path(directory) / "pytorch_model.bin", map_location="cpu", weights_only=True)


def encoder_view(kind: str, saved: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The saved tensors under the names the base model (``Wav2Vec2Model`` / ``HubertModel`` /
    ``WavLMModel``) gives them: the ``wav2vec2.`` prefix dropped, the legacy weight-norm names
    mapped to torch's parametrization names, and what a base model without SpecAugment does not
    hold left out (``masked_spec_embed``, wav2vec2's pretraining heads)."""
    _, prefix = _SAVED_FROM[_check(kind)]
    out: dict[str, torch.Tensor] = {}
    for key, value in saved.items():
        if prefix:
            if not key.startswith(prefix):
                continue  # a pretraining head
            key = key[len(prefix) :]
        if key == "masked_spec_embed":
            continue
        key = key.replace(".weight_g", _MODERN_G).replace(".weight_v", _MODERN_V)
        out[key] = value
    return out
