"""From a name to a Hugging Face model: preset, local directory or hub id.

Directories and hub ids go through one code path (``AutoConfig`` + ``AutoModel.from_pretrained``).
The attention implementation is resolved here too: WavLM's ``sdpa`` is metaser's own
(:mod:`metaser.models.encoder.wavlm_sdpa`), installed after loading, so checkpoints and their
state-dict keys are the library's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from metaser.constants import SAMPLE_RATE
from metaser.errors import ConfigError
from metaser.models.config import EncoderConfig
from metaser.models.encoder.presets import FORCED, PRESET_SEED, PRESETS, config_overrides, preset_config

__all__ = ["LoadedModel", "load_model", "model_from_hf_config", "read_do_normalize", "write_preprocessor_config"]

_WAVLM = "wavlm"


@dataclass
class LoadedModel:
    """A loaded HF model with the resolved ``normalize_waveform`` flag."""

    model: nn.Module
    normalize_waveform: bool


def _hf_attn_implementation(model_type: str, requested: str | None) -> tuple[str | None, bool]:
    """(what to ask transformers for, whether to install metaser's WavLM SDPA afterwards)."""
    if model_type == _WAVLM:
        from metaser.models.encoder import wavlm_sdpa

        if requested == "sdpa" or (requested is None and wavlm_sdpa.is_available()):
            if not wavlm_sdpa.is_available():
                raise ConfigError(
                    "encoder.attn_implementation: sdpa for WavLM needs transformers' WavLMAttention."
                    "torch_multi_head_self_attention, which this transformers version lacks",
                    hint="use attn_implementation: eager",
                )
            return "eager", True
    return requested, False


def _finish(model: nn.Module, use_wavlm_sdpa: bool) -> nn.Module:
    if use_wavlm_sdpa:
        from metaser.models.encoder.wavlm_sdpa import set_wavlm_attention

        set_wavlm_attention(model, "sdpa")
    return model


def _from_config(hf_config, cfg: EncoderConfig, seed: int | None) -> nn.Module:
    from transformers import AutoModel

    impl, ours = _hf_attn_implementation(hf_config.model_type, cfg.attn_implementation)
    kwargs: dict[str, Any] = {"dtype": torch.float32}
    if impl is not None:
        kwargs["attn_implementation"] = impl
    try:
        if seed is None:
            model = AutoModel.from_config(hf_config, **kwargs)
        else:
            with torch.random.fork_rng(devices=[]):  # fixed weights, global RNG untouched
                torch.manual_seed(seed)
                model = AutoModel.from_config(hf_config, **kwargs)
    except ValueError as e:
        raise ConfigError(f"encoder: {e}") from None
    return _finish(model, ours)


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or "\\" in name


def load_model(cfg: EncoderConfig) -> LoadedModel:
    """Load ``cfg.name_or_path``: a preset name, a local directory or a hub id."""
    name = cfg.name_or_path
    if name in PRESETS:
        hf = preset_config(name)
        for key, value in config_overrides(cfg).items():
            setattr(hf, key, value)
        norm = False if cfg.normalize_waveform is None else cfg.normalize_waveform
        return LoadedModel(_from_config(hf, cfg, seed=PRESET_SEED), bool(norm))
    p = Path(name).expanduser()
    hint = "give a directory written by save_pretrained, a hub id, or a preset: " + ", ".join(PRESETS)
    if p.exists():
        if not (p / "config.json").is_file():
            raise ConfigError(f"encoder.name_or_path: {p} has no config.json", hint=hint)
    elif _looks_like_path(name):
        raise ConfigError(f"encoder.name_or_path: directory not found: {p}", hint=hint)
    from transformers import AutoConfig, AutoModel

    source = str(p) if p.exists() else name
    try:
        hf = AutoConfig.from_pretrained(source, **config_overrides(cfg))
        impl, ours = _hf_attn_implementation(hf.model_type, cfg.attn_implementation)
        kwargs: dict[str, Any] = {"config": hf, "dtype": torch.float32}
        if impl is not None:
            kwargs["attn_implementation"] = impl
        model = AutoModel.from_pretrained(source, **kwargs)
    except (OSError, ValueError, KeyError) as e:
        raise ConfigError(
            f"encoder.name_or_path: cannot load {name!r}: {e}",
            hint="a hub id needs the network or a filled HF cache; presets: " + ", ".join(PRESETS),
        ) from None
    norm = cfg.normalize_waveform
    if norm is None:
        norm = read_do_normalize(source)
    return LoadedModel(_finish(model, ours), bool(norm))


def model_from_hf_config(hf_config: dict[str, Any], cfg: EncoderConfig) -> LoadedModel:
    """The architecture a transformers config dict describes, randomly initialised.

    ``cfg.normalize_waveform`` None means False here (there is no checkpoint to read).
    """
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    d = dict(hf_config)
    model_type = d.pop("model_type", None)
    if model_type not in CONFIG_MAPPING:
        raise ConfigError(f"encoder_config: unknown or missing model_type {model_type!r}")
    d.pop("transformers_version", None)
    hf = CONFIG_MAPPING[model_type].from_dict({**d, **FORCED})
    return LoadedModel(_from_config(hf, cfg, seed=None), bool(cfg.normalize_waveform))


def read_do_normalize(name_or_path: str) -> bool | None:
    """``do_normalize`` from a checkpoint's ``preprocessor_config.json`` (None when absent).

    A local directory is read directly (never the network). For a hub id the file is taken
    from the local cache, or fetched the same way as the weights.
    """
    p = Path(name_or_path).expanduser()
    file: Path | None = None
    if p.is_dir():
        file = p / "preprocessor_config.json"
    else:
        try:
            from huggingface_hub import try_to_load_from_cache

            hit = try_to_load_from_cache(name_or_path, "preprocessor_config.json")
            if isinstance(hit, str):
                file = Path(hit)
            elif hit is None:  # not cached either way: ask the hub like for the weights
                from transformers.utils import cached_file

                got = cached_file(
                    name_or_path,
                    "preprocessor_config.json",
                    _raise_exceptions_for_missing_entries=False,
                    _raise_exceptions_for_connection_errors=False,
                )
                file = Path(got) if got else None
        except Exception:  # an unreachable hub means "unknown", i.e. the False default
            file = None
    if file is None or not file.is_file():
        return None
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{file}: not valid JSON ({e})") from None
    value = data.get("do_normalize")
    return None if value is None else bool(value)


def write_preprocessor_config(directory: Path, normalize_waveform: bool, uses_attention_mask: bool) -> None:
    """A ``preprocessor_config.json`` carrying ``do_normalize`` (read back by :func:`read_do_normalize`)."""
    pre = {
        "feature_extractor_type": "Wav2Vec2FeatureExtractor",
        "feature_size": 1,
        "sampling_rate": SAMPLE_RATE,
        "padding_value": 0.0,
        "padding_side": "right",
        "do_normalize": bool(normalize_waveform),
        "return_attention_mask": bool(uses_attention_mask),
    }
    (Path(directory) / "preprocessor_config.json").write_text(json.dumps(pre, indent=2) + "\n")
