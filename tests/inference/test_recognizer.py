from __future__ import annotations

import numpy as np
import pytest
import torch

from metaser.data.audio import AudioError
from metaser.errors import ConfigError, MetaserError
from metaser.inference.recognizer import (
    EmotionRecognizer,
    InputError,
    Prediction,
    PredictionError,
    RecognizerConfig,
)
from metaser.inference.segment import SegmentConfig
from tests.inference.helpers import EMOTIONS, SR, babble, bad_files, silence, tone, write


def _probs(p: Prediction) -> np.ndarray:
    return np.array([p.probs[c] for c in EMOTIONS])


def _reference(model, x: np.ndarray) -> dict[str, np.ndarray]:
    """The model's own single-utterance forward, softmaxed, and its greedy CTC transcript."""
    from metaser.data.labels import CharVocab

    with torch.inference_mode():
        out = model.infer(torch.from_numpy(x)[None], torch.tensor([x.size]))
    res = {"emotion": torch.softmax(out.emotion_logits, -1)[0].numpy()}
    res.update({k: torch.softmax(v, -1)[0].numpy() for k, v in out.task_logits.items()})
    ids = out.ctc_log_probs[0, : int(out.ctc_lengths[0])].argmax(-1).numpy()  # (T,)
    res["transcript"] = CharVocab(tokens=list("abc '")).greedy_decode(ids)
    return res


def test_prediction_matches_model_forward(recognizer, tiny_model):
    x = babble(1.0, seed=1)
    p = recognizer.predict(x)
    ref = _reference(tiny_model, x)
    np.testing.assert_allclose(_probs(p), ref["emotion"], atol=1e-6)
    assert p.emotion == EMOTIONS[int(ref["emotion"].argmax())]
    assert p.gender == ["female", "male"][int(ref["gender"].argmax())]
    assert p.gender_prob == pytest.approx(float(ref["gender"].max()), abs=1e-6)
    assert p.style == ["impro", "script"][int(ref["style"].argmax())]
    assert p.style_prob == pytest.approx(float(ref["style"].max()), abs=1e-6)
    assert p.transcript == ref["transcript"]
    assert p.aux == {} and p.segments == [] and p.segmentation is None
    assert p.duration == pytest.approx(1.0)
    assert sum(p.probs.values()) == pytest.approx(1.0, abs=1e-5)
    d = p.to_dict()
    assert d["path"] is None and d["emotion"] == p.emotion and d["prob"] == pytest.approx(p.prob, abs=1e-6)
    assert set(d) >= {
        "path",
        "emotion",
        "prob",
        "probs",
        "gender",
        "gender_prob",
        "style",
        "style_prob",
        "transcript",
        "aux",
        "duration",
        "segments",
    }


def test_file_equals_array(recognizer, tmp_path):
    x = babble(1.2, seed=2)
    f = write(tmp_path / "a.wav", x)  # FLOAT: lossless
    pf, pa = recognizer.predict(f), recognizer.predict(x)
    assert pf.path == str(f) and pa.path is None
    assert pf.probs == pa.probs and pf.emotion == pa.emotion
    assert (pf.gender, pf.gender_prob, pf.style, pf.transcript) == (pa.gender, pa.gender_prob, pa.style, pa.transcript)
    assert recognizer.predict(str(f)).probs == pf.probs


def test_8k_stereo_file_like_16k_mono(recognizer, tmp_path):
    x16 = babble(1.5, seed=3)
    from metaser.data.audio import resample

    x8 = resample(x16, SR, 8000)
    stereo = np.stack([x8, 0.5 * x8], axis=1)  # (S, 2)
    f8 = write(tmp_path / "stereo8k.wav", stereo, sr=8000)
    p8 = recognizer.predict(f8)
    # exactly the array path through the same loader: (C, S) and (S, C) orientations, at 8 kHz
    pa = recognizer.predict(stereo.T.copy(), sample_rate=8000)
    pb = recognizer.predict(stereo, sample_rate=8000)
    np.testing.assert_allclose(_probs(p8), _probs(pa), atol=1e-6)
    np.testing.assert_allclose(_probs(p8), _probs(pb), atol=1e-6)
    assert p8.duration == pytest.approx(1.5, abs=1e-3)
    # what it must equal: the model's forward on the mono mix resampled to 16 kHz
    ref = _reference(recognizer.model, resample(stereo.mean(axis=1).astype(np.float32), 8000, SR))
    np.testing.assert_allclose(_probs(p8), ref["emotion"], atol=1e-6)
    # and the 16 kHz original, resampled down and up again, stays the same class distribution
    p16 = recognizer.predict(write(tmp_path / "mono16k.wav", 0.75 * x16))
    assert p8.emotion == p16.emotion


def test_integer_pcm_and_torch_arrays(recognizer):
    x = babble(0.8, seed=4)
    pcm = np.round(x * 32768).astype(np.int16)
    p_int, p_f = recognizer.predict(pcm), recognizer.predict(pcm.astype(np.float32) / 32768)
    assert p_int.probs == p_f.probs
    assert recognizer.predict(torch.from_numpy(pcm)).probs == p_int.probs
    p_t = recognizer.predict(torch.from_numpy(x))
    np.testing.assert_allclose(_probs(p_t), _probs(recognizer.predict(x)), atol=0)
    u8 = (np.round(x * 127) + 128).astype(np.uint8)  # offset-binary 8-bit PCM
    assert recognizer.predict(u8).probs == recognizer.predict((u8.astype(np.float32) - 128) / 128).probs


@pytest.mark.parametrize("reason", ["missing", "empty", "unreadable", "corrupt", "too_short", "silent", "nonfinite"])
def test_bad_file_raises_with_reason(recognizer, tmp_path, reason):
    path = bad_files(tmp_path)[reason]
    with pytest.raises((AudioError, InputError)) as e:
        recognizer.predict(path)
    assert e.value.reason == reason
    assert path.name in e.value.message


def test_bad_arrays(recognizer):
    cases = {
        "empty": np.zeros(0, np.float32),
        "too_short": tone(399 / SR),
        "silent": np.full(SR, 1e-6, np.float32),
        "nonfinite": np.array([0.1, np.nan] * 1000, np.float32),
        "invalid": np.zeros((2, 3, 4), np.float32),
    }
    for reason, x in cases.items():
        with pytest.raises((AudioError, InputError)) as e:
            recognizer.predict(x)
        assert e.value.reason == reason, reason
    with pytest.raises(InputError, match="cannot tell channels"):
        recognizer.predict(np.ones((100, 200), np.float32))
    with pytest.raises(InputError, match="float or integer"):
        recognizer.predict(np.array(["a"] * 1000))
    with pytest.raises(InputError, match="sample_rate"):
        recognizer.predict(tone(1.0), sample_rate=0)
    assert recognizer.predict(tone(400 / SR)).duration == pytest.approx(400 / SR)  # exactly the limit


def test_predict_batch_errors_and_results(recognizer, tmp_path):
    bad = bad_files(tmp_path / "bad")
    good = [write(tmp_path / f"g{i}.wav", babble(0.5 + 0.3 * i, seed=10 + i)) for i in range(3)]
    items = [good[0], *bad.values(), good[1], (tone(0.6, sr=8000), 8000), good[2]]
    res = recognizer.predict_batch(items)
    assert len(res) == len(items)
    reasons = [r.reason for r in res if isinstance(r, PredictionError)]
    assert reasons == list(bad)  # in input order, each with its reason
    for r, path in zip(res[1 : 1 + len(bad)], bad.values()):
        assert r.path == str(path) and str(path.name) in r.error and not r.ok
        assert r.to_dict() == {"path": str(path), "error": r.error, "reason": r.reason}
    preds = [r for r in res if isinstance(r, Prediction)]
    assert [p.path for p in preds] == [str(good[0]), str(good[1]), None, str(good[2])]
    # batched (length-sorted, padded) results agree with one-by-one results
    for p, g in zip([preds[0], preds[1], preds[3]], good):
        np.testing.assert_allclose(_probs(p), _probs(recognizer.predict(g)), atol=1e-4)


def test_batch_size_and_chunks_do_not_change_results(model_dir):
    xs = [babble(0.4 + 0.2 * i, seed=20 + i) for i in range(5)]
    a = EmotionRecognizer.from_pretrained(model_dir, device="cpu", batch_size=1).predict_batch(xs)
    cfg = RecognizerConfig(batch_size=3, chunk_files=2)
    seen = []
    b = EmotionRecognizer.from_pretrained(model_dir, device="cpu", config=cfg).predict_batch(xs, progress=seen.append)
    assert seen == [2, 2, 1]
    for pa, pb in zip(a, b):
        np.testing.assert_allclose(_probs(pa), _probs(pb), atol=1e-4)


def test_long_recording_is_segmented(model_dir, tmp_path):
    # 70 s of tone bursts with silences: not speech for silero-vad -> fixed windows fallback
    parts = []
    for i in range(7):
        parts += [tone(6.0, freq=200 + 40 * i, seed=i), silence(4.0)]
    x = np.concatenate(parts)
    assert x.size == 70 * SR
    rec = EmotionRecognizer.from_pretrained(model_dir, device="cpu", max_seconds=10.0, batch_size=4)
    p = rec.predict(write(tmp_path / "long.wav", x))
    assert p.duration == pytest.approx(70.0)
    assert p.segmentation == "windows"
    starts = [s.start for s in p.segments]
    assert starts == [5.0 * k for k in range(13)]  # 10 s windows, 5 s hop, last one ends at 70 s
    assert all(s.end - s.start == pytest.approx(10.0) for s in p.segments) and p.segments[-1].end == 70.0
    seg = np.array([[s.probs[c] for c in EMOTIONS] for s in p.segments])
    np.testing.assert_allclose(_probs(p), seg.mean(0), atol=1e-6)  # equal durations: plain mean
    assert p.emotion == EMOTIONS[int(seg.mean(0).argmax())]
    for s in p.segments:
        assert s.emotion == max(s.probs, key=s.probs.get)
    assert p.to_dict()["segments"][3] == {
        "start": 15.0,
        "end": 25.0,
        "emotion": p.segments[3].emotion,
        "probs": {k: round(v, 6) for k, v in p.segments[3].probs.items()},
        "transcript": p.segments[3].transcript,
    }


def test_long_speech_uses_vad_and_weights_by_duration(model_dir):
    # two "utterances" of speech-like babble separated by silence
    x = np.concatenate([silence(1.0), babble(3.0, seed=5), silence(2.0), babble(4.0, f0=210, seed=6), silence(1.0)])
    rec = EmotionRecognizer.from_pretrained(
        model_dir, device="cpu", config=RecognizerConfig(segment=SegmentConfig(max_seconds=5.0))
    )
    p = rec.predict(x)
    assert p.segmentation == "vad"
    assert len(p.segments) == 2
    (a, b) = p.segments
    assert a.start == pytest.approx(1.0, abs=0.15) and a.end == pytest.approx(4.0, abs=0.3)
    assert b.start == pytest.approx(6.0, abs=0.15) and b.end == pytest.approx(10.0, abs=0.3)
    w = np.array([a.end - a.start, b.end - b.start])
    seg = np.array([[s.probs[c] for c in EMOTIONS] for s in p.segments])
    np.testing.assert_allclose(_probs(p), (w[:, None] * seg).sum(0) / w.sum(), atol=1e-5)
    assert p.transcript == " ".join(t for t in (a.transcript, b.transcript) if t).strip()


def test_from_pretrained_errors(tmp_path, model_dir):
    with pytest.raises(MetaserError, match="model directory not found") as e:
        EmotionRecognizer.from_pretrained(tmp_path / "nope")
    assert e.value.exit_code == 2 and "metaser export" in e.value.hint
    (tmp_path / "run" / "fold1" / "model").mkdir(parents=True)
    with pytest.raises(MetaserError, match="config.json is missing") as e:
        EmotionRecognizer.from_pretrained(tmp_path / "run")
    assert "looks like a training run" in e.value.hint
    with pytest.raises(ConfigError, match="--device"):
        EmotionRecognizer.from_pretrained(model_dir, device="nonsense")
    with pytest.raises(ConfigError, match="batch_size"):
        EmotionRecognizer.from_pretrained(model_dir, batch_size=0)
    with pytest.raises(ConfigError, match="receptive field"):
        EmotionRecognizer.from_pretrained(model_dir, max_seconds=0.01)


def test_public_api(model_dir):
    import metaser
    import metaser.inference as inf

    assert metaser.EmotionRecognizer is EmotionRecognizer is inf.EmotionRecognizer
    assert inf.Prediction is Prediction and inf.PredictionError is PredictionError
    from metaser.inference.export import export_model

    assert inf.export_model is export_model
    rec = metaser.EmotionRecognizer.from_pretrained(str(model_dir))
    assert rec.emotion_labels == EMOTIONS and rec.min_samples == 400 and str(rec.device) == "cpu"


def test_transcript_stitching_of_overlapping_windows(recognizer):
    from metaser.inference.combine import stitch_transcript

    vocab = recognizer._vocab
    # tokens "abc '" -> ids a=1 b=2 c=3 " "=4 "'"=5; frames every 320 samples
    assert recognizer.saved.frame_stride == 320
    p1 = np.array([1, 1, 0, 2, 0, 0, 3, 0, 5, 5])  # t = 0 .. 2880; own part [0, 2400): frames 0..7
    p2 = np.array([5, 5, 5, 1, 0, 2, 2, 0, 3, 0])  # t = 1600 .. 4480; own part [2400, 4800): frames 3..9
    p3 = np.array([1, 0, 3, 0, 0])  # a separate run (no overlap): all its frames
    pieces = [(0, 3200), (1600, 4800), (8000, 9600)]
    assert stitch_transcript(pieces, [p1, p2, p3], vocab, 320) == "abcabc ac"
    assert stitch_transcript(pieces[:1], [p1], vocab, 320) == "abc'"  # one piece: every frame


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(model_dir, recognizer):
    x = babble(1.0, seed=9)
    gpu = EmotionRecognizer.from_pretrained(model_dir, device="cuda")
    assert gpu.device.type == "cuda"
    np.testing.assert_allclose(_probs(gpu.predict(x)), _probs(recognizer.predict(x)), atol=1e-3)
