"""The batch every data loader yields and the training loop consumes."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from metaser.masks import lengths_to_mask


@dataclass
class Batch:
    """A padded batch of utterances.

    waveforms: (B, S) float32, zero-padded mono audio at ``metaser.constants.SAMPLE_RATE``
    lengths:   (B,) int64, true number of samples per utterance
    targets:   task name -> (B,) int64 class indices (``IGNORE_INDEX`` where unknown);
               always contains "emotion"; also each enabled classification aux task
    ctc_targets:        (B, U) int64 character ids (0-padded), or None when ASR is off
    ctc_target_lengths: (B,) int64, or None
    ids:       utterance (cut) ids, in batch order
    features:  precomputed encoder inputs instead of audio (then ``waveforms`` is (B, 0)):
               n tensors (B, T, C), zero-padded along T; None for audio batches
    frame_lengths: (B,) int64 valid frames of ``features``, or None
    feature_layer: what ``features`` are: 0 = the CNN output (one tensor), n = the outputs of
               the encoder's first n transformer layers (n tensors)
    """

    waveforms: torch.Tensor
    lengths: torch.Tensor
    targets: dict[str, torch.Tensor] = field(default_factory=dict)
    ctc_targets: torch.Tensor | None = None
    ctc_target_lengths: torch.Tensor | None = None
    ids: list[str] = field(default_factory=list)
    features: tuple[torch.Tensor, ...] | None = None
    frame_lengths: torch.Tensor | None = None
    feature_layer: int = 0

    def __len__(self) -> int:
        return int(self.waveforms.shape[0])

    def _apply(self, fn) -> "Batch":
        f = lambda t: None if t is None else fn(t)  # noqa: E731
        return replace(
            self,
            waveforms=f(self.waveforms),
            lengths=f(self.lengths),
            targets={k: f(v) for k, v in self.targets.items()},
            ctc_targets=f(self.ctc_targets),
            ctc_target_lengths=f(self.ctc_target_lengths),
            features=None if self.features is None else tuple(f(t) for t in self.features),
            frame_lengths=f(self.frame_lengths),
        )

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "Batch":
        return self._apply(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> "Batch":
        return self._apply(lambda t: t.pin_memory())

    @property
    def mask(self) -> torch.Tensor:
        """(B, S) bool, True on real samples (:func:`metaser.masks.lengths_to_mask`)."""
        return lengths_to_mask(self.lengths, self.waveforms.shape[-1])

    @property
    def num_samples(self) -> int:
        """Real (unpadded) audio samples in the batch."""
        return int(self.lengths.sum())

    @property
    def padded_samples(self) -> int:
        """All samples of the padded tensor, ``B x S`` (real + padding)."""
        return int(self.waveforms.numel())

    @property
    def padding_samples(self) -> int:
        """Padding samples only: ``padded_samples - num_samples``."""
        return self.padded_samples - self.num_samples

    @property
    def padding_ratio(self) -> float:
        """Padding samples / real samples (0 = no padding), as
        :func:`metaser.data.sampling.padding_ratio`."""
        return self.padding_samples / max(self.num_samples, 1)
