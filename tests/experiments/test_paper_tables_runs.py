"""``metaser paper-tables`` on fake run folders (no training): placement, cells, Δ, pooled, analyses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from metaser.cli import main
from metaser.experiments.paper_render import render
from metaser.experiments.paper_runs import parse_encoder_as
from metaser.experiments.paper_tables import build_paper_tables
from metaser.paper import ENCODERS, paper_row
from tests.experiments.fake_runs import fake_cv_run, fake_study, tiny_config, write_run

FULL = "gender_speaker_style_asr"


def _cell(doc, table: str, row: str, encoder: str = "wavlm") -> dict:
    return next(r for r in doc["tables"][table]["rows"] if r["id"] == row)["cells"][encoder]


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """runs/base: a cv run of the full model (folds 1-2) that also holds the three study roots."""
    root = tmp_path_factory.mktemp("runs")
    write_run(tiny_config(root, "base"), [0.75, 0.80])
    fake_study(root, "modules", {"baseline": [0.70, 0.70], "wo_co": [0.75, 0.75], "full": [0.80, 0.80]})
    fake_study(root, "fusion", {"weighted_sum": [0.65, 0.70], "ari": [0.85, 0.85]}, aux_acc=0.8)
    fake_study(root, "tasks", {"none": [0.70, 0.70], "gender": [0.65, 0.65], "asr": [0.80, 0.80]})
    return root / "base"


def test_runs_fill_the_cells_their_configs_name(tree):
    doc = build_paper_tables([tree])
    where = {Path(r["path"]).relative_to(tree).as_posix(): r for r in doc["runs"]}
    assert sorted(where) == sorted(
        [
            ".",
            "ablate-modules/baseline",
            "ablate-modules/wo_co",
            "ablate-modules/full",
            "ablate-fusion/weighted_sum",
            "ablate-fusion/ari",
            "ablate-tasks/none",
            "ablate-tasks/gender",
            "ablate-tasks/asr",
        ]
    )
    assert doc["unplaced"] == []
    expect = {  # (table, row) -> the run shown there (its own study first, then a cv run)
        ("I", "baseline"): "ablate-modules/baseline",
        ("I", "proposed"): ".",
        ("II", "baseline"): "ablate-modules/baseline",
        ("II", "wo_co"): "ablate-modules/wo_co",
        ("II", "full"): "ablate-modules/full",
        ("III", "weighted_sum"): "ablate-fusion/weighted_sum",
        ("III", "ari"): "ablate-fusion/ari",
        ("IV", "none"): "ablate-tasks/none",
        ("IV", "gender"): "ablate-tasks/gender",
        ("IV", "asr"): "ablate-tasks/asr",
        ("IV", FULL): ".",
    }
    for (t, row), run in expect.items():
        cell = _cell(doc, t, row)
        assert cell["run"] == str(tree if run == "." else tree / run), (t, row)
        assert cell["comparable"] is True and cell["n_folds"] == 2
    # the full model is in the cv run, the modules study and the fusion study: one shown, the others listed
    assert sorted(_cell(doc, "III", "ari")["others"]) == sorted([str(tree), str(tree / "ablate-modules/full")])
    filled = {(t, r["id"]) for t, tab in doc["tables"].items() for r in tab["rows"] if r["per_encoder"]}
    for t, row in filled - set(expect):
        assert _cell(doc, t, row)["run"] is None and _cell(doc, t, row)["ours"] is None, (t, row)
    for e in ("wav2vec2", "hubert"):
        assert all(c["run"] is None for r in doc["tables"]["II"]["rows"] for c in [r["cells"][e]])


def test_ours_paper_and_delta_in_percent(tree):
    doc = build_paper_tables([tree])
    cell = _cell(doc, "III", "weighted_sum")
    assert cell["paper"] == paper_row("III", "weighted_sum", "wavlm")
    assert cell["ours"]["mean"]["ua"] == pytest.approx(67.5)
    assert cell["ours"]["std"]["ua"] == pytest.approx(2.5)
    assert cell["ours"]["mean"]["gr_acc"] == pytest.approx(80.0)  # aux_acc=0.8 of every fold
    assert cell["delta"]["ua"] == pytest.approx(67.5 - 75.53)
    assert cell["delta"]["gr_acc"] == pytest.approx(80.0 - 98.07)
    assert set(cell["delta"]) == {"cer", "wer", "gr_acc", "styr_acc", "ua", "wa"}
    md = render(doc)
    assert "| WavLM: Weighted sum | ours | " in md
    lines = md.splitlines()
    i = lines.index(next(x for x in lines if x.startswith("| WavLM: Weighted sum | ours |")))
    assert lines[i + 2] == "|  | paper | 17.35 | 47.47 | 98.07 | 85.83 | 75.53 | 74.73 |"
    assert lines[i + 3].split(" | ")[-2:] == [f"{67.5 - 75.53:+.2f}", f"{67.5 - 74.73:+.2f} |"]


def test_cells_without_a_run_are_dashes_and_tables_without_runs_show_the_paper_only(tmp_path):
    fake_study(tmp_path, "tasks", {"asr": [0.8]})
    doc = build_paper_tables([tmp_path / "base" / "ablate-tasks"])
    md = render(doc)
    iv = md[md.index("## Table IV.") : md.index("## Table IV by")]
    assert "| SER+ASR | ours | – | – | – | – | 80.00 ± 0.00 (1 fold) | 80.00 ± 0.00 (1 fold) |" in iv
    assert "| SER only | ours | – | – | – | – | – | – |" in iv
    ii = md[md.index("## Table II.") : md.index("## Table III.")]
    assert "| ours |" not in ii and "No run placed in this table" in ii
    assert "| Baseline | paper | 72.38 | 71.14 | 72.91 | 72.08 | 73.79 | 73.12 |" in ii


def test_unplaced_runs_say_why(tmp_path):
    fake_cv_run(tmp_path, "tiny", [0.5], encoder="tiny-wavlm")
    fake_cv_run(tmp_path, "guided", [0.5], "model.fusion.tasks=guided")
    unfinished = fake_cv_run(tmp_path, "unfinished", [0.5])
    (unfinished / "fold1" / "metrics.json").unlink()
    broken = fake_cv_run(tmp_path, "broken", [0.5])
    (broken / "fold1" / "predictions.jsonl").unlink()
    doc = build_paper_tables([tmp_path])
    assert doc["runs"] == []
    why = {Path(u["path"]).name: u["reason"] for u in doc["unplaced"]}
    assert set(why) == {"tiny", "guided", "unfinished", "broken"}
    assert "'tiny-wavlm' is not one of the paper's" in why["tiny"] and "--encoder-as tiny-wavlm=wavlm" in why["tiny"]
    assert "no row of the paper's tables" in why["guided"] and "fusion.tasks=guided" in why["guided"]
    assert why["unfinished"].startswith("no finished fold")
    assert "cannot be rebuilt" in why["broken"] and "predictions.jsonl" in why["broken"]
    md = render(doc)
    assert "Not placed:" in md and f"- `{tmp_path / 'tiny'}`: encoder 'tiny-wavlm'" in md


def test_encoder_as_places_a_tiny_run_without_delta(tmp_path):
    run = fake_cv_run(tmp_path, "tiny", [0.6, 0.7], encoder="tiny-wavlm")
    doc = build_paper_tables([run], encoder_as=parse_encoder_as(["tiny-wavlm=HuBert"]))
    assert doc["unplaced"] == []
    for t, row in (("I", "proposed"), ("II", "full"), ("III", "ari"), ("IV", FULL)):
        cell = _cell(doc, t, row, "hubert")
        assert cell["run"] == str(run) and cell["comparable"] is False and cell["delta"] is None
        assert cell["ours"]["mean"]["ua"] == pytest.approx(65.0)
        assert _cell(doc, t, row, "wavlm")["run"] is None
    md = render(doc)
    assert "| Proposed | ours | – | – | 65.00 ± 5.00 † (2 folds) | 65.00 ± 5.00 † (2 folds) | – | – |" in md
    assert "|  | Δ | – | – | n/c | n/c | – | – |" in md
    assert doc["runs"][0]["comparable"] is False and doc["runs"][0]["encoder_name"] == "tiny-wavlm"


@pytest.mark.parametrize("bad", ["tiny-wavlm", "tiny-wavlm=wavlm-large", "=wavlm"])
def test_bad_encoder_as_is_a_config_error(bad):
    from metaser.errors import ConfigError

    with pytest.raises(ConfigError, match="NAME=ENCODER"):
        parse_encoder_as([bad])


def test_pooled_differs_from_the_mean_over_folds_and_compare_picks_it(tmp_path):
    # fold 1: 10 utterances per class, UA 0.5; fold 2: 30 per class, UA 0.9 -> pooled UA (5 + 27) / 40
    run = fake_cv_run(tmp_path, "cv", [0.5, 0.9], sizes=[(10,) * 4, (30,) * 4])
    doc = build_paper_tables([run])
    cell = _cell(doc, "II", "full")
    assert cell["ours"]["mean"]["ua"] == pytest.approx(70.0)
    assert cell["ours"]["pooled"]["ua"] == pytest.approx(100 * 32 / 40)
    assert cell["delta"]["ua"] == pytest.approx(70.0 - 77.74)
    pooled = build_paper_tables([run], compare="pooled")
    assert pooled["compare"] == "pooled"
    assert _cell(pooled, "II", "full")["delta"]["ua"] == pytest.approx(80.0 - 77.74)
    assert "with ours the pooled figure" in render(pooled)


def test_task_analysis_of_a_tasks_study(tmp_path):
    uas = {"none": [0.70], "gender": [0.65], "asr": [0.80], "gender_asr": [0.75], "style": [0.75], "style_asr": [0.85]}
    root = fake_study(tmp_path, "tasks", uas)
    doc = build_paper_tables([root])
    ours = doc["task_analysis"]["ours"]["ua"]
    assert set(ours) == {"wavlm"}
    a = ours["wavlm"]
    assert a["rows"] == 6
    assert a["count_means"]["1"] == {
        "mean": pytest.approx(220 / 3),
        "n": 3,
        "of": 4,
        "rows": ["gender", "style", "asr"],
    }
    assert a["count_means"]["2"] == {"mean": pytest.approx(80.0), "n": 2, "of": 6, "rows": ["gender_asr", "style_asr"]}
    assert a["count_means"]["4"] == {"mean": None, "n": 0, "of": 1, "rows": []}
    s = a["additions_summary"]
    # within MTL: gender + asr 65 -> 75, style + asr 75 -> 85, asr + style 80 -> 85 raise; asr + gender 80 -> 75 lowers
    assert (s["mtl"]["lowers"], s["mtl"]["raises"], s["mtl"]["of"]) == (1, 3, 4)
    assert s["mtl"]["lowering"] == [{"from": "asr", "task": "gender", "to": "gender_asr", "delta": pytest.approx(-5.0)}]
    # from SER only: + gender lowers, + style and + asr raise (+ speaker did not run)
    assert (s["from_ser_only"]["lowers"], s["from_ser_only"]["of"]) == (1, 3)
    assert a["min_tasks_beating_ser_only"] == 2
    # the paper's own analysis rides along, whatever the runs
    assert doc["task_analysis"]["paper"]["ua"]["hubert"]["additions_summary"]["mtl"]["lowers"] == 4
    md = render(doc)
    assert "| ours | WavLM | 1 of 4 | 1 of 3 | none + gender (-5.00), asr + gender (-5.00) |" in md


def test_fusion_improvement_of_ours(tmp_path):
    root = fake_study(tmp_path, "fusion", {"weighted_sum": [0.70]}, aux_acc=0.8)
    fake_study(tmp_path, "fusion", {"ari": [0.80]}, aux_acc=0.9)  # ARI: better auxiliary tasks
    doc = build_paper_tables([root])
    ours = doc["fusion_improvement"]["ours"]
    assert ours["encoders"] == ["wavlm"]
    assert ours["mean"]["gr_acc"]["points"] == pytest.approx(10.0)
    assert ours["mean"]["gr_acc"]["relative"] == pytest.approx(100 * 10 / 80)
    assert ours["mean"]["ua"]["points"] == pytest.approx(10.0)
    # CER: the wrong utterances decode "a" for "a b"; fewer of them is a reduction, counted as a gain
    ws, ari = _cell(doc, "III", "weighted_sum")["ours"]["mean"], _cell(doc, "III", "ari")["ours"]["mean"]
    assert ours["mean"]["cer"]["points"] == pytest.approx(ws["cer"] - ari["cer"]) and ws["cer"] > ari["cer"]
    four = [
        ws["cer"] - ari["cer"],
        ws["wer"] - ari["wer"],
        ari["gr_acc"] - ws["gr_acc"],
        ari["styr_acc"] - ws["styr_acc"],
    ]
    assert ours["aux_mean_points"] == pytest.approx(sum(four) / 4)
    assert doc["fusion_improvement"]["paper"]["aux_mean_points"] == pytest.approx(5.4075)
    assert "| ours (WavLM) | points |" in render(doc)


def test_cli_writes_markdown_and_json(tree, tmp_path):
    md_path, json_path = tmp_path / "out" / "tables.md", tmp_path / "out" / "tables.json"
    result = CliRunner().invoke(main, ["paper-tables", str(tree), "-o", str(md_path), "--json", str(json_path)])
    assert result.exit_code == 0, result.output
    assert result.output == md_path.read_text()
    doc = json.loads(json_path.read_text())
    assert doc == build_paper_tables([tree])
    assert doc["units"] == "percent" and doc["compare"] == "mean"
    assert {p["id"] for p in doc["prose"]} >= {"iv_c_average", "iv_d_each_addition"}


def test_cli_without_runs_prints_the_papers_figures():
    result = CliRunner().invoke(main, ["paper-tables"])
    assert result.exit_code == 0, result.output
    assert "No run given: the paper's figures only." in result.output
    assert "| paper | WavLM | 4 of 28 | 1 of 4 |" in result.output
    assert "| paper (Wav2Vec-2.0, HuBert, WavLM) | points | 4.62 | 15.04 | 0.65 | 1.32 | 1.75 | 1.53 | 5.41 |" in (
        result.output
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/nonexistent/run"], "run directory not found"),
        (["--encoder-as", "tiny"], "NAME=ENCODER"),
        (["--compare", "median"], "Invalid value"),
    ],
)
def test_cli_bad_input_exits_2(args, message):
    result = CliRunner().invoke(main, ["paper-tables", *args])
    assert result.exit_code == 2
    assert message in result.output


def test_cli_a_folder_without_runs_exits_2(tmp_path):
    (tmp_path / "empty" / "fold1").mkdir(parents=True)  # not a run: nothing training wrote
    result = CliRunner().invoke(main, ["paper-tables", str(tmp_path / "empty")])
    assert result.exit_code == 2 and "no run found" in result.output


def test_every_encoder_column_is_there(tree):
    doc = build_paper_tables([tree])
    for t in ("I", "II", "IV"):
        for row in doc["tables"][t]["rows"]:
            if row["per_encoder"]:
                assert list(row["cells"]) == list(ENCODERS)
