"""The Python API: load a trained model directory and recognise emotion in audio.

>>> from metaser import EmotionRecognizer                      # doctest: +SKIP
>>> rec = EmotionRecognizer.from_pretrained("models/wavlm-ser")  # doctest: +SKIP
>>> rec.predict("a.wav").emotion                                 # doctest: +SKIP
'ang'
>>> rec.predict(samples, sample_rate=8000).probs                 # doctest: +SKIP
{'ang': 0.71, 'hap': 0.08, 'neu': 0.15, 'sad': 0.06}
>>> EmotionRecognizer.from_pretrained("models/wavlm-ser", backend="onnx")  # doctest: +SKIP

Inputs (:mod:`metaser.inference.inputs`) are files or arrays at any rate and channel count.
Recordings longer than ``max_seconds`` are split (:mod:`metaser.inference.segment`); the
result then has a per-segment timeline and the overall label is the duration-weighted mean
of the segment probabilities (likewise gender, style and the other tasks). Many inputs are
predicted in length-sorted, zero-padded batches, one forward per batch, with padding capped
(:attr:`RecognizerConfig.max_padding`). The forward runs in torch or onnxruntime
(:mod:`metaser.inference.backends`); everything else is the same code for both.

Bad inputs raise :class:`~metaser.errors.DataError` from :meth:`EmotionRecognizer.predict`
and become :class:`PredictionError` entries in :meth:`EmotionRecognizer.predict_batch`, where
every other input still gets its result.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from metaser.constants import MIN_SAMPLES, SAMPLE_RATE, receptive_field
from metaser.data.audio import AudioError
from metaser.errors import ConfigError, DataError, MetaserError
from metaser.inference.backends import BACKENDS, ONNX_FILES, OnnxBackend, TorchBackend, resolve_device
from metaser.inference.inputs import MAX_CHANNELS, AudioInput, InputChecks, InputError, Loaded, load_input
from metaser.inference.results import Prediction, PredictionError, SegmentPrediction
from metaser.inference.segment import SegmentConfig

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
    "ONNX_NAME",
]

DEFAULT_MIN_SAMPLES = MIN_SAMPLES  # receptive field of the wav2vec2-family CNN (25 ms at 16 kHz)
ONNX_NAME = "model.onnx"


@dataclass
class RecognizerConfig:
    """Inference settings.

    batch_size: most pieces (files or segments) per forward pass.
    max_padding: a batch is closed early when padding it to its longest piece would make it
        more than this many times its real samples (1.25: at most 25 % padding), so batching
        never costs more compute than one piece at a time would save.
    segment: how recordings longer than ``segment.max_seconds`` are split.
    silence_rms: inputs whose RMS is below this (-80 dBFS by default) are rejected as silent.
    chunk_files: inputs decoded and held in memory at a time by ``predict_batch``
        (None: ``8 * batch_size``); bounds memory on large directories.
    max_input_seconds: longer inputs are rejected (reason ``too_long``); None: no limit.
    """

    batch_size: int = 8
    max_padding: float = 1.25
    segment: SegmentConfig = field(default_factory=SegmentConfig)
    silence_rms: float = 1e-4
    chunk_files: int | None = None
    max_input_seconds: float | None = None

    def validate(self, min_samples: int = DEFAULT_MIN_SAMPLES) -> RecognizerConfig:
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if not self.max_padding >= 1.0:
            raise ConfigError(f"max_padding must be >= 1, got {self.max_padding!r}")
        if self.chunk_files is not None and self.chunk_files < 1:
            raise ConfigError(f"chunk_files must be >= 1, got {self.chunk_files!r}")
        if self.silence_rms < 0:
            raise ConfigError(f"silence_rms must be >= 0, got {self.silence_rms}")
        if self.max_input_seconds is not None and not self.max_input_seconds > 0:
            raise ConfigError(f"max_input_seconds must be > 0, got {self.max_input_seconds}")
        self.segment.validate()
        shortest = min(self.segment.max_seconds, self.segment.window_seconds)
        if shortest * SAMPLE_RATE < min_samples:
            raise ConfigError(
                f"max_seconds / window_seconds ({shortest} s) must be at least the "
                f"encoder's receptive field ({min_samples / SAMPLE_RATE:.3f} s)"
            )
        return self


def plan_batches(lengths: Sequence[int], batch_size: int, max_padding: float) -> list[list[int]]:
    """Indices grouped into batches: sorted by length, at most ``batch_size`` each, and closed
    early when the padded size ``len(batch) * longest`` would exceed ``max_padding`` times the
    real samples. Returns the batches in order of increasing length."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    cur: list[int] = []
    real = 0
    for i in order:
        n = lengths[i]
        if cur and (len(cur) >= batch_size or (len(cur) + 1) * n > max_padding * (real + n)):
            batches.append(cur)
            cur, real = [], 0
        cur.append(i)
        real += n
    if cur:
        batches.append(cur)
    return batches


class EmotionRecognizer:
    """A trained metaser model ready for inference (eval mode, no gradients).

    Build it with :meth:`from_pretrained` on a directory written by ``metaser export`` (or a
    fold's ``model/`` directory). ``backend`` is a :class:`TorchBackend` or :class:`OnnxBackend`
    (or a torch model, wrapped in a TorchBackend on ``device``).
    """

    def __init__(
        self,
        backend,
        model_config: dict[str, Any],
        *,
        device="cpu",
        config: RecognizerConfig | None = None,
        path: str | Path | None = None,
    ):
        if not hasattr(backend, "run"):  # a MetaSERModel
            backend = TorchBackend(backend, device)
        self.backend = backend
        self.model = getattr(backend, "model", None)
        self.device = backend.device
        self.path = None if path is None else Path(path)
        self.model_config = model_config
        self.sample_rate = int(model_config.get("sample_rate", SAMPLE_RATE))
        if self.sample_rate != SAMPLE_RATE:
            raise MetaserError(
                f"{self.path}: model sample_rate {self.sample_rate} is not supported ({SAMPLE_RATE} only)"
            )
        self.emotion_labels: list[str] = list(model_config["emotion_labels"])
        self.tasks: list[dict[str, Any]] = [dict(t) for t in model_config.get("tasks", [])]
        self.min_samples = self._min_samples(self.model, model_config)
        enc = model_config.get("encoder_config") or {}
        strides = enc.get("conv_stride") or (5, 2, 2, 2, 2, 2, 2)
        self._frame_stride = int(np.prod([int(v) for v in strides]))  # samples per encoder frame (320)
        self.config = (config or RecognizerConfig()).validate(self.min_samples)
        self._ctc = next((t for t in self.tasks if t.get("kind") == "ctc"), None)
        self._vocab = None
        if self._ctc is not None:
            from metaser.data.labels import CharVocab

            self._vocab = CharVocab(tokens=list(self._ctc["labels"]))

    @property
    def backend_name(self) -> str:
        return self.backend.name

    @property
    def synthetic(self) -> bool:
        """True when the model came from the synthetic demo corpus (a ``SYNTHETIC`` marker or
        ``"synthetic": true`` in ``export.json``)."""
        if self.path is None:
            return False
        if (self.path / "SYNTHETIC").exists():
            return True
        try:
            return bool(json.loads((self.path / "export.json").read_text()).get("synthetic"))
        except (OSError, ValueError, AttributeError):
            return False

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        device: str = "auto",
        *,
        batch_size: int | None = None,
        max_seconds: float | None = None,
        config: RecognizerConfig | None = None,
        backend: str = "torch",
        onnx_file: str | None = None,
        threads: int | None = None,
    ) -> EmotionRecognizer:
        """Load a model directory (``config.json`` + weights, as written by ``save_pretrained``).

        ``batch_size`` / ``max_seconds`` override the matching fields of ``config``. A fold
        directory (holding ``model/``) is accepted too. ``backend="onnx"`` runs ``model.onnx``
        (written by ``metaser export-onnx``; ``onnx_file`` picks another file in the directory)
        with onnxruntime, ``threads`` intra-op threads. Raises MetaserError (exit code 2) when
        the directory, its config or the ONNX file is missing or unusable.
        """
        p, mcfg = cls._read_model_dir(path)
        if backend not in BACKENDS:
            raise ConfigError(f"--backend: {backend!r} is not one of {', '.join(BACKENDS)}")
        if backend in ONNX_FILES:
            f = p / (onnx_file or ONNX_FILES[backend])
            if not f.is_file():
                how = f"metaser export-onnx {p}" + (" --int8" if backend == "onnx-int8" else "")
                raise MetaserError(f"{p}: no {f.name} (the {backend} backend needs it)", hint=f"write it with `{how}`")
            be: Any = OnnxBackend(f, device=device, threads=threads, name=backend)
        else:
            dev = resolve_device(device)
            if threads:
                import torch

                torch.set_num_threads(int(threads))
            from metaser.models.metaser import MetaSERModel

            try:
                model = MetaSERModel.from_pretrained(p, map_location="cpu")
            except MetaserError:
                raise
            except (OSError, ValueError, KeyError, RuntimeError) as e:
                raise MetaserError(f"cannot load the model in {p}: {type(e).__name__}: {e}") from None
            be = TorchBackend(model, dev)
        config = replace(config) if config is not None else RecognizerConfig()
        if batch_size is not None:
            config.batch_size = batch_size
        if max_seconds is not None:
            config.segment = replace(config.segment, max_seconds=float(max_seconds))
        return cls(be, mcfg, config=config, path=p)

    @staticmethod
    def _read_model_dir(path: str | Path) -> tuple[Path, dict[str, Any]]:
        p = Path(path)
        if not p.exists():
            raise MetaserError(
                f"model directory not found: {p}",
                hint="export a trained run with `metaser export RUN_DIR -o MODEL_DIR`",
            )
        if not p.is_dir():
            raise MetaserError(
                f"not a model directory: {p} is a file", hint="give the directory written by `metaser export`"
            )
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
        return p, mcfg

    @staticmethod
    def _min_samples(model, mcfg: dict[str, Any]) -> int:
        """The encoder CNN's receptive field in samples (400 for the wav2vec2 family)."""
        if model is not None:
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
            return receptive_field(k, s)
        return DEFAULT_MIN_SAMPLES

    # ------------------------------------------------------------------ inputs
    @property
    def checks(self) -> InputChecks:
        mx = self.config.max_input_seconds
        return InputChecks(
            min_samples=self.min_samples,
            silence_rms=self.config.silence_rms,
            segment=self.config.segment,
            max_samples=None if mx is None else int(mx * SAMPLE_RATE),
        )

    def _load(self, item: AudioInput, index: int) -> Loaded:
        """Decode / convert one input to (S,) float32 at 16 kHz and check it is usable."""
        return load_input(item, index, self.checks)

    # ------------------------------------------------------------------ model
    def _forward(self, chunks: list[np.ndarray]) -> list[dict[str, Any]]:
        """One forward per batch of length-sorted pieces (see :func:`plan_batches`). Returns
        per piece {"emotion": (C,), "<task>": (C_k,) ..., "transcript": str | None,
        "ctc_ids": (T,) | None}, in input order (``ctc_ids``: greedy CTC label per valid frame)."""
        out: list[dict[str, Any] | None] = [None] * len(chunks)
        lengths = [c.shape[0] for c in chunks]
        for idx in plan_batches(lengths, self.config.batch_size, self.config.max_padding):
            lens = [lengths[i] for i in idx]
            wav = np.zeros((len(idx), max(lens)), dtype=np.float32)  # (B, S)
            for j, i in enumerate(idx):
                wav[j, : lens[j]] = chunks[i]
            res = self.backend.run(wav, np.asarray(lens, dtype=np.int64))
            frame_ids: list[np.ndarray | None] = [None] * len(idx)
            texts: list[str | None] = [None] * len(idx)
            if self._vocab is not None and "ctc_ids" in res:
                ids, tl = res["ctc_ids"], res["ctc_lengths"]  # (B, T), (B,)
                frame_ids = [ids[j, : int(tl[j])] for j in range(len(idx))]  # (T_j,)
                texts = [self._vocab.greedy_decode(f) for f in frame_ids]
            for j, i in enumerate(idx):
                d: dict[str, Any] = {"emotion": res["emotion"][j], "transcript": texts[j], "ctc_ids": frame_ids[j]}
                d.update({k: v[j] for k, v in res.items() if k not in ("emotion", "ctc_ids", "ctc_lengths")})
                out[i] = d
        return out  # type: ignore[return-value]

    def _combine(self, loaded: Loaded, pieces: list[tuple[int, int]], outs: list[dict[str, Any]]) -> Prediction:
        """Duration-weighted mean over the pieces of one input -> Prediction."""
        sr = self.sample_rate
        w = np.array([e - s for s, e in pieces], dtype=np.float64)
        w = w / w.sum()
        emo = sum(wi * o["emotion"] for wi, o in zip(w, outs))  # (C,)
        probs = {c: float(p) for c, p in zip(self.emotion_labels, emo)}
        pred = Prediction(
            path=loaded.path,
            emotion=self.emotion_labels[int(np.argmax(emo))],
            probs=probs,
            duration=loaded.x.shape[0] / sr,
        )
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
                pred.segments.append(
                    SegmentPrediction(
                        start=s / sr,
                        end=e / sr,
                        emotion=self.emotion_labels[int(np.argmax(o["emotion"]))],
                        probs=pe,
                        transcript=o["transcript"],
                    )
                )
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
        return self.predict_loaded([self._load(item, 0)])[0]

    def predict_loaded(self, loaded: list[Loaded]) -> list[Prediction]:
        """Predict inputs already decoded and checked (:func:`~metaser.inference.inputs.load_input`),
        all their pieces batched together."""
        pieces = [(i, s, e) for i, ld in enumerate(loaded) for s, e in ld.spans]
        outs = self._forward([loaded[i].x[s:e] for i, s, e in pieces])
        per: list[list[tuple[tuple[int, int], dict]]] = [[] for _ in loaded]
        for (i, s, e), o in zip(pieces, outs):
            per[i].append(((s, e), o))
        return [self._combine(ld, [sp for sp, _ in po], [o for _, o in po]) for ld, po in zip(loaded, per)]

    _predict_loaded = predict_loaded  # the former private name

    def predict_batch(
        self, items: Sequence[AudioInput] | Iterable[AudioInput], *, progress: Callable[[int], None] | None = None
    ) -> list[Prediction | PredictionError]:
        """Predict many inputs; one result per input, in order.

        items: paths, arrays at 16 kHz, or ``(array, sample_rate)`` tuples. A bad input gives a
        :class:`PredictionError` (the others are unaffected). ``progress(n)`` is called with
        the number of inputs finished after each chunk of ``config.chunk_files`` inputs.
        """
        items = list(items)
        results: list[Prediction | PredictionError] = []
        chunk = self.config.chunk_files or 8 * self.config.batch_size
        for c0 in range(0, len(items), chunk):
            part = items[c0 : c0 + chunk]
            loaded: list[Loaded] = []
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
            for j, pred in zip(slots, self.predict_loaded(loaded) if loaded else []):
                out[j] = pred
            results.extend(out)  # type: ignore[arg-type]
            if progress is not None:
                progress(len(part))
        return results

    def __repr__(self) -> str:
        tasks = ", ".join(f"{t['name']}({t.get('kind')})" for t in self.tasks) or "none"
        return (
            f"EmotionRecognizer(path={str(self.path)!r}, emotions={self.emotion_labels}, "
            f"tasks=[{tasks}], backend={self.backend_name}, device={self.device})"
        )
