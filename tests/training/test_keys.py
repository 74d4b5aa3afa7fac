"""Stage keys: every RunConfig field is either in a stage's key or declared result-neutral."""

from __future__ import annotations

import dataclasses

import pytest

from metaser.config import apply_overrides
from metaser.training.config import RunConfig
from metaser.training.keys import KEY_SCHEMA, RESULT_NEUTRAL, stage_keys, stage_material
from metaser.training.stages import stage_plan


def leaf_fields(cls, prefix: str = "") -> list[str]:
    """Every dotted field path of a dataclass, recursively (dict fields are leaves)."""
    out = []
    for f in dataclasses.fields(cls):
        path = f"{prefix}{f.name}"
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            out += leaf_fields(type(default), path + ".")
        else:
            out.append(path)
    return out


def keyed_fields(cfg: RunConfig) -> set[str]:
    """The leaf paths some stage of ``cfg`` puts in its key."""
    keyed = set()
    for spec in stage_plan(cfg):
        for path in spec.key_fields(cfg):
            keyed |= {leaf for leaf in leaf_fields(type(cfg)) if leaf == path or leaf.startswith(path + ".")}
    return keyed


def unclassified(cfg: RunConfig) -> list[str]:
    """Fields of ``cfg``'s class that neither a stage's key (of the full model or the baseline)
    nor RESULT_NEUTRAL names."""
    baseline = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, architecture="baseline"))
    keyed = keyed_fields(cfg) | keyed_fields(baseline)
    return sorted(set(leaf_fields(type(cfg))) - keyed - set(RESULT_NEUTRAL))


def test_every_config_field_is_keyed_or_declared_neutral():
    """A new RunConfig field fails here until it is put in a stage's key material
    (StageSpec.key_fields) or listed in keys.RESULT_NEUTRAL with the reason."""
    cfg = RunConfig()
    missing = unclassified(cfg)
    assert not missing, f"classify these RunConfig fields (key or RESULT_NEUTRAL): {missing}"
    keyed = keyed_fields(cfg) | keyed_fields(apply_overrides(cfg, ["model.architecture=baseline"]))
    assert not keyed & set(RESULT_NEUTRAL), "a field cannot be both keyed and result-neutral"
    leaves = set(leaf_fields(RunConfig))
    assert set(RESULT_NEUTRAL) <= leaves, f"stale RESULT_NEUTRAL entries: {set(RESULT_NEUTRAL) - leaves}"
    assert all(reason.strip() for reason in RESULT_NEUTRAL.values())


def test_the_walk_catches_an_unclassified_field():
    """The check itself: a field added to a config dataclass and classified nowhere is reported."""
    from metaser.training import config as config_module

    @dataclasses.dataclass
    class Extra(config_module.TrainerConfig):
        new_knob: int = 3

    @dataclasses.dataclass
    class Run(RunConfig):
        trainer: Extra = dataclasses.field(default_factory=Extra)

    assert unclassified(Run()) == ["trainer.new_knob"]


def test_the_key_schema_version_is_in_every_key():
    cfg = RunConfig(data=dataclasses.replace(RunConfig().data, manifest="m"))
    spec = stage_plan(cfg)[0]
    assert stage_material(cfg, spec, "sha", None)["schema"] == KEY_SCHEMA


@pytest.mark.parametrize("neutral", sorted(RESULT_NEUTRAL))
def test_result_neutral_fields_do_not_move_keys(neutral):
    cfg = RunConfig()
    value = {
        "name": "other",
        "output_dir": "elsewhere",
        "data.manifest": "other/cuts.jsonl.gz",
        "data.sampler.num_workers": 7,
        "trainer.log_every_n_steps": 99,
        "trainer.enable_progress_bar": False,
        "trainer.num_threads": 3,
        "cache.dir": "/tmp/x",
        "cache.storage": "disk",
        "cache.max_memory_gb": 1.0,
        "folds": [2],
        "store_dir": "/tmp/s",
        "reuse": False,
    }[neutral]
    changed = apply_overrides(cfg, [f"{neutral}={value}"])
    assert stage_keys(changed, "sha") == stage_keys(cfg, "sha")
