"""Layer fusion: how the L transformer-layer outputs become one frame sequence.

``fusion.layers`` picks one of :class:`AugmentedResidualIntegration` (``ari``, the paper's
module), :class:`WeightedLayerSum` (``weighted_sum``, the Table III baseline) and
:class:`LastLayer` (``last``). All take the tuple of L hidden states, each (B, T, D), and
return (B, T, D_f) with ``D_f = output_dim(D)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from metaser.errors import ConfigError

__all__ = [
    "AugmentedResidualIntegration",
    "WeightedLayerSum",
    "LastLayer",
    "LayerFusion",
    "build_layer_fusion",
]


class LayerFusion(nn.Module):
    """Base class: ``forward(hidden_states) -> (B, T, D_f)``; ``weights()`` for reports.

    "Layer weights" in metaser always means these: the fusion's weights w over the encoder's
    layers (Eq. 3's W for ARI, over all L layers for the weighted sum), as the forward uses them.
    """

    def output_dim(self, hidden_size: int) -> int:
        raise NotImplementedError

    def weights(self) -> torch.Tensor | None:
        """The layer weights w as used in the forward (detached), or None without weights."""
        return None


def _check(hidden_states: Sequence[torch.Tensor], num_layers: int) -> None:
    if len(hidden_states) != num_layers:
        raise ValueError(f"expected {num_layers} hidden states, got {len(hidden_states)}")


WEIGHTINGS = ("softmax", "raw")


class _WeightedLayers(LayerFusion):
    """n learned layer weights in the parameter ``logits``: ``softmax`` (w = softmax(a), a
    initialised to 0) or ``raw`` (w = a, initialised to 1/n, unconstrained). Both start at
    uniform weights 1/n."""

    def __init__(self, n: int, weighting: str):
        super().__init__()
        if weighting not in WEIGHTINGS:
            raise ConfigError(f"fusion.weights: {weighting!r} is not one of {', '.join(WEIGHTINGS)}")
        self.weighting = weighting
        init = torch.zeros(n) if weighting == "softmax" else torch.full((n,), 1.0 / n)
        self.logits = nn.Parameter(init)  # (n,)

    def weight_vector(self) -> torch.Tensor:
        """w, with autograd: (n,)."""
        return torch.softmax(self.logits, dim=0) if self.weighting == "softmax" else self.logits

    def weights(self) -> torch.Tensor:
        return self.weight_vector().detach().float()  # (n,)


class AugmentedResidualIntegration(_WeightedLayers):
    """Implements Eq. (3): F_ARI = [F_L ; W^T [F_1; ...; F_{L-1}]], W in R^{1 x (L-1)}.

    F_L, the last transformer layer, is kept as is; the lower L-1 layer outputs are weighted
    and summed, sum_{i=1}^{L-1} w_i F_i, and concatenated beside it, giving 2D features per
    frame. The paper calls W a "weighted matrix" and says nothing of its normalisation:
    ``weighting="softmax"`` (metaser's default) learns logits a with w = softmax(a), a = 0 at
    the start (w_i = 1/(L-1)); ``weighting="raw"`` learns w itself, initialised to 1/(L-1).
    """

    def __init__(self, num_layers: int, weighting: str = "softmax"):
        if num_layers < 2:
            raise ConfigError(f"fusion.layers=ari needs an encoder with >= 2 layers, got {num_layers}")
        super().__init__(num_layers - 1, weighting)
        self.num_layers = num_layers

    def output_dim(self, hidden_size: int) -> int:
        return 2 * hidden_size

    def forward(self, hidden_states: Sequence[torch.Tensor]) -> torch.Tensor:
        _check(hidden_states, self.num_layers)
        lower = torch.stack(tuple(hidden_states[:-1]), dim=0)  # (L-1, B, T, D)
        w = self.weight_vector().to(lower.dtype)  # (L-1,)
        residual = torch.einsum("l,lbtd->btd", w, lower)  # (B, T, D)
        return torch.cat([hidden_states[-1], residual], dim=-1)  # (B, T, 2D)


class WeightedLayerSum(_WeightedLayers):
    """Implements the weighted-sum baseline of Table III: F = sum_{i=1}^{L} w_i F_i.

    ``weighting`` as for :class:`AugmentedResidualIntegration` (softmax by default, or raw
    weights), over all L layers; D features per frame.
    """

    def __init__(self, num_layers: int, weighting: str = "softmax"):
        super().__init__(num_layers, weighting)
        self.num_layers = num_layers

    def output_dim(self, hidden_size: int) -> int:
        return hidden_size

    def forward(self, hidden_states: Sequence[torch.Tensor]) -> torch.Tensor:
        _check(hidden_states, self.num_layers)
        stacked = torch.stack(tuple(hidden_states), dim=0)  # (L, B, T, D)
        w = self.weight_vector().to(stacked.dtype)  # (L,)
        return torch.einsum("l,lbtd->btd", w, stacked)  # (B, T, D)


class LastLayer(LayerFusion):
    """F = F_L, the last transformer layer (no parameters)."""

    def __init__(self, num_layers: int):
        super().__init__()
        self.num_layers = num_layers

    def output_dim(self, hidden_size: int) -> int:
        return hidden_size

    def forward(self, hidden_states: Sequence[torch.Tensor]) -> torch.Tensor:
        _check(hidden_states, self.num_layers)
        return hidden_states[-1]  # (B, T, D)


_KINDS = {"ari": AugmentedResidualIntegration, "weighted_sum": WeightedLayerSum, "last": LastLayer}


class MaskedBatchNorm(nn.Module):
    """Standardise each feature over the valid frames of the batch: BatchNorm1d without affine.

    Not part of the paper (``fusion.normalize = batch``). Padded frames are neither counted in
    the statistics nor changed (they stay zero); at inference the running statistics are used,
    so an utterance gets the same output alone or padded in a batch.
    """

    def __init__(self, dim: int, momentum: float = 0.1):
        super().__init__()
        self.bn = nn.BatchNorm1d(dim, affine=False, momentum=momentum)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # (B, T, D), (B, T)
        out = torch.zeros_like(x)
        out[mask] = self.bn(x[mask])  # (N_valid, D)
        return out


def build_layer_fusion(kind: str, num_layers: int, weighting: str = "softmax") -> LayerFusion:
    """``kind``: ``ari`` | ``weighted_sum`` | ``last`` (``fusion.layers``); ``weighting``:
    ``softmax`` | ``raw`` (``fusion.weights``)."""
    if kind not in _KINDS:
        raise ConfigError(f"fusion.layers: {kind!r} is not one of {', '.join(_KINDS)}")
    if kind == "last":
        return LastLayer(num_layers)
    return _KINDS[kind](num_layers, weighting)
