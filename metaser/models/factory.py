"""Build or load the SER model a config names: the one place that maps ``model.architecture`` to
its class (:class:`~metaser.models.metaser.MetaSERModel` or :class:`~metaser.models.baseline.BaselineModel`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from metaser.errors import ConfigError, MetaserError
from metaser.models.base import SERModel
from metaser.models.baseline import BaselineModel
from metaser.models.config import ModelConfig, TaskSpec
from metaser.models.encoder import SSLEncoder
from metaser.models.metaser import MetaSERModel
from metaser.models.saved import SavedModelConfig, model_dir

__all__ = ["ARCHITECTURES", "build_ser_model", "load_ser_model"]

#: model.architecture -> class
ARCHITECTURES: dict[str, type[SERModel]] = {"metaser": MetaSERModel, "baseline": BaselineModel}


def _cls(architecture: str) -> type[SERModel]:
    if architecture not in ARCHITECTURES:
        raise ConfigError(f"model.architecture: {architecture!r} is not one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[architecture]


def build_ser_model(
    config: ModelConfig, emotion_labels: list[str], tasks: list[TaskSpec], encoder: SSLEncoder | None = None
) -> SERModel:
    """A new model of ``config.architecture``; the encoder from ``config.encoder`` unless given."""
    cls = _cls(config.architecture)
    if encoder is None:
        encoder = SSLEncoder.from_pretrained(config.encoder)
    return cls(config, emotion_labels, tasks, encoder=encoder)


def load_ser_model(
    directory: str | Path, map_location: str | torch.device = "cpu", *, saved: SavedModelConfig | None = None
) -> SERModel:
    """Load a directory written by ``save_pretrained`` (no network, no training code).

    The encoder is rebuilt from the saved transformers config and every weight comes from
    ``model.safetensors`` (strict). ``saved``: the directory's config when already read. Returns
    the model in eval mode on ``map_location``. MetaserError (exit code 2) when it cannot.
    """
    directory = model_dir(directory)
    saved = saved or SavedModelConfig.read(directory)
    cls = _cls(saved.model.architecture)
    enc_cfg = dataclasses.replace(saved.model.encoder, normalize_waveform=saved.normalize_waveform)
    try:
        encoder = SSLEncoder.from_hf_config(saved.encoder_config, enc_cfg)
        model = cls(saved.model, saved.emotion_labels, saved.tasks, encoder=encoder)
    except ConfigError as e:
        raise ConfigError(f"{directory}/config.json: {e.message}", hint=e.hint) from None
    except (ValueError, KeyError, TypeError) as e:
        raise MetaserError(f"cannot build the model of {directory}: {type(e).__name__}: {e}") from None
    model.load_weights(directory)
    return model.to(map_location).eval()
