from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from metaser.cli import main
from metaser.errors import MetaserError
from metaser.inference.export import export_model, list_folds
from metaser.inference.recognizer import EmotionRecognizer
from tests.inference.helpers import EMOTIONS, babble, fake_run


@pytest.fixture(scope="module")
def two_models(tiny_model):
    """fold1: the tiny model; fold2: the same with a shifted emotion head (other predictions)."""
    import copy

    from metaser.models.metaser import MetaSERModel

    m2 = copy.deepcopy(tiny_model)
    with torch.no_grad():
        last = [p for n, p in m2.emotion_head.named_parameters() if n.endswith("bias")][-1]
        last += torch.arange(len(EMOTIONS), dtype=last.dtype)  # favours the last class
    assert isinstance(m2, MetaSERModel)
    return tiny_model, m2


def _probs(rec, x):
    p = rec.predict(x)
    return np.array([p.probs[c] for c in EMOTIONS])


def test_export_picks_best_validation_ua_not_test(two_models, tmp_path):
    # fold2 is best on validation, fold1 on test: validation decides
    run = fake_run(tmp_path / "run", list(two_models), valid_ua=[0.40, 0.55], test_ua=[0.90, 0.30])
    out = tmp_path / "exported"
    info = export_model(run, out)
    assert info == {"fold": 2, "valid_ua": 0.55, "test_ua": 0.30, "path": str(out), "selected_by": "best_valid_ua"}
    assert (out / "model.safetensors").read_bytes() == (run / "fold2" / "model" / "model.safetensors").read_bytes()
    for name in ("config.json", "labels.json", "run_info.json", "metrics.json", "README.md", "export.json"):
        assert (out / name).is_file(), name
    assert json.loads((out / "run_info.json").read_text())["fold"] == 2
    card = (out / "README.md").read_text()
    assert "Fold 2" in card and "best **validation** UA" in card and "| validation (fold 2) | 55.00 | 56.00 |" in card
    assert "| test (fold 2) | 30.00 | 31.00 |" in card and "EmotionRecognizer.from_pretrained" in card
    assert "Synthetic" not in card
    exp = json.loads((out / "export.json").read_text())
    assert exp["valid_ua_per_fold"] == {"fold1": 0.40, "fold2": 0.55}

    # the exported directory loads and predicts like fold2's model, not fold1's
    x = babble(0.8, seed=7)
    got = _probs(EmotionRecognizer.from_pretrained(out, device="cpu"), x)
    np.testing.assert_allclose(got, _probs(EmotionRecognizer.from_pretrained(run / "fold2" / "model"), x), atol=1e-6)
    assert not np.allclose(got, _probs(EmotionRecognizer.from_pretrained(run / "fold1" / "model"), x), atol=1e-3)


def test_export_explicit_fold_and_reexport(two_models, tmp_path):
    run = fake_run(tmp_path / "run", list(two_models), valid_ua=[0.40, 0.55], test_ua=[0.5, 0.5], synthetic=True)
    out = tmp_path / "exported"
    export_model(run, out)
    info = export_model(run, out, fold=1)  # an earlier export is replaced
    assert info["fold"] == 1 and info["selected_by"] == "user"
    assert (out / "model.safetensors").read_bytes() == (run / "fold1" / "model" / "model.safetensors").read_bytes()
    card = (out / "README.md").read_text()
    assert "chosen by the user" in card and "**Synthetic.**" in card and (out / "SYNTHETIC").is_file()


def test_export_errors(two_models, tmp_path):
    with pytest.raises(MetaserError, match="run directory not found"):
        export_model(tmp_path / "nope", tmp_path / "out")
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(MetaserError, match="no fold directories"):
        export_model(tmp_path / "empty_run", tmp_path / "out")
    run = fake_run(tmp_path / "run", list(two_models), valid_ua=[0.9, 0.5], test_ua=[0.5, 0.5], unfinished=(1,))
    states = {f.fold: (f.finished, f.problem) for f in list_folds(run)}
    assert states == {1: (False, "unfinished (no metrics.json)"), 2: (True, None)}
    assert export_model(run, tmp_path / "out")["fold"] == 2  # the unfinished fold1 is not a candidate
    with pytest.raises(MetaserError, match=r"--fold 1: .*fold1 is unfinished") as e:
        export_model(run, tmp_path / "out1", fold=1)
    assert "--resume" in e.value.hint
    with pytest.raises(MetaserError, match=r"--fold 7: .*does not exist \(folds here: 1, 2\)"):
        export_model(run, tmp_path / "out7", fold=7)
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_text("mine")
    with pytest.raises(MetaserError, match="refusing to overwrite"):
        export_model(run, precious)
    assert (precious / "keep.txt").read_text() == "mine"
    only_unfinished = fake_run(tmp_path / "run2", list(two_models)[:1], valid_ua=[0.5], test_ua=[0.5], unfinished=(1,))
    with pytest.raises(MetaserError, match="no finished fold"):
        export_model(only_unfinished, tmp_path / "out2")


def test_cli_export(two_models, tmp_path):
    run = fake_run(tmp_path / "run", list(two_models), valid_ua=[0.61, 0.60], test_ua=[0.1, 0.9])
    r = CliRunner().invoke(main, ["export", str(run), "-o", str(tmp_path / "m")])
    assert r.exit_code == 0, r.output
    assert "exported fold 1 (valid UA 61.00)" in r.output
    r = CliRunner().invoke(main, ["export", str(tmp_path / "missing"), "-o", str(tmp_path / "m2")])
    assert r.exit_code == 2 and "run directory not found" in r.output and "Traceback" not in r.output
