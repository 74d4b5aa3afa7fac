"""EmoBox recipes: fold files -> manifest with EmoBox's folds, audio lookup, track-2 lists."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from click.testing import CliRunner

from metaser.cli import main
from metaser.config import apply_overrides, from_dict
from metaser.data.config import SplitConfig
from metaser.data.folds import make_folds
from metaser.data.manifest import EMOTION, EMOTION_RAW, TEXT_RAW, get_field, load_cut_audio, load_manifest
from metaser.data.recipes import RECIPES, prepare_emobox, prepare_emobox_track2
from metaser.data.recipes.audio_index import AudioIndex
from metaser.data.recipes.emobox import emobox_relative_path
from metaser.errors import ConfigError, DataError
from tests.data.conftest import EMODB_ROOT, REPO_ROOT, write_tone
from tests.data.emobox_fixture import EMODB_LABEL_MAP, emobox_entry, write_emobox_emodb, write_lists

# 3 speakers x 4 files, EmoDB-named
NAMES = [
    "03a01Wa",
    "03a02Nc",
    "03b01Fa",
    "03b02Ta",
    "08a01Wa",
    "08a04Nb",
    "08b01Fb",
    "08b03Tc",
    "16a01La",
    "16a02Nb",
    "16b09Fa",
    "16b10Tb",
]


@pytest.fixture
def emodb_wavs(tmp_path):
    d = tmp_path / "emodb" / "wav"
    for i, n in enumerate(NAMES):
        write_tone(d / f"{n}.wav", seconds=0.2 + 0.01 * i)
    return d


@pytest.fixture
def emobox_dir(tmp_path, emodb_wavs):
    out = tmp_path / "EmoBox" / "data" / "emodb"
    tests = write_emobox_emodb(out, emodb_wavs, num_folds=3)
    return out, tests


def test_prepare_emobox_fields_and_folds(emobox_dir, tmp_path):
    root, tests = emobox_dir
    res = prepare_emobox(root, tmp_path / "out", audio_root=tmp_path / "emodb")
    cuts = {c.id: c for c in res.cuts}
    assert sorted(cuts) == sorted(f"emodb-{n}" for n in NAMES)
    c = cuts["emodb-03a01Wa"]
    assert (get_field(c, EMOTION), get_field(c, EMOTION_RAW), get_field(c, "dataset")) == ("Angry", "anger", "emodb")
    assert get_field(cuts["emodb-08a04Nb"], EMOTION) == "Neutral"  # "neutral" vs the map's "Neutral"
    assert get_field(cuts["emodb-16a01La"], EMOTION) == "Boredom"
    # what the file name says (metaser's EmoDB recipe)
    assert (get_field(c, "speaker"), get_field(c, "gender"), get_field(c, "age")) == ("03", "male", 31)
    assert get_field(c, "text") == "der lappen liegt auf dem eisschrank." and get_field(c, TEXT_RAW)
    # the fold field is the number of the test file listing the cut
    for n, keys in tests.items():
        assert {k for k, cut in cuts.items() if get_field(cut, "fold") == str(n)} == keys
    assert all(get_field(cut, "valid_fold") is None for cut in cuts.values())
    assert all(get_field(cut, "type") is None and get_field(cut, "length") is None for cut in cuts.values())
    s = res.summary
    assert s["corpus"] == "emodb" and s["group_by"] == "fold" and s["num_skipped"] == 0
    assert s["emobox"]["folds"] == ["1", "2", "3"] and s["emobox"]["test_listed"] == {"1": 4, "2": 4, "3": 4}
    assert s["emobox"]["label_map"] == EMODB_LABEL_MAP
    assert "found by exact 12" in s["notes"][0]
    assert s["warnings"] == [
        "1 emotion class(es) with a single utterance: Boredom (it can be in a training or a test part, never both)"
    ]


def test_fold_split_rebuilds_emobox_folds(emobox_dir, tmp_path):
    root, tests = emobox_dir
    cuts = prepare_emobox(root, tmp_path / "out", audio_root=tmp_path / "emodb").cuts
    folds = make_folds(cuts, SplitConfig(group_by="fold", valid_fraction=0.25))
    assert [(f.name, f.test_group) for f in folds] == [("fold1", "1"), ("fold2", "2"), ("fold3", "3")]
    for f in folds:
        assert set(f.test_ids) == tests[int(f.test_group)]
        assert len(f.valid_ids) == 2 and len(f.train_ids) == 6
        assert not set(f.valid_ids) & tests[int(f.test_group)]
    with pytest.raises(ConfigError, match="split.num_folds: 5, but the manifest's 'fold' field names 3 folds"):
        make_folds(cuts, SplitConfig(group_by="fold", num_folds=5))
    assert len(make_folds(cuts, SplitConfig(group_by="fold", num_folds=3))) == 3
    assert from_dict(SplitConfig, {"group_by": "fold"}).group_by == "fold"


def test_fold_split_needs_the_field(tmp_path):
    from tests.data.helpers import tiny_corpus

    with pytest.raises(DataError, match="no 'fold' field") as e:
        make_folds(tiny_corpus(tmp_path, sessions=2, per_speaker=2), SplitConfig(group_by="fold"))
    assert "metaser prepare emobox" in e.value.hint


def test_folds_that_are_not_speaker_independent_are_kept(tmp_path, emodb_wavs):
    """EmoBox's real EmoDB folds mix speakers (its cv_k_fold lists): accepted as they are."""
    entries = [
        emobox_entry("emodb", f"emodb-{p.stem}", f"wav/{p.name}", "anger", p) for p in sorted(emodb_wavs.glob("*.wav"))
    ]
    folds = {
        n: {
            "train": [e for i, e in enumerate(entries) if i % 2 != n - 1],
            "test": [e for i, e in enumerate(entries) if i % 2 == n - 1],
        }
        for n in (1, 2)
    }
    root = write_lists(tmp_path / "mixed", "emodb", folds)
    cuts = prepare_emobox(root, tmp_path / "out", audio_root=emodb_wavs).cuts
    split = make_folds(cuts, SplitConfig(group_by="fold", valid_fraction=0.0))
    assert [len(f.test_ids) for f in split] == [6, 6] and all(len(f.train_ids) == 6 for f in split)
    speakers = {get_field(c, "speaker") for c in cuts if c.id in split[0].test_ids}
    assert speakers == {"03", "08", "16"}  # every speaker in every part


def test_official_valid_files(tmp_path, emodb_wavs):
    """MSP-Podcast style: one fold with train, valid and test files."""
    entries = [
        emobox_entry("msp", f"msp-{p.stem}", f"Audio/{p.name}", "N", p, spk=p.stem[:2], gender="Female")
        for p in sorted(emodb_wavs.glob("*.wav"))
    ]
    root = write_lists(tmp_path / "msp", "msp", {1: {"train": entries[:6], "valid": entries[6:9], "test": entries[9:]}})
    res = prepare_emobox(root, tmp_path / "out", audio_root=emodb_wavs)
    cuts = {c.id: c for c in res.cuts}
    first = cuts[entries[0]["key"]]
    assert (get_field(first, "speaker"), get_field(first, "gender"), get_field(first, EMOTION)) == ("03", "female", "N")
    assert [get_field(cuts[e["key"]], "valid_fold") for e in entries[6:9]] == ["1"] * 3
    assert [get_field(cuts[e["key"]], "fold") for e in entries[:6]] == [None] * 6
    assert res.summary["emobox"]["valid_files"] == ["1"]
    (fold,) = make_folds(res.cuts, SplitConfig(group_by="fold"))
    assert fold.valid_ids == [e["key"] for e in entries[6:9]]
    assert fold.train_ids == [e["key"] for e in entries[:6]] and fold.test_ids == [e["key"] for e in entries[9:]]


def _lists(tmp_path, emodb_wavs, name, folds_of):
    entries = {
        p.stem: emobox_entry("emodb", f"emodb-{p.stem}", f"wav/{p.name}", "anger", p)
        for p in sorted(emodb_wavs.glob("*.wav"))
    }
    folds = {n: {part: [entries[s] for s in stems] for part, stems in parts.items()} for n, parts in folds_of.items()}
    return write_lists(tmp_path / name, "emodb", folds)


@pytest.mark.parametrize(
    ("folds_of", "match"),
    [
        (
            {1: {"train": NAMES[:8], "test": NAMES[7:]}},
            r"fold 1 lists 1 key\(s\) in both train and test: emodb-08b03Tc",
        ),
        (
            {1: {"train": NAMES[6:], "test": NAMES[:6]}, 2: {"train": NAMES[:5], "test": NAMES[5:]}},
            r"1 key\(s\) are in the test files of several folds \(e.g. emodb-08a04Nb: folds 1, 2\)",
        ),
        (
            {1: {"train": NAMES[6:], "test": NAMES[:6]}, 2: {"train": NAMES[:6], "test": NAMES[6:11]}},
            r"fold 2's files leave out 1 key\(s\) that other folds list: emodb-16b10Tb",
        ),
        ({1: {"train": NAMES[6:]}}, r"fold_1: no test file"),
    ],
)
def test_not_a_partition(tmp_path, emodb_wavs, folds_of, match):
    root = _lists(tmp_path, emodb_wavs, "bad", folds_of)
    with pytest.raises(DataError, match=match):
        prepare_emobox(root, tmp_path / "out", audio_root=emodb_wavs)
    assert not (tmp_path / "out").exists()


def test_bad_folders_and_lines(tmp_path, emodb_wavs):
    with pytest.raises(DataError, match="EmoBox corpus folder not found"):
        prepare_emobox(tmp_path / "nope", tmp_path / "o", audio_root=emodb_wavs)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no fold_N/<corpus>_test_fold_N.jsonl files"):
        prepare_emobox(tmp_path / "empty", tmp_path / "o", audio_root=emodb_wavs)
    root = _lists(tmp_path, emodb_wavs, "ok", {1: {"train": NAMES[6:], "test": NAMES[:6]}})
    with pytest.raises(DataError, match="audio root not found"):
        prepare_emobox(root, tmp_path / "o", audio_root=tmp_path / "nowhere")
    f = root / "fold_1" / "emodb_test_fold_1.jsonl"
    f.write_text(f.read_text() + '{"key": "x", "wav": "a.wav"}\n')
    with pytest.raises(DataError, match=r"emodb_test_fold_1.jsonl:7: needs 'key', 'wav' and 'emo'"):
        prepare_emobox(root, tmp_path / "o", audio_root=emodb_wavs)
    f.write_text(f.read_text().replace('{"key": "x", "wav": "a.wav"}', "not json"))
    with pytest.raises(DataError, match=r"emodb_test_fold_1.jsonl:7: not a JSON object"):
        prepare_emobox(root, tmp_path / "o", audio_root=emodb_wavs)


def test_audio_lookup_case_missing_ambiguous_strict(tmp_path, emobox_dir, emodb_wavs):
    root, _ = emobox_dir
    audio = tmp_path / "copy"
    for i, n in enumerate(NAMES[:-2]):
        sub = "WAV" if i % 2 else "other/deeper"
        write_tone(audio / sub / f"{n}.wav", seconds=0.2)
    write_tone(audio / "x" / f"{NAMES[-2]}.wav")
    write_tone(audio / "y" / f"{NAMES[-2]}.wav")  # the same name twice: ambiguous
    res = prepare_emobox(root, tmp_path / "out", audio_root=audio)
    assert len(res.cuts) == 10
    assert {(d["utt_id"], d["reason"]) for d in res.summary["skipped"]} == {
        (f"emodb-{NAMES[-2]}", "ambiguous audio"),
        (f"emodb-{NAMES[-1]}", "missing"),
    }
    assert "2 candidates" in next(d["detail"] for d in res.summary["skipped"] if d["reason"] == "ambiguous audio")
    assert "found by case 5, name 5" in res.summary["notes"][0]
    with pytest.raises(DataError, match=r"2 utterance\(s\) cannot be used \(strict mode\)"):
        prepare_emobox(root, tmp_path / "strict", audio_root=audio, strict=True)


def test_audio_index_rules(tmp_path):
    for rel in (
        "Audio_Speech_Actors_01-24/Actor_01/a.wav",
        "b/x/c.wav",
        "b/y/c.wav",
        "d/C.WAV",
        "e/Unique.WAV",
        ".hidden/z.wav",
    ):
        write_tone(tmp_path / rel)
    idx = AudioIndex(tmp_path)
    assert len(idx) == 5
    assert idx.resolve("Audio_Speech_Actors_01-24/Actor_01/a.wav").how == "exact"
    r = idx.resolve("audio_speech_actors_01-24/actor_01/a.wav")
    assert (r.how, r.path) == ("case", tmp_path / "Audio_Speech_Actors_01-24/Actor_01/a.wav")
    assert idx.resolve("elsewhere/a.wav").how == "name"
    assert idx.resolve("q/c.wav").how == "ambiguous audio" and len(idx.resolve("q/c.wav").candidates) == 2
    assert idx.resolve("root/b/y/c.wav").path == tmp_path / "b/y/c.wav"  # the closer of two
    assert idx.resolve("c.wav").how == "ambiguous audio"  # d/C.WAV is another name: not a candidate
    assert (idx.resolve("d/c.wav").how, idx.resolve("f/unique.wav").how) == ("case", "name-case")
    assert idx.resolve("z.wav").how == "missing" and idx.resolve("").how == "missing"
    assert emobox_relative_path("downloads/ravdess/Audio_Speech/Actor_01/a.wav") == "Audio_Speech/Actor_01/a.wav"
    assert emobox_relative_path("wav\\a.wav") == "wav/a.wav"


def test_segments_and_extra_fields(tmp_path):
    wav = tmp_path / "audio" / "long.wav"
    write_tone(wav, seconds=3.0)
    e1 = emobox_entry(
        "pavoque",
        "pavoque-m1-poker",
        "long.wav",
        "poker",
        wav,
        start_time=0.5,
        end_time=1.25,
        speaker_info={"id": 1},
        quality=0.5,
    )
    e2 = emobox_entry("pavoque", "pavoque-m2-angry", "long.wav", "angry", wav, start_time=2.0, end_time=9.0)
    e3 = emobox_entry("pavoque", "pavoque-m3-angry", "long.wav", "angry", wav, start_time=1.0, end_time=2.0)
    root = write_lists(tmp_path / "pavoque", "pavoque", {1: {"train": [e3], "test": [e1, e2]}})
    res = prepare_emobox(root, tmp_path / "out", audio_root=tmp_path / "audio")
    cuts = {c.id: c for c in res.cuts}
    seg = cuts["pavoque-m1-poker"]
    assert (seg.start, seg.duration) == (0.5, 0.75)
    assert (seg.supervisions[0].start, seg.supervisions[0].duration) == (0.0, 0.75)
    assert load_cut_audio(seg).shape == (12000,)
    assert get_field(seg, "quality") == 0.5 and json.loads(get_field(seg, "speaker_info")) == {"id": 1}
    assert {(d["utt_id"], d["reason"]) for d in res.summary["skipped"]} == {("pavoque-m2-angry", "bad segment")}
    reloaded = {c.id: c for c in load_manifest(tmp_path / "out")}
    assert load_cut_audio(reloaded["pavoque-m1-poker"]).shape == (12000,)


def test_length_mismatch_and_unmapped_labels_warn(tmp_path, emodb_wavs):
    p = sorted(emodb_wavs.glob("*.wav"))
    entries = [emobox_entry("emodb", f"emodb-{x.stem}", f"wav/{x.name}", "anger", x) for x in p[:4]]
    entries[0]["length"] += 0.5
    entries[1]["emo"] = "contempt"
    root = write_lists(tmp_path / "w", "emodb", {1: {"train": entries[:2], "test": entries[2:]}}, {"anger": "ang"})
    (root / "fold_1" / "emodb_test_fold1.jsonl").write_text("{}\n")  # an older name: not read
    res = prepare_emobox(root, tmp_path / "out", audio_root=emodb_wavs)
    assert get_field(next(c for c in res.cuts if c.id == entries[1]["key"]), EMOTION) == "contempt"
    w = res.summary["warnings"]
    assert "label(s) not in label_map.json, kept as they are: contempt (1)" in w
    assert any("1 file(s) differ from EmoBox's length" in x for x in w)
    assert "older fold files not read: emodb_test_fold1.jsonl" in res.summary["notes"]


@pytest.mark.skipif(not EMODB_ROOT.is_dir(), reason="the real EmoDB is not available")
def test_real_emodb_in_emobox_format(tmp_path):
    """535 real files, EmoBox-format lists whose paths (downloads/emodb/wav/...) do not match
    the audio root (the wav folder itself): every file is found by name, and each fold's test
    part is exactly its test file."""
    root = tmp_path / "data" / "emodb"
    tests = write_emobox_emodb(root, EMODB_ROOT / "wav", num_folds=5)
    res = prepare_emobox(root, tmp_path / "out", audio_root=EMODB_ROOT / "wav", strict=True)
    assert len(res.cuts) == 535 and res.summary["num_skipped"] == 0
    assert Counter(get_field(c, EMOTION_RAW) for c in res.cuts) == {
        "anger": 127,
        "boredem": 81,
        "neutral": 79,
        "happy": 71,
        "fear": 69,
        "sad": 62,
        "disgust": 46,
    }
    folds = make_folds(res.cuts, SplitConfig(group_by="fold", num_folds=5, valid_fraction=0.1))
    assert [set(f.test_ids) for f in folds] == [tests[n] for n in range(1, 6)]
    assert sum(len(f.test_ids) for f in folds) == 535


def test_tiny_config_points_at_an_emobox_manifest(emobox_dir, tmp_path):
    """configs/emodb/tiny.yaml with overrides only: data.manifest and data.split.group_by=fold
    (and split.num_folds when EmoBox's fold count is not the preset's 5)."""
    from metaser.config import load_config
    from metaser.training.config import RunConfig

    root, tests = emobox_dir
    res = prepare_emobox(root, tmp_path / "out", audio_root=tmp_path / "emodb")
    cfg = load_config(
        RunConfig,
        REPO_ROOT / "configs" / "emodb" / "tiny.yaml",
        [f"data.manifest={res.cuts_path}", "data.split.group_by=fold", "data.split.num_folds=null"],
    )
    folds = make_folds(load_manifest(cfg.data.manifest), cfg.data.split)
    assert [set(f.test_ids) for f in folds] == [tests[n] for n in (1, 2, 3)]
    cuts = load_manifest(cfg.data.manifest)
    for task in cfg.aux_tasks:  # gender, speaker, asr: the file names give them
        field = "text" if task == "asr" else task
        assert all(get_field(c, field) for c in cuts), task


# ----------------------------------------------------------------------------- track 2


def _track2_audio(tmp_path):
    audio = tmp_path / "ravdess" / "Audio_Speech_Actors_01-24"
    names = ["03-01-03-01-01-02-15", "03-01-05-01-02-01-15", "03-01-01-01-02-02-08", "03-01-04-02-02-01-08"]
    for n in names:
        write_tone(audio / f"Actor_{n[-2:]}" / f"{n}.wav", seconds=0.2, sr=48000)
    return tmp_path / "ravdess", names


def test_track2_jsonl(tmp_path):
    audio, names = _track2_audio(tmp_path)
    labels = ["happy", "angry", "neutral", "sad"]
    lines = [
        json.dumps({"wav_filename": f"Actor_{n[-2:]}/{n}.wav", "label": lab, "speaker": n[-2:]})
        for n, lab in zip(names, labels)
    ]
    lines.append(json.dumps({"wav_filename": "Actor_99/03-01-01-01-01-01-99.wav", "label": "neutral", "speaker": "99"}))
    lst = tmp_path / "RAVDESS_selected_balenced.jsonl"
    lst.write_text("\n".join(lines) + "\n")
    res = prepare_emobox_track2(lst, tmp_path / "out", audio_root=audio)
    cuts = {c.id: c for c in res.cuts}
    assert sorted(cuts) == sorted(names)
    c = cuts[names[0]]
    assert (get_field(c, EMOTION), get_field(c, EMOTION_RAW), get_field(c, "speaker")) == ("happy", "happy", "15")
    assert (get_field(c, "gender"), get_field(c, "intensity")) == ("male", "normal")  # from the name
    assert get_field(c, "fold") is None
    assert [(d["utt_id"], d["reason"]) for d in res.summary["skipped"]] == [("03-01-01-01-01-01-99", "missing")]
    assert "found by name 4" in res.summary["notes"][0]


@pytest.mark.parametrize("header", [True, False])
@pytest.mark.parametrize("sep", ["\t", ","])
def test_track2_tables(tmp_path, header, sep):
    audio, names = _track2_audio(tmp_path)
    rows = [sep.join([f"happy/{n}.wav", "happy", n[-2:]]) for n in names]
    lst = tmp_path / "list.tsv"
    lst.write_text("\n".join(([sep.join(["wav_filename", "label", "speaker"])] if header else []) + rows) + "\n")
    res = prepare_emobox_track2(lst, tmp_path / "out", audio_root=audio)
    assert sorted(c.id for c in res.cuts) == sorted(names)
    assert {get_field(c, "speaker") for c in res.cuts} == {"15", "08"}


def test_track2_errors(tmp_path):
    audio, names = _track2_audio(tmp_path)
    lst = tmp_path / "l.jsonl"
    lst.write_text('{"wav_filename": "a/x.wav", "label": "happy"}\n{"wav_filename": "b/x.wav", "label": "sad"}\n')
    with pytest.raises(DataError, match=r"1 file name\(s\) listed twice"):
        prepare_emobox_track2(lst, tmp_path / "o", audio_root=audio)
    lst.write_text('{"wav_filename": "a/x.wav"}\n')
    with pytest.raises(DataError, match=r"l.jsonl:1: needs 'wav_filename' and 'label'"):
        prepare_emobox_track2(lst, tmp_path / "o", audio_root=audio)
    with pytest.raises(DataError, match="track-2 list not found"):
        prepare_emobox_track2(tmp_path / "none.jsonl", tmp_path / "o", audio_root=audio)


# ----------------------------------------------------------------------------- CLI


def test_cli_prepare_emobox_and_track2(emobox_dir, tmp_path):
    root, _ = emobox_dir
    out = tmp_path / "cli"
    r = CliRunner().invoke(
        main, ["prepare", "emobox", str(root), "--audio-root", str(tmp_path / "emodb"), "-o", str(out)]
    )
    assert r.exit_code == 0, r.output
    assert "emodb: 12 utterances" in r.output and (out / "cuts.jsonl.gz").is_file()
    r = CliRunner().invoke(main, ["prepare", "emobox", str(root), "-o", str(out)])
    assert r.exit_code == 2 and "--audio-root" in r.output
    bad = tmp_path / "bad"
    r = CliRunner().invoke(main, ["prepare", "emobox", str(bad), "--audio-root", str(tmp_path), "-o", str(out)])
    assert r.exit_code == 2 and "EmoBox corpus folder not found" in r.output
    audio, names = _track2_audio(tmp_path)
    lst = tmp_path / "RAVDESS_selected_balenced.jsonl"
    lst.write_text(
        "".join(json.dumps({"wav_filename": f"{n}.wav", "label": "x", "speaker": "1"}) + "\n" for n in names)
    )
    r = CliRunner().invoke(
        main, ["prepare", "emobox-track2", str(lst), "--audio-root", str(audio), "-o", str(tmp_path / "t2")]
    )
    assert r.exit_code == 0, r.output
    assert sorted(RECIPES) == ["csv", "emobox", "emobox-track2", "emodb", "iemocap", "ravdess"]


def test_overrides_reach_group_by_fold():
    from metaser.data.config import DataConfig

    cfg = apply_overrides(DataConfig(), ["split.group_by=fold", "split.num_folds=null"])
    assert cfg.split.group_by == "fold" and cfg.split.num_folds is None
