"""Reports built from saved per-fold results: results.json, report.md and plots.

Everything here reads files only (``metaser report RUN_DIR`` retrains nothing); the emotion
scores are recomputed from the saved per-utterance predictions.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

import yaml

from metaser.errors import MetaserError
from metaser.experiments.paper_compare import paper_figures, paper_reference
from metaser.experiments.report_plots import pct, plot_confusion, plot_layer_weights
from metaser.rundir import fold_dirs as _fold_dirs
from metaser.rundir import read_jsonl
from metaser.training.metrics import (
    CCC_DEFINITION,
    KL_DEFINITION,
    UA_WA_DEFINITION,
    ASRMetric,
    classification_scores,
    regression_scores,
    scores_from_confusion,
)

#: test metrics reported per fold, with their display names (Table II/III style); regression
#: tasks' ``<task>_ccc`` / ``<task>_mae`` follow (:func:`report_columns`)
TEST_COLUMNS = [
    ("ua", "UA"),
    ("wa", "WA"),
    ("macro_f1", "F1"),
    ("kl", "KL"),
    ("ccc", "CCC"),
    ("mae", "MAE"),
    ("cer", "CER"),
    ("wer", "WER"),
    ("gender_acc", "GR"),
    ("style_acc", "StyR"),
]


def is_value_metric(key: str) -> bool:
    """CCC, MAE and KL are values, shown as they are; every other metric is a fraction (%)."""
    return key in ("kl", "ccc", "mae") or key.endswith(("_ccc", "_mae"))


def report_columns(res: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, display name) of the per-fold test columns present in ``res``: :data:`TEST_COLUMNS`,
    then each aux regression task's CCC and MAE."""
    test = res["test"]
    cols = [(k, n) for k, n in TEST_COLUMNS if k in test]
    cols += [
        (k, k.replace("_ccc", " CCC").replace("_mae", " MAE")) for k in sorted(test) if k.endswith(("_ccc", "_mae"))
    ]
    return cols


def fmt_metric(key: str, x: float | None) -> str:
    """A metric for the tables: a value with three decimals (:func:`is_value_metric`), else a
    percentage with two ("–" for None)."""
    if x is None:
        return "–"
    return f"{x:.3f}" if is_value_metric(key) else pct(x)


def table_unit(cols: list[tuple[str, str]]) -> str:
    """What the numbers of a table are: "%", or "%; CCC, MAE, KL as values" when it has those."""
    values = [n for k, n in cols if is_value_metric(k)]
    if not values:
        return "%"
    return ("%; " if len(values) < len(cols) else "") + ", ".join(values) + " as values"


def fold_dirs(run_dir: Path) -> list[Path]:
    """The finished ``fold<K>`` folders (stray entries such as ``fold2.bak/`` are ignored)."""
    return _fold_dirs(run_dir, finished=True)


def run_paper_figures(fold: Path) -> tuple[dict[str, float] | None, tuple[str, str] | None]:
    """The paper's figures for the run a fold folder belongs to (from its config.yaml)."""
    try:
        cfg = yaml.safe_load((fold / "config.yaml").read_text()) or {}
        aux = json.loads((fold / "run_info.json").read_text()).get("aux_tasks", [])
    except (OSError, ValueError, yaml.YAMLError):
        return None, None
    model = cfg.get("model") or {}
    figs = paper_figures(model, aux)
    return figs, (paper_reference(model, aux) if figs else None)


def _mean_std(values: list[float]) -> dict[str, float]:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return {}
    return {"mean": statistics.fmean(vals), "std": statistics.pstdev(vals) if len(vals) > 1 else 0.0, "n": len(vals)}


def recompute_fold(fold_dir: Path, main_task: str = "emotion") -> dict[str, Any]:
    """UA / WA / F1 / confusion of one fold (CCC / MAE for a regression ``main_task``), from its
    predictions.jsonl."""
    for name in ("predictions.jsonl", "labels.json"):
        if not (fold_dir / name).is_file():
            raise MetaserError(
                f"{fold_dir / name} is missing: the fold's outputs are incomplete",
                hint=f"re-run the fold (delete {fold_dir / 'metrics.json'} first)",
            )
    rows = read_jsonl(fold_dir / "predictions.jsonl")
    if main_task != "emotion":
        return regression_scores([r["pred"] for r in rows], [r.get(main_task) for r in rows])
    labels = json.loads((fold_dir / "labels.json").read_text())["classes"]["emotion"]
    idx = {c: i for i, c in enumerate(labels)}
    rows = [r for r in rows if r.get("emotion") is not None]
    s = classification_scores([idx[r["emotion"]] for r in rows], [idx[r["pred"]] for r in rows], len(labels))
    s["classes"] = labels
    return s


#: How folds are aggregated (results.json ``aggregation``): both are reported, the mean is compared
AGGREGATION = (
    "test: mean ± std over folds (each fold's UA/WA from its own confusion matrix); test_pooled: "
    "over all test utterances of all folds at once (UA/WA/F1 from the pooled confusion matrix, "
    "CER/WER and task accuracies from the pooled per-utterance predictions). The paper does not say "
    "which it reports; the paper's figure is compared with the mean over folds."
)

#: The stages whose layer-fusion weights a fold reports (metrics.json ``layer_weights_by_stage``)
WEIGHT_STAGES = ("stage1", "stage2", "emotion_only")


def _pooled_aux(folds: list[Path], per_fold: list[dict[str, Any]]) -> dict[str, float]:
    """CER / WER, ``<task>_acc`` and ``<task>_ccc`` / ``<task>_mae`` over the stage-1 test
    predictions of every fold at once.

    Only the metrics every fold reports, from aux_predictions.jsonl (what the fold metrics were
    computed from); nothing when a fold lacks that file.
    """
    files = [d / "aux_predictions.jsonl" for d in folds]
    if not files or not all(f.is_file() for f in files):
        return {}
    common = set.intersection(*(set(f["test"]) for f in per_fold))
    rows = [r for f in files for r in read_jsonl(f)]
    out: dict[str, float] = {}
    if {"cer", "wer"} <= common:
        m = ASRMetric(sync=False)
        m.update([r.get("asr_pred", "") for r in rows], [r.get("text", "") for r in rows])
        out.update({k: v for k, v in m.compute().items() if k in ("cer", "wer")})
    for key in sorted(k for k in common if k.endswith("_acc")):
        task = key.removesuffix("_acc")
        pairs = [(r[task], r[f"{task}_pred"]) for r in rows if r.get(task) is not None and f"{task}_pred" in r]
        if pairs:
            out[key] = sum(a == b for a, b in pairs) / len(pairs)
    for key in sorted(k for k in common if k.endswith("_ccc")):  # regression aux tasks: CCC and MAE
        task = key.removesuffix("_ccc")
        have = [r for r in rows if f"{task}_pred" in r]
        scores = regression_scores([r[f"{task}_pred"] for r in have], [r.get(task) for r in have])
        out.update({f"{task}_{k}": v for k, v in scores.items() if k in ("ccc", "mae")})
    return out


def _mean_weights(per_fold: list[dict[str, Any]]) -> dict[str, list[float] | None] | None:
    """Stage -> the mean over folds of its layer weights (None for a stage without them);
    None when no fold reports ``layer_weights_by_stage``."""
    reported = [f["layer_weights_by_stage"] for f in per_fold if isinstance(f.get("layer_weights_by_stage"), dict)]
    if not reported:
        return None
    out: dict[str, list[float] | None] = {}
    for stage in [*WEIGHT_STAGES, *sorted({k for r in reported for k in r} - set(WEIGHT_STAGES))]:
        if not any(stage in r for r in reported):
            continue
        ws = [r[stage] for r in reported if r.get(stage)]
        same = ws and all(len(w) == len(ws[0]) for w in ws)
        out[stage] = [statistics.fmean(col) for col in zip(*ws)] if same else None
    return out


def aggregate(run_dir: str | Path) -> dict[str, Any]:
    """The run's results.json document, recomputed from its fold folders (see :data:`AGGREGATION`)."""
    run_dir = Path(run_dir)
    folds = fold_dirs(run_dir)
    if not folds:
        raise MetaserError(f"{run_dir}: no finished fold (fold*/metrics.json) found")
    per_fold = []
    pooled: dict[tuple[str, str], int] = {}
    classes: list[str] = []
    metrics = [json.loads((d / "metrics.json").read_text()) for d in folds]
    mains = {m.get("main_task", "emotion") for m in metrics}
    if len(mains) > 1:
        raise MetaserError(f"{run_dir}: its folds have different main tasks ({', '.join(sorted(mains))})")
    main_task = mains.pop()
    for d, m in zip(folds, metrics):
        emo = recompute_fold(d, main_task)
        keys = (
            ("ccc", "mae", "num_utterances") if main_task != "emotion" else ("ua", "wa", "macro_f1", "num_utterances")
        )
        test = {**m["test"], **{k: emo[k] for k in keys if k in emo}}
        per_fold.append(
            {
                "fold": m["fold"],
                "test_group": m.get("test_group"),
                "test": test,
                "valid": m.get("valid", {}),
                "layer_weights": m.get("layer_weights"),
                "layer_weights_by_stage": m.get("layer_weights_by_stage"),
            }
        )
        for i, ref in enumerate(emo.get("classes", [])):
            if ref not in classes:
                classes.append(ref)
            for j, hyp in enumerate(emo["classes"]):
                pooled[(ref, hyp)] = pooled.get((ref, hyp), 0) + emo["confusion"][i][j]
    keys = sorted({k for f in per_fold for k, v in f["test"].items() if isinstance(v, (int, float))})
    summary = {k: _mean_std([f["test"].get(k) for f in per_fold]) for k in keys}
    vkeys = sorted({k for f in per_fold for k, v in f["valid"].items() if isinstance(v, (int, float))})
    vsummary = {k: _mean_std([f["valid"].get(k) for f in per_fold]) for k in vkeys}
    confusion = [[pooled.get((r, h), 0) for h in classes] for r in classes]
    test_pooled = _pooled_main(folds, main_task, confusion, classes)
    test_pooled.update(_pooled_aux(folds, per_fold))
    weights = [f["layer_weights"] for f in per_fold if f["layer_weights"]]
    mean_w = [statistics.fmean(col) for col in zip(*weights)] if weights else None
    paper, ref = run_paper_figures(folds[0]) if main_task == "emotion" else (None, None)
    definitions = UA_WA_DEFINITION if main_task == "emotion" else ""
    if any(is_value_metric(k) and k != "kl" for k in summary):
        definitions = f"{definitions} {CCC_DEFINITION}".strip()
    if "kl" in summary:
        definitions += f" {KL_DEFINITION}"
    out = {
        "run": run_dir.name,
        "definitions": definitions + " Speaker accuracy is reported on validation only: on a "
        "speaker-independent test fold the test speakers are unseen, so it is meaningless.",
        "folds": per_fold,
        "test": summary,
        "valid": vsummary,
        "test_pooled": test_pooled,  # fractions, over all test utterances of all folds
        "aggregation": AGGREGATION,
        "classes": classes,
        "pooled_confusion": confusion,
        "mean_layer_weights": mean_w,
        "mean_layer_weights_by_stage": _mean_weights(per_fold),
        "paper": paper,  # the paper's figures (percent) for this config and encoder, or None
        "paper_row": list(ref) if ref else None,
    }
    if main_task != "emotion":  # only then: the emotion runs' results.json stay as they were
        out["main_task"] = main_task
    return out


def _pooled_main(folds: list[Path], main_task: str, confusion: list[list[int]], classes: list[str]) -> dict[str, Any]:
    """The main task over all test utterances of all folds at once: UA / WA / F1 from the pooled
    confusion matrix (and the mean ``kl`` of the rows with votes), or CCC / MAE of a regression
    main task from the pooled predictions."""
    rows = [r for d in folds for r in read_jsonl(d / "predictions.jsonl")]
    if main_task != "emotion":
        return regression_scores([r["pred"] for r in rows], [r.get(main_task) for r in rows])
    import torch

    out = scores_from_confusion(torch.tensor(confusion, dtype=torch.long).reshape(len(classes), len(classes)))
    kls = [r["kl"] for r in rows if r.get("kl") is not None]
    if kls:
        out["kl"] = statistics.fmean(kls)
    return out


def paper_cells(res: dict[str, Any], keys: list[str]) -> tuple[list[str], list[str]] | None:
    """("paper" row, "Δ" row) for ``keys``: the paper's figure and ours minus it (points), or None."""
    paper = res.get("paper")
    if not paper:
        return None
    fig, diff = [], []
    for k in keys:
        if k in paper:
            fig.append(f"{paper[k]:.2f}")
            ours = res["test"].get(k, {}).get("mean")
            diff.append("–" if ours is None else f"{100 * ours - paper[k]:+.2f}")
        else:
            fig.append("–")
            diff.append("–")
    return fig, diff


def render_markdown(res: dict[str, Any], *, synthetic: bool = False) -> str:
    cols = report_columns(res)
    lines = [f"# Results: {res['run']}", ""]
    if synthetic:
        lines += [
            "> **Synthetic**: these figures come from the synthetic demo corpus with an untrained "
            "tiny encoder. They show the pipeline works; they say nothing about IEMOCAP.",
            "",
        ]
    lines += [
        f"Definitions: {res['definitions']}",
        "",
        f"## Test, per fold ({table_unit(cols)})",
        "",
        "| fold | test group | " + " | ".join(n for _, n in cols) + " |",
        "|---|---|" + "---|" * len(cols),
    ]
    for f in res["folds"]:
        lines.append(
            f"| {f['fold']} | {f['test_group']} | "
            + " | ".join(fmt_metric(k, f["test"].get(k)) for k, _ in cols)
            + " |"
        )
    lines.append(
        "| **mean ± std** | | "
        + " | ".join(
            f"**{fmt_metric(k, res['test'][k]['mean'])}** ± {fmt_metric(k, res['test'][k]['std'])}" for k, _ in cols
        )
        + " |"
    )
    pooled = res.get("test_pooled") or {}
    if pooled:
        lines.append("| **pooled** | | " + " | ".join(fmt_metric(k, pooled.get(k)) for k, _ in cols) + " |")
    cells = paper_cells(res, [k for k, _ in cols])
    if cells:
        study, row = res["paper_row"]
        lines.append(f"| paper | {study}: {row} | " + " | ".join(cells[0]) + " |")
        lines.append("| Δ (ours − paper) | | " + " | ".join(cells[1]) + " |")
    if pooled:
        lines += [
            "",
            "Mean ± std: over folds; pooled: over all test utterances of all folds at once."
            + (
                " Δ compares the mean over folds with the paper (which does not say how it aggregated)."
                if cells
                else ""
            ),
        ]
    if res["valid"]:
        lines += ["", "## Validation (selected checkpoints), mean over folds (%)", ""]
        lines += ["| metric | mean | std |", "|---|---|---|"]
        for k, v in res["valid"].items():
            if k == "loss":
                lines.append(f"| {k} | {v['mean']:.4f} | {v['std']:.4f} |")
            else:
                lines.append(f"| {k} | {fmt_metric(k, v['mean'])} | {fmt_metric(k, v['std'])} |")
    if res["classes"]:  # none for a regression main task
        lines += [
            "",
            "## Pooled confusion matrix (rows = reference)",
            "",
            "| | " + " | ".join(res["classes"]) + " |",
            "|---|" + "---|" * len(res["classes"]),
        ]
        for c, row in zip(res["classes"], res["pooled_confusion"]):
            lines.append(f"| **{c}** | " + " | ".join(str(x) for x in row) + " |")
    lines += _weight_lines(res)
    return "\n".join(lines) + "\n"


def _weights_text(w: list[float]) -> str:
    return " ".join(f"L{i + 1}:{x:.3f}" for i, x in enumerate(w))


#: how report.md names each stage's layer weights
_STAGE_LABELS = {
    "stage1": "stage 1 (auxiliary tasks)",
    "stage2": "stage 2 (emotion)",
    "emotion_only": "emotion only (one stage)",
}


def _weight_lines(res: dict[str, Any]) -> list[str]:
    """The layer-weight section: one line per stage when the folds report them by stage, else
    the selected emotion model's weights (older runs)."""
    by_stage = {k: w for k, w in (res.get("mean_layer_weights_by_stage") or {}).items() if w}
    if not by_stage and not res.get("mean_layer_weights"):
        return []
    out = ["", "## Learned layer weights (mean over folds)", ""]
    if not by_stage:
        return out + [_weights_text(res["mean_layer_weights"])]
    for stage, w in by_stage.items():
        out.append(f"- {_STAGE_LABELS.get(stage, stage)}: {_weights_text(w)}")
    return out


def write_report(run_dir: str | Path, *, synthetic: bool | None = None) -> dict[str, Any]:
    """(Re)build results.json, report.md, confusion.png and layer_weights.png in ``run_dir``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise MetaserError(f"run directory not found: {run_dir}")
    res = aggregate(run_dir)
    if synthetic is None:
        synthetic = (run_dir / "SYNTHETIC").exists()
    (run_dir / "results.json").write_text(json.dumps(res, indent=2))
    (run_dir / "report.md").write_text(render_markdown(res, synthetic=synthetic))
    if res["classes"]:
        plot_confusion(res, run_dir / "confusion.png")
    plot_layer_weights(res, run_dir / "layer_weights.png")
    return res
