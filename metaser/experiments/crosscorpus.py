"""Across corpora: ``metaser evaluate`` (a trained model on any prepared corpus) and ``metaser
cross`` (train on one corpus, test on others).

Both go through one label map (:mod:`metaser.data.labelmap`): corpus label -> common label, the
default mapping names to neu / hap / ang / sad and dropping the rest, with a count of what was
dropped. The model's own classes are mapped the same way; its probabilities are summed per common
class (classes that map to nothing are left out) and the prediction is the most probable common
class. Scores: UA, WA, macro-F1 and the confusion matrix over the common classes
(:mod:`metaser.training.metrics`, the definitions of every metaser report).

``cross`` trains with the fold runner on the whole training corpus, relabelled to the common
classes, less a validation part held out for model selection (``data.split.valid_fraction``,
stratified by emotion); it has no test part of its own. Its model (the checkpoint selected on
validation) is then evaluated on every test corpus: a matrix of train corpus x test corpus.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from metaser.config import apply_overrides
from metaser.constants import SAMPLE_RATE
from metaser.data.audio import AudioError
from metaser.data.folds import FoldSplit, train_valid_split
from metaser.data.labelmap import LabelMap, load_label_map
from metaser.data.manifest import EMOTION, load_cut_audio, load_manifest, save_manifest
from metaser.errors import DataError, MetaserError
from metaser.inference.recognizer import EmotionRecognizer
from metaser.rundir import manifest_file, write_json_atomic
from metaser.training.config import RunConfig
from metaser.training.metrics import classification_scores

__all__ = ["evaluate_model", "relabel_manifest", "run_cross", "corpus_name", "render_matrix"]


def corpus_name(manifest: str | Path) -> str:
    """A short name for a manifest: its folder (``data/emodb/cuts.jsonl.gz`` -> ``emodb``)."""
    p = manifest_file(manifest)
    return p.parent.name if p.name == "cuts.jsonl.gz" else p.name.split(".")[0]


def _common_probs(probs: dict[str, float], to_common: dict[str, str | None], classes: list[str]) -> np.ndarray:
    out = np.zeros(len(classes))
    for label, p in probs.items():
        common = to_common.get(label)
        if common is not None:
            out[classes.index(common)] += p
    return out


def evaluate_model(
    model_dir: str | Path,
    manifest: str | Path,
    *,
    label_map: str | Path | None = None,
    batch_size: int = 8,
    device: str = "auto",
    recognizer: EmotionRecognizer | None = None,
) -> dict[str, Any]:
    """Score the model in ``model_dir`` on every cut of ``manifest`` whose label maps to a common
    class; returns the figures (fractions) with what was dropped and why."""
    lmap: LabelMap = load_label_map(label_map)
    rec = recognizer or EmotionRecognizer.from_pretrained(model_dir, device=device, batch_size=batch_size)
    to_common = {c: lmap.map(c) for c in rec.emotion_labels}
    model_classes = sorted({c for c in to_common.values() if c is not None})
    if not model_classes:
        raise MetaserError(
            f"none of the model's classes ({', '.join(rec.emotion_labels)}) maps to a common label",
            hint="give a label map (--label-map FILE) that covers the model's classes",
        )
    cuts = list(load_manifest(manifest_file(manifest)))
    mapped = lmap.map_cuts(cuts)
    classes = sorted(set(model_classes) | set(mapped.labels))
    arrays, refs, failed = [], [], Counter()
    for cut, label in zip(mapped.kept, mapped.labels):
        try:
            arrays.append(load_cut_audio(cut, SAMPLE_RATE))
            refs.append(classes.index(label))
        except (AudioError, DataError) as e:
            failed[getattr(e, "reason", "unreadable")] += 1
    if not arrays:
        raise MetaserError(f"{manifest}: no utterance with a label the map keeps ({dict(mapped.dropped)} dropped)")
    preds, scored_refs = [], []
    for ref, result in zip(refs, rec.predict_batch(arrays)):
        if not result.ok:
            failed[result.reason] += 1
            continue
        preds.append(int(np.argmax(_common_probs(result.probs, to_common, classes))))
        scored_refs.append(ref)
    scores = classification_scores(scored_refs, preds, len(classes))
    return {
        "model": str(model_dir),
        "manifest": str(manifest_file(manifest)),
        "corpus": corpus_name(manifest),
        "label_map": str(label_map) if label_map else "default",
        "classes": classes,
        "model_classes": {c: to_common[c] for c in rec.emotion_labels},
        "dropped": dict(mapped.dropped),
        "failed": dict(failed),
        **scores,
    }


def relabel_manifest(manifest: str | Path, out_dir: Path, label_map: str | Path | None) -> tuple[Path, dict]:
    """The cuts of ``manifest`` whose emotion maps to a common label, with that label as their
    emotion (the corpus label stays in ``emotion_raw``), saved under ``out_dir``."""
    from lhotse import CutSet
    from lhotse.utils import fastcopy

    lmap = load_label_map(label_map)
    mapped = lmap.map_cuts(load_manifest(manifest_file(manifest)))
    if not mapped.kept:
        raise MetaserError(f"{manifest}: no utterance with a label the map keeps ({dict(mapped.dropped)} dropped)")
    out = []
    for cut, label in zip(mapped.kept, mapped.labels):
        sup = cut.supervisions[0]
        sup = fastcopy(sup, custom={**(sup.custom or {}), EMOTION: label})
        out.append(fastcopy(cut, supervisions=[sup, *cut.supervisions[1:]]))
    save_manifest(CutSet.from_cuts(out), out_dir)
    return manifest_file(out_dir), dict(mapped.dropped)


def run_cross(
    cfg: RunConfig,
    train: str | Path,
    tests: list[str | Path],
    *,
    label_map: str | Path | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Train ``cfg`` on ``train`` (relabelled, a validation part held out) and evaluate its
    selected model on every manifest of ``tests``; returns the matrix (and writes it to
    ``<run_dir>/cross.json``)."""
    from metaser.training.fold import fold_dir
    from metaser.training.fold_run import train_fold

    run_dir = cfg.run_dir
    relabelled, dropped = relabel_manifest(train, run_dir / "train-manifest", label_map)
    cfg = apply_overrides(cfg, [f"data.manifest={relabelled}"])
    cuts = load_manifest(relabelled)
    split: FoldSplit = train_valid_split(cuts, cfg.data.split, name=f"train-{corpus_name(train)}")
    metrics = train_fold(cfg, 1, resume=resume, cuts=cuts, split=split)
    model_dir = fold_dir(cfg, 1) / "model"
    rec = EmotionRecognizer.from_pretrained(model_dir, device="auto")
    rows = [evaluate_model(model_dir, t, label_map=label_map, recognizer=rec) for t in tests]
    out = {
        "train": {"manifest": str(manifest_file(train)), "corpus": corpus_name(train), "dropped": dropped},
        "model": str(model_dir),
        "valid": metrics.get("valid", {}),
        "label_map": str(label_map) if label_map else "default",
        "tests": rows,
        "matrix": {
            corpus_name(train): {
                r["corpus"]: {k: r[k] for k in ("ua", "wa", "macro_f1", "num_utterances")} for r in rows
            }
        },
    }
    write_json_atomic(out, run_dir / "cross.json")
    return out


def render_matrix(out: dict[str, Any]) -> str:
    """The train x test matrix as markdown (UA / WA / macro-F1, %)."""
    tests = [r["corpus"] for r in out["tests"]]
    lines = ["| train \\ test | " + " | ".join(tests) + " |", "|---|" + "---|" * len(tests)]
    for train, row in out["matrix"].items():
        cells = [f"{100 * row[t]['ua']:.2f} / {100 * row[t]['wa']:.2f} / {100 * row[t]['macro_f1']:.2f}" for t in tests]
        lines.append(f"| {train} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\nUA / WA / macro-F1 (%), over the common classes of the label map.\n"
