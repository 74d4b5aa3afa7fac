"""The exact frozen-prefix cache: training from it gives the same per-step losses as from audio."""

from __future__ import annotations

import pytest
import torch

from metaser.config import apply_overrides


@pytest.fixture(scope="module")
def ctx(make_run_config, tmp_path_factory):
    from metaser.training.fold import prepare_fold

    cfg = make_run_config(
        tmp_path_factory.mktemp("cache"),
        "data.sampler.mode=fixed",
        "data.sampler.batch_size=4",
        "model.encoder.dropout=0.0",
    )
    return prepare_fold(cfg, 1)


def losses(ctx, stage: str, cached: bool, steps: int = 6) -> tuple[list[float], object]:
    from metaser.data.dataset import make_dataloader
    from metaser.training.cache import stage_features
    from metaser.training.stages import build_model, build_stage

    cfg, spec = ctx.cfg, ctx.spec(stage)
    model = build_model(cfg, ctx.labels)
    module = build_stage(model, spec, ctx.labels, cfg)
    store = (
        stage_features(cfg, model, spec.freeze_layers, ctx.parts, ctx.labels, ctx.manifest_sha, all_cuts=ctx.all_cuts)
        if cached
        else None
    )
    loader = make_dataloader(ctx.parts["train"], ctx.labels, ctx.aux, cfg.data, train=True, features=store)
    opt = module.configure_optimizers()
    module.train()
    out = []
    for i, batch in zip(range(steps), loader):
        assert (batch.features is not None) == cached
        module.on_train_batch_start(batch, i)
        loss = module._loss(module(batch), batch).total
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        out.append(float(loss.detach()))
    return out, store


@pytest.mark.parametrize("stage,layer", [("stage1", 0), ("stage2", 4)])
def test_training_from_the_cache_gives_the_same_per_step_losses(ctx, stage, layer):
    torch.set_num_threads(1)
    ref, _ = losses(ctx, stage, cached=False)
    got, store = losses(ctx, stage, cached=True)
    assert store is not None and store.meta["layer"] == layer and store.meta["alone"] is False
    assert len(ref) == len(got) == 6
    assert max(abs(a - b) for a, b in zip(ref, got)) <= 1e-5, (ref, got)
    # every training utterance has an entry for each speed, valid / test at 1.0
    for c in ctx.parts["train"]:
        assert all((c.id, f) in store for f in (0.8, 1.0, 1.2))
    assert all((c.id, 1.0) in store for c in ctx.parts["test"])


def test_cache_is_keyed_by_the_frozen_weights(ctx):
    from metaser.training.cache import stage_features
    from metaser.training.stages import build_model, build_stage

    cfg = ctx.cfg
    model = build_model(cfg, ctx.labels)
    build_stage(model, ctx.spec("stage2"), ctx.labels, cfg)
    a = stage_features(cfg, model, 4, ctx.parts, ctx.labels, ctx.manifest_sha, all_cuts=ctx.all_cuts)
    with torch.no_grad():
        model.encoder.model.encoder.layers[2].final_layer_norm.weight.add_(0.5)  # a frozen layer changes
    b = stage_features(cfg, model, 4, ctx.parts, ctx.labels, ctx.manifest_sha, all_cuts=ctx.all_cuts)
    assert a.path != b.path and a.path.is_dir() and b.path.is_dir()
    c = next(iter(ctx.parts["test"])).id
    assert torch.equal(a.get(c, 1.0)[0], b.get(c, 1.0)[0])  # layers 0 and 1 unchanged
    assert not torch.equal(a.get(c, 1.0)[3], b.get(c, 1.0)[3])


@pytest.mark.parametrize(
    "change,why",
    [
        (["model.encoder.name_or_path=tiny-wav2vec2", "cache.mode=strict"], "group norm"),
        (["data.augment.band_drop_prob=0.5"], "band / chunk drop"),
        (["data.sampler.max_utterance_seconds=2.0"], "cropping"),
        (["cache.mode=none"], "cache.mode=none"),
    ],
)
def test_cache_switches_itself_off_and_says_why(ctx, change, why):
    from metaser.models.encoder import SSLEncoder
    from metaser.training.cache import cache_layer

    cfg = apply_overrides(ctx.cfg, change)
    layer, reason = cache_layer(cfg, SSLEncoder.from_pretrained(cfg.model.encoder), 4)
    assert layer is None and why in reason


@pytest.mark.parametrize("mode", ["auto", "force"])
def test_group_norm_encoders_are_cached_alone_by_default(ctx, mode):
    from metaser.models.encoder import SSLEncoder
    from metaser.training.cache import cache_layer

    cfg = apply_overrides(ctx.cfg, ["model.encoder.name_or_path=tiny-wav2vec2", f"cache.mode={mode}"])
    enc = SSLEncoder.from_pretrained(cfg.model.encoder)
    for n, layer in ((4, 4), (0, 0)):
        got, why = cache_layer(cfg, enc, n)
        assert got == layer and "alone" in why
    assert "alone" not in cache_layer(ctx.cfg, SSLEncoder.from_pretrained(ctx.cfg.model.encoder), 4)[1]


@pytest.fixture(scope="module")
def ctx_group_norm(make_run_config, tmp_path_factory):
    from metaser.training.fold import prepare_fold

    cfg = make_run_config(
        tmp_path_factory.mktemp("cache-gn"),
        "data.sampler.mode=fixed",
        "data.sampler.batch_size=1",
        "model.encoder.dropout=0.0",
        "model.encoder.name_or_path=tiny-wav2vec2",
    )
    return prepare_fold(cfg, 1)


@pytest.mark.parametrize("stage,layer", [("stage1", 0), ("stage2", 4)])
def test_group_norm_cache_equals_batch_size_one(ctx_group_norm, stage, layer):
    """A group-norm encoder's cache holds each utterance's own features: training from it gives
    the per-step losses of the audio path at batch size 1 (no padding), and its store says it
    was built one utterance at a time."""
    torch.set_num_threads(1)
    ref, _ = losses(ctx_group_norm, stage, cached=False)
    got, store = losses(ctx_group_norm, stage, cached=True)
    assert store is not None and store.meta["layer"] == layer and store.meta["alone"] is True
    assert max(abs(a - b) for a, b in zip(ref, got)) <= 1e-5, (ref, got)


def test_feature_store_round_trip_and_atomic_commit(tmp_path):
    import pickle

    from metaser.data.feature_store import FeatureStore, FeatureStoreWriter

    for dtype, tol in (("float32", 0.0), ("bfloat16", 1e-2), ("float16", 1e-3)):
        w = FeatureStoreWriter(tmp_path / dtype, dtype=dtype, meta={"layer": 2})
        x = [torch.randn(7, 5), torch.randn(7, 5)]
        w.add("utt", 0.8, x, num_samples=2240)
        assert not FeatureStore.exists(tmp_path / dtype)  # nothing visible before commit
        s = w.commit()
        got = s.get("utt", 0.8)
        assert len(got) == 2 and got[0].dtype == torch.float32 and s.num_samples("utt", 0.8) == 2240
        torch.testing.assert_close(got[1], x[1], rtol=tol, atol=tol)
        again = pickle.loads(pickle.dumps(s))  # DataLoader workers reopen by path
        assert torch.equal(again.get("utt", 0.8)[0], got[0]) and again.meta["layer"] == 2
