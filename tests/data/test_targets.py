"""Regression targets and soft emotion targets in the label space and the collated batch."""

from __future__ import annotations

import math

import pytest
import torch
from lhotse import CutSet

from metaser.data.dataset import SERDataset, build_label_space, count_vote_fallbacks
from metaser.data.labels import IGNORE_INDEX, LabelSpace, vote_distribution
from metaser.errors import DataError
from tests.data.helpers import make_cut


@pytest.fixture()
def rated(tmp_path) -> CutSet:
    """Three cuts with IEMOCAP-style ratings (valence / activation / dominance) and votes."""
    return CutSet.from_cuts(
        [
            make_cut(tmp_path, "a", 0.1, emotion="ang", valence=1.5, activation=4.0, dominance=4, age=31,
                     vote_ang=3.0, vote_hap=0.0, vote_neu=1.0, vote_sad=0.0, votes_dropped=1.0, seed=1),
            make_cut(tmp_path, "b", 0.1, emotion="sad", valence=2.0, activation=1.5, dominance=2, age=35,
                     vote_ang=0.0, vote_hap=0.0, vote_neu=0.0, vote_sad=0.0, votes_dropped=2.0, seed=2),
            make_cut(tmp_path, "c", 0.1, emotion="neu", valence=3.0, arousal=2.5, activation=9.0, seed=3),
        ]
    )  # fmt: skip


def test_numbers_make_a_regression_task_and_arousal_reads_activation(rated):
    labels = build_label_space(rated, ["valence", "arousal", "dominance", "age", "gender"])
    assert labels.regression == ["valence", "arousal", "dominance", "age"]  # ints are numbers too
    assert labels.classes == {"emotion": ["ang", "neu", "sad"], "gender": ["female"]}
    assert LabelSpace.from_dict(labels.to_dict()) == labels  # labels.json keeps them
    assert "regression" not in build_label_space(rated, ["gender"]).to_dict()  # only written when there is one
    batch = SERDataset(labels, ["valence", "arousal", "age"])[rated]
    assert batch.targets["valence"].dtype == torch.float32
    assert batch.targets["valence"].tolist() == [1.5, 2.0, 3.0]
    # "arousal" reads the field "arousal" first (cut c), else IEMOCAP's "activation"
    assert batch.targets["arousal"].tolist() == [4.0, 1.5, 2.5]
    age = batch.targets["age"].tolist()
    assert age[:2] == [31.0, 35.0] and math.isnan(age[2])  # unknown: NaN
    assert batch.targets["emotion"].dtype == torch.int64


def test_a_field_mixing_numbers_and_strings_is_a_clear_error(rated, tmp_path):
    mixed = CutSet.from_cuts([*rated, make_cut(tmp_path, "d", 0.1, emotion="hap", valence="high", seed=4)])
    with pytest.raises(DataError, match=r"task 'valence': its training values mix numbers \(1.5 in cut a\) and "
                       r"strings \('high' in cut d\)"):  # fmt: skip
        build_label_space(mixed, ["valence"])
    build_label_space(mixed, ["gender"])  # a task that is not asked for is not checked
    with pytest.raises(DataError, match="no training utterance has a 'arousal' or 'activation' field"):
        build_label_space(CutSet.from_cuts([make_cut(tmp_path, "e", 0.1, seed=5)]), ["arousal"])


def test_a_regression_main_task(rated, tmp_path):
    labels = build_label_space(rated, ["gender", "valence"], main_task="arousal")
    assert labels.regression == ["arousal", "valence"] and "emotion" not in labels.classes
    batch = SERDataset(labels, ["gender", "valence"], main_task="arousal")[rated]
    assert list(batch.targets) == ["gender", "arousal", "valence"]
    assert batch.targets["arousal"].tolist() == [4.0, 1.5, 2.5]
    with pytest.raises(DataError, match="main_task 'gender': its values are categories"):
        build_label_space(rated, [], main_task="gender")
    # a string in the validation / test part of a regression task is unknown (NaN), counted
    odd = CutSet.from_cuts([make_cut(tmp_path, "f", 0.1, valence="n/a", activation=3.0, seed=6)])
    ds = SERDataset(labels, ["valence"], main_task="arousal")
    assert math.isnan(ds[odd].targets["valence"].item()) and ds.unknown_labels == {"valence": 1}


def test_soft_targets_are_the_vote_distribution_with_a_counted_fallback(rated):
    labels = build_label_space(rated, [])
    classes = labels.classes["emotion"]  # ang, neu, sad (no hap in training)
    assert vote_distribution(next(iter(rated)), classes) == [0.75, 0.25, 0.0]  # vote_hap is not a class here
    ds = SERDataset(labels, [], emotion_target="soft")
    batch = ds[rated]
    assert batch.emotion_dist.dtype == torch.float32 and batch.emotion_dist.shape == (3, 3)
    # a: votes 3 ang / 1 neu; b: votes sum to 0 -> one-hot of 'sad'; c: no vote field -> one-hot of 'neu'
    assert batch.emotion_dist.tolist() == [[0.75, 0.25, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
    assert batch.emotion_dist_voted.tolist() == [True, False, False]
    assert batch.targets["emotion"].tolist() == [0, 2, 1]  # the hard labels stay (UA / WA)
    assert ds.num_vote_fallbacks == 2 and count_vote_fallbacks(rated, classes) == 2
    assert SERDataset(labels, [])[rated].emotion_dist is None  # hard: nothing extra
    with pytest.raises(DataError, match="needs emotion as the main task"):
        SERDataset(build_label_space(rated, [], main_task="valence"), [], main_task="valence", emotion_target="soft")


def test_soft_targets_of_a_cut_without_label_or_votes_are_zeros(rated, tmp_path):
    labels = build_label_space(rated, [])
    unlabelled = CutSet.from_cuts([make_cut(tmp_path, "u", 0.1, emotion="fear", seed=7)])
    batch = SERDataset(labels, [], emotion_target="soft")[unlabelled]
    assert batch.targets["emotion"].tolist() == [IGNORE_INDEX]
    assert batch.emotion_dist.tolist() == [[0.0, 0.0, 0.0]]
    bad = CutSet.from_cuts([make_cut(tmp_path, "v", 0.1, emotion="ang", vote_ang=-1.0, seed=8)])
    with pytest.raises(DataError, match="'vote_ang' = -1.0 is not a vote weight"):
        SERDataset(labels, [], emotion_target="soft")[bad]
