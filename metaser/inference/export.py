"""``metaser export``: turn a cross-validation run into one self-contained model directory.

The exported fold is the one with the best *validation* UA (the test parts are never used to
choose), or the fold the user names. The output directory holds the fold's ``model/`` files
(``config.json``, ``model.safetensors``), its ``labels.json``, ``run_info.json`` and
``metrics.json``, an ``export.json`` with the selection, and a ``README.md`` model card.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from metaser.constants import SAMPLE_RATE
from metaser.errors import MetaserError
from metaser.rundir import fold_dirs, fold_number

__all__ = ["FoldInfo", "list_folds", "select_fold", "export_model", "model_card", "EXPORT_INFO"]

EXPORT_INFO = "export.json"  # marks a directory written by export_model (safe to overwrite)


@dataclass
class FoldInfo:
    """One fold directory of a run. ``finished``: metrics.json and model/config.json exist."""

    fold: int
    path: Path
    finished: bool
    valid_ua: float | None = None
    metrics: dict[str, Any] | None = None
    problem: str | None = None  # why it is not usable


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise MetaserError(f"cannot read {path}: {e}") from None


def list_folds(run_dir: str | Path) -> list[FoldInfo]:
    """Every ``fold<K>`` directory of ``run_dir``, sorted by K, with its state."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise MetaserError(
            f"run directory not found: {run_dir}", hint="give the directory `metaser cv` wrote, e.g. runs/<name>"
        )
    folds = []
    for d in fold_dirs(run_dir):
        info = FoldInfo(fold=fold_number(d), path=d, finished=False)
        if not (d / "metrics.json").is_file():
            info.problem = "unfinished (no metrics.json)"
        elif not (d / "model" / "config.json").is_file():
            info.problem = "no saved model (model/config.json missing)"
        else:
            info.metrics = _read_json(d / "metrics.json")
            ua = (info.metrics.get("valid") or {}).get("ua") if isinstance(info.metrics, dict) else None
            if isinstance(ua, (int, float)):
                info.valid_ua = float(ua)
                info.finished = True
            else:
                info.problem = "metrics.json has no validation UA (valid.ua)"
        folds.append(info)
    return sorted(folds, key=lambda f: f.fold)


def select_fold(folds: list[FoldInfo], fold: int | None, run_dir: Path) -> FoldInfo:
    """The requested fold, or the finished fold with the best validation UA (ties: lowest K)."""
    if not folds:
        raise MetaserError(
            f"{run_dir} holds no fold directories (fold1, fold2, ...)",
            hint="train with `metaser cv CONFIG` or `metaser train CONFIG --fold K` first",
        )
    if fold is not None:
        hit = next((f for f in folds if f.fold == fold), None)
        if hit is None:
            have = ", ".join(str(f.fold) for f in folds)
            raise MetaserError(f"--fold {fold}: {run_dir / f'fold{fold}'} does not exist (folds here: {have})")
        if not hit.finished:
            raise MetaserError(
                f"--fold {fold}: {hit.path} is {hit.problem}",
                hint=f"finish it with `metaser train CONFIG --fold {fold} --resume`",
            )
        return hit
    done = [f for f in folds if f.finished]
    if not done:
        why = "; ".join(f"fold{f.fold}: {f.problem}" for f in folds)
        raise MetaserError(
            f"{run_dir} has no finished fold to export ({why})",
            hint="finish training with `metaser cv CONFIG --resume`",
        )
    return max(done, key=lambda f: (f.valid_ua, -f.fold))


def _pct(x: Any) -> str:
    return f"{100 * x:.2f}" if isinstance(x, (int, float)) else "n/a"


def model_card(
    info: dict[str, Any],
    fold: FoldInfo,
    model_cfg: dict[str, Any],
    run_info: dict[str, Any],
    results: dict[str, Any] | None,
    synthetic: bool,
    out_name: str,
) -> str:
    """README.md of an exported model directory."""
    m = fold.metrics or {}
    valid, test = m.get("valid") or {}, m.get("test") or {}
    tasks = model_cfg.get("tasks") or []
    arch = model_cfg.get("model") or {}
    enc = (arch.get("encoder") or {}).get("name_or_path", "?")
    fusion = arch.get("fusion") or {}
    lines = [f"# {out_name}: metaser speech emotion recognition model", ""]
    if synthetic:
        lines += [
            "> **Synthetic.** This model was trained on the synthetic demo corpus (eSpeak NG voices) "
            "with a tiny randomly initialised encoder. It only shows that the pipeline works; its "
            "predictions on real speech mean nothing.",
            "",
        ]
    lines += [
        "A metaser model (after Wan et al., arXiv 2412.20707): an SSL speech encoder "
        f"(`{enc}`), `{fusion.get('layers', '?')}` layer fusion, auxiliary metadata heads and "
        f"`{fusion.get('tasks', '?')}` task fusion, fine-tuned in two stages.",
        "",
        f"- emotions: {', '.join(model_cfg.get('emotion_labels', []))}",
        "- auxiliary tasks: " + (", ".join(f"{t['name']} ({t['kind']})" for t in tasks) or "none"),
        f"- input: mono audio at {model_cfg.get('sample_rate', SAMPLE_RATE)} Hz (other rates and channel counts "
        "are converted); recordings longer than 30 s are split into segments",
        "",
        "## Selection",
        "",
        f"Fold {fold.fold} of run `{info['run_dir']}`"
        + (f" (test group {run_info.get('test_group')})" if run_info.get("test_group") is not None else "")
        + (
            ", chosen by the user."
            if info["selected_by"] == "user"
            else ", the fold with the best **validation** UA (test results played no part in the choice)."
        ),
        "",
        "| split | UA % | WA % |",
        "|---|---:|---:|",
        f"| validation (fold {fold.fold}) | {_pct(valid.get('ua'))} | {_pct(valid.get('wa'))} |",
        f"| test (fold {fold.fold}) | {_pct(test.get('ua'))} | {_pct(test.get('wa'))} |",
    ]
    cv = (results or {}).get("test") or {}
    if isinstance(cv.get("ua"), dict) and "mean" in cv["ua"]:
        lines.append(
            f"| test, mean over {len((results or {}).get('folds', [])) or '?'} folds | "
            f"{_pct(cv['ua'].get('mean'))} ± {_pct(cv['ua'].get('std'))} | "
            f"{_pct((cv.get('wa') or {}).get('mean'))} ± {_pct((cv.get('wa') or {}).get('std'))} |"
        )
    lines += ["", "UA: unweighted accuracy (mean per-class recall); WA: weighted (overall) accuracy.", ""]
    if run_info:
        lines += [
            "## Training data",
            "",
            f"- manifest: `{run_info.get('manifest', '?')}` (sha256 `{run_info.get('manifest_sha256') or '?'}`)",
            f"- utterances: {run_info.get('num_train', '?')} train, {run_info.get('num_valid', '?')} "
            f"validation, {run_info.get('num_test', '?')} test; seed {run_info.get('seed', '?')}",
            f"- metaser {run_info.get('metaser_version', '?')}, torch {run_info.get('torch_version', '?')}",
            "",
        ]
    lines += [
        "## Use",
        "",
        "```bash",
        f"metaser predict {out_name} my_audio.wav another_dir/ --format json",
        f"metaser export-onnx {out_name}        # model.onnx, then: predict / serve --backend onnx",
        f"metaser export-onnx {out_name} --int8 # + model.int8.onnx (kept if it agrees with fp32): --backend onnx-int8",
        f"metaser serve {out_name}              # HTTP API + web page on http://127.0.0.1:8000/",
        "```",
        "",
        "```python",
        "from metaser import EmotionRecognizer",
        "",
        f'rec = EmotionRecognizer.from_pretrained("{out_name}")',
        'p = rec.predict("my_audio.wav")          # or rec.predict(samples, sample_rate=8000)',
        "print(p.emotion, p.probs, p.gender, p.style, p.transcript)",
        "```",
        "",
        "Files: `config.json` + `model.safetensors` (the model), `labels.json` (class names and CTC "
        "vocabulary), `metrics.json` and `run_info.json` (the fold's results and provenance), "
        "`export.json` (this selection).",
        "",
    ]
    return "\n".join(lines)


def export_model(run_dir: str | Path, out_dir: str | Path, *, fold: int | None = None) -> dict[str, Any]:
    """Copy the selected fold's model of ``run_dir`` into ``out_dir`` with a model card.

    fold: a 1-based fold number, or None for the finished fold with the best validation UA.
    Returns ``{"fold", "valid_ua", "test_ua", "path", "selected_by"}``. ``out_dir`` may be a
    new or empty directory or an earlier export (replaced); anything else is refused.
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    folds = list_folds(run_dir)
    chosen = select_fold(folds, fold, run_dir)
    src = chosen.path / "model"
    if out_dir.exists():
        if not out_dir.is_dir():
            raise MetaserError(f"-o {out_dir}: exists and is not a directory")
        if out_dir.resolve() == src.resolve() or src.resolve() in out_dir.resolve().parents:
            raise MetaserError(f"-o {out_dir}: cannot export into the run's own model directory")
        if any(out_dir.iterdir()):
            if not (out_dir / EXPORT_INFO).is_file():
                raise MetaserError(
                    f"-o {out_dir}: directory exists and is not an earlier export; refusing to overwrite it",
                    hint="give a new or empty directory",
                )
            shutil.rmtree(out_dir)
    try:
        shutil.copytree(src, out_dir, dirs_exist_ok=True)
    except OSError as e:
        raise MetaserError(f"cannot copy {src} to {out_dir}: {e}") from None

    run_info = _read_json(chosen.path / "run_info.json") if (chosen.path / "run_info.json").is_file() else {}
    for name in ("labels.json", "run_info.json", "metrics.json"):
        if (chosen.path / name).is_file():
            shutil.copy2(chosen.path / name, out_dir / name)
    synthetic = (run_dir / "SYNTHETIC").is_file()
    if synthetic:
        shutil.copy2(run_dir / "SYNTHETIC", out_dir / "SYNTHETIC")
    results = _read_json(run_dir / "results.json") if (run_dir / "results.json").is_file() else None
    test_ua = ((chosen.metrics or {}).get("test") or {}).get("ua")
    info = {
        "fold": chosen.fold,
        "valid_ua": chosen.valid_ua,
        "test_ua": test_ua,
        "path": str(out_dir),
        "selected_by": "user" if fold is not None else "best_valid_ua",
        "run_dir": str(run_dir),
        "synthetic": synthetic,
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "valid_ua_per_fold": {f"fold{f.fold}": f.valid_ua for f in folds},
    }
    (out_dir / EXPORT_INFO).write_text(json.dumps(info, indent=2) + "\n")
    model_cfg = _read_json(out_dir / "config.json")
    (out_dir / "README.md").write_text(model_card(info, chosen, model_cfg, run_info, results, synthetic, out_dir.name))
    return {k: info[k] for k in ("fold", "valid_ua", "test_ua", "path", "selected_by")}
