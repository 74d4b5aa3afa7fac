"""The SSL speech encoder: a Hugging Face audio model that returns per-layer hidden states.

:class:`SSLEncoder` wraps ``Wav2Vec2Model``, ``HubertModel``, ``WavLMModel``,
``Data2VecAudioModel`` and any other transformers audio model with the same layout (a CNN
``feature_extractor``, a ``feature_projection`` and an ``encoder`` with a ``layers`` list).
It maps zero-padded waveforms ``(B, S)`` with true lengths ``(B,)`` to the outputs of the L
transformer layers, each ``(B, T, D)``, plus the true number of frames per utterance.

Execution policy (docs/method.md has the details):

* The forward runs in pieces that mirror HF's (:mod:`~metaser.models.encoder.execution`):
  :meth:`~SSLEncoder.features` (the CNN) -> :meth:`~SSLEncoder.forward_features` (projection,
  positional conv, layers); :meth:`~SSLEncoder.prefix` runs layers[:n] and
  :meth:`~SSLEncoder.forward_from_layer` continues from there, so a cache can stand in for the
  frozen prefix. Every path gives ``model(..., output_hidden_states=True).hidden_states[1:]``.
* The CNN is always frozen. ``freeze_layers(n)`` also freezes the feature projection, the
  positional conv, the pre-layer layer norm and layers[:n]. Frozen pieces run under
  ``torch.no_grad()`` and stay in eval mode (no dropout), also after ``.train()``.
* ``layerdrop`` is 0 (layer fusion needs every layer at every step); HF's SpecAugment masking is off.
* ``attention_mask`` goes only to encoders whose CNN uses layer norm; group-norm encoders
  (wavlm-base, ...) get zero-padded input without a mask, as in their pre-training. Whether an
  utterance's outputs depend on the batch it is padded into: :attr:`SSLEncoder.batch_independent`.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from metaser.constants import receptive_field
from metaser.errors import ConfigError
from metaser.masks import lengths_to_mask
from metaser.models.config import EncoderConfig
from metaser.models.encoder import execution
from metaser.models.encoder.loading import load_model, model_from_hf_config, write_preprocessor_config
from metaser.models.encoder.presets import FORCED
from metaser.models.encoder.waveform import check_min_length, conv_output_lengths, normalize_waveforms

__all__ = ["EncoderOutput", "SSLEncoder"]

# WavLM's eager attention hands torch a boolean key-padding mask together with its float
# relative-position bias; torch warns about the mixed types on every call although the result is correct.
_MASK_WARNING = "Support for mismatched key_padding_mask and attn_mask"


@dataclass
class EncoderOutput:
    """hidden_states: the outputs of transformer layers ``first_layer .. L-1``, each (B, T, D)
    (HF ``hidden_states[1 + first_layer:]``; ``first_layer`` is 0, i.e. all L layers, except
    after :meth:`SSLEncoder.forward_from_layer` from a single hidden state);
    frame_lengths: (B,) true frames; frame_mask: (B, T) bool, True = valid."""

    hidden_states: tuple[torch.Tensor, ...]
    frame_lengths: torch.Tensor
    frame_mask: torch.Tensor
    first_layer: int = 0


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
                    f"encoder.name_or_path: {cfg.name_or_path!r} loads a {type(model).__name__}, which has no '{attr}'",
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
        for key, value in FORCED.items():  # also for models built elsewhere
            setattr(hf, key, value)
        if isinstance(getattr(model, "masked_spec_embed", None), nn.Parameter):
            del model.masked_spec_embed  # unused with masking off; keeps save/load symmetric
        self.uses_attention_mask = getattr(hf, "feat_extract_norm", "group") == "layer"
        self._stable_layer_norm = bool(getattr(hf, "do_stable_layer_norm", False))
        self._wavlm = execution.is_wavlm(model)
        self._conv_kernel = tuple(int(k) for k in hf.conv_kernel)
        self._conv_stride = tuple(int(s) for s in hf.conv_stride)
        self.model.feature_extractor.requires_grad_(False)
        if hasattr(self.model.feature_extractor, "_requires_grad"):
            self.model.feature_extractor._requires_grad = False
        if cfg.gradient_checkpointing:
            self._enable_checkpointing()
        self._frozen = 0
        self.freeze_layers(0)
        self.train()  # a new nn.Module trains by default; frozen parts stay in eval

    # ------------------------------------------------------------------ builders
    @classmethod
    def from_pretrained(cls, cfg: EncoderConfig) -> SSLEncoder:
        """Load ``cfg.name_or_path``: a preset name, a local directory or a hub id.

        Directories and hub ids go through ``AutoModel.from_pretrained`` (same code path).
        """
        loaded = load_model(cfg)
        return cls(loaded.model, cfg, loaded.normalize_waveform)

    @classmethod
    def from_hf_config(cls, hf_config: dict[str, Any], cfg: EncoderConfig) -> SSLEncoder:
        """Build the architecture described by a transformers config dict, randomly initialised.

        Used to load a saved metaser model, whose weights then come from its safetensors file.
        ``cfg.normalize_waveform`` None means False here (there is no checkpoint to read).
        """
        loaded = model_from_hf_config(hf_config, cfg)
        return cls(loaded.model, cfg, loaded.normalize_waveform)

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
        write_preprocessor_config(directory, self.normalize_waveform, self.uses_attention_mask)

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
    def feature_size(self) -> int:
        """C, the width of the CNN features :meth:`features` returns (512 for base encoders)."""
        return int(self.model.config.conv_dim[-1])

    @property
    def frozen_layers(self) -> int:
        """n of the last :meth:`freeze_layers` call."""
        return self._frozen

    @property
    def min_samples(self) -> int:
        """The shortest input that yields one frame (the CNN's receptive field, 400 samples)."""
        return receptive_field(self._conv_kernel, self._conv_stride)

    @property
    def batch_independent(self) -> bool:
        """Whether an utterance's CNN features (:meth:`features`) on its valid frames do not
        depend on the batch it is padded into, up to float rounding (~1e-6: conv kernels sum in
        a different order for another input length). What a per-utterance stage-1 cache needs.

        True for layer-norm CNNs (``tiny-wavlm``, data2vec-audio, the large LV-60 wav2vec2).
        False for group-norm CNNs (wav2vec2-base, hubert-base, wavlm-base): their first conv
        layer normalises each channel over all frames, padding included, so the padded batch's
        frames depend on the padding and a per-utterance cache is not exact there.
        """
        return getattr(self.model.config, "feat_extract_norm", "group") == "layer"

    @property
    def batch_independent_layers(self) -> bool:
        """Whether the transformer layer outputs on valid frames are batch independent too
        (what a per-utterance stage-2 cache of the frozen prefix needs).

        Needs :attr:`batch_independent`, the attention mask (given to exactly the layer-norm
        CNNs) and a single positional conv: HF zeroes padded frames only before the first one,
        so data2vec-audio's stack of positional convs carries padding into the valid frames
        near the end of an utterance.
        """
        pos = self.model.encoder.pos_conv_embed
        return self.batch_independent and self.uses_attention_mask and len(getattr(pos, "layers", [pos])) <= 1

    @property
    def attn_implementation(self) -> str:
        """``sdpa`` or ``eager`` (or another transformers implementation) as actually used."""
        if self._wavlm:
            from metaser.models.encoder.wavlm_sdpa import wavlm_attention

            return wavlm_attention(self.model)
        return str(self.model.config._attn_implementation)

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
            for name, m in self.model.encoder.named_children():
                if name == "layers" or (name == "layer_norm" and self._stable_layer_norm):
                    continue  # a stable-layer-norm encoder's final norm is not part of our outputs
                m.requires_grad_(True)
        self._frozen = n
        if self.training:
            self.train(True)  # re-applies eval mode to exactly the frozen part

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

    def train(self, mode: bool = True) -> SSLEncoder:
        super().train(mode)
        if mode:
            self.set_frozen_eval()
        return self

    # ------------------------------------------------------------------- forward
    def _grad(self, frozen: bool):
        """no_grad for a frozen piece."""
        return torch.no_grad() if frozen else contextlib.nullcontext()

    def _hf_mask(self, frame_lengths: torch.Tensor, frames: int) -> torch.Tensor | None:
        """The frame mask HF derives from the sample mask (B, T) bool, or None without a mask."""
        return lengths_to_mask(frame_lengths, frames) if self.uses_attention_mask else None

    def prepare(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Zero the padding, then normalise per utterance when ``normalize_waveform``."""
        x = waveforms * lengths_to_mask(lengths, waveforms.shape[1]).to(waveforms.dtype)  # (B, S)
        if self.normalize_waveform:
            x = normalize_waveforms(x, lengths)
        return x

    def features(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """waveforms (B, S) zero-padded 16 kHz, lengths (B,) -> (CNN features (B, T, C), frame lengths (B,)).

        The CNN output before the feature projection (HF's ``extract_features``), always
        without autograd. The features are a transposed view; ``.contiguous()`` them to store.
        """
        if waveforms.dim() != 2:
            raise ValueError(f"waveforms must be (B, S), got shape {tuple(waveforms.shape)}")
        lengths = lengths.to(waveforms.device).long()
        check_min_length(lengths, self.min_samples)
        dtype = next(self.model.feature_extractor.parameters()).dtype
        x = self.prepare(waveforms.float(), lengths).to(dtype)  # (B, S)
        with self._grad(True):
            feats = self.model.feature_extractor(x).transpose(1, 2)  # (B, T, C)
        frame_lengths = self.frame_lengths(lengths).clamp(min=0, max=feats.shape[1])  # (B,)
        return feats, frame_lengths

    def _embed(self, features: torch.Tensor, frame_lengths: torch.Tensor) -> torch.Tensor:
        """CNN features (B, T, C) -> the input of layer 0 (B, T, D)."""
        with self._grad(self._frozen > 0):
            return execution.embed(self.model, features, self._hf_mask(frame_lengths, features.shape[1]))

    def _run_layers(
        self, hidden: torch.Tensor, frame_lengths: torch.Tensor, start: int, stop: int
    ) -> list[torch.Tensor]:
        """Layers ``start .. stop-1`` from the input of layer ``start`` (B, T, D); their outputs."""
        b, t = hidden.shape[:2]
        attention_mask = execution.layer_attention_mask(self.model, hidden, self._hf_mask(frame_lengths, t))
        bias = None
        if self._wavlm and start > 0:  # what layer 0 would have passed along
            with self._grad(self._frozen > 0):
                bias = execution.position_bias(self.model, b, t)  # (B*H, T, T)
        outs: list[torch.Tensor] = []
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_MASK_WARNING)
            for i in range(start, stop):
                with self._grad(i < self._frozen):
                    hidden, bias = execution.run_layer(self.model, i, hidden, attention_mask, bias)
                outs.append(hidden)  # (B, T, D)
        return outs

    def _check_layer(self, n: int, low: int = 0) -> None:
        if not isinstance(n, int) or isinstance(n, bool) or not low <= n <= self.num_layers:
            raise ValueError(f"layer index must be an integer in [{low}, {self.num_layers}], got {n!r}")

    def prefix(self, features: torch.Tensor, frame_lengths: torch.Tensor, n: int) -> tuple[torch.Tensor, ...]:
        """CNN features (B, T, C) -> the outputs of layers 0..n-1, each (B, T, D), for 1 <= n <= L.

        What a stage-2 cache of the frozen prefix holds: :meth:`forward_from_layer` takes the
        tuple back and returns all L layer outputs. Layer fusion (ARI, weighted sum) needs the
        frozen layers' outputs too, so the cache holds n tensors of T x D per utterance, n times
        a single layer's size (base, n = 4: 4 x 768 values per 20 ms frame, about 4 x 5.8 GB in
        fp16 for IEMOCAP's 7 h at 3 speeds). A model that only reads the last layer can keep
        just ``prefix(...)[-1]`` (= :meth:`prefix_hidden`) and resume from that tensor.
        """
        self._check_layer(n, low=1)
        return tuple(self._run_layers(self._embed(features, frame_lengths), frame_lengths, 0, n))

    def prefix_hidden(self, features: torch.Tensor, frame_lengths: torch.Tensor, n: int) -> torch.Tensor:
        """CNN features (B, T, C) -> the input of layer n (B, T, D): the output of layer n-1,
        or for n = 0 the projected, position-embedded features."""
        self._check_layer(n)
        return self.prefix(features, frame_lengths, n)[-1] if n else self._embed(features, frame_lengths)

    def forward_from_layer(
        self, hidden: torch.Tensor | Sequence[torch.Tensor], frame_lengths: torch.Tensor, n: int
    ) -> EncoderOutput:
        """Continue at layer n.

        hidden: the tuple :meth:`prefix` returned (outputs of layers 0..n-1; the result then has
        all L layer outputs), or one tensor (B, T, D), the input of layer n (:meth:`prefix_hidden`;
        the result then has layers n..L-1 only, ``first_layer = n``). Frozen layers among
        n..L-1 still run without grad. WavLM's relative position bias is recomputed exactly.
        """
        if isinstance(hidden, torch.Tensor):
            self._check_layer(n)
            kept: tuple[torch.Tensor, ...] = ()
            start, first = hidden, n
        else:
            kept = tuple(hidden)
            self._check_layer(n, low=1)
            if len(kept) != n:
                raise ValueError(f"forward_from_layer({n}) needs the outputs of layers 0..{n - 1}, got {len(kept)}")
            start, first = kept[-1], 0
        outs = self._run_layers(start, frame_lengths, n, self.num_layers)
        return self._output(kept + tuple(outs), frame_lengths, first)

    def forward_features(
        self,
        features: torch.Tensor | None,
        frame_lengths: torch.Tensor,
        *,
        start_layer: int = 0,
        hidden: torch.Tensor | Sequence[torch.Tensor] | None = None,
    ) -> EncoderOutput:
        """Everything after the CNN: CNN features (B, T, C) -> all L layer outputs.

        With ``hidden`` (see :meth:`forward_from_layer`) the run starts at ``start_layer``
        instead and ``features`` is not used (may be None).
        """
        if hidden is not None:
            return self.forward_from_layer(hidden, frame_lengths, start_layer)
        if start_layer != 0 or features is None:
            raise ValueError("forward_features: start_layer > 0 needs `hidden` (see forward_from_layer)")
        return self.forward_from_layer(self._embed(features, frame_lengths), frame_lengths, 0)

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> EncoderOutput:
        """waveforms: (B, S) zero-padded 16 kHz; lengths: (B,) true samples."""
        features, frame_lengths = self.features(waveforms, lengths)
        return self.forward_features(features, frame_lengths)

    def _output(self, hidden: tuple[torch.Tensor, ...], frame_lengths: torch.Tensor, first: int) -> EncoderOutput:
        if len(hidden) != self.num_layers - first:
            raise RuntimeError(f"expected {self.num_layers - first} layer outputs, got {len(hidden)}")
        t = hidden[-1].shape[1]
        frame_lengths = frame_lengths.to(hidden[-1].device).long()
        frame_mask = lengths_to_mask(frame_lengths, t)  # (B, T)
        return EncoderOutput(
            hidden_states=hidden, frame_lengths=frame_lengths, frame_mask=frame_mask, first_layer=first
        )
