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
of the segment probabilities (likewise gender, style and the other tasks; regression values
such as arousal are the duration-weighted mean of the segment values). A model whose main task
is a regression (``main_task: arousal``) has no emotion output: ``Prediction.emotion`` is None
and the main task's value is in ``Prediction.values``. No piece through the
encoder is longer than :attr:`RecognizerConfig.max_piece_seconds` (its memory grows with the
square of the length), whatever ``max_seconds`` says. Many inputs are predicted in
length-sorted, zero-padded batches (:mod:`metaser.inference.pieces`), one forward per batch,
with padding and memory capped; every utterance is computed as if it were alone, so a file gets
the same answer alone or batched. The forward runs in torch or onnxruntime
(:mod:`metaser.inference.backends`); everything else is the same code for both. The model
directory's ``config.json`` is read once (:class:`~metaser.models.saved.SavedModelConfig`).

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

from metaser.constants import MIN_SAMPLES, SAMPLE_RATE
from metaser.data.audio import AudioError
from metaser.data.labels import CharVocab
from metaser.errors import ConfigError, DataError, MetaserError
from metaser.inference.backends import BACKENDS, ONNX_FILES, OnnxBackend, TorchBackend, resolve_device
from metaser.inference.combine import combine_pieces
from metaser.inference.inputs import MAX_CHANNELS, AudioInput, InputChecks, InputError, Loaded, load_input
from metaser.inference.pieces import plan_batches, run_pieces
from metaser.inference.results import Prediction, PredictionError, SegmentPrediction
from metaser.inference.segment import SegmentConfig
from metaser.models.saved import SavedModelConfig

__all__ = [
    "RecognizerConfig",
    "InputError",
    "SegmentPrediction",
    "Prediction",
    "PredictionError",
    "EmotionRecognizer",
    "plan_batches",
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
    max_piece_seconds: the longest piece the encoder takes (its attention memory grows with
        the square of the length): longer stretches are cut into overlapping windows of this
        length, whatever ``segment.max_seconds`` asks (docs/serve.md: memory per second).
    max_batch_seconds: padded audio per forward at most (memory grows with it: about 30 MB per
        second of audio for a base-size encoder on CPU; docs/serve.md).
    """

    batch_size: int = 8
    max_padding: float = 1.25
    segment: SegmentConfig = field(default_factory=SegmentConfig)
    silence_rms: float = 1e-4
    chunk_files: int | None = None
    max_input_seconds: float | None = None
    max_piece_seconds: float = 30.0
    max_batch_seconds: float = 60.0

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
        if not self.max_batch_seconds >= self.max_piece_seconds:
            raise ConfigError(
                f"max_batch_seconds ({self.max_batch_seconds}) must be >= max_piece_seconds ({self.max_piece_seconds})"
            )
        self.segment.validate()
        shortest = min(self.segment.max_seconds, self.segment.window_seconds, self.max_piece_seconds)
        if shortest * SAMPLE_RATE < min_samples:
            raise ConfigError(
                f"max_seconds / window_seconds ({shortest} s) must be at least the "
                f"encoder's receptive field ({min_samples / SAMPLE_RATE:.3f} s)"
            )
        return self


class EmotionRecognizer:
    """A trained metaser model ready for inference (eval mode, no gradients).

    Build it with :meth:`from_pretrained` on a directory written by ``metaser export`` (or a
    fold's ``model/`` directory). ``backend`` is a :class:`TorchBackend` or :class:`OnnxBackend`
    (or a torch model, wrapped in a TorchBackend on ``device``); ``saved``: the directory's
    config.json (:class:`SavedModelConfig`; for a torch model, its own when not given).
    """

    def __init__(
        self,
        backend,
        saved: SavedModelConfig | None = None,
        *,
        device="cpu",
        config: RecognizerConfig | None = None,
        path: str | Path | None = None,
    ):
        if not hasattr(backend, "run"):  # an SERModel
            saved = saved or backend.saved_config()
            backend = TorchBackend(backend, device)
        if saved is None:
            raise MetaserError("EmotionRecognizer needs the model's SavedModelConfig with a non-torch backend")
        self.backend = backend
        self.model = getattr(backend, "model", None)
        self.device = backend.device
        self.path = None if path is None else Path(path)
        self.saved = saved
        self.sample_rate = saved.sample_rate
        if self.sample_rate != SAMPLE_RATE:
            raise MetaserError(
                f"{self.path}: model sample_rate {self.sample_rate} is not supported ({SAMPLE_RATE} only)"
            )
        self.emotion_labels: list[str] = list(saved.emotion_labels)  # empty for a regression main task
        self.tasks = list(saved.tasks)
        self.main_task = saved.main_task
        self.value_tasks = saved.regression_tasks  # Prediction.values: task -> value
        self.min_samples = saved.min_samples
        self.config = (config or RecognizerConfig()).validate(self.min_samples)
        ctc = saved.ctc_task
        self._vocab = CharVocab(tokens=list(ctc.labels)) if ctc is not None else None

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
        p = cls._model_dir(path)
        saved = SavedModelConfig.read(p)
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
                import torch  # here: the onnx backend needs no torch import

                torch.set_num_threads(int(threads))
            from metaser.models.factory import load_ser_model

            be = TorchBackend(load_ser_model(p, map_location="cpu", saved=saved), dev)
        config = replace(config) if config is not None else RecognizerConfig()
        if batch_size is not None:
            config.batch_size = batch_size
        if max_seconds is not None:
            config.segment = replace(config.segment, max_seconds=float(max_seconds))
        return cls(be, saved, config=config, path=p)

    @staticmethod
    def _model_dir(path: str | Path) -> Path:
        """``path``, or its ``model/`` when it is a fold directory; clear errors otherwise."""
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
        if not (p / "config.json").is_file():
            hint = "export a trained run with `metaser export RUN_DIR -o MODEL_DIR`"
            if any(p.glob("fold*/model")):
                hint = f"{p} looks like a training run: export it with `metaser export {p} -o MODEL_DIR`"
            raise MetaserError(f"not a model directory: {p / 'config.json'} is missing", hint=hint)
        return p

    # ------------------------------------------------------------------ inputs
    @property
    def checks(self) -> InputChecks:
        mx = self.config.max_input_seconds
        return InputChecks(
            min_samples=self.min_samples,
            silence_rms=self.config.silence_rms,
            segment=self.config.segment,
            max_samples=None if mx is None else int(mx * SAMPLE_RATE),
            max_piece_samples=int(self.config.max_piece_seconds * SAMPLE_RATE),
        )

    def _load(self, item: AudioInput, index: int) -> Loaded:
        """Decode / convert one input to (S,) float32 at 16 kHz and check it is usable."""
        return load_input(item, index, self.checks)

    # ------------------------------------------------------------------ model
    def run_pieces(self, chunks: list[np.ndarray]) -> list[dict[str, Any] | Exception]:
        """The model over pieces (:func:`~metaser.inference.pieces.run_pieces`): per piece its
        outputs, or the exception its forward raised alone."""
        c = self.config
        return run_pieces(
            self.backend,
            chunks,
            batch_size=c.batch_size,
            max_padding=c.max_padding,
            max_batch_samples=int(c.max_batch_seconds * SAMPLE_RATE),
            vocab=self._vocab,
        )

    def combine(
        self, loaded: Loaded, pieces: list[tuple[int, int]], outs: list[dict[str, Any] | Exception]
    ) -> Prediction | PredictionError:
        """One input's pieces -> its Prediction (duration-weighted), or a PredictionError (reason
        ``model_error``) when the model failed on one of them."""
        failed = next((o for o in outs if isinstance(o, Exception)), None)
        if failed is not None:
            msg = f"{loaded.path or 'input'}: the model failed on it ({type(failed).__name__}: {failed})"
            return PredictionError(path=loaded.path, error=msg, reason="model_error")
        return combine_pieces(
            loaded,
            pieces,
            outs,
            self.emotion_labels,
            self.tasks,
            self._vocab,
            self.saved.frame_stride,
            value_tasks=self.value_tasks,
        )

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
        result = self.predict_loaded([self._load(item, 0)])[0]
        if isinstance(result, PredictionError):
            raise MetaserError(result.error)
        return result

    def predict_loaded(self, loaded: list[Loaded]) -> list[Prediction | PredictionError]:
        """Predict inputs already decoded and checked (:func:`~metaser.inference.inputs.load_input`),
        all their pieces batched together; an input whose forward failed gets a PredictionError."""
        pieces = [(i, s, e) for i, ld in enumerate(loaded) for s, e in ld.spans]
        outs = self.run_pieces([loaded[i].x[s:e] for i, s, e in pieces])
        per: list[list[tuple[tuple[int, int], Any]]] = [[] for _ in loaded]
        for (i, s, e), o in zip(pieces, outs):
            per[i].append(((s, e), o))
        return [self.combine(ld, [sp for sp, _ in po], [o for _, o in po]) for ld, po in zip(loaded, per)]

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
        tasks = ", ".join(f"{t.name}({t.kind})" for t in self.tasks) or "none"
        main = (
            f"main={self.main_task} (regression)" if self.saved.main_regression else f"emotions={self.emotion_labels}"
        )
        return (
            f"EmotionRecognizer(path={str(self.path)!r}, {main}, "
            f"tasks=[{tasks}], backend={self.backend_name}, device={self.device})"
        )
