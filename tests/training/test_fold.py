"""One fold on disk: what stage 2 keeps from the selected stage-1 checkpoint, fold selection errors.

Reads the fold directories of the shared 5-fold run (``cv_run``): stage 1 fine-tunes every
transformer layer, stage 2 freezes the first 4 (``stage2.freeze_layers=4`` in the demo preset)
and the auxiliary heads.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from metaser.errors import MetaserError

FROZEN_LAYERS = 4
NUM_LAYERS = 12
ENC = "encoder.model."


def ckpt_weights(path: Path) -> dict[str, torch.Tensor]:
    """The model's tensors of a Lightning checkpoint, keyed like save_pretrained's."""
    state = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
    return {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")}


def layer_of(key: str) -> int | None:
    m = re.match(rf"{re.escape(ENC)}encoder\.layers\.(\d+)\.", key)
    return int(m.group(1)) if m else None


def is_frozen_in_stage2(key: str) -> bool:
    """The CNN, the input prefix (projection, positional conv, pre-layer norm) and layers 0..3."""
    if not key.startswith(ENC):
        return False
    layer = layer_of(key)
    if layer is not None:
        return layer < FROZEN_LAYERS
    return True


@pytest.mark.parametrize("fold", [1, 3])
def test_stage2_keeps_frozen_layers_of_selected_stage1_checkpoint(cv_run: Path, fold: int):
    d = cv_run / f"fold{fold}"
    s1 = ckpt_weights(d / "stage1" / "best.ckpt")
    s2 = ckpt_weights(d / "stage2" / "best.ckpt")
    final = load_file(str(d / "model" / "model.safetensors"))
    assert set(s1) == set(s2) == set(final)
    # the exported model is the selected stage-2 checkpoint, bit for bit
    assert all(torch.equal(final[k], s2[k]) for k in final)

    frozen = [k for k in final if is_frozen_in_stage2(k)]
    prefixes = {
        f"{ENC}feature_extractor.",
        f"{ENC}feature_projection.",
        f"{ENC}encoder.pos_conv_embed.",
        f"{ENC}encoder.layer_norm.",
    } | {f"{ENC}encoder.layers.{i}." for i in range(FROZEN_LAYERS)}
    assert {p for p in prefixes if any(k.startswith(p) for k in frozen)} == prefixes
    changed_frozen = [k for k in frozen if not torch.equal(final[k], s1[k])]
    assert changed_frozen == []

    # layers 4.. did train in stage 2 (each has at least one changed tensor)
    changed_layers = {layer_of(k) for k in final if layer_of(k) is not None and not torch.equal(final[k], s1[k])}
    assert changed_layers == set(range(FROZEN_LAYERS, NUM_LAYERS))
    # the auxiliary heads are frozen in stage 2 (train_aux_heads=false); the emotion head trains
    aux = [k for k in final if k.startswith("task_heads.")]
    assert aux and all(torch.equal(final[k], s1[k]) for k in aux)
    assert any(not torch.equal(final[k], s1[k]) for k in final if k.startswith("emotion_head."))


def test_stage1_trains_all_layers_but_never_the_cnn(cv_run: Path):
    """Layers 0..3 did move in stage 1 (so their equality above is the freeze, not inertia)."""
    from metaser.models.config import EncoderConfig
    from metaser.models.encoder import SSLEncoder

    init = {
        f"encoder.{k}": v
        for k, v in SSLEncoder.from_pretrained(EncoderConfig(name_or_path="tiny-wavlm")).state_dict().items()
    }
    s1 = ckpt_weights(cv_run / "fold1" / "stage1" / "best.ckpt")
    cnn = [k for k in init if k.startswith(f"{ENC}feature_extractor.")]
    assert cnn and all(torch.equal(s1[k], init[k]) for k in cnn)
    moved = {layer_of(k) for k in init if layer_of(k) is not None and not torch.equal(s1[k], init[k])}
    assert moved == set(range(NUM_LAYERS))


def test_finished_fold_is_returned_not_retrained(cv_run: Path, make_run_config):
    from metaser.training.fold_run import train_fold

    cfg = make_run_config(cv_run.parent, "name=cv")
    mtime = (cv_run / "fold2" / "model" / "model.safetensors").stat().st_mtime_ns
    metrics = train_fold(cfg, 2)
    assert metrics == json.loads((cv_run / "fold2" / "metrics.json").read_text())
    assert (cv_run / "fold2" / "model" / "model.safetensors").stat().st_mtime_ns == mtime


def test_fold_out_of_range(make_run_config, tmp_path):
    from metaser.experiments.cv import run_cv
    from metaser.training.fold_run import train_fold

    cfg = make_run_config(tmp_path)
    with pytest.raises(MetaserError, match=r"--fold 6 is out of range: this corpus has 5 folds \(1\.\.5\)"):
        train_fold(cfg, 6)
    with pytest.raises(MetaserError, match=r"folds \[0, 7\] out of range: this corpus has 5 folds"):
        run_cv(make_run_config(tmp_path, "folds=[1, 0, 7]"))
    assert not any(tmp_path.rglob("*.ckpt"))
