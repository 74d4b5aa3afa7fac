"""Label spaces, collation into Batch, augmentation in the dataset, the DataLoader factory."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from lhotse import CutSet

from metaser.config import from_dict
from metaser.constants import MIN_SAMPLES
from metaser.data.batch import Batch
from metaser.data.config import AugmentConfig, DataConfig, SamplerConfig
from metaser.data.dataset import SERDataset, build_label_space, make_dataloader
from metaser.data.labels import IGNORE_INDEX
from metaser.data.sampling import set_epoch
from metaser.errors import ConfigError, DataError
from tests.data.helpers import make_cut, tiny_corpus

TASKS = ["gender", "speaker", "style", "asr"]


@pytest.fixture()
def three(tmp_path) -> CutSet:
    return CutSet.from_cuts(
        [
            make_cut(
                tmp_path,
                "a",
                0.25,
                emotion="ang",
                speaker="s1",
                gender="female",
                text="The cat, sat!",
                style="impro",
                seed=1,
            ),
            make_cut(
                tmp_path,
                "b",
                0.5,
                emotion="sad",
                speaker="s2",
                gender="male",
                text="hello world",
                style="script",
                seed=2,
            ),
            make_cut(
                tmp_path, "c", 0.3, emotion="ang", speaker="s1", gender="female", text=None, seed=3
            ),  # no style, no transcript
        ]
    )


def _audio(tmp_path, cut_id: str) -> np.ndarray:
    data, _ = sf.read(tmp_path / f"{cut_id}.wav", dtype="float32")
    return data


def test_build_label_space(three):
    labels = build_label_space(three, TASKS)
    assert labels.classes == {
        "emotion": ["ang", "sad"],
        "gender": ["female", "male"],
        "speaker": ["s1", "s2"],
        "style": ["impro", "script"],
    }
    assert labels.vocab.tokens == sorted(set("the cat sathello world"))
    ordered = build_label_space(three, [], emotion_classes=["sad", "neu", "ang"])
    assert ordered.classes == {"emotion": ["sad", "neu", "ang"]} and ordered.vocab is None
    with pytest.raises(DataError, match=r"\['sad'\] are not in the given emotion classes"):
        build_label_space(three, [], emotion_classes=["ang"])


def test_missing_task_field_names_available_fields(three):
    with pytest.raises(DataError) as e:
        build_label_space(three, ["accent"])
    assert "task 'accent'" in str(e.value)
    assert "available fields: emotion, emotion_raw, gender, speaker, style, text" in str(e.value)
    no_text = CutSet.from_cuts([c for c in three if c.id == "c"])
    with pytest.raises(DataError, match="task 'asr'"):
        build_label_space(no_text, ["asr"])


def test_collate_shapes_padding_targets_and_ctc(three, tmp_path):
    labels = build_label_space(three, TASKS)
    batch = SERDataset(labels, TASKS)[three]
    assert isinstance(batch, Batch) and batch.ids == ["a", "b", "c"]
    assert batch.inputs.samples.shape == (3, 8000) and batch.inputs.samples.dtype == torch.float32
    assert batch.inputs.lengths.tolist() == [4000, 8000, 4800] and batch.inputs.lengths.dtype == torch.int64
    for i, cid in enumerate(batch.ids):
        n = int(batch.inputs.lengths[i])
        assert np.array_equal(batch.inputs.samples[i, :n].numpy(), _audio(tmp_path, cid))
        assert torch.count_nonzero(batch.inputs.samples[i, n:]) == 0
    assert list(batch.targets) == ["emotion", "gender", "speaker", "style"]
    assert batch.targets["emotion"].tolist() == [0, 1, 0]
    assert batch.targets["gender"].tolist() == [0, 1, 0]
    assert batch.targets["speaker"].tolist() == [0, 1, 0]
    assert batch.targets["style"].tolist() == [0, 1, IGNORE_INDEX]
    assert all(t.dtype == torch.int64 for t in batch.targets.values())
    assert batch.ctc_target_lengths.tolist() == [11, 11, 0]
    assert batch.ctc_targets.shape == (3, 11) and batch.ctc_targets.dtype == torch.int64
    decoded = [
        labels.vocab.decode(batch.ctc_targets[i, : int(n)].tolist()) for i, n in enumerate(batch.ctc_target_lengths)
    ]
    assert decoded == ["the cat sat", "hello world", ""]
    assert torch.count_nonzero(batch.ctc_targets[2]) == 0
    no_asr = SERDataset(labels, ["gender"])[three]
    assert no_asr.ctc_targets is None and list(no_asr.targets) == ["emotion", "gender"]


def test_unknown_values_are_ignored_and_counted(three, tmp_path):
    labels = build_label_space(three, ["speaker"])
    unseen = CutSet.from_cuts([make_cut(tmp_path, "x", 0.1, emotion="hap", speaker="s9")])
    ds = SERDataset(labels, ["speaker"])
    batch = ds[unseen]
    assert batch.targets["emotion"].tolist() == [IGNORE_INDEX]
    assert batch.targets["speaker"].tolist() == [IGNORE_INDEX]
    assert ds.unknown_labels == {"emotion": 1, "speaker": 1}
    with pytest.raises(DataError, match="no classes in the label space"):
        SERDataset(labels, ["style"])


@pytest.mark.parametrize(
    "convention, factor, expected",
    [
        ("length", 0.8, [3200, 6400, 3840]),  # 0.8x the samples (the default, the paper's reading)
        ("length", 1.2, [4802, 9604, 5762]),  # 1.2x, as 1.20048x (see lhotse_speed_factor)
        ("lhotse", 0.8, [5000, 10000, 6000]),  # lhotse's reading: 1.25x
        ("lhotse", 1.2, [3333, 6667, 4000]),
    ],
)
def test_speed_perturbation_in_training_keeps_ids(three, convention, factor, expected):
    labels = build_label_space(three, [])
    ds = SERDataset(labels, [], train=True, augment=AugmentConfig(speeds=[factor], speed_convention=convention))
    batch = ds[three]
    assert batch.inputs.lengths.tolist() == expected
    assert batch.ids == ["a", "b", "c"]
    assert SERDataset(labels, [], train=False, augment=AugmentConfig(speeds=[factor]))[
        three
    ].inputs.lengths.tolist() == [4000, 8000, 4800]  # never in eval


def test_resample_and_mixdown_8k_stereo(tmp_path):
    cuts = CutSet.from_cuts([make_cut(tmp_path, "st", 0.25, sample_rate=8000, channels=2)])
    labels = build_label_space(cuts, [])
    plain = SERDataset(labels, [])[cuts]
    assert plain.inputs.samples.shape == (1, 4000)  # 0.25 s at 16 kHz, one channel
    fast = SERDataset(labels, [], train=True, augment=AugmentConfig(speeds=[0.8]))[cuts]
    assert fast.inputs.lengths.tolist() == [3200]  # 0.8x of 0.25 s at 16 kHz


def test_training_crop_is_a_counted_random_slice(three, tmp_path):
    labels = build_label_space(three, [])
    ds = SERDataset(labels, [], train=True, augment=AugmentConfig(speeds=[1.0]), max_utterance_seconds=0.2)
    batch = ds[three]
    assert batch.inputs.lengths.tolist() == [3200, 3200, 3200] and ds.source.num_cropped == 3
    full = _audio(tmp_path, "b")
    row = batch.inputs.samples[1].numpy()
    starts = [s for s in range(len(full) - 3200 + 1) if np.array_equal(full[s : s + 3200], row)]
    assert len(starts) == 1
    assert SERDataset(labels, [], max_utterance_seconds=0.2)[three].inputs.lengths.tolist() == [
        4000,
        8000,
        4800,
    ]  # eval never crops


def test_augmentation_is_reproducible_per_epoch(tmp_path):
    cuts = tiny_corpus(tmp_path, sessions=1, per_speaker=6)
    labels = build_label_space(cuts, [])
    aug = AugmentConfig(chunk_drop_prob=1.0)

    def run(epoch: int) -> Batch:
        ds = SERDataset(labels, [], train=True, augment=aug, max_utterance_seconds=0.3, seed=5)
        ds.set_epoch(epoch)
        return ds[cuts]

    a, b, c = run(0), run(0), run(1)
    assert torch.equal(a.inputs.samples, b.inputs.samples) and torch.equal(a.inputs.lengths, b.inputs.lengths)
    assert not torch.equal(a.inputs.samples, c.inputs.samples)
    # order inside the batch does not matter: the rng is per utterance
    rev = SERDataset(labels, [], train=True, augment=aug, max_utterance_seconds=0.3, seed=5)
    back = rev[CutSet.from_cuts(list(cuts)[::-1])]
    i = back.ids.index(a.ids[0])
    n = int(a.inputs.lengths[0])
    assert torch.equal(back.inputs.samples[i, :n], a.inputs.samples[0, :n])


def _lengths_by_id(loader) -> dict[str, int]:
    out = {}
    for batch in loader:
        assert isinstance(batch, Batch) and len(batch) <= 2
        out.update(zip(batch.ids, batch.inputs.lengths.tolist()))
    return out


@pytest.mark.parametrize("num_workers", [0, 1])
def test_make_dataloader_train_and_eval(tmp_path, num_workers):
    cuts = tiny_corpus(tmp_path, sessions=1, per_speaker=5)  # 10 cuts
    labels = build_label_space(cuts, ["gender"])
    cfg = DataConfig(sampler=SamplerConfig(mode="fixed", batch_size=2, num_workers=num_workers))
    loader = make_dataloader(cuts, labels, ["gender"], cfg, train=True)
    e0 = _lengths_by_id(loader)
    assert sorted(e0) == sorted(c.id for c in cuts)
    original = {c.id: c.num_samples for c in cuts}
    for cid, n in e0.items():  # every length is one of the TDSA factors' results (0.8x, 1x, 1.2x)
        assert min(abs(n - original[cid] * f) - 5e-4 * n for f in (0.8, 1.0, 1.2)) <= 1
    assert e0 == _lengths_by_id(loader)  # same epoch -> same augmentation
    set_epoch(loader, 1)
    e1 = _lengths_by_id(loader)
    assert e1 != e0  # new epoch -> new speed factors (the epoch reaches the workers)
    resumed = make_dataloader(cuts, labels, ["gender"], cfg, train=True, epoch_seed=1)
    assert _lengths_by_id(resumed) == e1
    ev = make_dataloader(cuts, labels, ["gender"], cfg, train=False)
    batches = list(ev)
    assert [i for b in batches for i in b.ids] == [c.id for c in cuts]
    assert _lengths_by_id(ev) == original
    assert batches[0].targets["gender"].tolist() == [0, 0]


def test_dataloader_bucketing_eval_duration_and_ddp(tmp_path):
    cuts = tiny_corpus(tmp_path, sessions=2, per_speaker=4)  # 16 cuts of 0.2-0.6 s
    labels = build_label_space(cuts, [])
    cfg = DataConfig(sampler=SamplerConfig(max_duration=1.0, num_buckets=2, num_workers=0), eval_max_duration=2.0)
    ev = list(make_dataloader(cuts, labels, [], cfg, train=False))
    assert all(int(b.inputs.lengths.sum()) <= 2.0 * 16000 for b in ev)
    assert any(int(b.inputs.lengths.sum()) > 1.0 * 16000 for b in ev)  # the eval limit is used
    ranks = [
        [i for b in make_dataloader(cuts, labels, [], cfg, train=True, world_size=2, rank=r) for i in b.ids]
        for r in (0, 1)
    ]
    assert not set(ranks[0]) & set(ranks[1])
    # every utterance on exactly one rank; lhotse may pad the last round with at most
    # world_size - 1 "_dup" copies so that both ranks take the same number of steps
    seen = ranks[0] + ranks[1]
    originals = [i for i in seen if "_dup" not in i]
    assert sorted(originals) == sorted(c.id for c in cuts)
    assert len(seen) - len(originals) <= 1


def test_data_config_from_yaml_dict():
    cfg = from_dict(
        DataConfig,
        {
            "manifest": "m.jsonl.gz",
            "sampler": {"mode": "fixed"},
            "augment": {"speeds": [0.9, 1.1]},
            "split": {"group_by": "speaker"},
        },
    )
    assert cfg.sampler.mode == "fixed" and cfg.sampler.batch_size == 4
    assert cfg.augment.speeds == [0.9, 1.1] and cfg.split.group_by == "speaker"
    with pytest.raises(ConfigError, match="eval_max_duration"):
        from_dict(DataConfig, {"eval_max_duration": -1})


def test_dataloader_reports_cropped_utterances(tmp_path, caplog):
    cuts = tiny_corpus(tmp_path, sessions=1, per_speaker=5)
    longer = sum(c.duration > 0.3 for c in cuts)
    assert 0 < longer < len(cuts)
    labels = build_label_space(cuts, [])
    cfg = DataConfig(
        sampler=SamplerConfig(mode="fixed", num_workers=0, max_utterance_seconds=0.3),
        augment=AugmentConfig(speeds=[1.0]),
    )
    with caplog.at_level("INFO", logger="metaser.data.dataset"):
        loader = make_dataloader(cuts, labels, [], cfg, train=True)
    assert f"{longer} of 10 training utterances are longer than max_utterance_seconds=0.3" in caplog.text
    assert max(max(b.inputs.lengths.tolist()) for b in loader) == 4800
    assert loader.dataset.source.num_cropped == longer


def test_tdsa_is_applied_before_bucketing_so_batches_respect_max_duration(tmp_path):
    """Bucketing sees the speed-perturbed durations: the audio a batch really holds stays within
    max_duration (perturbing after bucketing could exceed it by up to 1/0.8 = 1.25x)."""
    cuts = tiny_corpus(tmp_path, sessions=3, per_speaker=10, min_seconds=0.5, max_seconds=6.0)
    labels = build_label_space(cuts, [])
    cfg = DataConfig(
        sampler=SamplerConfig(max_duration=12.0, num_buckets=4, num_workers=0), augment=AugmentConfig(speeds=[0.8, 1.2])
    )
    originals = {c.id: c.num_samples for c in cuts}
    slowed = 0
    for epoch in range(3):
        for b in make_dataloader(cuts, labels, [], cfg, train=True, epoch_seed=epoch):
            assert int(b.inputs.lengths.sum()) <= 12.0 * 16000 + len(b)  # + rounding of each resampled cut
            slowed += sum(int(n) > originals[i] for i, n in zip(b.ids, b.inputs.lengths))
    assert slowed > 0  # factor 0.8 was drawn, so the check above was exercised


def test_short_cuts_are_zero_padded_to_the_receptive_field(tmp_path, caplog):
    """A 10 ms clip, and a 30 ms clip that TDSA 0.8 shortens to 384 samples, reach the model
    as 400 samples (MIN_SAMPLES): real audio first, zeros after, counted like crops."""
    cuts = CutSet.from_cuts(
        [
            make_cut(tmp_path, "ten", 0.01, seed=1),  # 160 samples
            make_cut(tmp_path, "thirty", 0.03, seed=2),  # 480 samples
            make_cut(tmp_path, "long", 0.1, seed=3),
        ]
    )  # 1600 samples
    labels = build_label_space(cuts, [])
    ds = SERDataset(labels, [])
    with caplog.at_level("WARNING", logger="metaser.data.dataset"):
        batch = ds[cuts]
    assert MIN_SAMPLES == 400
    assert batch.inputs.lengths.tolist() == [400, 480, 1600] and ds.source.audio.num_padded_short == 1
    assert np.array_equal(batch.inputs.samples[0, :160].numpy(), _audio(tmp_path, "ten"))
    assert torch.count_nonzero(batch.inputs.samples[0, 160:]) == 0
    assert "cut ten has 160 samples, fewer than min_samples=400: zero-padded" in caplog.text
    fast = SERDataset(labels, [], train=True, augment=AugmentConfig(speeds=[0.8]))
    assert fast[cuts].inputs.lengths.tolist() == [400, 400, 1280] and fast.source.audio.num_padded_short == 2
    assert SERDataset(labels, [], min_samples=0)[cuts].inputs.lengths.tolist() == [160, 480, 1600]
    with pytest.raises(DataError, match="min_samples"):
        SERDataset(labels, [], min_samples=-1)
