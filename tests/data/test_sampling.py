"""Samplers: fixed vs bucketing, eval determinism, epochs, DDP sharding, padding ratio."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lhotse import CutSet
from lhotse.dataset import DynamicBucketingSampler, SimpleCutSampler

from metaser.boundary import Waveforms
from metaser.config import from_dict
from metaser.data.batch import Batch
from metaser.data.config import SamplerConfig
from metaser.data.sampling import count_batches, make_sampler, padding_ratio, set_epoch
from metaser.errors import ConfigError, DataError
from tests.data.helpers import make_cut


@pytest.fixture(scope="module")
def varied(tmp_path_factory) -> CutSet:
    """48 utterances of 0.5-6 s (8 kHz keeps the files small; ratios do not depend on it)."""
    root = tmp_path_factory.mktemp("varied")
    rng = np.random.default_rng(0)
    return CutSet.from_cuts(
        make_cut(root, f"u{i:02d}", float(np.round(rng.uniform(0.5, 6.0), 2)), sample_rate=8000, emotion="neu", seed=i)
        for i in range(48)
    )


def _ids(sampler) -> list[list[str]]:
    return [[c.id for c in batch] for batch in sampler]


def test_fixed_mode_batches_of_batch_size(varied):
    s = make_sampler(varied, SamplerConfig(mode="fixed", batch_size=4), train=True)
    assert isinstance(s, SimpleCutSampler)
    batches = _ids(s)
    assert [len(b) for b in batches] == [4] * 12
    flat = [i for b in batches for i in b]
    assert sorted(flat) == sorted(c.id for c in varied)
    assert flat != [c.id for c in varied]  # shuffled


def test_eval_is_ordered_deterministic_and_never_drops(varied):
    cfg = SamplerConfig(mode="fixed", batch_size=5, drop_last=True)
    ev = _ids(make_sampler(varied, cfg, train=False))
    assert [i for b in ev for i in b] == [c.id for c in varied]  # manifest order, all kept
    assert [len(b) for b in ev] == [5] * 9 + [3]
    assert [len(b) for b in _ids(make_sampler(varied, cfg, train=True))] == [5] * 9  # train drops
    bcfg = SamplerConfig(mode="bucketing", max_duration=10.0, num_buckets=4)
    b1 = _ids(make_sampler(varied, bcfg, train=False, max_duration=20.0))
    b2 = _ids(make_sampler(varied, bcfg, train=False, max_duration=20.0))
    assert b1 == b2
    assert sorted(i for b in b1 for i in b) == sorted(c.id for c in varied)
    by_id = {c.id: c for c in varied}
    for b in b1:  # eval_max_duration-style override is honoured (no single cut exceeds it)
        assert sum(by_id[i].duration for i in b) <= 20.0


def test_bucketing_pads_much_less_than_random_fixed_batches(varied):
    fixed = list(make_sampler(varied, SamplerConfig(mode="fixed", batch_size=4), train=True))
    buck = list(make_sampler(varied, SamplerConfig(mode="bucketing", max_duration=12.0, num_buckets=4), train=True))
    assert isinstance(make_sampler(varied, SamplerConfig(), train=True), DynamicBucketingSampler)
    r_fixed, r_buck = padding_ratio(fixed), padding_ratio(buck)
    assert r_fixed > 0.3
    assert r_buck < 0.5 * r_fixed
    by_id = {c.id: c for c in varied}
    for b in buck:
        assert sum(by_id[c.id].duration for c in b) <= 12.0


def test_padding_ratio_exact():
    assert padding_ratio([[3, 1], [2, 2]]) == pytest.approx(2 / 8)
    assert padding_ratio([torch.tensor([5, 5, 5])]) == 0.0
    batch = Batch(inputs=Waveforms(torch.zeros(2, 10), torch.tensor([10, 4])))
    assert padding_ratio([batch]) == pytest.approx(6 / 14)
    with pytest.raises(ValueError):
        padding_ratio([])


def test_set_epoch_reshuffles_reproducibly(varied):
    cfg = SamplerConfig(mode="fixed", batch_size=4, seed=1)
    s = make_sampler(varied, cfg, train=True)
    e0 = _ids(s)
    set_epoch(s, 1)
    e1 = _ids(s)
    assert e0 != e1
    s2 = make_sampler(varied, cfg, train=True)
    set_epoch(s2, 1)
    assert _ids(s2) == e1
    loader = torch.utils.data.DataLoader(range(3), sampler=s2, batch_size=None)
    set_epoch(loader, 5)
    assert s2.epoch == 5
    with pytest.raises(TypeError):
        set_epoch(object(), 1)


@pytest.mark.parametrize("mode", ["fixed", "bucketing"])
@pytest.mark.parametrize("train", [True, False])
def test_ddp_ranks_are_disjoint_and_cover(varied, mode, train):
    cfg = SamplerConfig(mode=mode, batch_size=4, max_duration=12.0, num_buckets=4)
    sub = varied.subset(first=45)  # not a multiple of the batch size or world size
    ranks = [_ids(make_sampler(sub, cfg, train=train, world_size=2, rank=r)) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1])  # same number of steps on both ranks
    flat0 = [i for b in ranks[0] for i in b]
    flat1 = [i for b in ranks[1] for i in b]
    assert not set(flat0) & set(flat1)
    assert sorted(flat0 + flat1) == sorted(c.id for c in sub)  # no duplicates, nothing lost


def test_ddp_duplicates_only_when_fewer_cuts_than_ranks(varied):
    """lhotse pads the last round with ``_dup<k>`` copies so every rank gets a batch."""
    sub = varied.subset(first=3)
    cfg = SamplerConfig(mode="fixed", batch_size=4)
    got = [_ids(make_sampler(sub, cfg, train=False, world_size=4, rank=r)) for r in range(4)]
    assert got == [[["u00"]], [["u01"]], [["u02"]], [["u00_dup0"]]]


def test_empty_and_bad_config():
    with pytest.raises(DataError, match="empty"):
        make_sampler(CutSet.from_cuts([]), SamplerConfig(), train=True)
    with pytest.raises(ConfigError, match="sampler.batch_size"):
        from_dict(SamplerConfig, {"batch_size": 0})
    with pytest.raises(ConfigError, match="mode"):
        from_dict(SamplerConfig, {"mode": "random"})
    assert from_dict(SamplerConfig, {"max_utterance_seconds": 8}).max_utterance_seconds == 8.0


def test_count_batches_equals_the_real_count(tmp_path):
    """The progress-bar total: exact for every epoch, bucketing with TDSA before it (the
    durations change per epoch), DDP ranks and fixed batches; the sampler is left untouched."""
    from metaser.data.config import AugmentConfig, DataConfig
    from metaser.data.dataset import build_label_space, make_dataloader
    from tests.data.helpers import tiny_corpus

    cuts = tiny_corpus(tmp_path, sessions=3, per_speaker=10, min_seconds=0.5, max_seconds=6.0)
    labels = build_label_space(cuts, [])
    cfg = DataConfig(
        sampler=SamplerConfig(max_duration=10.0, num_buckets=4, num_workers=0), augment=AugmentConfig(speeds=[0.8, 1.2])
    )
    loader = make_dataloader(cuts, labels, [], cfg, train=True)
    sampler = loader.sampler
    counts = []
    for epoch in range(3):
        set_epoch(loader, epoch)
        expected = count_batches(loader)
        before = _ids(sampler)  # iterates the sampler itself (cut metadata only)
        assert count_batches(sampler) == expected == len(before)
        assert _ids(sampler) == before  # counting changed nothing
        counts.append(expected)
    assert counts[0] != counts[2]  # TDSA changes the durations, hence the count, per epoch
    assert count_batches(sampler, epoch=0) == counts[0]  # any epoch, from any state
    it = iter(sampler)  # a lhotse sampler is its own iterator: iter() would restart it
    rest = [[c.id for c in next(it)]]
    assert count_batches(sampler) == counts[2]  # mid-epoch: still the whole epoch's count
    while True:  # the interrupted epoch goes on where it was
        try:
            rest.append([c.id for c in next(it)])
        except StopIteration:
            break
    assert rest == before
    ranks = [make_sampler(cuts, cfg.sampler, train=True, world_size=2, rank=r) for r in (0, 1)]
    assert [count_batches(s) for s in ranks] == [len(_ids(s)) for s in ranks]
    fixed = make_sampler(cuts, SamplerConfig(mode="fixed", batch_size=4), train=True)
    assert count_batches(fixed) == 15 == len(_ids(fixed))
    assert count_batches(fixed) == 15 == len(_ids(fixed))  # after a finished epoch too
    with pytest.raises(TypeError, match="count_batches"):
        count_batches(object())
