"""The SSL speech encoder: a Hugging Face audio model that returns per-layer hidden states.

:class:`SSLEncoder` wraps ``Wav2Vec2Model``, ``HubertModel``, ``WavLMModel``,
``Data2VecAudioModel`` and any other transformers audio model with the same layout (a CNN
``feature_extractor``, a ``feature_projection`` and an ``encoder`` with a ``layers`` list).
It maps zero-padded waveforms ``(B, S)`` with true lengths ``(B,)`` to the outputs of the L
transformer layers, each ``(B, T, D)``, plus the true number of frames per utterance.

One frozen boundary (docs/method.md has the details):

* :meth:`~SSLEncoder.prefix` (n) runs the frozen part, without autograd and in eval mode: the CNN
  (n = 0), or the CNN, the input prefix (projection, positional conv) and layers[:n]. It takes
  :class:`~metaser.boundary.Waveforms` (or boundary features at layer 0, e.g. from a feature
  store) and returns :class:`~metaser.boundary.FrozenFeatures` at layer n.
* :meth:`~SSLEncoder.suffix` runs the trainable part from those features: all L layer outputs
  (the frozen layers' outputs come from the boundary features; ARI reads them too).
  ``suffix(prefix(w, n))`` gives ``model(..., output_hidden_states=True).hidden_states[1:]``.
* The CNN is always frozen; ``freeze_layers(n)`` also freezes the input prefix and layers[:n].
  ``prefix(n)`` needs ``n <= frozen_layers``. Frozen modules stay in eval mode (no dropout).
* Padding: ``independent=True`` computes every utterance as if it were alone (a group-norm CNN
  normalises over the valid frames only, every encoder gets an attention mask); ``False`` is
  HF's padded-batch computation, where ``attention_mask`` goes only to layer-norm CNN encoders
  (group-norm ones were pre-trained without one). Inference always runs independent.
* ``layerdrop`` is 0 (layer fusion needs every layer at every step); HF's SpecAugment masking is off.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from metaser.boundary import BoundaryInput, FrozenFeatures, Waveforms
from metaser.constants import receptive_field
from metaser.errors import ConfigError
from metaser.masks import lengths_to_mask
from metaser.models.config import EncoderConfig
from metaser.models.encoder import execution
from metaser.models.encoder.cnn import cnn_features
from metaser.models.encoder.loading import load_model, model_from_hf_config, write_preprocessor_config
from metaser.models.encoder.presets import FORCED
from metaser.models.encoder.waveform import check_min_length, conv_output_lengths, normalize_waveforms

__all__ = ["EncoderOutput", "SSLEncoder"]

# WavLM's eager attention hands torch a boolean key-padding mask together with its float
# relative-position bias; torch warns about the mixed types on every call although the result is correct.
_MASK_WARNING = "Support for mismatched key_padding_mask and attn_mask"


@dataclass
class EncoderOutput:
    """hidden_states: the outputs of the L transformer layers, each (B, T, D) (HF
    ``hidden_states[1:]``); frame_lengths: (B,) true frames; frame_mask: (B, T) bool, True = valid."""

    hidden_states: tuple[torch.Tensor, ...]
    frame_lengths: torch.Tensor
    frame_mask: torch.Tensor


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
    def padded_cnn_exact(self) -> bool:
        """Whether the padded-batch CNN (``prefix(..., independent=False)``) gives an utterance the
        same features on its valid frames as alone, up to float rounding (~1e-6: conv kernels sum
        in a different order for another input length).

        True for layer-norm CNNs (``tiny-wavlm``, data2vec-audio, the large LV-60 wav2vec2).
        False for group-norm CNNs (wav2vec2-base, hubert-base, wavlm-base): their first conv layer
        normalises each channel over all frames, padding included. (``independent=True`` is exact
        for every encoder.)
        """
        return getattr(self.model.config, "feat_extract_norm", "group") == "layer"

    @property
    def padded_layers_exact(self) -> bool:
        """Whether the padded-batch transformer layers are exact in the same sense.

        Needs :attr:`padded_cnn_exact`, the attention mask (HF gives it to exactly the layer-norm
        CNNs) and a single positional conv: HF zeroes padded frames only before the first one,
        so data2vec-audio's stack of positional convs carries padding into the valid frames
        near the end of an utterance.
        """
        pos = self.model.encoder.pos_conv_embed
        return self.padded_cnn_exact and self.uses_attention_mask and len(getattr(pos, "layers", [pos])) <= 1

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

    def _mask(self, frame_lengths: torch.Tensor, frames: int, independent: bool) -> torch.Tensor | None:
        """The frame mask (B, T) bool the transformer gets, or None (group-norm encoders, padded)."""
        return lengths_to_mask(frame_lengths, frames) if (independent or self.uses_attention_mask) else None

    def prepare(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Zero the padding, then normalise per utterance when ``normalize_waveform``."""
        x = waveforms * lengths_to_mask(lengths, waveforms.shape[1]).to(waveforms.dtype)  # (B, S)
        if self.normalize_waveform:
            x = normalize_waveforms(x, lengths)
        return x

    def _cnn(self, audio: Waveforms, independent: bool) -> FrozenFeatures:
        """Waveforms (B, S) -> boundary features at layer 0: the CNN output (B, T, C)."""
        waveforms = audio.samples
        if waveforms.dim() != 2:
            raise ValueError(f"waveforms must be (B, S), got shape {tuple(waveforms.shape)}")
        lengths = audio.lengths.to(waveforms.device).long()
        check_min_length(lengths, self.min_samples)
        dtype = next(self.model.feature_extractor.parameters()).dtype
        x = self.prepare(waveforms.float(), lengths).to(dtype)  # (B, S)
        extractor = self.model.feature_extractor
        feats = cnn_features(extractor, x, lengths, self._conv_kernel, self._conv_stride, independent=independent)
        feats = feats.transpose(1, 2)  # (B, T, C); a view: .contiguous() it to store
        frame_lengths = self.frame_lengths(lengths).clamp(min=0, max=feats.shape[1])  # (B,)
        return FrozenFeatures((feats,), frame_lengths, lengths, layer=0, independent=independent)

    def _embed(self, features: torch.Tensor, frame_lengths: torch.Tensor, independent: bool) -> torch.Tensor:
        """CNN features (B, T, C) -> the input of layer 0 (B, T, D)."""
        with self._grad(self._frozen > 0):
            mask = self._mask(frame_lengths, features.shape[1], independent)
            return execution.embed(self.model, features, mask, independent)

    def _run_layers(
        self, hidden: torch.Tensor, frame_lengths: torch.Tensor, start: int, stop: int, independent: bool
    ) -> list[torch.Tensor]:
        """Layers ``start .. stop-1`` from the input of layer ``start`` (B, T, D); their outputs."""
        b, t = hidden.shape[:2]
        attention_mask = execution.layer_attention_mask(self.model, hidden, self._mask(frame_lengths, t, independent))
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

    def prefix(self, inputs: BoundaryInput, n: int, *, independent: bool) -> FrozenFeatures:
        """The frozen part up to the boundary at layer ``n`` (0 <= n <= ``frozen_layers``), without
        autograd: the CNN, and for n >= 1 the input prefix and layers[:n].

        inputs: :class:`Waveforms`, or :class:`FrozenFeatures` at layer 0 (advanced to n) or at
        layer n (returned as they are). ``independent``: see the module docstring; features
        given must have been computed the same way.
        """
        if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= self._frozen:
            raise ValueError(f"prefix({n!r}): the boundary must be a frozen layer count in [0, {self._frozen}]")
        if isinstance(inputs, FrozenFeatures):
            if inputs.independent != independent:
                raise ValueError(
                    f"boundary features computed with independent={inputs.independent}, asked for {independent}"
                )
            if inputs.layer == n:
                return inputs
            if inputs.layer != 0:
                raise ValueError(f"boundary features at layer {inputs.layer} cannot be advanced to layer {n}")
            feats = inputs
        else:
            with torch.no_grad():
                feats = self._cnn(inputs, independent)
        if n == 0:
            return feats
        with torch.no_grad():
            hidden = self._embed(feats.hidden[0], feats.frame_lengths, independent)
            outs = self._run_layers(hidden, feats.frame_lengths, 0, n, independent)
        return FrozenFeatures(tuple(outs), feats.frame_lengths, feats.num_samples, layer=n, independent=independent)

    def suffix(self, feats: FrozenFeatures) -> EncoderOutput:
        """The trainable part: boundary features -> the outputs of all L layers, each (B, T, D).

        Layers ``feats.layer`` .. L-1 run here (those still frozen without grad); the outputs of
        the layers in front of the boundary are the features themselves. WavLM's relative
        position bias is recomputed exactly when the run starts after layer 0.
        """
        n, fl, independent = feats.layer, feats.frame_lengths, feats.independent
        if n == 0:
            kept: tuple[torch.Tensor, ...] = ()
            hidden = self._embed(feats.hidden[0], fl, independent)  # (B, T, D)
        else:
            if n > self.num_layers:
                raise ValueError(f"boundary layer {n} is beyond the encoder's {self.num_layers} layers")
            kept, hidden = tuple(feats.hidden), feats.hidden[-1]
            if n == self.num_layers:  # the whole encoder is frozen: the boundary is its output
                return self._output(kept, fl)
        outs = self._run_layers(hidden, fl, n, self.num_layers, independent)
        return self._output(kept + tuple(outs), fl)

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor, *, independent: bool = False) -> EncoderOutput:
        """waveforms: (B, S) zero-padded 16 kHz; lengths: (B,) true samples -> all L layer outputs.

        The same as ``suffix(prefix(Waveforms(...), frozen_layers))``.
        """
        return self.suffix(self.prefix(Waveforms(waveforms, lengths), self._frozen, independent=independent))

    def _output(self, hidden: tuple[torch.Tensor, ...], frame_lengths: torch.Tensor) -> EncoderOutput:
        if len(hidden) != self.num_layers:
            raise RuntimeError(f"expected {self.num_layers} layer outputs, got {len(hidden)}")
        t = hidden[-1].shape[1]
        frame_lengths = frame_lengths.to(hidden[-1].device).long()
        frame_mask = lengths_to_mask(frame_lengths, t)  # (B, T)
        return EncoderOutput(hidden_states=hidden, frame_lengths=frame_lengths, frame_mask=frame_mask)
