"""``metaser sweep``: a grid of config values, each a CV run, chosen on validation only.

The paper tunes each auxiliary task's loss weight per encoder and does not publish the values
(Sec. III-B). A sweep recovers them honestly: every trial is a cross-validation run, and the best
trial is the one with the best *validation* metric (mean over the folds). Test scores are written
beside it for the record and play no part in the choice: selecting on test would leak the test
folds into model selection.

Layout: ``<output_dir>/<name>/sweep/<trial>/`` holds each trial's CV run (``fold*/``,
``results.json``), ``<output_dir>/<name>/sweep/summary.json`` and ``summary.md`` the sweep.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from metaser.config import apply_overrides
from metaser.errors import ConfigError, MetaserError
from metaser.launch import Launcher, Task, TaskResult, check_shared_output
from metaser.rundir import manifest_file, write_json_atomic
from metaser.training.config import RunConfig

#: validation metrics where lower is better; every other one is maximised
LOWER_IS_BETTER = ("loss", "cer", "wer")


@dataclass
class Trial:
    slug: str
    params: dict[str, Any]  # dotted key -> value (parsed as YAML)
    overrides: list[str]  # the dotted overrides that make this trial's config
    cfg: RunConfig

    @property
    def run_dir(self) -> Path:
        return Path(self.cfg.output_dir) / self.cfg.name


# ----------------------------------------------------------------------------- parsing
def _split_values(raw: str) -> list[str]:
    """``"0.1,1"`` -> ["0.1", "1"]; commas inside [...], {...} or quotes do not split."""
    out, depth, quote, cur = [], 0, "", ""
    for ch in raw:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
            continue
        cur += ch
    out.append(cur.strip())
    return out


def parse_params(items: list[str] | tuple[str, ...]) -> list[tuple[str, list[str]]]:
    """``["aux_tasks.asr=0.1,1"]`` -> [("aux_tasks.asr", ["0.1", "1"])] (values kept as text)."""
    if not items:
        raise ConfigError("a sweep needs at least one --param KEY=V1,V2[,...]")
    out: list[tuple[str, list[str]]] = []
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        values = _split_values(raw) if sep else []
        if not key or not values or any(v == "" for v in values):
            raise ConfigError(f"--param {item!r} must look like KEY=V1,V2[,...] (e.g. aux_tasks.asr=0.1,1)")
        if key in (k for k, _ in out):
            raise ConfigError(f"--param {key} is given twice: put all its values in one --param")
        if len(set(values)) != len(values):
            raise ConfigError(f"--param {item!r} lists a value twice")
        if key in ("output_dir", "name", "folds") or key.startswith(("output_dir.", "name.")):
            raise ConfigError(f"--param {key}: the sweep sets {key} itself")
        out.append((key, values))
    return out


def parse_select(select: str) -> tuple[str, str]:
    """``"valid.ua"`` -> ("valid", "ua"); a test metric is refused, with the reason."""
    split, _, metric = select.partition(".")
    if split == "test":
        raise MetaserError(
            f"--select {select}: choosing on test leaks the test folds into model selection; "
            "the test scores must stay an unbiased estimate of the chosen trial",
            hint=f"select on validation, e.g. --select valid.{metric or 'ua'}",
        )
    if split != "valid" or not metric:
        raise MetaserError(f"--select {select!r}: expected valid.METRIC, e.g. valid.ua or valid.loss")
    return split, metric


def _value_text(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return json.dumps(v)
    if isinstance(v, (int, float, str)):
        return str(v)
    return json.dumps(v, separators=(",", ":"))


def trial_slug(params: dict[str, Any], short: dict[str, str]) -> str:
    """``{"aux_tasks.asr": 0.1, "aux_tasks.gender": 1}`` -> ``asr0.1_gender1`` (filesystem-safe)."""
    parts = [f"{short[k]}{_value_text(v)}" for k, v in params.items()]
    return re.sub(r"[^A-Za-z0-9._+=-]+", "-", "_".join(parts)).strip("-.") or "trial"


def _short_names(keys: list[str]) -> dict[str, str]:
    """The last dotted component of each key, unless two keys share it (then the whole key)."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last)}


def plan_trials(base: RunConfig, params: list[tuple[str, list[str]]], *, folds: list[int] | None = None) -> list[Trial]:
    """The product of the parameter lists, each a config under ``<output_dir>/<name>/sweep/``.

    Every value is applied once up front, so a typo fails before anything trains.
    """
    sweep_dir = sweep_root(base)
    short = _short_names([k for k, _ in params])
    trials: list[Trial] = []
    for combo in itertools.product(*[[(k, raw) for raw in values] for k, values in params]):
        overrides = [f"{k}={raw}" for k, raw in combo]
        parsed = {k: yaml.safe_load(raw) for k, raw in combo}
        slug = trial_slug(parsed, short)
        extra = [
            f"output_dir={sweep_dir}",
            f"name={slug}",
            f"store_dir={sweep_dir / '.stages'}",
            f"cache.dir={base.cache.dir or base.run_dir / 'cache'}",
        ] + ([f"folds={list(folds)}"] if folds else [])
        cfg = apply_overrides(base, overrides + extra)
        trials.append(Trial(slug, parsed, overrides, cfg))
    slugs = [t.slug for t in trials]
    dup = next((s for s in slugs if slugs.count(s) > 1), None)
    if dup:
        raise ConfigError(f"two trials would share the folder {sweep_dir / dup}: make the --param values distinct")
    return trials


def sweep_root(base: RunConfig) -> Path:
    return Path(base.output_dir) / base.name / "sweep"


# ----------------------------------------------------------------------------- running
def trial_result(trial: Trial, results: dict[str, TaskResult], select: str) -> TaskResult:
    """One trial's outcome from its stage tasks: its CV means (valid / test), or the first failure."""
    from metaser.experiments.grid import GridRun, run_failures
    from metaser.experiments.report import write_report

    failed = run_failures(GridRun(trial.slug, trial.slug, trial.cfg), results)
    if failed:
        return TaskResult(
            key=trial.slug,
            ok=False,
            result=None,
            error=failed[0].error,
            seconds=0.0,
            attempts=failed[0].attempts,
            log_path=failed[0].log_path,
        )
    res = write_report(trial.run_dir)
    valid = {k: v["mean"] for k, v in res["valid"].items() if "mean" in v}
    test = {k: v["mean"] for k, v in res["test"].items() if "mean" in v}
    _, metric = parse_select(select)
    out = {"valid": valid, "test": test, "run_dir": str(trial.run_dir)}
    if metric in valid:
        out.update(metric=f"valid.{metric}", value=valid[metric])
    return TaskResult(key=trial.slug, ok=True, result=out, error=None, seconds=0.0, attempts=1, log_path=None)


def run_sweep(
    base: RunConfig,
    params: list[tuple[str, list[str]]],
    *,
    select: str,
    launcher: Launcher,
    folds: list[int] | None = None,
    resume: bool = False,
    on_done: Callable[[Task, TaskResult], None] | None = None,
) -> tuple[dict[str, Any], list[Task], dict[str, TaskResult]]:
    """Run every trial's stages through ``launcher``; write summary.json / summary.md even when
    some failed. The trials share one stage store: a stage they have in common (same key, e.g.
    stage 1 of trials that differ only in stage-2 settings) is trained once.

    Returns ``(summary, tasks, results)``; the caller exits 1 if a result is not ok.
    """
    from metaser.experiments.grid import GridRun, grid_tasks, select_folds

    parse_select(select)
    trials = plan_trials(base, params, folds=folds)
    check_folds(base, folds)
    root = sweep_root(base)
    check_shared_output(root, launcher)
    runs = [GridRun(t.slug, t.slug, t.cfg) for t in trials]
    tasks = grid_tasks(runs, {r.slug: select_folds(r.cfg, folds) for r in runs}, resume=resume)
    results = launcher.run(tasks, on_done=on_done)
    summary = summarize(trials, [trial_result(t, results, select) for t in trials], select)
    write_json_atomic(summary, root / "summary.json")
    (root / "summary.md").write_text(render_sweep(summary))
    return summary, tasks, results


def check_folds(base: RunConfig, folds: list[int] | None) -> None:
    """Read the manifest once here, so a missing corpus or a fold out of range fails before any trial."""
    from metaser.data.folds import make_folds
    from metaser.data.manifest import load_manifest

    n = len(make_folds(load_manifest(manifest_file(base.data.manifest)), base.data.split))
    bad = [k for k in folds or [] if not 1 <= k <= n]
    if bad:
        raise MetaserError(f"--folds {','.join(map(str, bad))}: out of range, this corpus has {n} folds")


def summarize(trials: list[Trial], results: list[TaskResult], select: str) -> dict[str, Any]:
    """The summary document; ``best`` = the trial with the best validation metric (ties: the first)."""
    _, metric = parse_select(select)
    rows = []
    for t, r in zip(trials, results):
        row: dict[str, Any] = {"params": t.params, "valid": None, "test": None, "run_dir": str(t.run_dir)}
        if r.ok and r.result:
            row.update(valid=r.result["valid"], test=r.result["test"], run_dir=r.result["run_dir"])
        else:
            row["error"] = r.error if not r.ok else "the trial returned no scores"
        rows.append(row)
    sign = -1.0 if metric.endswith(LOWER_IS_BETTER) else 1.0
    scored = [
        (sign * row["valid"][metric], -i)
        for i, row in enumerate(rows)
        if row["valid"] and isinstance(row["valid"].get(metric), (int, float))
    ]
    best = None
    if scored:
        best_row = rows[-max(scored)[1]]
        best = {"params": best_row["params"], "run_dir": best_row["run_dir"]}
    return {"select": select, "trials": rows, "best": best}


def render_sweep(summary: dict[str, Any]) -> str:
    select = summary["select"]
    metric = select.split(".", 1)[1]
    keys = list(dict.fromkeys(k for row in summary["trials"] for k in row["params"]))
    shown = [(s, m) for s, m in (("valid", "ua"), ("test", "ua"), ("test", "wa")) if f"{s}.{m}" != select]
    lines = [
        f"# Sweep: selected by {select}",
        "",
        f"Scores are cross-validation means over the folds run, in %; {select} "
        f"({'lower' if metric.endswith(LOWER_IS_BETTER) else 'higher'} is better; on a tie, the first in grid "
        "order) chose the best trial (**bold**). "
        "Test scores are shown for the record only: they played no part in the choice.",
        "",
        "| " + " | ".join(keys + [select] + [f"{s}.{m}" for s, m in shown]) + " | run |",
        "|" + "---|" * (len(keys) + len(shown) + 2),
    ]
    best_dir = (summary["best"] or {}).get("run_dir")

    def pct(scores: dict | None, k: str) -> str:
        v = (scores or {}).get(k)
        if v is None:
            return "–"
        return f"{v:.4f}" if k.endswith(LOWER_IS_BETTER) else f"{100 * v:.2f}"

    for row in summary["trials"]:
        cells = [_value_text(row["params"].get(k)) for k in keys]
        cells += [pct(row["valid"], metric)] + [pct(row[s], m) for s, m in shown]
        cells.append(Path(row["run_dir"]).name + (f" (failed: {row['error']})" if row.get("error") else ""))
        if row["run_dir"] == best_dir:
            cells = [f"**{c}**" for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    if summary["best"]:
        best = ", ".join(f"{k}={_value_text(v)}" for k, v in summary["best"]["params"].items())
        lines += ["", f"Best on {select}: {best} ({summary['best']['run_dir']})"]
    else:
        lines += ["", "No trial finished with a validation score: nothing was selected."]
    return "\n".join(lines) + "\n"
