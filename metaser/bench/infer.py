"""``metaser bench infer``: inference speed, measured.

``bench infer`` times (after an untimed warm-up on a few files)
:meth:`EmotionRecognizer.predict_batch` end to end (decoding included) over the same files for each
backend variant, each batch size and each intra-op thread count (default: all cores, then 1).
Variants: torch; onnx at the given onnxruntime graph optimisation levels, with and without thread
spinning, and optionally with a batch's files run apart (N at a time, one thread each);
``model.int8.onnx`` when the model directory has one; with ``--int8`` also int8 copies of
``model.onnx`` made here by every quantisation method. In the same run and at each thread count
it times a plain transformers forward of the same encoder (the HF model alone, one file at a
time, no heads) as the reference. Batches are length-sorted with a padding cap (see
:func:`metaser.inference.pieces.plan_batches`); the batch size to use is the measured best, so
batching never loses to one file at a time. Every row reports how far its probabilities (every
classification head) are from torch at batch size 1, how often each head picks the same label,
and the 1-minute load average when it finished: other jobs on the machine change the figures.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from metaser.bench.common import audio_files, median_seconds
from metaser.constants import SAMPLE_RATE
from metaser.errors import MetaserError

__all__ = ["bench_infer", "default_threads"]


def default_threads() -> list[int]:
    """All cores, then one thread (just ``[1]`` on one core)."""
    return sorted({os.cpu_count() or 1, 1}, reverse=True)


def _heads(preds, rec) -> dict[str, np.ndarray]:
    """Per classification head, (N, C) probabilities: emotion's in full; an auxiliary head's
    top label and its probability (what a Prediction keeps), the other entries 0."""
    out = {"emotion": np.array([[p.probs[c] for c in rec.emotion_labels] for p in preds])}
    for t in rec.tasks:
        if t.kind != "classification":
            continue
        labels = [str(v) for v in t.labels]

        def row(p, labels=labels, name=t.name):
            top = {"gender": (p.gender, p.gender_prob), "style": (p.style, p.style_prob)}
            lab, prob = top.get(name, p.aux.get(name, (None, None)))
            r = np.zeros(len(labels))
            if lab in labels:
                r[labels.index(lab)] = prob
            return r

        out[t.name] = np.array([row(p) for p in preds])
    return out


def _reference_forward(model_dir: Path, files: list[str]):
    """A plain transformers forward of the encoder, file by file (what a user writes by hand):
    ``hf_model(x, output_hidden_states=True)`` under ``torch.inference_mode``, no heads."""
    import torch

    from metaser.data.audio import load_audio
    from metaser.models.factory import load_ser_model

    hf = load_ser_model(model_dir).encoder.model.eval()

    def run():
        with torch.inference_mode():
            for f in files:
                x = torch.from_numpy(load_audio(f, SAMPLE_RATE))[None]  # (1, S)
                hf(x, output_hidden_states=True)

    return run


def _variants(
    model_dir: Path, backends, opt_levels, spins, apart: bool, int8: bool, files, tmp: Path
) -> list[tuple[str, str, dict]]:
    from metaser.inference.backends import ONNX_FILES

    out: list[tuple[str, str, dict]] = []
    for b in backends:
        if b == "torch":
            out.append(("torch", "", {}))
            continue
        for lvl in opt_levels:
            for spin in spins:
                v = f"opt={lvl}" + ("" if spin == "on" else ", spin=off")
                out.append((b, v, {"onnx_file": ONNX_FILES[b], "optimization": lvl, "spin": spin == "on"}))
            if apart:
                kw = {"onnx_file": ONNX_FILES[b], "optimization": lvl, "spin": True, "apart": True}
                out.append((b, f"opt={lvl}, files apart", kw))
    if int8:
        from metaser.data.audio import load_audio
        from metaser.inference.calibration import CalibrationSet
        from metaser.inference.quantize import METHODS, quantize_int8

        cal = CalibrationSet("directory", "the timed files")
        for f in files:
            cal.add(f, load_audio(f, SAMPLE_RATE))
        for method in METHODS:
            q = tmp / f"model.int8-{method}.onnx"
            quantize_int8(model_dir / ONNX_FILES["onnx"], q, method=method, calibration=cal)
            out.append(
                ("onnx-int8", f"{method} (made here)", {"onnx_file": str(q), "optimization": "all", "spin": True})
            )
    return out


def _recognizer(model_dir: Path, backend: str, threads: int, kw: dict):
    from metaser.inference.backends import OnnxBackend
    from metaser.inference.recognizer import EmotionRecognizer

    if backend == "torch":
        return EmotionRecognizer.from_pretrained(model_dir, device="cpu", backend="torch", threads=threads)
    rec = EmotionRecognizer.from_pretrained(model_dir, backend=backend, threads=threads, onnx_file=kw["onnx_file"])
    if kw["optimization"] != "all" or not kw["spin"] or kw.get("apart"):
        rec.backend = OnnxBackend(
            model_dir / kw["onnx_file"],
            threads=threads,
            optimization=kw["optimization"],
            spin=kw["spin"],
            name=backend,
            files_at_once=threads if kw.get("apart") else 1,
        )
    return rec


def bench_infer(
    model_dir: str | Path,
    audio: list[Path] | None = None,
    *,
    backends: list[str] | None = None,
    batch_sizes: list[int] | None = None,
    threads: list[int] | int | None = None,
    repeats: int = 3,
    reference: bool = True,
    int8: bool = False,
    onnx_opt_levels: tuple[str, ...] = ("all",),
    onnx_spin: tuple[str, ...] = ("on",),
    onnx_apart: bool = False,
    json_out: Path | None = None,
    console=None,
) -> dict[str, Any]:
    """Real-time factor (wall / audio seconds) per backend variant, thread count and batch size;
    see the module doc."""
    import soundfile as sf
    import torch
    from rich.console import Console

    from metaser.inference.backends import BACKENDS, ONNX_FILES

    console = console or Console()
    model_dir = Path(model_dir)
    thread_counts = [threads] if isinstance(threads, int) else list(threads or default_threads())
    if backends is None:
        backends = ["torch"] + [b for b, f in ONNX_FILES.items() if (model_dir / f).is_file()]
    for b in backends:
        if b not in BACKENDS:
            raise MetaserError(f"bench infer: unknown backend {b!r} (one of {', '.join(BACKENDS)})")
        if b in ONNX_FILES and not (model_dir / ONNX_FILES[b]).is_file():
            raise MetaserError(
                f"bench infer: {model_dir} has no {ONNX_FILES[b]}",
                hint=f"write it with `metaser export-onnx {model_dir}" + (" --int8`" if b == "onnx-int8" else "`"),
            )
    if int8 and not (model_dir / ONNX_FILES["onnx"]).is_file():
        raise MetaserError(
            f"bench infer --int8: {model_dir} has no model.onnx", hint=f"metaser export-onnx {model_dir}"
        )
    spins = [s for s in onnx_spin if s in ("on", "off")] or ["on"]
    batch_sizes = sorted(set(batch_sizes or [1, 2, 4, 8]))
    if 1 not in batch_sizes:
        batch_sizes = [1, *batch_sizes]  # one at a time is the baseline every batch size is held to
    rows: list[dict[str, Any]] = []
    refs: dict[int, dict[str, Any]] = {}
    base: dict[str, np.ndarray] | None = None
    with tempfile.TemporaryDirectory() as tmp:
        files = audio_files(list(audio or []), Path(tmp))
        duration = sum(sf.info(f).duration for f in files)
        variants = _variants(model_dir, backends, onnx_opt_levels, spins, onnx_apart, int8, files, Path(tmp))

        def save(partial: bool) -> dict[str, Any]:
            out = _summary(model_dir, files, duration, repeats, thread_counts, refs, rows)
            if json_out:  # partial results survive an interrupted run
                Path(json_out).parent.mkdir(parents=True, exist_ok=True)
                Path(json_out).write_text(json.dumps({**out, "partial": partial}, indent=2))
            return out

        for t in thread_counts:
            torch.set_num_threads(int(t))
            if reference:
                run = _reference_forward(model_dir, files)
                console.print(f"[dim]bench infer: plain transformers forward, {t} thread(s) ...[/]")
                wall = median_seconds(run, repeats, _reference_forward(model_dir, files[:4]))
                refs[t] = {
                    "threads": t,
                    "wall_seconds": round(wall, 3),
                    "rtf": round(wall / duration, 5),
                    "load": _load(),
                }
            for backend, variant, kw in variants:
                if kw.get("apart") and t == 1:
                    continue  # one file at a time on one thread: the plain variant
                rec = _recognizer(model_dir, backend, t, kw)
                for bs in batch_sizes:
                    rec.config.batch_size = bs
                    preds: list = []

                    def run(rec=rec, preds=preds):
                        preds[:] = rec.predict_batch(files)

                    console.print(f"[dim]bench infer: {backend} {variant} batch {bs}, {t} thread(s) ...[/]")
                    wall = median_seconds(run, repeats, lambda rec=rec, bs=bs: rec.predict_batch(files[: 2 * bs]))
                    bad = [p for p in preds if not p.ok]
                    if bad:
                        raise MetaserError(
                            f"bench infer: {len(bad)} file(s) failed, e.g. {bad[0].path}: {bad[0].error}"
                        )
                    heads = _heads(preds, rec)
                    base = base or heads  # torch (or the first backend) at batch size 1
                    rows.append(
                        {
                            "backend": backend,
                            "variant": variant,
                            "threads": t,
                            "batch_size": bs,
                            "wall_seconds": round(wall, 3),
                            "rtf": round(wall / duration, 5),
                            "files_per_second": round(len(files) / wall, 2),
                            "max_prob_diff": max(float(np.abs(heads[h] - base[h]).max()) for h in base),
                            "label_agreement": float(np.mean(heads["emotion"].argmax(1) == base["emotion"].argmax(1))),
                            "label_agreement_per_head": {
                                h: float(np.mean(heads[h].argmax(1) == base[h].argmax(1))) for h in base
                            },
                            "load": _load(),
                        }
                    )
                    save(partial=True)
                del rec
        out = save(partial=False)
    _print(console, out, len(files), duration, repeats)
    return out


def _load() -> float:
    """The 1-minute load average (what `uptime` prints first)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:  # pragma: no cover - not on every platform
        return float("nan")


def _key(r: dict[str, Any]) -> tuple:
    return (r["backend"], r["variant"], r["threads"])


def _summary(model_dir, files, duration, repeats, thread_counts, refs, rows) -> dict[str, Any]:
    for r in rows:
        one = next((x for x in rows if _key(x) == _key(r) and x["batch_size"] == 1), r)
        r["vs_one_at_a_time"] = round(one["rtf"] / r["rtf"], 3)
        if r["threads"] in refs:
            r["vs_reference"] = round(refs[r["threads"]]["rtf"] / r["rtf"], 3)
        single = next(
            (
                x
                for x in rows
                if x["threads"] == 1 and x["batch_size"] == r["batch_size"] and _key(x)[:2] == _key(r)[:2]
            ),
            None,
        )
        if single is not None:
            r["vs_one_thread"] = round(single["rtf"] / r["rtf"], 3)
    picks = []
    for key in dict.fromkeys(_key(r) for r in rows):
        b = min((x for x in rows if _key(x) == key), key=lambda x: x["rtf"])
        picks.append(
            {"backend": key[0], "variant": key[1], "threads": key[2], "batch_size": b["batch_size"], "rtf": b["rtf"]}
        )
    best = min(rows, key=lambda r: r["rtf"]) if rows else None
    return {
        "kind": "infer",
        "model": str(model_dir),
        "files": len(files),
        "audio_seconds": round(duration, 2),
        "repeats": repeats,
        "threads": thread_counts,
        "cpu_count": os.cpu_count(),
        "reference": [refs[t] for t in thread_counts if t in refs],
        "results": rows,
        "best": None if best is None else {k: best[k] for k in ("backend", "variant", "threads", "batch_size", "rtf")},
        "best_batch_size": picks,
    }


def _print(console, out: dict[str, Any], n_files: int, duration: float, repeats: int) -> None:
    from rich.table import Table

    table = Table(title=f"inference: {n_files} files, {duration:.1f} s audio, median of {repeats}")
    cols = ("threads", "backend", "variant", "batch", "RTF", "files/s", "× 1-at-a-time", "× reference", "× 1 thread")
    for col in (*cols, "max Δp", "same label", "load"):
        table.add_column(col, justify="right")
    refs = {r["threads"]: r for r in out["reference"]}
    for t in out["threads"]:
        if t in refs:
            table.add_row(
                str(t),
                "transformers",
                "plain forward",
                "1",
                f"{refs[t]['rtf']:.4f}",
                "",
                "",
                "1.00",
                "",
                "",
                "",
                f"{refs[t]['load']:.1f}",
            )
        for r in (x for x in out["results"] if x["threads"] == t):
            table.add_row(
                str(t),
                r["backend"],
                r["variant"],
                str(r["batch_size"]),
                f"{r['rtf']:.4f}",
                f"{r['files_per_second']:.1f}",
                f"{r['vs_one_at_a_time']:.2f}",
                f"{r.get('vs_reference', float('nan')):.2f}",
                f"{r.get('vs_one_thread', float('nan')):.2f}",
                f"{r['max_prob_diff']:.1e}",
                f"{min(r['label_agreement_per_head'].values()):.3f}",
                f"{r['load']:.1f}",
            )
    console.print(table)
    for p in out["best_batch_size"]:
        console.print(
            f"best batch size: {p['backend']} {p['variant']} at {p['threads']} thread(s): "
            f"{p['batch_size']} (RTF {p['rtf']:.4f})"
        )
    b = out["best"]
    if b:
        console.print(
            f"best: {b['backend']} {b['variant']} batch {b['batch_size']}, {b['threads']} thread(s), RTF {b['rtf']:.4f}"
        )
