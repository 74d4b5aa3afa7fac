"""The SSL speech encoder, one job per module.

* :mod:`.presets` -- named tiny / base-random presets and the settings forced on every encoder;
* :mod:`.loading` -- preset, local directory or hub id -> the HF model (one ``AutoModel`` path);
* :mod:`.execution` -- HF's forward after the CNN, in pieces (projection, positional conv, layers);
* :mod:`.wavlm_sdpa` -- scaled-dot-product attention for WavLM;
* :mod:`.waveform` -- waveform normalisation and CNN frame counts;
* :mod:`.ssl` -- :class:`SSLEncoder`, the module the model uses.
"""

from __future__ import annotations

from metaser.constants import SAMPLE_RATE
from metaser.models.encoder.presets import PRESETS, preset_config
from metaser.models.encoder.ssl import EncoderOutput, SSLEncoder
from metaser.models.encoder.waveform import conv_output_lengths, normalize_waveforms

__all__ = [
    "EncoderOutput",
    "SSLEncoder",
    "PRESETS",
    "preset_config",
    "normalize_waveforms",
    "conv_output_lengths",
    "SAMPLE_RATE",
]
