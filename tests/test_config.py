"""The typed YAML config system and every shipped preset."""

from __future__ import annotations

from pathlib import Path

import pytest

from metaser.config import apply_overrides, from_dict, load_config, save_config, to_dict
from metaser.errors import ConfigError
from metaser.training.config import RunConfig

CONFIG_DIR = Path(__file__).resolve().parents[1] / "metaser" / "configs"
SHIPPED = sorted(CONFIG_DIR.glob("*/*.yaml"))


def test_there_are_shipped_presets():
    names = {f"{p.parent.name}/{p.name}" for p in SHIPPED}
    assert {
        "iemocap/wav2vec2-base.yaml",
        "iemocap/hubert-base.yaml",
        "iemocap/wavlm-base.yaml",
        "demo/tiny.yaml",
    } <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_shipped_yaml_parses_and_round_trips(path, tmp_path):
    cfg = load_config(RunConfig, path)
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(RunConfig, tmp_path / "c.yaml") == cfg


@pytest.mark.parametrize("enc", ["wav2vec2-base", "hubert-base", "wavlm-base"])
def test_paper_presets_hold_the_paper_protocol(enc):
    cfg = load_config(RunConfig, CONFIG_DIR / "iemocap" / f"{enc}.yaml")
    assert cfg.data.sampler.mode == "fixed" and cfg.data.sampler.batch_size == 4
    assert cfg.data.augment.speeds == [0.8, 1.0, 1.2]
    assert cfg.data.split.group_by == "session" and cfg.data.split.num_folds is None
    assert (cfg.stage1.epochs, cfg.stage2.epochs) == (100, 100)
    assert (cfg.stage1.freeze_layers, cfg.stage2.freeze_layers) == (0, 4)
    for st in (cfg.stage1, cfg.stage2, cfg.emotion_only):
        assert (st.optim.encoder_lr, st.optim.head_lr) == (1e-5, 1e-4)
    assert (cfg.emotion_only.epochs, cfg.emotion_only.freeze_layers) == (100, 0)  # baseline / SER only
    assert cfg.data.augment.speed_convention == "length"  # 0.8 keeps 0.8x the samples (SpeechBrain)
    assert set(cfg.aux_tasks) == {"gender", "speaker", "style", "asr"}
    assert cfg.model.architecture == "metaser"
    assert cfg.model.fusion.layers == "ari" and cfg.model.fusion.tasks == "coattention"
    assert cfg.model.fusion.weights == "softmax" and cfg.model.fusion.normalize == "none"
    assert not cfg.stage1.freeze_layer_fusion
    assert cfg.cache.mode == "strict"  # frozen prefix in the paper's padded batches, not per utterance
    assert cfg.trainer.precision == "32-true" and cfg.trainer.matmul_precision == "highest"  # no TF32 on a GPU
    text = (CONFIG_DIR / "iemocap" / f"{enc}.yaml").read_text()
    assert "gives no values" in text and "metaser sweep" in text  # the w_k are not the paper's


def test_mode_is_gone_and_says_where_the_baseline_lives():
    from metaser.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown config key 'mode'"):
        apply_overrides(RunConfig(), ["mode=baseline"])
    assert RunConfig().baseline is False
    assert apply_overrides(RunConfig(), ["model.architecture=baseline"]).active_aux_tasks == []


def test_dotted_overrides_are_typed():
    cfg = apply_overrides(
        RunConfig(),
        [
            "stage1.epochs=7",
            "stage1.optim.head_lr=3e-4",
            "model.fusion.layers=weighted_sum",
            "aux_tasks={gender: 0.5}",
            "data.split.num_folds=null",
            "trainer.devices=2",
        ],
    )
    assert cfg.stage1.epochs == 7
    assert cfg.stage1.optim.head_lr == pytest.approx(3e-4)
    assert cfg.model.fusion.layers == "weighted_sum"
    assert cfg.aux_tasks == {"gender": 0.5}
    assert cfg.trainer.devices == 2


@pytest.mark.parametrize(
    "override, message",
    [
        ("stage1.epoch=3", "unknown config key 'stage1.epoch'"),
        ("stage1.epochs=three", "stage1.epochs: expected an integer"),
        ("model.fusion.layers=mean", "model.fusion.layers: 'mean' is not one of"),
        ("stage1.epochs=0", "stage1.epochs must be >= 1"),
        ("data.sampler.batch_size=-1", "sampler.batch_size: must be > 0"),
        ("novalue", "must look like key.sub=value"),
        ("trainer.deterministic=3", "expected true/false"),
    ],
)
def test_bad_overrides_are_clear_errors(override, message):
    with pytest.raises(ConfigError) as e:
        apply_overrides(RunConfig(), [override])
    assert message in str(e.value)


def test_unknown_key_suggests_the_close_one():
    with pytest.raises(ConfigError) as e:
        apply_overrides(RunConfig(), ["stage1.epoks=3"])
    assert "did you mean 'epochs'" in str(e.value)


def test_yaml_errors_name_the_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("stage1:\n  epochs: [1, 2]\n")
    with pytest.raises(ConfigError, match="bad.yaml: stage1.epochs: expected an integer"):
        load_config(RunConfig, p)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(RunConfig, tmp_path / "missing.yaml")
    p.write_text("- a list\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(RunConfig, p)


def test_to_dict_from_dict_round_trip():
    cfg = apply_overrides(RunConfig(), ["name=x", "stage2.early_stopping_patience=5"])
    assert from_dict(RunConfig, to_dict(cfg)) == cfg


def test_spawn_strategies_are_rejected_with_the_reason():
    with pytest.raises(ConfigError, match="spawn-based strategies cannot pickle"):
        apply_overrides(RunConfig(), ["trainer.strategy=ddp_spawn"])
    assert apply_overrides(RunConfig(), ["trainer.strategy=ddp"]).trainer.strategy == "ddp"
