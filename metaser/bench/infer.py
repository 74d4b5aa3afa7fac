"""``metaser bench infer``: inference speed, measured.

``bench infer`` times (after an untimed warm-up on a few files)
:meth:`EmotionRecognizer.predict_batch` end to end (decoding included) over the same files for each
backend (torch, onnx; optionally onnxruntime graph optimisation levels and a dynamic-int8 copy of
the ONNX graph) and each batch size, and in the same run a plain transformers forward of the same
encoder (the HF model alone, one file at a time, no heads) as the reference. Batches are length-
sorted with a padding cap (see :func:`metaser.inference.recognizer.plan_batches`); the batch size to
use is the measured best, so batching never loses to one file at a time. Every row also reports how
far its probabilities are from torch at batch size 1 (``max_prob_diff``).
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

__all__ = ["bench_infer"]


def _probs(preds, labels: list[str]) -> np.ndarray:
    return np.array([[p.probs[c] for c in labels] for p in preds])  # (N, C)


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


def bench_infer(
    model_dir: str | Path,
    audio: list[Path] | None = None,
    *,
    backends: list[str] | None = None,
    batch_sizes: list[int] | None = None,
    threads: int | None = None,
    repeats: int = 3,
    reference: bool = True,
    int8: bool = False,
    onnx_opt_levels: tuple[str, ...] = ("all",),
    json_out: Path | None = None,
    console=None,
) -> dict[str, Any]:
    """Real-time factor (wall / audio seconds) per backend variant and batch size; see the module doc."""
    import soundfile as sf
    import torch
    from rich.console import Console
    from rich.table import Table

    from metaser.inference.recognizer import ONNX_NAME

    console = console or Console()
    model_dir = Path(model_dir)
    if threads:
        torch.set_num_threads(int(threads))
    if backends is None:
        backends = ["torch"] + (["onnx"] if (model_dir / ONNX_NAME).is_file() else [])
    batch_sizes = sorted(set(batch_sizes or [1, 2, 4, 8]))
    if 1 not in batch_sizes:
        batch_sizes = [1, *batch_sizes]  # one at a time is the baseline every batch size is held to
    with tempfile.TemporaryDirectory() as tmp:
        files = audio_files(list(audio or []), Path(tmp))
        duration = sum(sf.info(f).duration for f in files)
        variants: list[tuple[str, str, dict]] = []
        for b in backends:
            if b == "onnx":
                variants += [("onnx", f"opt={lvl}", {"optimization": lvl}) for lvl in onnx_opt_levels]
                if int8:
                    from metaser.inference.onnx_export import quantize_int8

                    q = quantize_int8(model_dir)
                    variants.append(("onnx", "int8", {"onnx_file": q.name}))
            else:
                variants.append((b, "", {}))
        rows: list[dict[str, Any]] = []
        base_probs = None
        ref_row = None
        if reference:
            wall = median_seconds(
                _reference_forward(model_dir, files), repeats, _reference_forward(model_dir, files[:4])
            )
            ref_row = {
                "backend": "transformers",
                "variant": "plain forward (encoder only)",
                "batch_size": 1,
                "wall_seconds": round(wall, 3),
                "rtf": round(wall / duration, 5),
            }
        for backend, variant, kw in variants:
            rec = _recognizer(model_dir, backend, threads, kw)
            for bs in batch_sizes:
                rec.config.batch_size = bs
                preds: list = []

                def run(rec=rec, preds=preds):
                    preds[:] = rec.predict_batch(files)

                console.print(f"[dim]bench infer: {backend} {variant} batch {bs} ...[/]")
                wall = median_seconds(run, repeats, lambda rec=rec, bs=bs: rec.predict_batch(files[: 2 * bs]))
                bad = [p for p in preds if not p.ok]
                if bad:
                    raise MetaserError(f"bench infer: {len(bad)} file(s) failed, e.g. {bad[0].path}: {bad[0].error}")
                probs = _probs(preds, rec.emotion_labels)
                if base_probs is None:
                    base_probs = probs  # torch (or the first backend) at batch size 1
                rows.append(
                    {
                        "backend": backend,
                        "variant": variant,
                        "batch_size": bs,
                        "wall_seconds": round(wall, 3),
                        "rtf": round(wall / duration, 5),
                        "files_per_second": round(len(files) / wall, 2),
                        "max_prob_diff": float(np.abs(probs - base_probs).max()),
                        "label_agreement": float(np.mean(probs.argmax(1) == base_probs.argmax(1))),
                    }
                )
                if json_out:  # partial results survive an interrupted run
                    Path(json_out).parent.mkdir(parents=True, exist_ok=True)
                    Path(json_out).write_text(
                        json.dumps({"kind": "infer", "partial": True, "reference": ref_row, "results": rows}, indent=2)
                    )
            del rec
    best = min(rows, key=lambda r: r["rtf"])
    for r in rows:
        one = next(
            x for x in rows if (x["backend"], x["variant"]) == (r["backend"], r["variant"]) and x["batch_size"] == 1
        )
        r["vs_one_at_a_time"] = round(one["rtf"] / r["rtf"], 3)
        if ref_row:
            r["vs_reference"] = round(ref_row["rtf"] / r["rtf"], 3)
    out = {
        "kind": "infer",
        "model": str(model_dir),
        "files": len(files),
        "audio_seconds": round(duration, 2),
        "repeats": repeats,
        "threads": threads or torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "reference": ref_row,
        "results": rows,
        "best": {k: best[k] for k in ("backend", "variant", "batch_size", "rtf")},
        "best_batch_size": {
            f"{r['backend']} {r['variant']}".strip(): min(
                (x for x in rows if (x["backend"], x["variant"]) == (r["backend"], r["variant"])),
                key=lambda x: x["rtf"],
            )["batch_size"]
            for r in rows
        },
    }
    table = Table(
        title=f"inference: {len(files)} files, {duration:.1f} s audio, {out['threads']} thread(s), median of {repeats}"
    )
    for col in ("backend", "variant", "batch", "RTF", "files/s", "× 1-at-a-time", "× reference", "max Δp"):
        table.add_column(col, justify="right")
    if ref_row:
        table.add_row("transformers", "plain forward", "1", f"{ref_row['rtf']:.4f}", "", "", "1.00", "")
    for r in rows:
        table.add_row(
            r["backend"],
            r["variant"],
            str(r["batch_size"]),
            f"{r['rtf']:.4f}",
            f"{r['files_per_second']:.1f}",
            f"{r['vs_one_at_a_time']:.2f}",
            f"{r.get('vs_reference', float('nan')):.2f}",
            f"{r['max_prob_diff']:.1e}",
        )
    console.print(table)
    console.print(f"best: {best['backend']} {best['variant']} batch {best['batch_size']}, RTF {best['rtf']:.4f}")
    if json_out:
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(out, indent=2))
    return out


def _recognizer(model_dir: Path, backend: str, threads: int | None, kw: dict):
    from metaser.inference.backends import OnnxBackend
    from metaser.inference.recognizer import EmotionRecognizer

    if backend == "onnx" and kw:
        rec = EmotionRecognizer.from_pretrained(
            model_dir, backend="onnx", threads=threads, onnx_file=kw.get("onnx_file")
        )
        if "optimization" in kw and kw["optimization"] != "all":
            rec.backend = OnnxBackend(
                model_dir / (kw.get("onnx_file") or "model.onnx"), threads=threads, optimization=kw["optimization"]
            )
        return rec
    return EmotionRecognizer.from_pretrained(model_dir, device="cpu", backend=backend, threads=threads)
