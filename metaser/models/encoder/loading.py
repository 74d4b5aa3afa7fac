"""From a name to a Hugging Face model: preset, local directory or hub id.

Directories and hub ids go through one code path (``AutoConfig`` + ``AutoModel.from_pretrained``).
The attention implementation is resolved here too: WavLM's ``sdpa`` is metaser's own
(:mod:`metaser.models.encoder.wavlm_sdpa`), installed after loading, so checkpoints and their
state-dict keys are the library's.

Two things a hub checkpoint carries are metaser's to decide, not the checkpoint's:

* ``gradient_checkpointing``: ``facebook/wav2vec2-base``'s config.json says ``true``, and
  transformers would switch activation checkpointing on for every layer (a training step about
  28 % slower). ``encoder.gradient_checkpointing`` wins in both directions: the flag is taken off
  the config before the model is built (so a saved metaser model never carries it back), and one
  INFO line says so when the checkpoint asked for the other setting.
* The load report: the keys transformers finds unexpected or missing. Those metaser expects are
  not reported (``masked_spec_embed``, absent because metaser forces SpecAugment off,
  :data:`~metaser.models.encoder.presets.FORCED`; and the pretraining heads of a
  ``*ForPreTraining`` checkpoint, ``quantizer`` / ``project_q`` / ``project_hid``, which a base
  encoder does not have: one INFO line names them). Any other missing or unexpected tensor is
  ONE warning line (how many, which). Transformers' own multi-line LOAD REPORT and its
  "Loading weights" progress bar are kept out of the output.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from metaser.constants import SAMPLE_RATE
from metaser.errors import ConfigError
from metaser.models.config import EncoderConfig
from metaser.models.encoder.presets import FORCED, PRESET_SEED, PRESETS, config_overrides, preset_config

__all__ = [
    "EXPECTED_UNEXPECTED",
    "PRETRAINING_HEADS",
    "LoadedModel",
    "load_model",
    "model_from_hf_config",
    "read_do_normalize",
    "write_preprocessor_config",
]

log = logging.getLogger(__name__)

_WAVLM = "wavlm"

#: checkpoint keys a metaser encoder never holds: HF creates ``masked_spec_embed`` only with
#: SpecAugment on, which metaser forces off (``FORCED``)
EXPECTED_UNEXPECTED = re.compile(r"(^|\.)masked_spec_embed$")
#: the pretraining heads of a ``*ForPreTraining`` checkpoint (wav2vec2's contrastive task)
PRETRAINING_HEADS = re.compile(r"^(quantizer|project_q|project_hid)\.")
_GC_KEY = "gradient_checkpointing"
_SHOWN = 8  # keys named in the one warning line


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


def _take_checkpointing_flag(hf_config, cfg: EncoderConfig, source: str) -> None:
    """Take ``gradient_checkpointing`` off a transformers config, so that the model is built
    without it and never saves it; ``encoder.gradient_checkpointing`` decides (SSLEncoder
    switches it on). One INFO line when the checkpoint asked for the other setting."""
    if not hasattr(hf_config, _GC_KEY):
        return
    asked = bool(getattr(hf_config, _GC_KEY))
    delattr(hf_config, _GC_KEY)
    _report_checkpointing(asked, cfg, source)


def _report_checkpointing(asked: bool, cfg: EncoderConfig, source: str) -> None:
    ours = bool(cfg.gradient_checkpointing)
    if asked == ours:
        return
    state = "on" if ours else "off"
    theirs = "asked for it" if asked else "had it off"
    log.info(
        "encoder: gradient checkpointing %s (the checkpoint's config %s; encoder.gradient_checkpointing=%s wins) [%s]",
        state,
        theirs,
        str(ours).lower(),
        source,
    )


def _checkpointing_off(model: nn.Module) -> None:
    """Make sure no module checkpoints (a transformers version that still applied the flag)."""
    flags = [m for m in model.modules() if getattr(m, _GC_KEY, False) is True]
    if flags and hasattr(model, "gradient_checkpointing_disable"):
        fn = getattr(model, "activation_checkpointing_disable", None) or model.gradient_checkpointing_disable
        fn()


class _LoadReportFilter(logging.Filter):
    """Keeps transformers' load report (and its older "Some weights of ..." lines) for us to judge."""

    def __init__(self) -> None:
        super().__init__()
        self.held: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if "LOAD REPORT" in msg or msg.startswith("Some weights of"):
            self.held.append(re.sub(r"\x1b\[[0-9;]*m", "", msg))
            return False
        return True


@contextlib.contextmanager
def _quiet_load():
    """No LOAD REPORT and no "Loading weights" progress bar while transformers loads; yields the
    held report lines (shown again only if the load fails)."""
    from transformers.utils import logging as hf_logging

    held = _LoadReportFilter()
    hf_log = logging.getLogger("transformers.modeling_utils")
    hf_log.addFilter(held)
    set_hook = getattr(hf_logging, "set_tqdm_hook", None)
    previous = None
    if set_hook is not None:

        def hook(factory, args, kwargs):
            if kwargs.get("desc") == "Loading weights":
                kwargs = {**kwargs, "disable": True}
            return previous(factory, args, kwargs) if previous is not None else factory(*args, **kwargs)

        previous = set_hook(hook)
    try:
        yield held.held
    finally:
        hf_log.removeFilter(held)
        if set_hook is not None:
            set_hook(previous)


def _keys(value) -> list[str]:
    out = []
    for k in value or ():
        out.append(k[0] if isinstance(k, tuple) else str(k))  # mismatched keys are (key, shape, shape)
    return sorted(out)


def _shown(keys: list[str]) -> str:
    more = f", ... ({len(keys) - _SHOWN} more)" if len(keys) > _SHOWN else ""
    return ", ".join(keys[:_SHOWN]) + more


def _tensors(keys: list[str]) -> str:
    return f"{len(keys)} tensor{'s' if len(keys) != 1 else ''}"


def _report_keys(info: dict[str, Any], hf_config, source: str) -> None:
    """One warning line for real missing / unexpected tensors; the expected ones stay quiet."""
    pretraining = any(str(a).endswith("ForPreTraining") for a in getattr(hf_config, "architectures", None) or ())
    unexpected, heads = [], []
    for key in _keys(info.get("unexpected_keys")):
        if EXPECTED_UNEXPECTED.search(key):
            continue
        (heads if pretraining and PRETRAINING_HEADS.search(key) else unexpected).append(key)
    missing = _keys(info.get("missing_keys"))
    if heads:
        log.info(
            "encoder: %d tensors of the checkpoint's pretraining heads (%s) are not part of the encoder, "
            "not loaded [%s]",
            len(heads),
            ", ".join(sorted({k.split(".")[0] for k in heads})),
            source,
        )
    parts = []
    if missing:
        parts.append(f"{_tensors(missing)} missing from the checkpoint (randomly initialised): {_shown(missing)}")
    if unexpected:
        parts.append(f"{_tensors(unexpected)} of the checkpoint not used by the encoder: {_shown(unexpected)}")
    if parts:
        log.warning("encoder: %s does not match the encoder: %s", source, "; ".join(parts))


def _from_pretrained(source: str, hf_config, kwargs: dict[str, Any]) -> nn.Module:
    """``AutoModel.from_pretrained`` with the load judged by :func:`_report_keys`."""
    from transformers import AutoModel

    with _quiet_load() as held:
        try:
            model, info = AutoModel.from_pretrained(source, output_loading_info=True, **kwargs)
        except RuntimeError as e:  # size mismatches, conversion errors: transformers raises after its report
            detail = " ".join(" ".join(held).split()) if held else ""
            raise ConfigError(
                f"encoder.name_or_path: cannot load {source!r}: {str(e).splitlines()[0]}"
                + (f" ({detail})" if detail else ""),
                hint="the checkpoint does not fit the architecture its config.json describes",
            ) from None
    _report_keys(info, hf_config, source)
    return model


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
    from transformers import AutoConfig

    source = str(p) if p.exists() else name
    try:
        hf = AutoConfig.from_pretrained(source, **config_overrides(cfg))
        _take_checkpointing_flag(hf, cfg, source)
        impl, ours = _hf_attn_implementation(hf.model_type, cfg.attn_implementation)
        kwargs: dict[str, Any] = {"config": hf, "dtype": torch.float32}
        if impl is not None:
            kwargs["attn_implementation"] = impl
        model = _from_pretrained(source, hf, kwargs)
        _checkpointing_off(model)
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
    if _GC_KEY in d:  # a model saved before metaser took the flag off: encoder.gradient_checkpointing decides
        _report_checkpointing(bool(d.pop(_GC_KEY)), cfg, "encoder_config")
    hf = CONFIG_MAPPING[model_type].from_dict({**d, **FORCED})
    model = _from_config(hf, cfg, seed=None)
    _checkpointing_off(model)
    return LoadedModel(model, bool(cfg.normalize_waveform))


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
