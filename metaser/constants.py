"""Constants and small pure helpers shared by every layer (imports nothing of metaser).

* :data:`SAMPLE_RATE`: metaser works at 16 kHz mono everywhere (the SSL encoders' rate).
* :func:`receptive_field`: the shortest input (in samples) that gives a CNN feature encoder
  one output frame; 400 samples (25 ms) for the wav2vec2-family CNN.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["SAMPLE_RATE", "CONV_KERNEL", "CONV_STRIDE", "receptive_field", "MIN_SAMPLES"]

SAMPLE_RATE = 16000

#: The standard wav2vec2-family CNN: 7 layers, 320-sample (20 ms) hop.
CONV_KERNEL: tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
CONV_STRIDE: tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)


def receptive_field(kernels: Sequence[int] = CONV_KERNEL, strides: Sequence[int] = CONV_STRIDE) -> int:
    """Samples needed for one output frame of a stack of 1-D convolutions (no padding).

    >>> receptive_field()
    400
    """
    if len(kernels) != len(strides):
        raise ValueError(f"{len(kernels)} kernels but {len(strides)} strides")
    n = 1
    for k, s in zip(reversed(list(kernels)), reversed(list(strides))):
        n = (n - 1) * int(s) + int(k)
    return n


#: receptive field of the standard CNN (400 samples = 25 ms at 16 kHz)
MIN_SAMPLES = receptive_field()
