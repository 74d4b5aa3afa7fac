"""Which of the paper's encoders, if any, an encoder identifier names.

Only the paper's pretrained base encoders are comparable with its tables (Wav2Vec-2.0-base,
HuBert-base, WavLM-base, all pretrained on 960 h of LibriSpeech). Presets (``tiny-wavlm``,
``base-random-wavlm``), other checkpoints (``microsoft/wavlm-base-plus``, ASR-fine-tuned
``facebook/wav2vec2-base-960h``) and anything unrecognised map to None.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

__all__ = ["HUB_IDS", "paper_encoder"]

#: The hub ids of the paper's encoders -> metaser's paper encoder key.
HUB_IDS: dict[str, str] = {
    "facebook/wav2vec2-base": "wav2vec2",
    "facebook/hubert-base-ls960": "hubert",
    "microsoft/wavlm-base": "wavlm",
}

#: Local directory names taken to hold those checkpoints (the hub names, and hubert-base).
_DIR_NAMES: dict[str, str] = {
    "wav2vec2-base": "wav2vec2",
    "hubert-base-ls960": "hubert",
    "hubert-base": "hubert",
    "wavlm-base": "wavlm",
}

# A snapshot inside the Hugging Face cache: .../models--microsoft--wavlm-base/snapshots/<hash>
_HF_CACHE_DIR = re.compile(r"^models--(?P<org>[^/]+?)--(?P<name>.+)$")


def _by_name(text: str) -> str | None:
    s = text.strip().replace("\\", "/").rstrip("/").lower()
    if not s:
        return None
    if s in HUB_IDS:
        return HUB_IDS[s]
    parts = [p for p in s.split("/") if p]
    for part in reversed(parts):
        m = _HF_CACHE_DIR.match(part)
        if m:
            return HUB_IDS.get(f"{m['org']}/{m['name']}")
    return _DIR_NAMES.get(parts[-1]) if parts else None


def _by_config(directory: Path) -> str | None:
    """A local checkpoint's ``config.json`` naming its origin (``_name_or_path``)."""
    try:
        cfg = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    origin = cfg.get("_name_or_path") if isinstance(cfg, dict) else None
    return _by_name(origin) if isinstance(origin, str) else None


def paper_encoder(name_or_path: str) -> str | None:
    """The paper's encoder key (``"wav2vec2"``, ``"hubert"``, ``"wavlm"``) for an encoder id, or None.

    Recognised: the hub ids in :data:`HUB_IDS` (any case); a local path whose last component
    is ``wav2vec2-base``, ``hubert-base``, ``hubert-base-ls960`` or ``wavlm-base`` (whether
    or not it exists here); a Hugging Face cache snapshot of a hub id; and a local directory
    whose ``config.json`` names one of those in ``_name_or_path``. Everything else is None.

    >>> paper_encoder("microsoft/wavlm-base"), paper_encoder("/models/hubert-base")
    ('wavlm', 'hubert')
    >>> paper_encoder("tiny-wavlm") is None, paper_encoder("base-random-wavlm") is None
    (True, True)
    """
    if not isinstance(name_or_path, str):
        return None
    key = _by_name(name_or_path)
    if key is not None:
        return key
    path = Path(name_or_path.strip()).expanduser()
    if name_or_path.strip() and path.is_dir():
        return _by_config(path)
    return None
