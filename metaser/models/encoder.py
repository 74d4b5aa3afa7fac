"""The SSL speech encoder: a Hugging Face audio model that returns per-layer hidden states.

:class:`SSLEncoder` wraps ``Wav2Vec2Model``, ``HubertModel``, ``WavLMModel``,
``Data2VecAudioModel`` and any other transformers audio model with the same layout (a CNN
``feature_extractor``, a ``feature_projection`` and an ``encoder`` with a ``layers`` list).
It maps zero-padded waveforms ``(B, S)`` with true lengths ``(B,)`` to the outputs of the L
transformer layers, each ``(B, T, D)``, plus the true number of frames per utterance.

Execution policy (see docs/method.md):

* The CNN feature encoder is always frozen and runs without autograd.
* ``freeze_layers(n)`` freezes the feature projection, the positional convolution, the
  pre-layer layer norm and the first ``n`` transformer layers. That prefix runs under
  ``torch.no_grad()`` (no activations are kept); grad mode comes back on at the first trainable
  module through a one-shot forward pre-hook, so the forward itself is the library's own,
  unchanged, and its outputs are identical to ``model(..., output_hidden_states=True)``.
* Frozen modules stay in eval mode (no dropout there), also after ``.train()``.
* ``layerdrop`` is 0 (layer fusion needs every layer at every step) and HF's SpecAugment-style
  masking is off (``mask_time_prob = mask_feature_prob = 0``).
* ``attention_mask`` is passed only to encoders whose CNN uses layer norm
  (``feat_extract_norm == "layer"``); group-norm encoders (wav2vec2-base, hubert-base,
  wavlm-base) get zero-padded input without a mask, as in their pre-training. Our own pooling
  and attention always use the true lengths (``frame_mask``).
"""

from __future__ import annotations

import functools
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from metaser.errors import ConfigError
from metaser.models.config import EncoderConfig

__all__ = [
    "EncoderOutput",
    "SSLEncoder",
    "PRESETS",
    "preset_config",
    "normalize_waveforms",
    "conv_output_lengths",
]

SAMPLE_RATE = 16000

# WavLM hands torch a boolean key-padding mask together with its float relative-position bias;
# torch warns about the mixed types on every call although the result is correct.
_MASK_WARNING = "Support for mismatched key_padding_mask and attn_mask"

# The standard wav2vec2-family CNN: 7 layers, 400-sample receptive field, 320-sample (20 ms) hop.
_CONV_KERNEL = (10, 3, 3, 3, 3, 2, 2)
_CONV_STRIDE = (5, 2, 2, 2, 2, 2, 2)

# Overrides applied to every encoder config (pretrained, preset or rebuilt from a saved model).
_FORCED = {"layerdrop": 0.0, "mask_time_prob": 0.0, "mask_feature_prob": 0.0}

_TINY = dict(
    hidden_size=32,
    num_hidden_layers=12,
    num_attention_heads=2,
    intermediate_size=64,
    conv_dim=(32,) * 7,
    conv_kernel=_CONV_KERNEL,
    conv_stride=_CONV_STRIDE,
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=4,
)

#: name -> (HF model_type, config overrides). ``tiny-*``: small widths but 12 layers and the
#: standard 7-layer CNN (20 ms frames), for tests and the offline demo. ``base-random-*``: the
#: real base sizes with random init, for CPU shape tests and benchmarks.
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

_PRESET_SEED = 1234

_DROPOUT_KEYS = ("hidden_dropout", "attention_dropout", "activation_dropout", "feat_proj_dropout")


def _config_overrides(cfg: EncoderConfig) -> dict[str, Any]:
    """Forced settings plus the user's dropout override, applied before the model is built."""
    out = dict(_FORCED)
    if cfg.dropout is not None:
        out.update({k: float(cfg.dropout) for k in _DROPOUT_KEYS})
    return out


def preset_config(name: str):
    """The transformers config of preset ``name`` (with layerdrop / masking forced off)."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    if name not in PRESETS:
        raise ConfigError(f"encoder.name_or_path: unknown preset {name!r}", hint=f"presets: {', '.join(PRESETS)}")
    model_type, overrides = PRESETS[name]
    return CONFIG_MAPPING[model_type](**{**overrides, **_FORCED})


def conv_output_lengths(lengths: torch.Tensor, kernels, strides) -> torch.Tensor:
    """Frames after the CNN: ``floor((n - k) / s) + 1`` per conv layer."""
    for k, s in zip(kernels, strides):
        lengths = torch.div(lengths - k, s, rounding_mode="floor") + 1
    return lengths


def normalize_waveforms(waveforms: torch.Tensor, lengths: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Per-utterance zero mean / unit variance over the true length; padding stays zero.

    Same statistics as HF's ``Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm`` (population
    variance, ``eps = 1e-7``). waveforms: (B, S); lengths: (B,).
    """
    s = waveforms.shape[1]
    mask = (torch.arange(s, device=waveforms.device)[None, :] < lengths[:, None]).to(waveforms.dtype)  # (B, S)
    n = lengths.clamp(min=1).to(waveforms.dtype)[:, None]  # (B, 1)
    mean = (waveforms * mask).sum(1, keepdim=True) / n  # (B, 1)
    var = (((waveforms - mean) * mask) ** 2).sum(1, keepdim=True) / n  # (B, 1)
    return (waveforms - mean) / torch.sqrt(var + eps) * mask  # (B, S)


@dataclass
class EncoderOutput:
    """hidden_states: L tensors (B, T, D), the outputs of the L transformer layers (HF
    ``hidden_states[1:]``); frame_lengths: (B,) true frames; frame_mask: (B, T) bool, True = valid."""

    hidden_states: tuple[torch.Tensor, ...]
    frame_lengths: torch.Tensor
    frame_mask: torch.Tensor


def _read_do_normalize(name_or_path: str) -> bool | None:
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


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or "\\" in name


class SSLEncoder(nn.Module):
    """A pretrained SSL speech encoder returning the outputs of all its transformer layers.

    Build it with :meth:`from_pretrained` (hub id, local directory or preset name, from an
    :class:`EncoderConfig`) or :meth:`from_hf_config` (architecture only, random init).
    """

    def __init__(self, model: nn.Module, cfg: EncoderConfig, normalize_waveform: bool):
        super().__init__()
        for attr in ("feature_extractor", "feature_projection", "encoder"):
            if not hasattr(model, attr):
                raise ConfigError(
                    f"encoder.name_or_path: {cfg.name_or_path!r} loads a {type(model).__name__}, "
                    f"which has no '{attr}'",
                    hint="use a wav2vec2 / HuBERT / WavLM / data2vec-audio style speech encoder",
                )
        if not hasattr(model.encoder, "layers") or not hasattr(model, "_get_feat_extract_output_lengths"):
            raise ConfigError(
                f"encoder.name_or_path: {type(model).__name__} has no transformer layer list",
                hint="use a wav2vec2 / HuBERT / WavLM / data2vec-audio style speech encoder",
            )
        self.model = model
        self.cfg = cfg
        self.normalize_waveform = bool(normalize_waveform)
        hf = model.config
        for key, value in _FORCED.items():  # also for models built elsewhere
            setattr(hf, key, value)
        if isinstance(getattr(model, "masked_spec_embed", None), nn.Parameter):
            del model.masked_spec_embed  # unused with masking off; keeps save/load symmetric
        self.uses_attention_mask = getattr(hf, "feat_extract_norm", "group") == "layer"
        self._stable_layer_norm = bool(getattr(hf, "do_stable_layer_norm", False))
        self._conv_kernel = tuple(int(k) for k in hf.conv_kernel)
        self._conv_stride = tuple(int(s) for s in hf.conv_stride)
        self.model.feature_extractor.requires_grad_(False)
        if hasattr(self.model.feature_extractor, "_requires_grad"):
            self.model.feature_extractor._requires_grad = False
        if cfg.gradient_checkpointing:
            self._enable_checkpointing()
        self._frozen = 0
        # Benchmark reference only (``metaser bench``'s naive mode): run the frozen parts with
        # autograd like a straightforward implementation would. Never set in training.
        self.keep_frozen_graph = False
        self._resume_armed = False
        self._grad_to_restore = True
        # One pre-hook per candidate "first trainable module" (0 = feature projection,
        # i + 1 = layer i), registered once; only the current one acts (see _resume_grad).
        # Nothing is re-registered later, so deep copies keep working hooks of their own.
        candidates = [self.model.feature_projection, *self.model.encoder.layers]
        for pos, module in enumerate(candidates):
            module.register_forward_pre_hook(functools.partial(self._resume_grad, pos))
        self.freeze_layers(0)
        self.train()  # a new nn.Module trains by default; frozen parts stay in eval

    # ------------------------------------------------------------------ builders
    @classmethod
    def from_pretrained(cls, cfg: EncoderConfig) -> "SSLEncoder":
        """Load ``cfg.name_or_path``: a preset name, a local directory or a hub id.

        Directories and hub ids go through ``AutoModel.from_pretrained`` (same code path).
        """
        name = cfg.name_or_path
        if name in PRESETS:
            hf = preset_config(name)
            for key, value in _config_overrides(cfg).items():
                setattr(hf, key, value)
            model = cls._build(hf, cfg, seed=_PRESET_SEED)
            norm = False if cfg.normalize_waveform is None else cfg.normalize_waveform
            return cls(model, cfg, norm)
        p = Path(name).expanduser()
        if p.exists():
            if not (p / "config.json").is_file():
                raise ConfigError(
                    f"encoder.name_or_path: {p} has no config.json",
                    hint="give a directory written by save_pretrained, a hub id, or a preset: "
                    + ", ".join(PRESETS),
                )
        elif _looks_like_path(name):
            raise ConfigError(
                f"encoder.name_or_path: directory not found: {p}",
                hint="give a directory written by save_pretrained, a hub id, or a preset: " + ", ".join(PRESETS),
            )
        from transformers import AutoModel

        kwargs: dict[str, Any] = dict(_config_overrides(cfg), dtype=torch.float32)
        if cfg.attn_implementation is not None:
            kwargs["attn_implementation"] = cfg.attn_implementation
        try:
            model = AutoModel.from_pretrained(str(p) if p.exists() else name, **kwargs)
        except (OSError, ValueError, KeyError) as e:
            raise ConfigError(
                f"encoder.name_or_path: cannot load {name!r}: {e}",
                hint="a hub id needs the network or a filled HF cache; presets: " + ", ".join(PRESETS),
            ) from None
        norm = cfg.normalize_waveform
        if norm is None:
            norm = _read_do_normalize(str(p) if p.exists() else name)
        return cls(model, cfg, bool(norm))

    @classmethod
    def from_hf_config(cls, hf_config: dict[str, Any], cfg: EncoderConfig) -> "SSLEncoder":
        """Build the architecture described by a transformers config dict, randomly initialised.

        Used to load a saved metaser model, whose weights then come from its safetensors file.
        ``cfg.normalize_waveform`` None means False here (there is no checkpoint to read).
        """
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING

        d = dict(hf_config)
        model_type = d.pop("model_type", None)
        if model_type not in CONFIG_MAPPING:
            raise ConfigError(f"encoder_config: unknown or missing model_type {model_type!r}")
        d.pop("transformers_version", None)
        hf = CONFIG_MAPPING[model_type].from_dict({**d, **_FORCED})
        model = cls._build(hf, cfg, seed=None)
        return cls(model, cfg, bool(cfg.normalize_waveform))

    @staticmethod
    def _build(hf_config, cfg: EncoderConfig, seed: int | None) -> nn.Module:
        from transformers import AutoModel

        kwargs: dict[str, Any] = {"dtype": torch.float32}
        if cfg.attn_implementation is not None:
            kwargs["attn_implementation"] = cfg.attn_implementation
        try:
            if seed is None:
                return AutoModel.from_config(hf_config, **kwargs)
            with torch.random.fork_rng(devices=[]):  # fixed weights, global RNG untouched
                torch.manual_seed(seed)
                return AutoModel.from_config(hf_config, **kwargs)
        except ValueError as e:
            raise ConfigError(f"encoder: {e}") from None

    def _enable_checkpointing(self) -> None:
        fn = getattr(self.model, "activation_checkpointing_enable", None)
        if fn is not None:
            fn(activation_checkpointing_kwargs={"use_reentrant": False})
        else:  # older transformers
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})

    def save_pretrained(self, directory: str | Path) -> None:
        """Write the HF checkpoint (config.json, model.safetensors) and a
        ``preprocessor_config.json`` carrying ``do_normalize``, so that :meth:`from_pretrained`
        on this directory resolves ``normalize_waveform`` the same way."""
        directory = Path(directory)
        self.model.save_pretrained(directory)
        pre = {
            "feature_extractor_type": "Wav2Vec2FeatureExtractor",
            "feature_size": 1,
            "sampling_rate": SAMPLE_RATE,
            "padding_value": 0.0,
            "padding_side": "right",
            "do_normalize": self.normalize_waveform,
            "return_attention_mask": self.uses_attention_mask,
        }
        (directory / "preprocessor_config.json").write_text(json.dumps(pre, indent=2) + "\n")

    # ---------------------------------------------------------------- properties
    @property
    def num_layers(self) -> int:
        """L, the number of transformer layers."""
        return len(self.model.encoder.layers)

    @property
    def hidden_size(self) -> int:
        """D, the width of every hidden state."""
        return int(self.model.config.hidden_size)

    @property
    def frozen_layers(self) -> int:
        """n of the last :meth:`freeze_layers` call."""
        return self._frozen

    @property
    def min_samples(self) -> int:
        """The shortest input that yields one frame (the CNN's receptive field, 400 samples)."""
        n = 1
        for k, s in zip(reversed(self._conv_kernel), reversed(self._conv_stride)):
            n = (n - 1) * s + k
        return n

    def hf_config_dict(self) -> dict[str, Any]:
        """The transformers config as a JSON-serialisable dict (for ``save_pretrained``)."""
        return self.model.config.to_dict()

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """(B,) samples -> (B,) frames, by the CNN output-length formula."""
        if getattr(self.model.config, "add_adapter", False):  # our states come before the adapter
            return conv_output_lengths(lengths, self._conv_kernel, self._conv_stride).long()
        return self.model._get_feat_extract_output_lengths(lengths).long()

    # ------------------------------------------------------------------ freezing
    def _prefix_modules(self) -> list[nn.Module]:
        """Everything between the CNN and transformer layer 0."""
        enc = self.model.encoder
        mods: list[nn.Module] = [self.model.feature_projection]
        mods += [m for name, m in enc.named_children() if name != "layers"]
        return mods

    def freeze_layers(self, n: int) -> None:
        """Freeze the input prefix and the first ``n`` transformer layers (``0`` = all trainable).

        The CNN is always frozen. Unused modules (the final layer norm of stable-layer-norm
        encoders, adapters, the SpecAugment embedding) never train.
        """
        num = self.num_layers
        if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= num:
            raise ConfigError(f"freeze_layers: n must be an integer in [0, {num}], got {n!r}")
        self.model.requires_grad_(False)
        for layer in self.model.encoder.layers[n:]:
            layer.requires_grad_(True)
        if n == 0:
            self.model.feature_projection.requires_grad_(True)
            enc = self.model.encoder
            for name, m in enc.named_children():
                if name == "layers":
                    continue
                if name == "layer_norm" and self._stable_layer_norm:
                    continue  # applied after the last layer: not part of our outputs
                m.requires_grad_(True)
        self._frozen = n
        if self.training:
            self.train(True)  # re-applies eval mode to exactly the frozen part

    @property
    def _first_trainable(self) -> int | None:
        """Hook position of the first trainable module (None: everything is frozen)."""
        if self._frozen == 0:
            return 0
        return self._frozen + 1 if self._frozen < self.num_layers else None

    def _resume_grad(self, pos: int, module: nn.Module, args: Any) -> None:
        # One-shot: turns the caller's grad mode back on at the first trainable module of *our*
        # forward (never during an activation-checkpointing recompute, which bypasses hooks).
        if self._resume_armed and pos == self._first_trainable:
            self._resume_armed = False
            torch.set_grad_enabled(self._grad_to_restore)

    def frozen_modules(self) -> list[nn.Module]:
        """The CNN and the frozen prefix (projection, positional conv, layers[:n])."""
        mods: list[nn.Module] = [self.model.feature_extractor]
        if self._frozen > 0:
            mods += self._prefix_modules()
            mods += list(self.model.encoder.layers[: self._frozen])
        return mods

    def set_frozen_eval(self) -> None:
        """Put frozen modules in eval mode (no dropout in what does not train)."""
        for m in self.frozen_modules():
            m.eval()

    def train(self, mode: bool = True) -> "SSLEncoder":
        super().train(mode)
        if mode:
            self.set_frozen_eval()
        return self

    # ------------------------------------------------------------------- forward
    def prepare(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Zero the padding, then normalise per utterance when ``normalize_waveform``."""
        s = waveforms.shape[1]
        mask = torch.arange(s, device=waveforms.device)[None, :] < lengths[:, None]  # (B, S)
        x = waveforms * mask.to(waveforms.dtype)
        if self.normalize_waveform:
            x = normalize_waveforms(x, lengths)
        return x

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> EncoderOutput:
        """waveforms: (B, S) zero-padded 16 kHz; lengths: (B,) true samples."""
        if waveforms.dim() != 2:
            raise ValueError(f"waveforms must be (B, S), got shape {tuple(waveforms.shape)}")
        lengths = lengths.to(waveforms.device).long()
        short = int((lengths < self.min_samples).sum())
        if short:
            from metaser.errors import DataError

            raise DataError(
                f"{short} utterance(s) in the batch are shorter than {self.min_samples} samples "
                f"({self.min_samples / SAMPLE_RATE * 1000:.0f} ms), the encoder's receptive field",
                hint="filter out very short cuts when building the manifest",
            )
        dtype = next(self.model.feature_extractor.parameters()).dtype
        x = self.prepare(waveforms.float(), lengths).to(dtype)  # (B, S)
        attention_mask = None
        if self.uses_attention_mask:
            attention_mask = (torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None]).long()
        if self.keep_frozen_graph:  # naive benchmark reference: autograd through everything
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=_MASK_WARNING)
                out = self.model(x, attention_mask=attention_mask, output_hidden_states=True)
            return self._output(out, lengths, x)
        self._grad_to_restore = torch.is_grad_enabled()
        self._resume_armed = True
        try:
            # CNN + frozen prefix without autograd; the pre-hook on the first trainable
            # module restores the caller's grad mode.
            with torch.no_grad(), warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=_MASK_WARNING)
                out = self.model(x, attention_mask=attention_mask, output_hidden_states=True)
            if self._resume_armed and self._first_trainable is not None:
                raise RuntimeError("the trainable encoder layers ran without grad mode (resume hook did not fire)")
        finally:
            self._resume_armed = False
        return self._output(out, lengths, x)

    def _output(self, out: Any, lengths: torch.Tensor, x: torch.Tensor) -> EncoderOutput:
        hidden = tuple(out.hidden_states[1:])  # L x (B, T, D)
        if len(hidden) != self.num_layers:
            raise RuntimeError(f"expected {self.num_layers} layer outputs, got {len(hidden)}")
        t = hidden[-1].shape[1]
        frame_lengths = self.frame_lengths(lengths).clamp(min=0, max=t)  # (B,)
        frame_mask = torch.arange(t, device=x.device)[None, :] < frame_lengths[:, None]  # (B, T)
        return EncoderOutput(hidden_states=hidden, frame_lengths=frame_lengths, frame_mask=frame_mask)
