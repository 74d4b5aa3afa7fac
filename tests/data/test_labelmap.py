"""The common label map (metaser.data.labelmap): default names, files, cuts, errors."""

from __future__ import annotations

from collections import Counter

import pytest

from metaser.data.labelmap import COMMON_LABELS, LabelMap, default_label_map, load_label_map
from metaser.errors import ConfigError
from tests.data.helpers import make_cut


def test_default_map_by_name_case_insensitive():
    m = default_label_map()
    assert [
        m.map(x)
        for x in (
            "Happiness",
            "happy",
            "JOY",
            "hap",
            "anger",
            "Angry",
            "ang",
            "sadness",
            "SAD",
            "Neutral",
            "neutral  state",
            " neu ",
        )
    ] == ["hap", "hap", "hap", "hap", "ang", "ang", "ang", "sad", "sad", "neu", "neu", "neu"]
    assert m.map("boredom") is None and m.map("fear") is None and m.map(None) is None
    assert m.map("excited") is None and m.map("exc") is None  # only on request
    assert m.targets == list(COMMON_LABELS)
    exc = default_label_map(merge_excited=True)
    assert exc.map("Excited") == exc.map("exc") == exc.map("excitement") == "hap"
    assert load_label_map("default+exc").mapping == exc.mapping
    assert load_label_map(None).mapping == load_label_map("default").mapping == m.mapping


def test_map_labels_counts_dropped():
    res = default_label_map().map_labels(["anger", "boredom", "happiness", "Boredom", "fear", "neutral"])
    assert res.kept == ["anger", "happiness", "neutral"]
    assert res.labels == ["ang", "hap", "neu"]
    assert res.dropped == Counter({"boredom": 1, "Boredom": 1, "fear": 1})
    assert res.num_dropped == 3


def test_map_cuts_keeps_cuts_in_order(tmp_path):
    cuts = [
        make_cut(tmp_path, "a", 0.1, emotion="anger"),
        make_cut(tmp_path, "b", 0.1, emotion="disgust"),
        make_cut(tmp_path, "c", 0.1, emotion="sadness", emotion_raw="T"),
    ]
    res = default_label_map().map_cuts(cuts)
    assert [c.id for c in res.kept] == ["a", "c"] and res.labels == ["ang", "sad"]
    assert res.dropped == Counter({"disgust": 1})
    by_raw = LabelMap({"t": "sad"}, "inline").map_cuts(cuts, field_name="emotion_raw")
    assert [c.id for c in by_raw.kept] == ["c"] and by_raw.dropped == Counter({"anger": 1, "disgust": 1})


def test_load_yaml_file(tmp_path):
    f = tmp_path / "map.yaml"
    f.write_text("Wut: ang\nFreude: hap\nLangeweile: null\nneutral: neu\n", encoding="utf-8")
    m = load_label_map(f)
    assert m.source == str(f)
    assert (m.map("wut"), m.map("FREUDE"), m.map("Langeweile"), m.map("anger")) == ("ang", "hap", None, None)
    assert m.targets == ["neu", "hap", "ang"]
    assert m.map_labels(["Langeweile", "Wut"]).dropped == Counter({"Langeweile": 1})


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("anger: ang\n  bad indent: [\n", r"not valid YAML \(line \d+\)"),
        ("- anger\n- sad\n", "top level must be a mapping"),
        ("", "is empty"),
        ("anger: [ang]\n", "common label must be a non-empty string"),
        ("anger: ang\nAnger: sad\n", "'anger' and 'Anger' are the same label"),
        ("anger: null\n", "every label maps to null"),
    ],
)
def test_bad_files(tmp_path, text, match):
    f = tmp_path / "bad.yaml"
    f.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=match):
        load_label_map(f)


def test_missing_and_non_utf8(tmp_path):
    with pytest.raises(ConfigError, match="label map not found"):
        load_label_map(tmp_path / "nope.yaml")
    f = tmp_path / "latin.yaml"
    f.write_bytes("Ärger: ang\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_label_map(f)
