"""What crosses the frozen boundary: the two kinds of input a batch can hold.

A stage trains the encoder's layers from a boundary on; everything in front of it (the CNN, and
in stage 2 the input prefix and the first n transformer layers) is frozen. A batch's input is one
of two types:

* :class:`Waveforms`: audio in front of the boundary; the frozen prefix runs on it live
  (``SSLEncoder.prefix``), on the training device;
* :class:`FrozenFeatures`: the frozen prefix's output itself, the boundary features (read from a
  feature store, or made by ``SSLEncoder.prefix``). The trainable part (``SSLEncoder.suffix``) and
  the model's forward take exactly this.

Torch only; imports nothing of metaser (a base module every layer may use).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from metaser.masks import lengths_to_mask

__all__ = ["Waveforms", "FrozenFeatures", "BoundaryInput"]


@dataclass
class Waveforms:
    """samples: (B, S) float32 zero-padded mono audio at 16 kHz; lengths: (B,) int64 true samples."""

    samples: torch.Tensor
    lengths: torch.Tensor

    def __len__(self) -> int:
        return int(self.samples.shape[0])

    @property
    def num_samples(self) -> torch.Tensor:
        """(B,) waveform samples behind each utterance."""
        return self.lengths

    def padding(self) -> tuple[int, int]:
        """(padding, real) elements of the padded tensor (samples)."""
        real = int(self.lengths.sum())
        return int(self.samples.numel()) - real, real

    @property
    def mask(self) -> torch.Tensor:
        """(B, S) bool, True on real samples."""
        return lengths_to_mask(self.lengths, self.samples.shape[-1])

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Waveforms:
        return Waveforms(
            self.samples.to(device, non_blocking=non_blocking), self.lengths.to(device, non_blocking=non_blocking)
        )

    def pin_memory(self) -> Waveforms:
        return Waveforms(self.samples.pin_memory(), self.lengths.pin_memory())


@dataclass
class FrozenFeatures:
    """The output of the frozen prefix at boundary ``layer``.

    hidden: ``layer = 0``: one tensor, the CNN output (B, T, C); ``layer = n >= 1``: the outputs of
        transformer layers 0..n-1, n tensors (B, T, D) (layer fusion reads the frozen layers too).
        Zero-padded along T.
    frame_lengths: (B,) int64 valid frames.
    num_samples: (B,) int64 waveform samples behind each utterance (for audio-seconds counts).
    independent: how the prefix treated padding. True: each utterance as if it were alone in its
        batch (group-norm CNNs normalise over its valid frames only, every encoder gets an attention
        mask); the trainable part then masks padding too, so no result depends on the batch.
        False: HF's padded-batch computation (the paper pads its batches).
    """

    hidden: tuple[torch.Tensor, ...]
    frame_lengths: torch.Tensor
    num_samples: torch.Tensor
    layer: int = 0
    independent: bool = False

    def __post_init__(self) -> None:
        expected = 1 if self.layer == 0 else self.layer
        if len(self.hidden) != expected:
            raise ValueError(f"FrozenFeatures at layer {self.layer} hold {expected} tensor(s), got {len(self.hidden)}")

    def __len__(self) -> int:
        return int(self.frame_lengths.shape[0])

    @property
    def frames(self) -> int:
        """T, the padded number of frames."""
        return int(self.hidden[0].shape[1])

    def padding(self) -> tuple[int, int]:
        """(padding, real) elements of the padded tensor (frames)."""
        real = int(self.frame_lengths.sum())
        return len(self) * self.frames - real, real

    def _apply(self, fn) -> FrozenFeatures:
        return replace(
            self,
            hidden=tuple(fn(t) for t in self.hidden),
            frame_lengths=fn(self.frame_lengths),
            num_samples=fn(self.num_samples),
        )

    def to(self, device: torch.device | str, non_blocking: bool = False) -> FrozenFeatures:
        return self._apply(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> FrozenFeatures:
        return self._apply(lambda t: t.pin_memory())


#: what a batch holds: audio in front of the boundary, or the boundary features themselves
BoundaryInput = Waveforms | FrozenFeatures
