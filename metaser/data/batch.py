"""The batch every data loader yields and the training loop consumes."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from metaser.boundary import BoundaryInput

__all__ = ["Batch"]


@dataclass
class Batch:
    """A padded batch of utterances.

    inputs:    what the model starts from: :class:`~metaser.boundary.Waveforms` (audio; the frozen
               prefix runs on it live) or :class:`~metaser.boundary.FrozenFeatures` (the frozen
               prefix's output, read from a feature store)
    targets:   task name -> (B,) int64 class indices (``IGNORE_INDEX`` where unknown);
               always contains "emotion"; also each enabled classification aux task
    ctc_targets:        (B, U) int64 character ids (0-padded), or None when ASR is off
    ctc_target_lengths: (B,) int64, or None
    ids:       utterance (cut) ids, in batch order
    """

    inputs: BoundaryInput
    targets: dict[str, torch.Tensor] = field(default_factory=dict)
    ctc_targets: torch.Tensor | None = None
    ctc_target_lengths: torch.Tensor | None = None
    ids: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.inputs)

    @property
    def num_samples(self) -> int:
        """Real (unpadded) audio samples behind the batch."""
        return int(self.inputs.num_samples.sum())

    def _apply(self, fn, inputs: BoundaryInput) -> Batch:
        f = lambda t: None if t is None else fn(t)
        return replace(
            self,
            inputs=inputs,
            targets={k: f(v) for k, v in self.targets.items()},
            ctc_targets=f(self.ctc_targets),
            ctc_target_lengths=f(self.ctc_target_lengths),
        )

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        return self._apply(lambda t: t.to(device, non_blocking=non_blocking), self.inputs.to(device, non_blocking))

    def pin_memory(self) -> Batch:
        return self._apply(lambda t: t.pin_memory(), self.inputs.pin_memory())
