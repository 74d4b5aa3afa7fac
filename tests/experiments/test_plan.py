"""``metaser ablate --plan``: the three studies' stages (losses, freezing, keys) and the paper's figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from metaser.cli import main

CONFIGS = Path(__file__).resolve().parents[2] / "metaser" / "configs"
AUX = ["gender", "speaker", "style", "asr"]


def plan(config: str, study: str, *extra: str) -> dict:
    result = CliRunner().invoke(main, ["ablate", str(CONFIGS / config), "--study", study, "--plan", *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def by_slug(doc: dict) -> dict[str, dict]:
    return {v["slug"]: v for v in doc["variants"]}


def test_modules_plan_for_wavlm():
    doc = plan("iemocap/wavlm-base.yaml", "modules")
    assert doc["study"] == "modules" and doc["base"] == "iemocap-wavlm-base"
    v = by_slug(doc)
    assert list(v) == ["baseline", "wo_ari_co", "wo_ari", "wo_co", "full"]
    base = v["baseline"]
    assert [(s["name"], s["losses"], s["freeze_layers"], s["epochs"]) for s in base["stages"]] == [
        ("emotion_only", ["emotion"], 0, 100)
    ]
    assert base["paper"] == {"ua": 73.79, "wa": 73.12}
    full = v["full"]
    assert [(s["name"], s["losses"], s["freeze_layers"], s["epochs"]) for s in full["stages"]] == [
        ("stage1", AUX, 0, 100),
        ("stage2", ["emotion"], 4, 100),
    ]
    assert full["paper"] == {"ua": 77.74, "wa": 76.33}
    assert v["wo_ari"]["paper"] == {"ua": 76.75, "wa": 75.94}
    # stage 1 reads no co-attention setting: two distinct stage-1 keys for the four two-stage variants
    s1 = {name: var["stages"][0]["key"] for name, var in v.items() if name != "baseline"}
    assert s1["wo_co"] == s1["full"] and s1["wo_ari_co"] == s1["wo_ari"] and s1["full"] != s1["wo_ari"]
    assert len(set(s1.values())) == 2
    s2 = [var["stages"][-1]["key"] for var in v.values()]
    assert len(set(s2)) == 5  # every variant's emotion stage is its own


def test_tasks_plan_has_16_rows_with_the_papers_figures():
    doc = plan("iemocap/wavlm-base.yaml", "tasks")
    v = by_slug(doc)
    assert len(v) == 16
    assert v["none"]["label"] == "SER only" and v["none"]["paper"] == {"ua": 74.65, "wa": 73.42}
    assert [(s["name"], s["losses"], s["freeze_layers"]) for s in v["none"]["stages"]] == [
        ("emotion_only", ["emotion"], 0)
    ]
    assert v["gender_speaker_asr"]["paper"]["ua"] == 77.35
    assert v["speaker_asr"]["stages"][0]["losses"] == ["speaker", "asr"]
    hub = by_slug(plan("iemocap/hubert-base.yaml", "tasks"))
    assert hub["speaker_asr"]["paper"] == {"ua": 76.48, "wa": 75.23}
    assert hub["gender_speaker_style_asr"]["paper"] == {"ua": 76.97, "wa": 75.88}
    w2v = by_slug(plan("iemocap/wav2vec2-base.yaml", "tasks"))
    assert w2v["gender"]["paper"] == {"ua": 67.91, "wa": 66.64}


def test_fusion_plan_and_all_studies_share_stages():
    v = by_slug(plan("iemocap/wav2vec2-base.yaml", "fusion"))
    assert v["weighted_sum"]["paper"] == {"ua": 75.59, "wa": 74.66}
    assert v["ari"]["paper"] == {"ua": 76.64, "wa": 75.84}
    doc = plan("iemocap/wavlm-base.yaml", "all")
    assert doc["num_stages"] == 44 and doc["num_distinct_stages"] <= 38
    keys = {(v["study"], v["slug"]): [s["key"] for s in v["stages"]] for v in doc["variants"]}
    assert keys[("modules", "full")] == keys[("fusion", "ari")] == keys[("tasks", "gender_speaker_style_asr")]


def test_only_and_unknown_variant():
    doc = plan("iemocap/wavlm-base.yaml", "modules", "--only", "baseline,full")
    assert [v["slug"] for v in doc["variants"]] == ["baseline", "full"]
    result = CliRunner().invoke(
        main, ["ablate", str(CONFIGS / "iemocap/wavlm-base.yaml"), "--study", "modules", "--plan", "--only", "nope"]
    )
    assert result.exit_code == 2 and "nope" in result.output and "Traceback" not in result.output


def test_no_paper_column_for_other_encoders():
    doc = plan("demo/tiny.yaml", "modules")
    assert all(v["paper"] is None for v in doc["variants"])


@pytest.mark.parametrize("change", ["model.emotion_head.hidden_dim=32", "stage2.epochs=3", "model.fusion.tasks=guided"])
def test_stage1_key_ignores_what_stage1_does_not_read(change):
    from metaser.config import apply_overrides, load_config
    from metaser.training.config import RunConfig
    from metaser.training.keys import stage_keys

    cfg = load_config(RunConfig, CONFIGS / "demo/tiny.yaml")
    a, b = stage_keys(cfg, "m"), stage_keys(apply_overrides(cfg, [change]), "m")
    assert a["stage1"] == b["stage1"] and a["stage2"] != b["stage2"]


@pytest.mark.parametrize(
    "change",
    [
        "aux_tasks.asr=0.5",
        "stage1.optim.encoder_lr=1e-4",
        "seed=1",
        "model.fusion.layers=weighted_sum",
        "data.augment.speeds=[1.0]",
        "cache.mode=none",
        "cache.mode=strict",
        "trainer.fast_dropout=false",
        "trainer.fft_conv=false",
    ],
)
def test_stage_keys_follow_what_decides_the_result(change):
    from metaser.config import apply_overrides, load_config
    from metaser.training.config import RunConfig
    from metaser.training.keys import stage_keys

    cfg = load_config(RunConfig, CONFIGS / "demo/tiny.yaml")
    a, b = stage_keys(cfg, "m"), stage_keys(apply_overrides(cfg, [change]), "m")
    assert a["stage1"] != b["stage1"] and a["stage2"] != b["stage2"]  # stage 2 starts from stage 1
    assert stage_keys(cfg, "other-manifest")["stage1"] != a["stage1"]
    same = [
        "data.sampler.num_workers=3",
        "name=x",
        "output_dir=y",
        "trainer.num_threads=1",
        "trainer.log_every_n_steps=3",
        "cache.dir=z",
        "cache.storage=disk",
    ]
    assert stage_keys(apply_overrides(cfg, same), "m") == a
