"""Stage reuse by content key, and the one-stage rows (baseline, SER only), on the tiny preset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from metaser.cli import main
from tests.conftest import TINY_PRESET, run_config_overrides


def ablate(manifest: Path, out: Path, *args: str) -> str:
    result = CliRunner().invoke(
        main, ["ablate", str(TINY_PRESET), *args, *run_config_overrides(manifest, out, "name=r")]
    )
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def shared(synth_manifest, tmp_path_factory):
    """w/o Co then full on fold 1 with reuse (full's stage 1 is w/o Co's), and full alone without."""
    a, b = tmp_path_factory.mktemp("reuse"), tmp_path_factory.mktemp("noreuse")
    out_a = ablate(synth_manifest, a, "--study", "modules", "--only", "wo_co,full", "--folds", "1")
    ablate(synth_manifest, b, "--study", "modules", "--only", "full", "--folds", "1", "--no-reuse")
    return a / "r" / "ablate-modules", b / "r" / "ablate-modules", out_a


def test_shared_stage1_is_trained_once_and_linked(shared):
    root, _, output = shared
    infos = {v: json.loads((root / v / "fold1" / "run_info.json").read_text()) for v in ("wo_co", "full")}
    s1 = {v: next(s for s in i["stages"] if s["name"] == "stage1") for v, i in infos.items()}
    assert s1["wo_co"]["key"] == s1["full"]["key"] and s1["wo_co"]["dir"] == s1["full"]["dir"]
    assert (s1["wo_co"]["reused"], s1["full"]["reused"]) == (False, True)
    assert (root / "full" / "fold1" / "stage1").resolve() == (root / "wo_co" / "fold1" / "stage1").resolve()
    stage_dirs = list((root.parent / "stages").glob("stage1-*"))
    assert len(stage_dirs) == 1
    # one CNN feature store shared by every stage; the per-(stage 2, fold) frozen-layer stores are gone
    cache = sorted(p.name.split("-")[0] for p in (root.parent / "cache").iterdir() if not p.name.startswith("."))
    assert cache == ["cnn"]


def test_reused_stage1_gives_bit_identical_stage2(shared):
    """full's stage 2 after the reused stage 1 equals full trained on its own (--no-reuse)."""
    root, alone, _ = shared
    a, b = root / "full" / "fold1", alone / "full" / "fold1"
    assert (b / "stage1").resolve() != (a / "stage1").resolve()  # really trained twice
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
    assert ma["test"] == mb["test"] and ma["valid"] == mb["valid"]
    assert (a / "predictions.jsonl").read_text() == (b / "predictions.jsonl").read_text()
    wa, wb = load_file(str(a / "model" / "model.safetensors")), load_file(str(b / "model" / "model.safetensors"))
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_baseline_trains_layer0_not_the_cnn(synth_manifest, tmp_path):
    """The baseline is one emotion-only stage with every transformer layer trained; the CNN is frozen."""
    from metaser.models.config import EncoderConfig
    from metaser.models.encoder import SSLEncoder

    ablate(synth_manifest, tmp_path, "--study", "modules", "--only", "baseline", "--folds", "1")
    fold = tmp_path / "r" / "ablate-modules" / "baseline" / "fold1"
    metrics = json.loads((fold / "metrics.json").read_text())
    assert list(metrics["stages"]) == ["emotion_only"] and not (fold / "stage1").exists()
    saved = load_file(str(fold / "model" / "model.safetensors"))
    init = {f"encoder.{k}": v for k, v in SSLEncoder.from_pretrained(EncoderConfig("tiny-wavlm")).state_dict().items()}
    layer0 = [k for k in init if ".encoder.layers.0." in k and k.endswith("weight")]
    cnn = [k for k in init if ".feature_extractor." in k]
    assert layer0 and cnn
    assert any(not torch.equal(saved[k], init[k]) for k in layer0)
    assert all(torch.equal(saved[k], init[k]) for k in cnn)
    assert set(json.loads((fold / "model" / "config.json").read_text())["model"]["architecture"].split()) == {
        "baseline"
    }


def test_ser_only_is_one_emotion_stage_through_ari(synth_manifest, tmp_path):
    ablate(synth_manifest, tmp_path, "--study", "tasks", "--only", "none", "--folds", "1")
    fold = tmp_path / "r" / "ablate-tasks" / "none" / "fold1"
    metrics = json.loads((fold / "metrics.json").read_text())
    cfg = json.loads((fold / "model" / "config.json").read_text())
    assert list(metrics["stages"]) == ["emotion_only"] and cfg["tasks"] == []
    assert cfg["model"]["architecture"] == "metaser" and cfg["model"]["fusion"]["layers"] == "ari"
    assert len(metrics["layer_weights"]) == 11  # the ARI weights trained in the one stage
