"""The frozen boundary and its cache: training from the store gives the per-step losses of the prefix run live."""

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
    from metaser.boundary import FrozenFeatures, Waveforms
    from metaser.data.dataset import make_dataloader
    from metaser.training.frozen import stage_store
    from metaser.training.stages import build_model, build_stage

    cfg, spec = ctx.cfg, ctx.spec(stage)
    model = build_model(cfg, ctx.labels)
    module = build_stage(model, spec, ctx.labels, cfg)
    store = (
        stage_store(cfg, module.boundary, model, ctx.parts, ctx.manifest_sha, all_cuts=ctx.all_cuts) if cached else None
    )
    loader = make_dataloader(ctx.parts["train"], ctx.labels, ctx.aux, cfg.data, train=True, store=store)
    opt = module.configure_optimizers()
    module.train()
    out = []
    for i, batch in zip(range(steps), loader):
        assert isinstance(batch.inputs, FrozenFeatures if cached else Waveforms)
        module.on_train_batch_start(batch, i)
        loss = module.loss_on(batch).total
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
    assert store is not None and store.meta["layer"] == layer and store.meta["independent"] is True
    assert len(ref) == len(got) == 6
    assert max(abs(a - b) for a, b in zip(ref, got)) <= 1e-5, (ref, got)
    # every training utterance has an entry for each speed, valid / test at 1.0
    for c in ctx.parts["train"]:
        assert all((c.id, f) in store for f in (0.8, 1.0, 1.2))
    assert all((c.id, 1.0) in store for c in ctx.parts["test"])


def test_cache_is_keyed_by_the_frozen_weights(ctx):
    from metaser.training.frozen import stage_store
    from metaser.training.stages import build_model, build_stage

    cfg = ctx.cfg
    model = build_model(cfg, ctx.labels)
    boundary = build_stage(model, ctx.spec("stage2"), ctx.labels, cfg).boundary
    a = stage_store(cfg, boundary, model, ctx.parts, ctx.manifest_sha, all_cuts=ctx.all_cuts)
    with torch.no_grad():
        model.encoder.model.encoder.layers[2].final_layer_norm.weight.add_(0.5)  # a frozen layer changes
    b = stage_store(cfg, boundary, model, ctx.parts, ctx.manifest_sha, all_cuts=ctx.all_cuts)
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
    from metaser.training.frozen import frozen_boundary

    cfg = apply_overrides(ctx.cfg, change)
    b = frozen_boundary(cfg, 4, SSLEncoder.from_pretrained(cfg.model.encoder))
    assert b.store_layer is None and why in b.reason and b.layers == 4


def test_the_boundary_follows_cache_mode(ctx):
    """auto: every utterance as if alone, cached at the boundary (group-norm encoders too);
    strict: HF's padded batches, cached only where that is exact."""
    from metaser.models.encoder import SSLEncoder
    from metaser.training.frozen import frozen_boundary

    gn = apply_overrides(ctx.cfg, ["model.encoder.name_or_path=tiny-wav2vec2"])
    enc = SSLEncoder.from_pretrained(gn.model.encoder)
    for n in (4, 0):
        b = frozen_boundary(gn, n, enc)
        assert (b.layers, b.independent, b.store_layer) == (n, True, n) and "as if alone" in b.reason
    strict = frozen_boundary(apply_overrides(gn, ["cache.mode=strict"]), 4, enc)
    assert (strict.independent, strict.store_layer) == (False, None)
    ln = SSLEncoder.from_pretrained(ctx.cfg.model.encoder)  # tiny-wavlm: layer norm, exact padded too
    assert "as if alone" not in frozen_boundary(ctx.cfg, 4, ln).reason
    b = frozen_boundary(apply_overrides(ctx.cfg, ["cache.mode=strict"]), 4, ln)
    assert (b.independent, b.store_layer) == (False, 4)


@pytest.fixture(scope="module")
def ctx_group_norm(make_run_config, tmp_path_factory):
    from metaser.training.fold import prepare_fold

    cfg = make_run_config(
        tmp_path_factory.mktemp("cache-gn"),
        "data.sampler.mode=fixed",
        "data.sampler.batch_size=4",
        "model.encoder.dropout=0.0",
        "model.encoder.name_or_path=tiny-wav2vec2",
    )
    return prepare_fold(cfg, 1)


@pytest.mark.parametrize("stage,layer", [("stage1", 0), ("stage2", 4)])
def test_group_norm_cache_equals_the_independent_live_prefix(ctx_group_norm, stage, layer):
    """A group-norm encoder in the default mode: its store (built in batches with the masked
    group norm) gives the per-step losses of the prefix run live on padded batches of 4, since
    both compute every utterance as if alone."""
    torch.set_num_threads(1)
    ref, _ = losses(ctx_group_norm, stage, cached=False)
    got, store = losses(ctx_group_norm, stage, cached=True)
    assert store is not None and store.meta["layer"] == layer and store.meta["independent"] is True
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


def test_interrupted_store_build_leaves_nothing_and_stale_ones_are_swept(tmp_path):
    """SIGTERM during a build removes its temporary folder; one left by a killed process (here: a
    pid that does not exist) is removed by the next writer in that folder."""
    import os
    import signal

    from metaser.data.feature_store import FeatureStoreWriter, cleanup_on_sigterm, sweep_stale

    w = FeatureStoreWriter(tmp_path / "cnn-x", meta={"layer": 0})
    (tmp,) = tmp_path.iterdir()  # .cnn-x.tmp-<host>-<pid>-<random>
    assert tmp.name.startswith(".cnn-x.tmp-") and f"-{os.getpid()}-" in tmp.name
    with pytest.raises(SystemExit), cleanup_on_sigterm():
        try:
            w.add("utt", 1.0, [torch.randn(3, 2)], num_samples=960)
            os.kill(os.getpid(), signal.SIGTERM)
        except BaseException:
            w.abort()
            raise
    assert list(tmp_path.iterdir()) == []
    host = tmp.name.split(".tmp-", 1)[1].split("-")[0]
    stale = tmp_path / f".cnn-y.tmp-{host}-999999999-abc"
    stale.mkdir()
    (stale / "data.bin").write_bytes(b"x")
    assert sweep_stale(tmp_path) == [stale] and not stale.exists()
    FeatureStoreWriter(tmp_path / "cnn-z").abort()  # a new writer sweeps too


def test_frozen_encoder_mode_trains_the_fusion_and_heads_only(make_run_config, tmp_path):
    """freeze_layers: all (SUPERB / EmoBox): the store holds all L layer outputs; a training step
    from it moves the weighted sum's weights and the heads, never the encoder."""
    from metaser.boundary import FrozenFeatures
    from metaser.data.dataset import make_dataloader
    from metaser.training.fold import prepare_fold
    from metaser.training.frozen import stage_store
    from metaser.training.stages import build_model, build_stage

    cfg = make_run_config(
        tmp_path, "aux_tasks={}", "emotion_only.freeze_layers=all", "model.fusion.layers=weighted_sum"
    )
    ctx = prepare_fold(cfg, 1)
    spec = ctx.spec("emotion_only")
    model = build_model(cfg, ctx.labels)
    module = build_stage(model, spec, ctx.labels, cfg)
    assert module.boundary.layers == module.boundary.store_layer == 12
    assert not any(p.requires_grad for p in model.encoder.parameters())
    store = stage_store(cfg, module.boundary, model, ctx.parts, ctx.manifest_sha, all_cuts=ctx.all_cuts)
    batch = next(iter(make_dataloader(ctx.parts["train"], ctx.labels, [], cfg.data, train=True, store=store)))
    assert isinstance(batch.inputs, FrozenFeatures) and len(batch.inputs.hidden) == 12
    opt = module.configure_optimizers()
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    module.train()
    module.loss_on(batch).total.backward()
    opt.step()
    moved = {k for k, v in model.named_parameters() if not torch.equal(v, before[k])}
    assert "layer_fusion.logits" in moved and any(k.startswith("emotion_head.") for k in moved)
    assert not any(k.startswith("encoder.") for k in moved)
