"""The synthetic IEMOCAP-shaped demo corpus (metaser.experiments.demo.corpus) and its eSpeak NG binding."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from metaser.config import apply_overrides, from_dict, to_dict
from metaser.errors import ConfigError, DataError
from metaser.experiments.demo.corpus import (
    DIALOGS,
    SPEAKERS,
    PlannedTurn,
    SynthConfig,
    assign_prosody,
    plan_corpus,
    render_turn,
    synthesize_demo_corpus,
)
from metaser.experiments.demo.corpus.espeak import EspeakSynth, VoiceSpec

TINY = 24
# Label quota of a size-24 corpus: 22 target turns split 6/6/5/5 (one hap is exc), 2 non-target.
TINY_LABELS = {"ang": 5, "exc": 1, "fru": 1, "hap": 5, "neu": 6, "sad": 5, "xxx": 1}

# The real corpus' formats (IEMOCAP_full_release), written independently of the generator.
TURN_RE = re.compile(
    r"^\[(\d+\.\d{4}) - (\d+\.\d{4})\]\t(Ses\d\d[FM]_\S+)\t([a-z]{3})\t"
    r"\[(\d\.\d{4}), (\d\.\d{4}), (\d\.\d{4})\]$"
)
CAT_RE = re.compile(r"^C-[EFM]\d:\t[A-Z][a-z]+( [a-z]+)?(; [A-Z][a-z]+( [a-z]+)?)?;\t\(\)$")
DIM_RE = re.compile(r"^A-E\d:\tval [1-5]; act [1-5]; dom  [1-5];\t\(\)$")
TRANS_RE = re.compile(r"^(Ses\d\d[FM]_\S+) \[(\d{3}\.\d{4})-(\d{3}\.\d{4})\]: (.+)$")


def f0_median(x: np.ndarray, sr: int) -> float:
    """Median autocorrelation pitch (Hz) of the loud, periodic 40 ms frames."""
    hop, win = sr // 100, sr // 25
    lo, hi = sr // 450, sr // 60
    level = 0.3 * np.sqrt(np.mean(x**2))
    out = []
    for i in range(0, len(x) - win, hop):
        fr = x[i : i + win] - x[i : i + win].mean()
        if np.sqrt(np.mean(fr**2)) < level:
            continue
        ac = np.correlate(fr, fr, "full")[win - 1 :]
        k = lo + int(np.argmax(ac[lo:hi]))
        if ac[k] > 0.3 * ac[0]:
            out.append(sr / k)
    return float(np.median(out))


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


def read_tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(root, report) of one size-24 corpus, shared by the read-only tests of this module."""
    root = tmp_path_factory.mktemp("synth") / "IEMOCAP_full_release"
    return root, synthesize_demo_corpus(root, seed=0, size=TINY)


def parse_emo_file(path: Path) -> list[tuple[float, float, str, str]]:
    """(start, end, utt_id, label) of every turn; asserts the real file's line structure."""
    lines = path.read_text().split("\n")
    assert lines[0].startswith("%")
    turns = []
    for i, line in enumerate(lines):
        m = TURN_RE.match(line)
        if not m:
            continue
        assert lines[i - 1] == "", f"{path.name}: no blank line before {line!r}"
        block = []
        for nxt in lines[i + 1 :]:
            if nxt == "":
                break
            block.append(nxt)
        cats = [b for b in block if b.startswith("C-")]
        assert 3 <= len(cats) <= 5 and [b[:2] for b in block] == ["C-"] * len(cats) + ["A-"] * 3, block
        assert all(CAT_RE.match(b) for b in cats), block
        assert sum(b.startswith("C-E") for b in cats) in (3, 4), block  # 3-4 evaluators, maybe a self line
        assert all(DIM_RE.match(b) for b in block[len(cats) :]), block
        turns.append((float(m.group(1)), float(m.group(2)), m.group(3), m.group(4)))
    assert sum(bool(TURN_RE.match(ln)) for ln in lines) == len(turns) > 0
    return turns


# ----------------------------------------------------------------------------- planning


def test_plan_default_size_is_balanced():
    turns = plan_corpus(SynthConfig())
    assert len(turns) == 400
    counts: dict[str, int] = {}
    for t in turns:
        counts[t.label] = counts.get(t.label, 0) + 1
    assert counts == {"neu": 92, "hap": 83, "exc": 9, "ang": 92, "sad": 92, "fru": 11, "xxx": 11, "sur": 10}
    per_speaker = {s: sum(t.speaker == s for t in turns) for s in SPEAKERS}
    assert set(per_speaker.values()) == {40}
    assert {t.style for t in turns} == {"impro", "script"}
    assert len({t.utt_id for t in turns}) == 400


def test_plan_scripts_repeat_across_sessions():
    turns = plan_corpus(SynthConfig())
    first_lines: dict[str, str] = {}
    for t in turns:  # the first turn of each dialog, tags removed
        first_lines.setdefault(t.dialog, re.sub(r"\s*\[[A-Z]+\]\s*", "", t.text))
    # script01 part 1 opens with the same line in sessions 1, 3 and 5 (_1b is a re-take of _1)
    assert first_lines["Ses01F_script01_1"] == first_lines["Ses05M_script01_1b"] == "Excuse me, is this the right line?"
    assert first_lines["Ses02M_script01_2"] == first_lines["Ses04M_script01_2"] == "Please take a number and sit down."


def test_config_round_trip_and_validation():
    cfg = SynthConfig()
    assert from_dict(SynthConfig, to_dict(cfg)) == cfg
    assert apply_overrides(cfg, ["prosody.ang.volume=90", "size=40"]).prosody["ang"].volume == 90
    with pytest.raises(ConfigError, match="synth.seed: -1 must be >= 0"):
        plan_corpus(SynthConfig(seed=-1))
    with pytest.raises(ConfigError, match="synth.size: 5 is too small"):
        plan_corpus(SynthConfig(size=5))
    bad = SynthConfig()
    del bad.prosody["sad"]
    with pytest.raises(ConfigError, match="no entry for label.* sad"):
        plan_corpus(bad)
    loud = SynthConfig()
    loud.prosody["ang"].volume = 150
    with pytest.raises(ConfigError, match="synth.prosody.ang"):
        plan_corpus(loud)


# ----------------------------------------------------------------------------- files


def test_layout_and_formats(tiny):
    root, report = tiny
    assert report.n_utterances == TINY == len(report.utterances)
    assert report.per_label == TINY_LABELS
    assert report.per_session == {"Session1": 5, "Session2": 5, "Session3": 5, "Session4": 5, "Session5": 4}
    assert report.n_unlabelled_lines == 20
    assert report.target_counts() == {"neu": 6, "hap": 6, "ang": 5, "sad": 5}

    labelled: dict[str, tuple[float, float, str]] = {}
    transcribed: dict[str, tuple[float, float, str]] = {}
    for s in range(1, 6):
        emo_dir = root / f"Session{s}" / "dialog" / "EmoEvaluation"
        files = sorted(p.name for p in emo_dir.glob("*.txt"))
        assert files == sorted(f"{d}.txt" for d in DIALOGS[s])
        assert sorted(p.name for p in (emo_dir / "Categorical").glob("*.txt")) == sorted(
            f"{d}_e1_cat.txt" for d in DIALOGS[s]
        )
        for f in files:
            for start, end, utt, label in parse_emo_file(emo_dir / f):
                assert utt.startswith(f[:-4] + "_")
                labelled[utt] = (start, end, label)
            trans_file = root / f"Session{s}" / "dialog" / "transcriptions" / f
            for line in trans_file.read_text().splitlines():
                m = TRANS_RE.match(line)
                assert m, line
                transcribed.setdefault(m.group(1), (float(m.group(2)), float(m.group(3)), m.group(4)))
    assert sorted(labelled) == sorted(u.utt_id for u in report.utterances)
    unlabelled = sorted(set(transcribed) - set(labelled))
    assert len(unlabelled) == 20 and all(re.search(r"_[FM]XX0$", u) for u in unlabelled)

    wavs = sorted(root.glob("Session*/sentences/wav/*/*.wav"))
    assert sorted(p.stem for p in wavs) == sorted(labelled)
    for u in report.utterances:
        start, end, label = labelled[u.utt_id]
        assert label == u.label
        assert transcribed[u.utt_id] == (start, end, u.text)
        info = sf.info(str(root / u.path))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert Path(u.path).parts[-2] == u.dialog
        assert abs(info.duration - (end - start)) < 2e-4
        assert 0.8 < info.duration < 5.0
    readme = (root / "README.txt").read_text()
    assert "SYNTHETIC" in readme and "seed: 0" in readme and "eSpeak NG" in readme


def test_id_traps_and_gender_rule(tiny):
    root, report = tiny
    ids = [u.utt_id for u in report.utterances]
    assert any(i.startswith("Ses03M_impro05a_") for i in ids)
    assert any(i.startswith("Ses05M_script01_1b_") for i in ids)
    voices = {v.voice_name: v for v in SPEAKERS.values()}
    mismatched = 0
    for u in report.utterances:
        letter = u.utt_id.rsplit("_", 1)[1][0]
        spec = voices[u.voice].spec()
        # the voice really used is a female/male eSpeak voice of the id's last-token gender
        assert spec.gender == {"F": "female", "M": "male"}[letter], u.utt_id
        assert spec.variant[0] == letter.lower()
        assert u.speaker == f"Ses{u.utt_id[3:5]}{letter}" == voices[u.voice].speaker
        mismatched += u.utt_id[5] != letter
    assert 0 < mismatched < len(ids)  # e.g. Ses01M_impro02_F000: a woman in the man's dialog


def test_voices_sound_like_their_gender(tiny):
    root, report = tiny
    f0 = {"F": [], "M": []}
    for u in report.utterances:
        x, sr = sf.read(str(root / u.path))
        f0[u.gender].append(f0_median(x, sr))
    assert np.median(f0["F"]) > 1.5 * np.median(f0["M"])
    assert min(f0["F"]) > 120 and max(f0["M"]) < 150


def test_tags_in_transcripts(tiny):
    root, report = tiny
    texts = [u.text for u in report.utterances]
    assert any("[LAUGHTER]" in t for t in texts) and any("[BREATHING]" in t for t in texts)
    all_lines = "\n".join(p.read_text() for p in root.glob("Session*/dialog/transcriptions/*.txt"))
    assert "_MXX0 [" in all_lines and "_FXX0 [" in all_lines


def test_emotions_differ_in_corpus(tiny):
    root, report = tiny
    stats: dict[str, list[tuple[float, float]]] = {}
    for u in report.utterances:
        x, sr = sf.read(str(root / u.path))
        chars = len(re.sub(r"\[[A-Z]+\]", "", u.text).strip())
        stats.setdefault(u.label, []).append((rms(x), len(x) / sr / chars))
    mean = {k: np.mean(v, axis=0) for k, v in stats.items()}
    assert mean["ang"][0] > 2 * mean["neu"][0] > 2 * mean["sad"][0]  # loudness
    assert mean["sad"][1] > 1.2 * mean["neu"][1] > 1.2 * mean["ang"][1]  # seconds per character


def test_deterministic(tiny, tmp_path):
    root, report = tiny
    again = synthesize_demo_corpus(tmp_path / "again", seed=0, size=TINY)
    assert read_tree(tmp_path / "again") == read_tree(root)
    assert again.per_label == report.per_label
    other = synthesize_demo_corpus(tmp_path / "other", seed=1, size=TINY)
    a, b = read_tree(root), read_tree(tmp_path / "other")
    assert sum(a.get(k) != v for k, v in b.items() if k.endswith(".wav")) > TINY // 2
    assert other.n_utterances == TINY


def test_out_root_rules(tmp_path):
    stranger = tmp_path / "mine"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="not empty"):
        synthesize_demo_corpus(stranger, size=20)
    with pytest.raises(DataError, match="not a synth-demo corpus"):
        synthesize_demo_corpus(stranger, size=20, overwrite=True)
    assert (stranger / "notes.txt").read_text() == "keep me"
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="not a directory"):
        synthesize_demo_corpus(tmp_path / "file", size=20)

    out = tmp_path / "corpus"
    synthesize_demo_corpus(out, size=24)
    first = read_tree(out)
    assert not (out / ".synth-demo-incomplete").exists()
    with pytest.raises(DataError, match="not empty"):
        synthesize_demo_corpus(out, size=20)
    report = synthesize_demo_corpus(out, size=20, overwrite=True)
    assert report.n_utterances == 20 == len(list(out.glob("Session*/sentences/wav/*/*.wav")))
    assert read_tree(out) != first

    # an interrupted run (no README yet) can be overwritten too
    (out / "README.txt").unlink()
    (out / ".synth-demo-incomplete").write_text("interrupted")
    synthesize_demo_corpus(out, size=24, overwrite=True)
    assert read_tree(out) == first


# ----------------------------------------------------------------------------- prosody


def _turn(
    label: str, text: str = "I have been waiting here all morning.", speaker: str = "Ses02F", style: str = "impro"
) -> PlannedTurn:
    return PlannedTurn(
        0, int(speaker[3:5]), "Ses02F_impro03", "Ses02F_impro03_F000", speaker, speaker[-1], style, label, text
    )


def test_emotion_prosody_same_sentence():
    cfg = SynthConfig(jitter=0.0)
    tts = EspeakSynth()
    out = {}
    for label in ("neu", "hap", "ang", "sad"):
        x = render_turn(tts, assign_prosody(_turn(label), cfg), cfg)
        out[label] = (rms(x), len(x) / cfg.sample_rate, f0_median(x, cfg.sample_rate))
    assert out["ang"][0] > out["hap"][0] > out["neu"][0] > out["sad"][0]  # loudness
    assert out["sad"][1] > out["neu"][1] > out["hap"][1] > out["ang"][1]  # duration
    assert out["hap"][2] > out["neu"][2] > out["sad"][2]  # pitch
    # scripted turns are slower than improvised ones
    scripted = render_turn(tts, assign_prosody(_turn("neu", style="script"), cfg), cfg)
    assert len(scripted) / cfg.sample_rate > 1.03 * out["neu"][1]


def test_jitter_changes_prosody_per_utterance():
    cfg = SynthConfig()
    a = assign_prosody(_turn("neu"), cfg)
    b = assign_prosody(PlannedTurn(**{**a.__dict__, "index": 1}), cfg)
    assert (a.rate, a.pitch, a.pitch_range, a.volume) != (b.rate, b.pitch, b.pitch_range, b.volume)
    flat = assign_prosody(_turn("neu"), SynthConfig(jitter=0.0))
    # neutral, Ses02F: 165 wpm x 1.06, pitch 50 - 4, range 40, volume 68
    assert (flat.rate, flat.pitch, flat.pitch_range, flat.volume) == (175, 46, 40, 68)


# ----------------------------------------------------------------------------- espeak binding


def test_espeak_reproducible_and_controllable():
    tts = EspeakSynth()
    voice = tts.register_voice(VoiceSpec("test_m3", variant="m3"))
    text = "The weather is lovely today."
    ref, sr = tts.synth(text, voice, rate=175, pitch=50, pitch_range=50, volume=80)
    assert sr == 22050 and ref.dtype == np.int16 and len(ref) > sr
    tts.synth("Something else entirely, with a question?", voice, rate=300, pitch=90, volume=20)
    again, _ = tts.synth(text, voice, rate=175, pitch=50, pitch_range=50, volume=80)
    assert np.array_equal(ref, again)
    fast, _ = tts.synth(text, voice, rate=350, pitch=50, pitch_range=50, volume=80)
    quiet, _ = tts.synth(text, voice, rate=175, pitch=50, pitch_range=50, volume=30)
    high, _ = tts.synth(text, voice, rate=175, pitch=95, pitch_range=50, volume=80)
    assert len(fast) < 0.7 * len(ref)
    assert rms(quiet) < 0.5 * rms(ref)
    assert f0_median(high.astype(float), sr) > 1.3 * f0_median(ref.astype(float), sr)


def test_espeak_errors():
    tts = EspeakSynth()
    tts.register_voice(VoiceSpec("test_f2", variant="f2"))
    tts.register_voice(VoiceSpec("test_f2", variant="f2"))  # same spec again: fine
    with pytest.raises(ConfigError, match="already registered"):
        tts.register_voice(VoiceSpec("test_f2", variant="f3"))
    with pytest.raises(ConfigError, match="variant file not found"):
        tts.register_voice(VoiceSpec("test_nope", variant="no_such_variant"))
    with pytest.raises(ConfigError, match="voice name"):
        tts.register_voice(VoiceSpec("Bad Name"))
    with pytest.raises(ConfigError, match="voice not found"):
        tts.synth("hello", "test_unregistered")
    with pytest.raises(ConfigError, match=r"volume=150 must be an integer in \[0, 100\]"):
        tts.synth("hello", "test_f2", volume=150)


# ----------------------------------------------------------------------------- with the reader


def test_prepare_iemocap_reads_what_was_written(tiny, tmp_path):
    recipe = pytest.importorskip(
        "metaser.data.recipes.iemocap", reason="IEMOCAP reader (metaser.data.recipes.iemocap) not written yet"
    )
    from metaser.data.manifest import get_field

    root, report = tiny
    result = recipe.prepare_iemocap(root, tmp_path / "prepared")
    summary = result.summary
    assert summary["emotions"] == {k: v for k, v in sorted(report.target_counts().items())}
    assert summary["excluded"] == {"fru": 1, "xxx": 1}
    assert summary["num_skipped"] == 0
    by_id = {u.utt_id: u for u in report.utterances}
    cuts = list(result.cuts)
    assert len(cuts) == TINY - 2
    for cut in cuts:
        u = by_id[cut.id]
        assert get_field(cut, "speaker") == u.speaker
        assert get_field(cut, "gender") == {"F": "female", "M": "male"}[u.gender]
        assert get_field(cut, "style") == u.style
        assert get_field(cut, "session") == str(u.session)
        assert get_field(cut, "emotion_raw") == u.label
        assert abs(cut.duration - u.duration) < 1e-3
        assert get_field(cut, "text") == recipe.clean_iemocap_text(u.text)
        assert "[" not in get_field(cut, "text")


# IEMOCAP's evaluator categories -> the 4 classes (exc merged), written here independently
CLASS_OF = {"Neutral state": "neu", "Happiness": "hap", "Excited": "hap", "Anger": "ang", "Sadness": "sad"}


def test_annotator_lines_are_realistic(tiny):
    root, report = tiny
    agree = total = several = non_target = selves = 0
    for u in report.utterances:
        evaluators = [(w, c) for w, c in u.annotations if w.startswith("E")]
        selves += len(u.annotations) - len(evaluators)
        assert len({w for w, _ in evaluators}) == len(evaluators) in (3, 4)
        several += sum(len(c) > 1 for _, c in evaluators)
        non_target += sum(cat not in CLASS_OF for _, c in evaluators for cat in c)
        if u.label in ("neu", "hap", "exc", "ang", "sad"):
            own = {"neu": "Neutral state", "hap": "Happiness", "exc": "Excited", "ang": "Anger", "sad": "Sadness"}
            votes = sum(own[u.label] in c for _, c in evaluators)
            assert votes > len(evaluators) / 2, u  # the label is the evaluators' majority
            agree += votes
            total += len(evaluators)
    assert 0.6 < agree / total < 0.95 and several > 0 and non_target > 0 and selves > 0


def test_annotator_lines_change_nothing_else(tiny, tmp_path, monkeypatch):
    """The C- lines come from their own generator: with other lines, every wav, transcript,
    turn line and rating line of the corpus is byte-identical."""
    from metaser.experiments.demo.corpus import iemocap_layout

    root, _ = tiny
    monkeypatch.setattr(
        iemocap_layout, "evaluator_lines", lambda label, gender, rng: (["C-E1:\tOther;\t()"], [("E1", ["Other"])])
    )
    synthesize_demo_corpus(tmp_path / "other", seed=0, size=TINY)
    a, b = read_tree(root), read_tree(tmp_path / "other")
    assert a.keys() == b.keys()
    for name in a:
        if "/EmoEvaluation/" in name and name.count("/") == 3:
            keep = [ln for ln in a[name].decode().split("\n") if not ln.startswith("C-")]
            assert keep == [ln for ln in b[name].decode().split("\n") if not ln.startswith("C-")], name
            assert a[name] != b[name]
        else:
            assert a[name] == b[name], name


def test_prepare_iemocap_reads_the_votes(tiny, tmp_path):
    from metaser.data.manifest import get_field
    from metaser.data.recipes.iemocap import prepare_iemocap

    root, report = tiny
    res = prepare_iemocap(root, tmp_path / "prepared")
    by_id = {u.utt_id: u for u in report.utterances}
    dropped_total = 0.0
    for cut in res.cuts:
        expected = dict.fromkeys(("ang", "hap", "neu", "sad"), 0.0)
        dropped = 0.0
        for who, cats in by_id[cut.id].annotations:
            if not who.startswith("E"):
                continue  # self-evaluations are not counted by default
            for cat in cats:
                if cat in CLASS_OF:
                    expected[CLASS_OF[cat]] += 1 / len(cats)
                else:
                    dropped += 1 / len(cats)
        for cls, value in expected.items():
            assert get_field(cut, f"vote_{cls}") == pytest.approx(value, abs=1e-6)
        assert get_field(cut, "votes_dropped") == pytest.approx(dropped, abs=1e-6)
        dropped_total += dropped
    votes = res.summary["votes"]
    assert votes["cuts_with_votes"] == len(res.cuts) and votes["cuts_without_votes"] == 0
    assert votes["votes_dropped"] == pytest.approx(dropped_total, abs=1e-3) and dropped_total > 0


def test_cli_synth_demo_prints_progress_and_report(tmp_path):
    from click.testing import CliRunner

    from metaser.cli import main

    out = tmp_path / "corpus"
    result = CliRunner().invoke(main, ["synth-demo", str(out), "--size", "20", "--seed", "2"])
    assert result.exit_code == 0, result.output
    assert [ln for ln in result.output.splitlines() if ln.endswith(" done")] == [
        f"synth-demo: Session{s} done" for s in range(1, 6)
    ]
    assert "20 utterances" in result.output and "per session: 1:4, 2:4, 3:4, 4:4, 5:4" in result.output
    assert len(list(out.glob("Session*/sentences/wav/*/*.wav"))) == 20
