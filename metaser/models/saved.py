"""A saved model directory's ``config.json``, read once and typed.

``save_pretrained`` writes two files: ``config.json`` (this :class:`SavedModelConfig`) and
``model.safetensors`` (every weight). Export steps add entries to config.json (``onnx``, and
what later steps record); they are kept as they are when the config is rewritten.
Everything that reads a model directory (the model loader, the recognizer, the ONNX export)
reads it through :meth:`SavedModelConfig.read`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metaser.config import from_dict, to_dict
from metaser.constants import SAMPLE_RATE, receptive_field
from metaser.errors import ConfigError, MetaserError
from metaser.models.config import ModelConfig, TaskSpec
from metaser.rundir import write_text_atomic

__all__ = ["SavedModelConfig", "CONFIG_NAME", "WEIGHTS_NAME", "model_dir"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
_REQUIRED = ("model", "emotion_labels", "tasks", "encoder_config")
_KNOWN = (*_REQUIRED, "metaser_version", "sample_rate", "normalize_waveform")


def model_dir(path: str | Path) -> Path:
    """``path`` itself, or its ``model/`` sub-folder when ``path`` is a fold directory."""
    p = Path(path)
    if not (p / CONFIG_NAME).is_file() and (p / "model" / CONFIG_NAME).is_file():
        return p / "model"
    return p


@dataclass
class SavedModelConfig:
    """The typed content of a model directory's ``config.json``.

    model: the architecture (:class:`ModelConfig`); emotion_labels: the classes, in output
    order; tasks: the auxiliary heads (:class:`TaskSpec`); encoder_config: the transformers
    config dict of the encoder; sample_rate: 16000; normalize_waveform: the resolved flag;
    extras: further entries written by export steps (``onnx`` ...), kept on rewrite.
    """

    model: ModelConfig
    emotion_labels: list[str]
    tasks: list[TaskSpec]
    encoder_config: dict[str, Any]
    sample_rate: int = SAMPLE_RATE
    normalize_waveform: bool = False
    metaser_version: str = ""
    extras: dict[str, Any] = field(default_factory=dict)

    # ----------------------------------------------------------------- encoder facts
    def _conv(self, key: str) -> list[int]:
        value = self.encoder_config.get(key)
        if not isinstance(value, list | tuple) or not value:
            raise MetaserError(f"config.json: encoder_config has no {key!r}: not a wav2vec2-family encoder config")
        return [int(v) for v in value]

    @property
    def conv_kernel(self) -> list[int]:
        return self._conv("conv_kernel")

    @property
    def conv_stride(self) -> list[int]:
        return self._conv("conv_stride")

    @property
    def min_samples(self) -> int:
        """The CNN's receptive field: the shortest input that gives one frame (400 samples)."""
        return receptive_field(self.conv_kernel, self.conv_stride)

    @property
    def frame_stride(self) -> int:
        """Samples per encoder frame (320: 20 ms at 16 kHz)."""
        return math.prod(self.conv_stride)

    @property
    def ctc_task(self) -> TaskSpec | None:
        return next((t for t in self.tasks if t.kind == "ctc"), None)

    @property
    def onnx(self) -> dict[str, Any] | None:
        return self.extras.get("onnx")

    # ------------------------------------------------------------------------ I/O
    def to_json(self) -> dict[str, Any]:
        out = {
            "metaser_version": self.metaser_version,
            "model": to_dict(self.model),
            "emotion_labels": list(self.emotion_labels),
            "tasks": [to_dict(t) for t in self.tasks],
            "encoder_config": self.encoder_config,
            "sample_rate": self.sample_rate,
            "normalize_waveform": self.normalize_waveform,
        }
        return {**out, **self.extras}

    def write(self, directory: str | Path) -> None:
        path = Path(directory) / CONFIG_NAME
        write_text_atomic(path, json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n")

    @classmethod
    def read(cls, directory: str | Path) -> SavedModelConfig:
        """Read ``directory/config.json`` (a fold directory's ``model/`` too). MetaserError (exit
        code 2) with the reason when it is missing, not JSON or not a metaser model config."""
        directory = model_dir(directory)
        path = directory / CONFIG_NAME
        if not directory.is_dir():
            raise MetaserError(f"model directory not found: {directory}")
        if not path.is_file():
            raise MetaserError(f"{directory}: missing {CONFIG_NAME}", hint="a model directory is written by export")
        try:
            meta = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise MetaserError(f"{path}: not valid JSON ({e})") from None
        if not isinstance(meta, dict):
            raise MetaserError(f"{path}: not a metaser model config (a JSON object is expected)")
        missing = [k for k in _REQUIRED if k not in meta]
        if missing:
            raise MetaserError(f"{path}: missing field(s) {', '.join(missing)}: not a metaser model directory")
        try:
            model = from_dict(ModelConfig, meta["model"])
            tasks = [from_dict(TaskSpec, t) for t in meta["tasks"]]
        except ConfigError as e:
            raise ConfigError(f"{path}: {e.message}", hint=e.hint) from None
        labels = meta["emotion_labels"]
        if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
            raise MetaserError(f"{path}: 'emotion_labels' must be a non-empty list of class names")
        if not isinstance(meta["encoder_config"], dict):
            raise MetaserError(f"{path}: 'encoder_config' must be an object (the transformers config)")
        return cls(
            model=model,
            emotion_labels=list(labels),
            tasks=tasks,
            encoder_config=dict(meta["encoder_config"]),
            sample_rate=int(meta.get("sample_rate", SAMPLE_RATE)),
            normalize_waveform=bool(meta.get("normalize_waveform", False)),
            metaser_version=str(meta.get("metaser_version", "")),
            extras={k: v for k, v in meta.items() if k not in _KNOWN},
        )
