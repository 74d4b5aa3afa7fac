"""Speaker-independent folds: LOGO over sessions, speaker k-fold, validation splits, checks."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from lhotse import CutSet

from metaser.config import from_dict
from metaser.data.config import SplitConfig
from metaser.data.folds import FoldSplit, check_fold, describe_folds, make_folds
from metaser.data.manifest import get_field
from metaser.errors import ConfigError, DataError
from tests.data.helpers import make_cut, tiny_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> CutSet:
    # 3 sessions x 2 speakers x 20 utterances, 5 per emotion per speaker
    return tiny_corpus(tmp_path_factory.mktemp("corpus"), sessions=3, per_speaker=20)


def _speakers(cuts: CutSet, ids: list[str]) -> set[str]:
    by_id = {c.id: c for c in cuts}
    return {get_field(by_id[i], "speaker") for i in ids}


def test_logo_one_fold_per_session_and_speaker_independent(corpus):
    folds = make_folds(corpus, SplitConfig(valid_fraction=0.1))
    assert [f.name for f in folds] == ["fold1", "fold2", "fold3"]
    assert [f.test_group for f in folds] == ["1", "2", "3"]
    all_ids = {c.id for c in corpus}
    for s, f in enumerate(folds, start=1):
        assert _speakers(corpus, f.test_ids) == {f"Ses{s:02d}F", f"Ses{s:02d}M"}
        assert len(f.test_ids) == 40 and len(f.valid_ids) == 8 and len(f.train_ids) == 72
        assert not _speakers(corpus, f.test_ids) & _speakers(corpus, f.train_ids + f.valid_ids)
        assert set(f.train_ids) | set(f.valid_ids) | set(f.test_ids) == all_ids
        assert not set(f.train_ids) & set(f.valid_ids)
    # every utterance is tested exactly once over the folds
    assert Counter(i for f in folds for i in f.test_ids) == Counter({i: 1 for i in all_ids})


def test_stratified_validation_keeps_emotion_proportions_and_is_seeded(corpus):
    folds = make_folds(corpus, SplitConfig(valid_fraction=0.25, seed=3))
    by_id = {c.id: c for c in corpus}
    for f in folds:
        emos = Counter(get_field(by_id[i], "emotion") for i in f.valid_ids)
        # 80 training cuts, 20 per emotion -> 20 valid, exactly 5 per emotion
        assert emos == {"ang": 5, "hap": 5, "neu": 5, "sad": 5}
    again = make_folds(corpus, SplitConfig(valid_fraction=0.25, seed=3))
    other = make_folds(corpus, SplitConfig(valid_fraction=0.25, seed=4))
    assert [f.valid_ids for f in again] == [f.valid_ids for f in folds]
    assert [f.valid_ids for f in other] != [f.valid_ids for f in folds]


def test_valid_by_speaker_holds_out_whole_speakers(corpus):
    folds = make_folds(corpus, SplitConfig(valid_fraction=0.25, valid_by="speaker"))
    for f in folds:
        valid_spk = _speakers(corpus, f.valid_ids)
        assert len(valid_spk) == 1  # 4 training speakers x 20 cuts; 25% = one speaker
        assert len(f.valid_ids) == 20
        assert not valid_spk & _speakers(corpus, f.train_ids)


def test_valid_fraction_zero_gives_empty_valid(corpus):
    f = make_folds(corpus, SplitConfig(valid_fraction=0.0))[0]
    assert f.valid_ids == [] and len(f.train_ids) == 80


def test_speaker_kfold_disjoint_and_covering(tmp_path):
    cuts = tiny_corpus(tmp_path, sessions=3, per_speaker=4, with_session=False)
    with pytest.raises(DataError, match="group_by=speaker"):
        make_folds(cuts, SplitConfig(group_by="session"))
    folds = make_folds(cuts, SplitConfig(group_by="speaker", num_folds=3))
    assert len(folds) == 3
    tests = [set(f.test_ids) for f in folds]
    assert all(len(t) == 8 for t in tests)  # 6 speakers x 4 cuts, balanced
    assert set().union(*tests) == {c.id for c in cuts}
    assert sum(len(t) for t in tests) == len(cuts)
    spk = [_speakers(cuts, f.test_ids) for f in folds]
    assert all(len(s) == 2 for s in spk)
    assert not (spk[0] & spk[1]) and not (spk[1] & spk[2]) and not (spk[0] & spk[2])
    logo = make_folds(cuts, SplitConfig(group_by="speaker"))
    assert [f.test_group for f in logo] == ["Ses01F", "Ses01M", "Ses02F", "Ses02M", "Ses03F", "Ses03M"]


def test_speaker_kfold_balances_greedily(tmp_path):
    cuts = CutSet.from_cuts(
        make_cut(tmp_path, f"{spk}_{i}", 0.1, speaker=spk, emotion="neu", seed=i)
        for spk, n in (("A", 5), ("B", 4), ("C", 3), ("D", 2), ("E", 1))
        for i in range(n)
    )
    folds = make_folds(cuts, SplitConfig(group_by="speaker", num_folds=2, valid_fraction=0.0))
    assert [f.test_group for f in folds] == ["A+D+E", "B+C"]
    assert [len(f.test_ids) for f in folds] == [8, 7]
    with pytest.raises(ConfigError, match="num_folds"):
        make_folds(cuts, SplitConfig(group_by="speaker", num_folds=6))


def test_speaker_in_two_sessions_is_rejected(tmp_path):
    cuts = CutSet.from_cuts(
        [
            make_cut(tmp_path, "a", 0.1, speaker="x", emotion="neu", session="1"),
            make_cut(tmp_path, "b", 0.1, speaker="y", emotion="neu", session="1"),
            make_cut(tmp_path, "c", 0.1, speaker="x", emotion="neu", session="2"),
            make_cut(tmp_path, "d", 0.1, speaker="z", emotion="neu", session="2"),
        ]
    )
    with pytest.raises(DataError, match=r"speaker 'x' occurs in sessions 1, 2"):
        make_folds(cuts, SplitConfig(valid_fraction=0.0))


def test_missing_speaker_or_partial_sessions_are_errors(tmp_path):
    a = make_cut(tmp_path, "a", 0.1, speaker="x", emotion="neu", session="1")
    b = make_cut(tmp_path, "b", 0.1, speaker="y", emotion="neu")
    with pytest.raises(DataError, match="1 of 2 cuts have no 'session'"):
        make_folds(CutSet.from_cuts([a, b]), SplitConfig())
    c = make_cut(tmp_path, "c", 0.1, speaker=None, emotion="neu", session="2")
    with pytest.raises(DataError, match="no 'speaker' field"):
        make_folds(CutSet.from_cuts([a, c]), SplitConfig())


def test_check_fold_rejects_overlap_and_missing_cuts():
    speakers = {"a": "x", "b": "y", "c": "z"}
    ok = FoldSplit(0, "fold1", "1", train_ids=["a"], valid_ids=["b"], test_ids=["c"])
    check_fold(ok, speakers, ["a", "b", "c"])
    with pytest.raises(DataError, match="in both train and valid"):
        check_fold(FoldSplit(0, "fold1", "1", ["a", "b"], ["b"], ["c"]), speakers, ["a", "b", "c"])
    with pytest.raises(DataError, match="hold 2 cuts"):
        check_fold(FoldSplit(0, "fold1", "1", ["a"], [], ["c"]), speakers, ["a", "b", "c"])
    with pytest.raises(DataError, match="not speaker-independent"):
        check_fold(ok, {"a": "x", "b": "y", "c": "x"}, ["a", "b", "c"])
    with pytest.raises(DataError, match="validation speakers"):
        check_fold(ok, {"a": "x", "b": "x", "c": "z"}, ["a", "b", "c"], valid_by="speaker")


def test_subsets_and_describe(corpus, tmp_path):
    fold = make_folds(corpus, SplitConfig(valid_fraction=0.25))[1]
    train, valid, test = fold.subsets(corpus)
    assert [c.id for c in test] == fold.test_ids
    assert (len(train), len(valid), len(test)) == (60, 20, 40)
    row = describe_folds([fold], corpus)[0]
    assert row["fold"] == "fold2" and row["test_group"] == "2"
    assert row["utterances"] == {"train": 60, "valid": 20, "test": 40}
    assert row["emotions"]["test"] == {"ang": 10, "hap": 10, "neu": 10, "sad": 10}
    assert row["speakers"]["test"] == ["Ses02F", "Ses02M"]
    foreign = CutSet.from_cuts([make_cut(tmp_path, "zz", 0.1, emotion="neu")])
    with pytest.raises(DataError, match="not in the manifest"):
        fold.subsets(foreign)


def test_split_config_validation():
    assert from_dict(SplitConfig, {"group_by": "speaker", "num_folds": 5}).num_folds == 5
    with pytest.raises(ConfigError, match="num_folds"):
        from_dict(SplitConfig, {"num_folds": 1})
    with pytest.raises(ConfigError, match="valid_fraction"):
        from_dict(SplitConfig, {"valid_fraction": 1.0})
    with pytest.raises(ConfigError, match="group_by"):
        from_dict(SplitConfig, {"group_by": "corpus"})


EMODB = Path(__file__).resolve().parents[3] / "shared" / "data" / "emodb"


@pytest.mark.integration
@pytest.mark.skipif(not (EMODB / "wav").is_dir(), reason="EmoDB not found at ../shared/data/emodb")
def test_emodb_speaker_folds(tmp_path):
    from metaser.data.recipes.emodb import prepare_emodb

    cuts = prepare_emodb(EMODB, tmp_path / "emodb").cuts
    with pytest.raises(DataError, match="group_by=speaker"):
        make_folds(cuts, SplitConfig())
    logo = make_folds(cuts, SplitConfig(group_by="speaker"))
    assert len(logo) == 10
    assert [len(_speakers(cuts, f.test_ids)) for f in logo] == [1] * 10
    five = make_folds(cuts, SplitConfig(group_by="speaker", num_folds=5))
    sizes = [len(f.test_ids) for f in five]
    assert sum(sizes) == len(cuts) == 535
    assert max(sizes) - min(sizes) <= 10  # greedy balancing of 10 speakers (35..71 utts each)
    for f in five:
        assert len(_speakers(cuts, f.test_ids)) == 2
        assert not _speakers(cuts, f.test_ids) & _speakers(cuts, f.train_ids + f.valid_ids)
