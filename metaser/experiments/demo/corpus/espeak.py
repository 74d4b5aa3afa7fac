"""A small ctypes binding to eSpeak NG (from the ``espeakng-loader`` wheel), for the demo corpus.

No system package and no subprocess: the shared library and its data ship inside the
``espeakng-loader`` wheel. eSpeak NG keeps process-global state, so the library is
initialised once per process (an :class:`EspeakSynth` is a thin handle on that state) and
every call is serialised by a lock.

Reproducibility. Stock eSpeak NG is not byte-reproducible between calls: the pitch
"flutter" and the "roughness" modulation run on counters that survive from one utterance
to the next, and breath noise uses libc ``rand()``. :meth:`EspeakSynth.register_voice`
therefore writes voice files with flutter, roughness and breath switched off into a private
copy of the eSpeak data folder; with those voices (and the random seed reset before every
call) the same arguments give the same samples whatever was synthesised before.

>>> tts = EspeakSynth()                                             # doctest: +SKIP
>>> name = tts.register_voice(VoiceSpec("demo_f", variant="f3"))    # doctest: +SKIP
>>> wav, sr = tts.synth("Hello there.", name, rate=170, volume=80)    # doctest: +SKIP
>>> sr                                                              # doctest: +SKIP
22050
"""

from __future__ import annotations

import atexit
import ctypes
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from metaser.errors import ConfigError, MetaserError

__all__ = ["VoiceSpec", "EspeakSynth", "PARAM_LIMITS"]

# espeak_AUDIO_OUTPUT / espeak_PARAMETER / flags from speak_lib.h
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_IDS = {"rate": 1, "volume": 2, "pitch": 3, "pitch_range": 4}
_AGC_GUARD = 32000  # output peaks at or above this may have engaged eSpeak's gain control

#: Valid ranges of the prosody arguments of :meth:`EspeakSynth.synth` (inclusive).
#: ``volume`` stops at 100 (eSpeak allows 200): louder output overflows int16, and eSpeak's
#: automatic gain control then carries over into the next utterance.
PARAM_LIMITS: dict[str, tuple[int, int]] = {
    "rate": (80, 450),  # words per minute
    "volume": (0, 100),  # percent
    "pitch": (0, 99),  # base pitch, 50 = the voice's own
    "pitch_range": (0, 99),  # intonation range, 50 = normal, 0 = monotone
}

# Voice-file keywords dropped from a variant because they make output depend on earlier calls.
_NON_REPRODUCIBLE = {"flutter", "roughness", "breath", "breathw", "name", "language"}
_VOICE_NAME = re.compile(r"^[a-z0-9_]{1,30}$")


@dataclass
class VoiceSpec:
    """A reproducible voice: an eSpeak NG variant with its formants scaled.

    ``variant`` is a file of ``espeak-ng-data/voices/!v`` (``f1``..``f5``, ``m1``..``m7``, ...);
    ``formant_scale`` multiplies the frequency of every formant line (a crude vocal-tract
    length change, 1.0 = unchanged); ``language`` names the ``lang/`` voice file whose
    pronunciation rules are used. ``gender`` overrides the variant's own when set.
    """

    name: str
    variant: str = "m1"
    formant_scale: float = 1.0
    gender: str | None = None  # "male" | "female" | None (keep the variant's)
    language: str = "gmw/en-US"


class _State:
    """Process-global eSpeak NG state (the library allows one instance per process)."""

    lock = threading.RLock()
    lib: ctypes.CDLL | None = None
    sample_rate: int = 0
    data_dir: Path | None = None  # private copy of espeak-ng-data
    source_dir: Path | None = None  # the wheel's espeak-ng-data
    callback = None  # keep the ctypes callback alive
    chunks: list[np.ndarray] = []
    voices: dict[str, VoiceSpec] = {}


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


def _on_samples(wav, n: int, events) -> int:  # noqa: ANN001 (ctypes types)
    if wav and n > 0:
        _State.chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
    return 0  # 0 = continue synthesis


def _cleanup() -> None:
    if _State.data_dir is not None:
        shutil.rmtree(_State.data_dir.parent, ignore_errors=True)


def _make_private_data(src: Path) -> Path:
    """Copy the parts of ``espeak-ng-data`` English needs into a private temporary folder."""
    home = Path(tempfile.mkdtemp(prefix="metaser-espeak-"))
    data = home / "espeak-ng-data"
    if len(str(data)) > 150:  # eSpeak NG keeps the data path in a fixed-size buffer
        shutil.rmtree(home, ignore_errors=True)
        raise MetaserError(f"temporary folder path too long for eSpeak NG: {data}", hint="set TMPDIR to a short path")
    (data / "voices").mkdir(parents=True)
    for name in ("phondata", "phonindex", "phontab", "intonations", "en_dict", "phondata-manifest"):
        if (src / name).is_file():
            shutil.copy2(src / name, data / name)
    shutil.copytree(src / "lang" / "gmw", data / "lang" / "gmw")
    shutil.copytree(src / "voices" / "!v", data / "voices" / "!v")
    return data


def _initialise() -> None:
    """Load the library and initialise eSpeak NG in synchronous (retrieval) mode, once."""
    if _State.lib is not None:
        return
    try:
        import espeakng_loader
    except ImportError as e:  # pragma: no cover - it is a declared dependency
        raise MetaserError(
            "eSpeak NG is not available: the 'espeakng-loader' package is missing", hint="pip install espeakng-loader"
        ) from e
    try:
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        src = Path(espeakng_loader.get_data_path())
    except (OSError, RuntimeError) as e:
        raise MetaserError(
            f"cannot load eSpeak NG from the espeakng-loader wheel: {e}", hint="reinstall espeakng-loader"
        ) from e

    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.c_void_p,
        ctypes.c_void_p,
    ]
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_Synchronize.restype = ctypes.c_int
    lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    lib.espeak_ng_SetRandSeed.restype = None

    data = _make_private_data(src)
    atexit.register(_cleanup)
    _State.data_dir, _State.source_dir = data, src
    sr = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, str(data).encode(), _INITIALIZE_DONT_EXIT)
    if sr <= 0:
        raise MetaserError(f"eSpeak NG failed to initialise with data folder {data} (code {sr})")
    _State.callback = _CALLBACK(_on_samples)
    lib.espeak_SetSynthCallback(_State.callback)
    _State.lib, _State.sample_rate = lib, sr


class EspeakSynth:
    """Handle on the process-wide eSpeak NG synthesiser (cheap to create; shares one engine)."""

    def __init__(self) -> None:
        with _State.lock:
            _initialise()

    @property
    def sample_rate(self) -> int:
        """Native output rate of eSpeak NG (22050 Hz)."""
        return _State.sample_rate

    def register_voice(self, spec: VoiceSpec) -> str:
        """Write a reproducible voice file for ``spec``; returns the name to pass to :meth:`synth`.

        Registering the same name again with the same spec is a no-op; with a different spec
        it raises :class:`ConfigError` (the engine is shared by the whole process).
        """
        if not _VOICE_NAME.match(spec.name):
            raise ConfigError(f"voice name {spec.name!r}: use 1-30 characters a-z, 0-9, _")
        if spec.gender not in (None, "male", "female"):
            raise ConfigError(f"voice {spec.name}: gender must be 'male', 'female' or null, got {spec.gender!r}")
        if not 0.5 <= spec.formant_scale <= 1.5:
            raise ConfigError(f"voice {spec.name}: formant_scale {spec.formant_scale} outside [0.5, 1.5]")
        with _State.lock:
            known = _State.voices.get(spec.name)
            if known is not None:
                if known != spec:
                    raise ConfigError(f"voice {spec.name!r} is already registered with another spec")
                return spec.name
            assert _State.source_dir is not None and _State.data_dir is not None
            variant = _State.source_dir / "voices" / "!v" / spec.variant
            language = _State.source_dir / "lang" / spec.language
            for rel, path, what in ((spec.variant, variant, "variant"), (spec.language, language, "language")):
                if ".." in Path(rel).parts or not path.is_file():
                    raise ConfigError(f"voice {spec.name}: eSpeak NG {what} file not found: {path}")
            lines = [f"name {spec.name}"]
            lines += [ln for ln in language.read_text().splitlines() if ln.split()[:1] != ["name"]]
            for ln in variant.read_text().splitlines():
                words = ln.split()
                if not words or words[0] in _NON_REPRODUCIBLE or words[0].startswith("//"):
                    continue
                if words[0] == "gender" and spec.gender is not None:
                    continue
                if words[0] == "formant" and len(words) >= 3:
                    words[2] = str(int(round(int(words[2]) * spec.formant_scale)))
                    ln = " ".join(words)
                lines.append(ln)
            if spec.gender is not None:
                lines.append(f"gender {spec.gender}")
            lines += ["flutter 0", "roughness 8"]  # roughness >= 8 disables the cycle modulation
            (_State.data_dir / "voices" / spec.name).write_text("\n".join(lines) + "\n")
            _State.voices[spec.name] = spec
        return spec.name

    def synth(
        self,
        text: str,
        voice: str,
        rate: int = 175,
        pitch: int = 50,
        pitch_range: int = 50,
        volume: int = 100,
        seed: int = 0,
    ) -> tuple[np.ndarray, int]:
        """Synthesise ``text`` with ``voice``; returns ``(int16 samples, sample_rate)``.

        ``voice`` is a name from :meth:`register_voice` (reproducible) or an eSpeak NG name such
        as ``"en-us+f3"`` (not byte-reproducible, see the module docstring). Prosody arguments
        must lie inside :data:`PARAM_LIMITS`; ``seed`` seeds eSpeak NG's internal random numbers.
        """
        values = {"rate": rate, "volume": volume, "pitch": pitch, "pitch_range": pitch_range}
        for key, value in values.items():
            lo, hi = PARAM_LIMITS[key]
            if not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
                raise ConfigError(f"espeak {key}={value!r} must be an integer in [{lo}, {hi}]")
        lib = _State.lib
        assert lib is not None
        with _State.lock:
            if lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise ConfigError(
                    f"eSpeak NG voice not found: {voice!r}", hint="register it with EspeakSynth.register_voice first"
                )
            for key, value in values.items():
                if lib.espeak_SetParameter(_PARAM_IDS[key], int(value), 0) != 0:
                    raise MetaserError(f"eSpeak NG rejected {key}={value}")
            lib.espeak_ng_SetRandSeed(int(seed) & 0x7FFFFFFF)
            _State.chunks = []
            raw = text.encode("utf-8") + b"\0"
            code = lib.espeak_Synth(raw, len(raw), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            lib.espeak_Synchronize()
            chunks, _State.chunks = _State.chunks, []
            if code != 0:
                raise MetaserError(f"eSpeak NG failed on {text!r} (code {code})")
            wav = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)  # (T,) int16
            if len(wav) and int(np.abs(wav.astype(np.int32)).max()) >= _AGC_GUARD:
                self._reset_gain()
        return wav.astype(np.int16, copy=False), _State.sample_rate

    @staticmethod
    def _reset_gain() -> None:
        """Let eSpeak's automatic gain control (engaged by a near-overflow) return to unity.

        The gain recovers only while voiced sound is generated, so a quiet vowel-only phrase
        is spoken and thrown away; the next call then starts from the same state as always.
        """
        lib = _State.lib
        assert lib is not None
        lib.espeak_SetParameter(_PARAM_IDS["volume"], 5, 0)
        lib.espeak_SetParameter(_PARAM_IDS["rate"], 80, 0)
        raw = b"ah ah ah ah.\0"
        _State.chunks = []
        lib.espeak_Synth(raw, len(raw), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        lib.espeak_Synchronize()
        _State.chunks = []
