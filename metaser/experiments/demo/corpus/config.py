"""The knobs of the synthetic demo corpus (``metaser synth-demo``): :class:`SynthConfig`."""

from __future__ import annotations

from dataclasses import dataclass, field

from metaser.constants import SAMPLE_RATE
from metaser.errors import ConfigError
from metaser.experiments.demo.corpus.design import NON_TARGET_CYCLE, TARGET_LABELS
from metaser.experiments.demo.corpus.espeak import PARAM_LIMITS

__all__ = ["EmotionProsody", "SynthConfig", "MIN_SIZE"]

MIN_SIZE = 20  # one utterance per dialog
_RATES = (8000, SAMPLE_RATE, 22050, 44100, 48000)  # accepted output rates


@dataclass
class EmotionProsody:
    """How one label is spoken (before speaker offsets and per-utterance jitter).

    ``rate`` multiplies the speaker's words per minute; ``pitch`` is added to eSpeak's base
    pitch (50 = the voice's own); ``pitch_range`` (0-99) and ``volume`` (0-100) are eSpeak
    values. Post-processing: ``drive`` > 0 saturates (``tanh``), ``tremolo`` is the depth of a
    5.5 Hz amplitude modulation, ``lowpass`` (0-1) the pole of a one-pole low-pass filter.
    """

    rate: float = 1.0
    pitch: int = 0
    pitch_range: int = 40
    volume: int = 70
    drive: float = 0.0
    tremolo: float = 0.0
    lowpass: float = 0.0


def _default_prosody() -> dict[str, EmotionProsody]:
    return {
        "neu": EmotionProsody(rate=1.00, pitch=0, pitch_range=40, volume=68),
        "hap": EmotionProsody(rate=1.10, pitch=12, pitch_range=85, volume=80),
        "exc": EmotionProsody(rate=1.18, pitch=16, pitch_range=95, volume=88),
        "ang": EmotionProsody(rate=1.22, pitch=6, pitch_range=90, volume=100, drive=2.5),
        "sad": EmotionProsody(rate=0.72, pitch=-12, pitch_range=8, volume=42, tremolo=0.25, lowpass=0.6),
        "fru": EmotionProsody(rate=1.08, pitch=2, pitch_range=60, volume=86, drive=1.2),
        "sur": EmotionProsody(rate=1.00, pitch=18, pitch_range=99, volume=84),
        "xxx": EmotionProsody(rate=1.05, pitch=4, pitch_range=55, volume=76),
    }


@dataclass
class SynthConfig:
    """Knobs of the synthetic demo corpus (``metaser synth-demo``)."""

    seed: int = 0
    size: int = 400  # labelled utterances in total (>= 20)
    sample_rate: int = SAMPLE_RATE  # output rate of the wav files
    base_rate: int = 165  # words per minute of a neutral, improvised turn
    jitter: float = 1.0  # scale of the per-utterance prosody jitter (0 = none)
    scripted_rate: float = 0.93  # rate factor of scripted turns
    scripted_range: float = 0.85  # pitch-range factor of scripted turns
    non_target_fraction: float = 0.08  # share of fru / xxx / sur labels
    exc_fraction: float = 0.10  # share of exc inside the hap group
    noise_db: float = -60.0  # level of the added noise floor (dBFS)
    prosody: dict[str, EmotionProsody] = field(default_factory=_default_prosody)

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first bad field."""
        if self.seed < 0:
            raise ConfigError(f"synth.seed: {self.seed} must be >= 0")
        if self.size < MIN_SIZE:
            raise ConfigError(
                f"synth.size: {self.size} is too small, need at least {MIN_SIZE} (one utterance per dialog)"
            )
        if self.sample_rate not in _RATES:
            raise ConfigError(f"synth.sample_rate: {self.sample_rate} not one of {', '.join(map(str, _RATES))}")
        lo, hi = PARAM_LIMITS["rate"]
        if not lo <= self.base_rate <= hi:
            raise ConfigError(f"synth.base_rate: {self.base_rate} outside [{lo}, {hi}]")
        for name in ("jitter", "scripted_rate", "scripted_range"):
            if not 0.0 <= getattr(self, name) <= 2.0:
                raise ConfigError(f"synth.{name}: {getattr(self, name)} outside [0, 2]")
        for name in ("non_target_fraction", "exc_fraction"):
            if not 0.0 <= getattr(self, name) < 0.5:
                raise ConfigError(f"synth.{name}: {getattr(self, name)} outside [0, 0.5)")
        missing = [k for k in (*TARGET_LABELS, "exc", *NON_TARGET_CYCLE) if k not in self.prosody]
        if missing:
            raise ConfigError(f"synth.prosody: no entry for label(s) {', '.join(missing)}")
        for label, p in self.prosody.items():
            if not (
                0.3 <= p.rate <= 2.5
                and 0 <= p.pitch_range <= 99
                and 0 <= p.volume <= 100
                and -50 <= p.pitch <= 50
                and p.drive >= 0
                and 0 <= p.tremolo < 1
                and 0 <= p.lowpass < 1
            ):
                raise ConfigError(
                    f"synth.prosody.{label}: a value is out of range ({p})",
                    hint="rate 0.3-2.5, pitch -50..50, pitch_range 0-99, "
                    "volume 0-100, drive >= 0, tremolo and lowpass in [0, 1)",
                )
