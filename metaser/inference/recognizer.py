"""The Python API: load a trained model directory and recognise emotion in audio.

>>> from metaser import EmotionRecognizer                      # doctest: +SKIP
>>> rec = EmotionRecognizer.from_pretrained("models/wavlm-ser")  # doctest: +SKIP
>>> rec.predict("a.wav").emotion                                 # doctest: +SKIP
'ang'
>>> rec.predict(samples, sample_rate=8000).probs                 # doctest: +SKIP
{'ang': 0.71, 'hap': 0.08, 'neu': 0.15, 'sad': 0.06}

Inputs are files (anything soundfile reads, any rate, any channel count; see
:func:`metaser.data.audio.load_audio`) or arrays. Arrays are resampled to the model's rate
(16 kHz) and mixed down to mono: a 2-D array is read as (C, S) or (S, C), the smaller axis
being the channels (at most :data:`MAX_CHANNELS`).

Recordings longer than ``max_seconds`` are split (:mod:`metaser.inference.segment`); the
result then has a per-segment timeline and the overall label is the duration-weighted mean
of the segment probabilities (likewise gender, style and the other tasks). Many inputs are
predicted in length-sorted, zero-padded batches, one forward per batch.

Bad inputs (missing, empty, unreadable or corrupt files, audio shorter than the encoder's
receptive field, silence, NaN / inf samples) raise :class:`~metaser.errors.DataError` from
:meth:`EmotionRecognizer.predict` and become :class:`PredictionError` entries in
:meth:`EmotionRecognizer.predict_batch`, where every other input still gets its result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from metaser.data.audio import AudioError, check_finite, load_audio, resample
from metaser.errors import ConfigError, DataError, MetaserError
from metaser.inference.segment import SegmentConfig, segment_audio

__all__ = [
    "RecognizerConfig",
    "InputError",
    "SegmentPrediction",
    "Prediction",
    "PredictionError",
    "EmotionRecognizer",
    "resolve_device",
    "MAX_CHANNELS",
    "DEFAULT_MIN_SAMPLES",
]

SAMPLE_RATE = 16000
MAX_CHANNELS = 64  # a 2-D array whose both axes exceed this is ambiguous
DEFAULT_MIN_SAMPLES = 400  # receptive field of the wav2vec2-family CNN (25 ms at 16 kHz)

#: Reasons of :class:`InputError` (besides :data:`metaser.data.audio.AUDIO_ERROR_REASONS`).
INPUT_ERROR_REASONS = ("empty", "too_short", "silent", "invalid", "no_audio")

#: A path, an array (numpy / torch, (S,), (C, S) or (S, C)) at 16 kHz, or (array, sample_rate).
AudioInput = Any


class InputError(DataError):
    """An input the model cannot take; ``reason`` is one of :data:`INPUT_ERROR_REASONS`."""

    def __init__(self, message: str, *, reason: str, path: str | None = None, hint: str | None = None):
        super().__init__(message, hint=hint)
        if reason not in INPUT_ERROR_REASONS:
            raise ValueError(f"unknown InputError reason {reason!r}")
        self.reason = reason
        self.path = path


@dataclass
class RecognizerConfig:
    """Inference settings.

    batch_size: pieces (files or segments) per forward pass.
    segment: how recordings longer than ``segment.max_seconds`` are split.
    silence_rms: inputs whose RMS is below this (-80 dBFS by default) are rejected as silent.
    chunk_files: inputs decoded and held in memory at a time by ``predict_batch``
        (None: ``8 * batch_size``); bounds memory on large directories.
    """

    batch_size: int = 8
    segment: SegmentConfig = field(default_factory=SegmentConfig)
    silence_rms: float = 1e-4
    chunk_files: int | None = None

    def validate(self, min_samples: int = DEFAULT_MIN_SAMPLES) -> "RecognizerConfig":
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if self.chunk_files is not None and self.chunk_files < 1:
            raise ConfigError(f"chunk_files must be >= 1, got {self.chunk_files!r}")
        if self.silence_rms < 0:
            raise ConfigError(f"silence_rms must be >= 0, got {self.silence_rms}")
        self.segment.validate()
        shortest = min(self.segment.max_seconds, self.segment.window_seconds)
        if shortest * SAMPLE_RATE < min_samples:
            raise ConfigError(f"max_seconds / window_seconds ({shortest} s) must be at least the "
                              f"encoder's receptive field ({min_samples / SAMPLE_RATE:.3f} s)")
        return self


# ----------------------------------------------------------------------------- results
def _r(p: float) -> float:
    return round(float(p), 6)


@dataclass
class SegmentPrediction:
    """One piece of a split recording: [start, end) in seconds, its emotion and probabilities."""

    start: float
    end: float
    emotion: str
    probs: dict[str, float]
    transcript: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"start": round(self.start, 3), "end": round(self.end, 3), "emotion": self.emotion,
                             "probs": {k: _r(v) for k, v in self.probs.items()}}
        if self.transcript is not None:
            d["transcript"] = self.transcript
        return d


@dataclass
class Prediction:
    """The result for one input.

    probs: emotion class -> probability. gender / style (+ their probabilities) are None when
    the model has no such task; ``aux`` holds every other classification task as
    ``name -> (label, prob)``; ``transcript`` comes from the CTC (ASR) head, if any (greedy
    decoding; overlapping windows are stitched so overlapped speech appears once).
    duration: seconds of audio. segments: the timeline of a split recording (else empty);
    ``segmentation`` is then ``"vad"`` or ``"windows"``.
    """

    path: str | None
    emotion: str
    probs: dict[str, float]
    gender: str | None = None
    gender_prob: float | None = None
    style: str | None = None
    style_prob: float | None = None
    transcript: str | None = None
    aux: dict[str, tuple[str, float]] = field(default_factory=dict)
    duration: float = 0.0
    segments: list[SegmentPrediction] = field(default_factory=list)
    segmentation: str | None = None

    ok = True  # class attribute: ``r.ok`` tells results from errors

    @property
    def prob(self) -> float:
        """Probability of the predicted emotion."""
        return self.probs[self.emotion]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "path": self.path,
            "emotion": self.emotion,
            "prob": _r(self.prob),
            "probs": {k: _r(v) for k, v in self.probs.items()},
            "gender": self.gender,
            "gender_prob": None if self.gender_prob is None else _r(self.gender_prob),
            "style": self.style,
            "style_prob": None if self.style_prob is None else _r(self.style_prob),
            "transcript": self.transcript,
            "aux": {k: {"label": lab, "prob": _r(p)} for k, (lab, p) in self.aux.items()},
            "duration": round(self.duration, 3),
            "segments": [s.to_dict() for s in self.segments],
        }
        if self.segmentation is not None:
            d["segmentation"] = self.segmentation
        return d


@dataclass
class PredictionError:
    """An input that got no prediction: ``error`` is the message, ``reason`` a short code
    (``missing``, ``empty``, ``unreadable``, ``corrupt``, ``nonfinite``, ``too_short``,
    ``silent``, ``invalid``, ``no_audio``)."""

    path: str | None
    error: str
    reason: str = "error"

    ok = False

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "error": self.error, "reason": self.reason}


# ----------------------------------------------------------------------------- helpers
def resolve_device(device: str = "auto"):
    """``auto`` -> cuda when available, else cpu. Raises ConfigError for unknown or absent devices."""
    import torch

    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as e:
        raise ConfigError(f"--device: unknown device {device!r} ({e})", hint="cpu, cuda, cuda:1, mps or auto") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: CUDA is not available here", hint="use --device cpu or auto")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) visible")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError(f"--device {device}: MPS is not available here", hint="use --device cpu or auto")
    return dev


def _to_mono(x: np.ndarray, name: str) -> np.ndarray:
    """(S,), (C, S) or (S, C) -> (S,) float32 by the mean over channels (smaller axis = channels)."""
    if x.ndim == 1:
        return x
    if x.ndim != 2:
        raise InputError(f"{name}: expected an array of shape (S,), (C, S) or (S, C), got {x.shape}",
                         reason="invalid")
    a, b = x.shape
    if min(a, b) > MAX_CHANNELS:
        raise InputError(f"{name}: cannot tell channels from samples in an array of shape {x.shape} "
                         f"(neither axis has <= {MAX_CHANNELS} entries)", reason="invalid",
                         hint="pass a 1-D array, or (C, S) / (S, C) with few channels")
    axis = 0 if a <= b else 1  # (C, S) when C <= S, else (S, C)
    return x.mean(axis=axis) if x.shape[axis] > 1 else x.reshape(-1)


def _as_float_array(x: Any, name: str) -> np.ndarray:
    """numpy / torch / list -> float array; integer PCM is scaled to [-1, 1)."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor without importing torch
        t = x.detach().cpu()
        try:
            x = t.numpy()  # keeps the dtype (integer PCM is scaled below)
        except TypeError:  # bfloat16 and other dtypes numpy lacks
            x = t.float().numpy()
    x = np.asarray(x)
    if x.dtype.kind in "iu":  # PCM: int16 / 32768, uint8 (offset binary) (x - 128) / 128, ...
        half = float(2 ** (8 * x.dtype.itemsize - 1))
        offset = half if x.dtype.kind == "u" else 0.0
        return ((x.astype(np.float64) - offset) / half).astype(np.float32)
    if x.dtype.kind != "f":
        raise InputError(f"{name}: audio must be a float or integer array, got dtype {x.dtype}", reason="invalid")
    return x


@dataclass
class _Piece:
    item: int  # index of the input
    start: int  # sample offsets in the input
    end: int


@dataclass
class _Loaded:
    path: str | None
    x: np.ndarray  # (S,) float32, 16 kHz
    spans: list[tuple[int, int]]
    method: str


class EmotionRecognizer:
    """A trained metaser model ready for inference (eval mode, no gradients).

    Build it with :meth:`from_pretrained` on a directory written by ``metaser export`` (or a
    fold's ``model/`` directory).
    """

    def __init__(self, model, model_config: dict[str, Any], *, device="cpu",
                 config: RecognizerConfig | None = None, path: str | Path | None = None):
        import torch

        self.device = torch.device(device) if not isinstance(device, torch.device) else device
        self.model = model.to(self.device).eval()
        self.path = None if path is None else Path(path)
        self.model_config = model_config
        self.sample_rate = int(model_config.get("sample_rate", SAMPLE_RATE))
        if self.sample_rate != SAMPLE_RATE:
            raise MetaserError(f"{self.path}: model sample_rate {self.sample_rate} is not supported (16000 only)")
        self.emotion_labels: list[str] = list(model_config["emotion_labels"])
        self.tasks: list[dict[str, Any]] = [dict(t) for t in model_config.get("tasks", [])]
        self.min_samples = self._min_samples(model, model_config)
        strides = (model_config.get("encoder_config") or {}).get("conv_stride") or (5, 2, 2, 2, 2, 2, 2)
        self._frame_stride = int(np.prod([int(v) for v in strides]))  # samples per encoder frame (320)
        self.config = (config or RecognizerConfig()).validate(self.min_samples)
        self._ctc = next((t for t in self.tasks if t.get("kind") == "ctc"), None)
        self._vocab = None
        if self._ctc is not None:
            from metaser.data.labels import CharVocab

            self._vocab = CharVocab(tokens=list(self._ctc["labels"]))

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "auto", *, batch_size: int | None = None,
                        max_seconds: float | None = None,
                        config: RecognizerConfig | None = None) -> "EmotionRecognizer":
        """Load a model directory (``config.json`` + weights, as written by ``save_pretrained``).

        ``batch_size`` / ``max_seconds`` override the matching fields of ``config``. A fold
        directory (holding ``model/``) is accepted too. Raises MetaserError (exit code 2) when
        the directory or its config is missing or unusable.
        """
        p = Path(path)
        if not p.exists():
            raise MetaserError(f"model directory not found: {p}",
                               hint="export a trained run with `metaser export RUN_DIR -o MODEL_DIR`")
        if not p.is_dir():
            raise MetaserError(f"not a model directory: {p} is a file",
                               hint="give the directory written by `metaser export`")
        if not (p / "config.json").is_file() and (p / "model" / "config.json").is_file():
            p = p / "model"
        cfg_file = p / "config.json"
        if not cfg_file.is_file():
            hint = "export a trained run with `metaser export RUN_DIR -o MODEL_DIR`"
            if any(p.glob("fold*/model")):
                hint = f"{p} looks like a training run: export it with `metaser export {p} -o MODEL_DIR`"
            raise MetaserError(f"not a model directory: {cfg_file} is missing", hint=hint)
        try:
            mcfg = json.loads(cfg_file.read_text())
        except (OSError, ValueError) as e:
            raise MetaserError(f"cannot read model config {cfg_file}: {e}") from None
        if not isinstance(mcfg, dict) or not mcfg.get("emotion_labels"):
            raise MetaserError(f"{cfg_file} has no 'emotion_labels': not a metaser model directory")
        dev = resolve_device(device)
        from metaser.models.metaser import MetaSERModel

        try:
            model = MetaSERModel.from_pretrained(p, map_location="cpu")
        except MetaserError:
            raise
        except (OSError, ValueError, KeyError, RuntimeError) as e:
            raise MetaserError(f"cannot load the model in {p}: {type(e).__name__}: {e}") from None
        config = replace(config) if config is not None else RecognizerConfig()
        if batch_size is not None:
            config.batch_size = batch_size
        if max_seconds is not None:
            config.segment = replace(config.segment, max_seconds=float(max_seconds))
        return cls(model, mcfg, device=dev, config=config, path=p)

    @staticmethod
    def _min_samples(model, mcfg: dict[str, Any]) -> int:
        """The encoder CNN's receptive field in samples (400 for the wav2vec2 family)."""
        for m in model.modules():
            v = getattr(type(m), "min_samples", None)
            if isinstance(v, property):
                try:
                    return int(m.min_samples)
                except Exception:  # pragma: no cover - a foreign module with that name
                    pass
        enc = mcfg.get("encoder_config") or {}
        k, s = enc.get("conv_kernel"), enc.get("conv_stride")
        if k and s and len(k) == len(s):
            n = 1
            for kk, ss in zip(reversed(k), reversed(s)):
                n = (n - 1) * int(ss) + int(kk)
            return n
        return DEFAULT_MIN_SAMPLES

    # ------------------------------------------------------------------ inputs
    def _load(self, item: AudioInput, index: int) -> _Loaded:
        """Decode / convert one input to (S,) float32 at 16 kHz and check it is usable."""
        if isinstance(item, (str, Path)):
            name = str(item)
            x = load_audio(item, self.sample_rate)  # AudioError: missing/empty/unreadable/corrupt
            path: str | None = name
        else:
            sr = None
            if isinstance(item, tuple):
                if len(item) != 2:
                    raise InputError(f"input {index}: a tuple must be (array, sample_rate)", reason="invalid")
                item, sr = item
            name = f"input {index}"
            path = None
            x = self._array_to_mono16k(item, sr, name)
        return self._check(x, name, path)

    def _array_to_mono16k(self, x: Any, sample_rate: int | None, name: str) -> np.ndarray:
        x = _to_mono(_as_float_array(x, name), name)  # (S,)
        if x.size == 0:
            raise InputError(f"{name}: the audio array is empty", reason="empty")
        sr = self.sample_rate if sample_rate is None else sample_rate
        if not isinstance(sr, (int, np.integer)) or isinstance(sr, bool) or sr <= 0:
            raise InputError(f"{name}: sample_rate must be a positive integer, got {sample_rate!r}", reason="invalid")
        check_finite(x, name=name)  # before resampling spreads NaN around
        if sr != self.sample_rate:
            x = resample(x, int(sr), self.sample_rate)
        return np.ascontiguousarray(x, dtype=np.float32)

    def _check(self, x: np.ndarray, name: str, path: str | None) -> _Loaded:
        if x.size == 0:
            raise InputError(f"{name}: no audio samples", reason="empty", path=path)
        check_finite(x, name=name)  # AudioError reason "nonfinite"
        if x.size < self.min_samples:
            raise InputError(
                f"{name}: audio too short ({x.size} samples = {1000 * x.size / self.sample_rate:.1f} ms at "
                f"{self.sample_rate} Hz); the model needs at least {self.min_samples} samples "
                f"({1000 * self.min_samples / self.sample_rate:.0f} ms)", reason="too_short", path=path)
        rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
        if rms < self.config.silence_rms:
            level = "all zeros" if rms == 0.0 else f"RMS {rms:.2e} < {self.config.silence_rms:.0e}"
            raise InputError(f"{name}: audio is silent ({level})", reason="silent", path=path)
        seg = segment_audio(x, self.config.segment, self.sample_rate)
        spans = [(s, e) for s, e in seg.spans if e - s >= self.min_samples]
        if not spans:  # every VAD region shorter than the receptive field: use the whole thing
            seg = segment_audio(x, replace(self.config.segment, method="windows"), self.sample_rate)
            spans = seg.spans
        return _Loaded(path=path, x=x, spans=spans, method=seg.method)

    # ------------------------------------------------------------------ model
    def _forward(self, chunks: list[np.ndarray]) -> list[dict[str, Any]]:
        """One forward per batch of length-sorted pieces. Returns per piece
        {"emotion": (C,), "<task>": (C_k,) ..., "transcript": str | None, "ctc_ids": (T,) | None},
        in input order (``ctc_ids``: greedy CTC label per valid frame)."""
        import torch

        out: list[dict[str, Any] | None] = [None] * len(chunks)
        order = sorted(range(len(chunks)), key=lambda i: chunks[i].shape[0])
        bs = self.config.batch_size
        with torch.inference_mode():
            for b in range(0, len(order), bs):
                idx = order[b:b + bs]
                lens = [chunks[i].shape[0] for i in idx]
                wav = np.zeros((len(idx), max(lens)), dtype=np.float32)  # (B, S)
                for j, i in enumerate(idx):
                    wav[j, :lens[j]] = chunks[i]
                w = torch.from_numpy(wav).to(self.device)  # (B, S)
                n = torch.tensor(lens, dtype=torch.long, device=self.device)  # (B,)
                res = self.model(w, n, compute_emotion=True)
                emo = torch.softmax(res.emotion_logits.float(), dim=-1).cpu().numpy()  # (B, C)
                tasks = {k: torch.softmax(v.float(), dim=-1).cpu().numpy()  # (B, C_k)
                         for k, v in (res.task_logits or {}).items()}
                frame_ids: list[np.ndarray | None] = [None] * len(idx)
                texts: list[str | None] = [None] * len(idx)
                if self._vocab is not None and getattr(res, "ctc_log_probs", None) is not None:
                    ids = res.ctc_log_probs.argmax(dim=-1).cpu().numpy()  # (B, T)
                    tl = res.ctc_lengths.cpu().numpy() if res.ctc_lengths is not None else [ids.shape[1]] * len(idx)
                    frame_ids = [ids[j, :int(tl[j])] for j in range(len(idx))]  # (T_j,)
                    texts = [self._vocab.greedy_decode(f) for f in frame_ids]
                for j, i in enumerate(idx):
                    d: dict[str, Any] = {"emotion": emo[j], "transcript": texts[j], "ctc_ids": frame_ids[j]}
                    d.update({k: v[j] for k, v in tasks.items()})
                    out[i] = d
        return out  # type: ignore[return-value]

    def _combine(self, loaded: _Loaded, pieces: list[tuple[int, int]], outs: list[dict[str, Any]]) -> Prediction:
        """Duration-weighted mean over the pieces of one input -> Prediction."""
        sr = self.sample_rate
        w = np.array([e - s for s, e in pieces], dtype=np.float64)
        w = w / w.sum()
        emo = sum(wi * o["emotion"] for wi, o in zip(w, outs))  # (C,)
        probs = {c: float(p) for c, p in zip(self.emotion_labels, emo)}
        pred = Prediction(path=loaded.path, emotion=self.emotion_labels[int(np.argmax(emo))], probs=probs,
                          duration=loaded.x.shape[0] / sr)
        for t in self.tasks:
            name = t["name"]
            if t.get("kind") != "classification" or name not in outs[0]:
                continue
            p = sum(wi * o[name] for wi, o in zip(w, outs))  # (C_k,)
            k = int(np.argmax(p))
            label, prob = str(t["labels"][k]), float(p[k])
            if name == "gender":
                pred.gender, pred.gender_prob = label, prob
            elif name == "style":
                pred.style, pred.style_prob = label, prob
            else:
                pred.aux[name] = (label, prob)
        if self._vocab is not None and all(o.get("ctc_ids") is not None for o in outs):
            pred.transcript = self._stitch_transcript(pieces, [o["ctc_ids"] for o in outs])
        if len(pieces) > 1 or loaded.method in ("vad", "windows"):
            pred.segmentation = loaded.method
            for (s, e), o in zip(pieces, outs):
                pe = {c: float(v) for c, v in zip(self.emotion_labels, o["emotion"])}
                pred.segments.append(SegmentPrediction(start=s / sr, end=e / sr,
                                                       emotion=self.emotion_labels[int(np.argmax(o["emotion"]))],
                                                       probs=pe, transcript=o["transcript"]))
        return pred

    def _stitch_transcript(self, pieces: list[tuple[int, int]], frame_ids: list[np.ndarray]) -> str:
        """One transcript for a recording from its pieces' greedy CTC frame labels.

        Overlapping pieces (windows) each contribute only the frames of their own part: from
        the middle of the overlap with the previous piece to the middle of the overlap with the
        next one, so overlapped speech is not transcribed twice. Runs of overlapping pieces are
        decoded as one frame sequence; separate runs (VAD segments) are joined with a space.
        """
        hop = self._frame_stride
        runs: list[list[np.ndarray]] = []
        for k, ((s, e), ids) in enumerate(zip(pieces, frame_ids)):
            prev_end = pieces[k - 1][1] if k > 0 else None
            next_start = pieces[k + 1][0] if k + 1 < len(pieces) else None
            lo = (s + prev_end) // 2 if prev_end is not None and prev_end > s else s
            hi = (e + next_start) // 2 if next_start is not None and next_start < e else e
            t = s + hop * np.arange(len(ids))  # (T,) sample offset of each frame
            own = ids[(t >= lo) & (t < hi)]
            if prev_end is not None and prev_end > s:
                runs[-1].append(own)
            else:
                runs.append([own])
        texts = [self._vocab.greedy_decode(np.concatenate(r)) for r in runs]
        return " ".join(t for t in texts if t)

    # ------------------------------------------------------------------ API
    def predict(self, path_or_array: AudioInput, sample_rate: int | None = None) -> Prediction:
        """Predict one file or array.

        path_or_array: a path, or an array (S,), (C, S) or (S, C) (numpy or torch, float or
            integer PCM). sample_rate: the array's rate; None means it is already at 16 kHz.
            Ignored for files (their header says).
        Raises :class:`~metaser.errors.DataError` (an :class:`AudioError` or
        :class:`InputError` with a ``reason``) for bad input.
        """
        item = path_or_array
        if not isinstance(item, (str, Path)) and sample_rate is not None:
            item = (item, sample_rate)
        return self._predict_loaded([self._load(item, 0)])[0]

    def _predict_loaded(self, loaded: list[_Loaded]) -> list[Prediction]:
        pieces = [_Piece(i, s, e) for i, ld in enumerate(loaded) for s, e in ld.spans]
        outs = self._forward([loaded[p.item].x[p.start:p.end] for p in pieces])
        per: list[list[tuple[_Piece, dict]]] = [[] for _ in loaded]
        for p, o in zip(pieces, outs):
            per[p.item].append((p, o))
        return [self._combine(ld, [(p.start, p.end) for p, _ in po], [o for _, o in po])
                for ld, po in zip(loaded, per)]

    def predict_batch(self, items: Sequence[AudioInput] | Iterable[AudioInput], *,
                      progress: Callable[[int], None] | None = None) -> list[Prediction | PredictionError]:
        """Predict many inputs; one result per input, in order.

        items: paths, arrays at 16 kHz, or ``(array, sample_rate)`` tuples. A bad input gives a
        :class:`PredictionError` (the others are unaffected). ``progress(n)`` is called with
        the number of inputs finished after each chunk of ``config.chunk_files`` inputs.
        """
        items = list(items)
        results: list[Prediction | PredictionError] = []
        chunk = self.config.chunk_files or 8 * self.config.batch_size
        for c0 in range(0, len(items), chunk):
            part = items[c0:c0 + chunk]
            loaded: list[_Loaded] = []
            slots: list[int] = []
            out: list[Prediction | PredictionError | None] = [None] * len(part)
            for j, item in enumerate(part):
                name = str(item) if isinstance(item, (str, Path)) else None
                try:
                    loaded.append(self._load(item, c0 + j))
                    slots.append(j)
                except (AudioError, InputError) as e:
                    out[j] = PredictionError(path=name, error=e.message, reason=e.reason)
                except DataError as e:
                    out[j] = PredictionError(path=name, error=e.message, reason="invalid")
            for j, pred in zip(slots, self._predict_loaded(loaded) if loaded else []):
                out[j] = pred
            results.extend(out)  # type: ignore[arg-type]
            if progress is not None:
                progress(len(part))
        return results

    def __repr__(self) -> str:
        tasks = ", ".join(f"{t['name']}({t.get('kind')})" for t in self.tasks) or "none"
        return (f"EmotionRecognizer(path={str(self.path)!r}, emotions={self.emotion_labels}, "
                f"tasks=[{tasks}], device={self.device})")

