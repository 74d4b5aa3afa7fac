"""``metaser ablate --study modules`` end to end (Table II layout), fold 1, 1 epoch per stage."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from metaser.cli import main
from tests.conftest import TINY_PRESET, run_config_overrides

#: slug -> (Table II label, architecture, fusion.layers, fusion.tasks)
VARIANTS = {
    "baseline": ("Baseline", "baseline", "ari", "coattention"),
    "wo_ari_co": ("w/o ARI & Co", "metaser", "last", "concat"),
    "wo_ari": ("w/o ARI", "metaser", "last", "coattention"),
    "wo_co": ("w/o Co", "metaser", "ari", "concat"),
    "full": ("Full (ARI + Co)", "metaser", "ari", "coattention"),
}


@pytest.fixture(scope="module")
def ablation(synth_manifest, tmp_path_factory):
    out = tmp_path_factory.mktemp("ablate")
    args = [
        "ablate",
        str(TINY_PRESET),
        "--study",
        "modules",
        *run_config_overrides(synth_manifest, out, "name=abl", "folds=[1]"),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return out / "abl" / "ablate-modules", result.output


def test_summary_has_table2_rows_from_each_variants_results(ablation):
    root, output = ablation
    md = (root / "summary.md").read_text()
    assert md.startswith("# Table II layout: module ablation (abl)\n")
    assert "| variant | UA | WA | UA pooled | WA pooled |" in md
    num, mean_std = r"([\d.]+)", r"([\d.]+ ± [\d.]+)"
    rows = re.findall(rf"^\| ([^|]+?) \| {mean_std} \| {mean_std} \| {num} \| {num} \|$", md, re.M)
    assert [r[0] for r in rows] == [v[0] for v in VARIANTS.values()]
    for (_label, ua_cell, wa_cell, ua_pooled, wa_pooled), slug in zip(rows, VARIANTS):
        res = json.loads((root / slug / "results.json").read_text())
        assert [f["fold"] for f in res["folds"]] == [1]
        ua, wa = res["test"]["ua"], res["test"]["wa"]
        assert ua_cell == f"{100 * ua['mean']:.2f} ± 0.00" and wa_cell == f"{100 * wa['mean']:.2f} ± 0.00"
        # one fold: pooled over its test utterances is the fold's own figure
        assert (ua_pooled, wa_pooled) == (f"{100 * ua['mean']:.2f}", f"{100 * wa['mean']:.2f}")
        assert res["test_pooled"]["ua"] == pytest.approx(ua["mean"], abs=1e-12)
        # and those are the fold's own predictions
        preds = [json.loads(x) for x in (root / slug / "fold1" / "predictions.jsonl").read_text().splitlines()]
        assert wa["mean"] == pytest.approx(sum(p["pred"] == p["emotion"] for p in preds) / len(preds), abs=1e-12)
    summary = json.loads((root / "summary.json").read_text())
    assert [v["slug"] for v in summary["variants"]] == list(VARIANTS)
    assert summary["study"] == "modules" and summary["base"] == "abl"
    assert "(5 variants)" in re.sub(r"\s+", " ", output)  # rich wraps long lines


@pytest.mark.parametrize("slug", list(VARIANTS))
def test_each_variant_trained_the_model_it_names(ablation, slug):
    root, _ = ablation
    _, arch, layers, tasks = VARIANTS[slug]
    fold = root / slug / "fold1"
    saved = json.loads((fold / "model" / "config.json").read_text())
    metrics = json.loads((fold / "metrics.json").read_text())
    assert saved["model"]["architecture"] == arch
    if arch == "baseline":  # one stage, emotion only: no auxiliary tasks, no stage 1
        assert saved["tasks"] == [] and list(metrics["stages"]) == ["emotion_only"]
        assert not (fold / "stage1").exists() and not (fold / "aux_predictions.jsonl").exists()
        assert metrics["layer_weights"] is None
        return
    assert (saved["model"]["fusion"]["layers"], saved["model"]["fusion"]["tasks"]) == (layers, tasks)
    assert [t["name"] for t in saved["tasks"]] == ["gender", "speaker", "style", "asr"]
    assert (fold / "stage1" / "done.json").is_file() and (fold / "aux_predictions.jsonl").is_file()
    # ARI learns L - 1 = 11 layer weights; "last" has none
    assert (None if metrics["layer_weights"] is None else len(metrics["layer_weights"])) == (
        11 if layers == "ari" else None
    )
