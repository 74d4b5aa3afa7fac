"""``metaser bench infer`` and ``metaser bench serve``: inference speed, measured.

``bench infer`` times (after an untimed warm-up on a few files)
:meth:`EmotionRecognizer.predict_batch` end to end (decoding included) over the same files for each
backend (torch, onnx; optionally onnxruntime graph optimisation levels and a dynamic-int8 copy of
the ONNX graph) and each batch size, and in the same run a plain transformers forward of the same
encoder (the HF model alone, one file at a time, no heads) as the reference. Batches are length-
sorted with a padding cap (see :func:`metaser.inference.recognizer.plan_batches`); the batch size to
use is the measured best, so batching never loses to one file at a time. Every row also reports how
far its probabilities are from torch at batch size 1 (``max_prob_diff``).

``bench serve`` starts ``metaser serve`` in a subprocess on loopback, sends ``requests`` raw
``audio/wav`` uploads from ``clients`` threads, and reports p50 / p95 latency, requests per second,
errors and the server's resident memory (RSS) before and after.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from metaser.constants import SAMPLE_RATE
from metaser.errors import MetaserError

__all__ = ["bench_infer", "bench_serve", "default_audio", "median_seconds"]


def default_audio(root: Path, n: int = 32, seed: int = 0) -> list[Path]:
    """``n`` files of 1-6 s of speech-like tone bursts (for a model without a corpus at hand)."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        k = int(SAMPLE_RATE * rng.uniform(1, 6))
        t = np.arange(k) / SAMPLE_RATE
        x = 0.1 * np.sin(2 * np.pi * rng.uniform(100, 300) * t) * (1 + np.sin(2 * np.pi * 3 * t))
        x += 0.01 * rng.standard_normal(k)
        p = root / f"f{i:02d}.wav"
        sf.write(p, x.astype(np.float32), SAMPLE_RATE)
        out.append(p)
    return out


def _files(audio: list[Path], tmp: Path) -> list[str]:
    if not audio:
        return [str(p) for p in default_audio(tmp)]
    from metaser.inference.predict import expand_inputs

    files = [str(e) for e in expand_inputs(audio) if isinstance(e, Path)]
    if not files:
        raise MetaserError("bench: no audio files in the given paths")
    return files


def median_seconds(fn, repeats: int, warmup=None) -> float:
    """Median wall seconds of ``repeats`` calls of ``fn``, after one untimed ``warmup`` (default: ``fn``)."""
    (warmup or fn)()  # untimed (allocator, onnxruntime arenas, lazy imports)
    walls = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t0)
    return statistics.median(walls)


def _probs(preds, labels: list[str]) -> np.ndarray:
    return np.array([[p.probs[c] for c in labels] for p in preds])  # (N, C)


def _reference_forward(model_dir: Path, files: list[str]):
    """A plain transformers forward of the encoder, file by file (what a user writes by hand):
    ``hf_model(x, output_hidden_states=True)`` under ``torch.inference_mode``, no heads."""
    import torch

    from metaser.data.audio import load_audio
    from metaser.models.metaser import MetaSERModel

    hf = MetaSERModel.from_pretrained(model_dir).encoder.model.eval()

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
        files = _files(list(audio or []), Path(tmp))
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


# ----------------------------------------------------------------------------- serve
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024.0, 1)
    except OSError:
        pass
    return None


def _post(url: str, data: bytes, timeout: float = 120.0) -> tuple[int, float]:
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "audio/wav"}, method="POST")
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            r.read()
            status = r.status
    except urllib.error.HTTPError as e:
        status = e.code
    except (urllib.error.URLError, OSError):
        status = -1
    return status, time.perf_counter() - t0


def bench_serve(
    model_dir: str | Path,
    audio: list[Path] | None = None,
    *,
    clients: int = 8,
    requests: int = 200,
    backend: str = "torch",
    port: int = 0,
    startup_timeout: float = 180.0,
    json_out: Path | None = None,
    console=None,
) -> dict[str, Any]:
    """Load-test ``metaser serve MODEL_DIR`` on loopback; see the module docstring."""
    from rich.console import Console

    console = console or Console()
    if clients < 1 or requests < 1:
        raise MetaserError("bench serve: --clients and --requests must be >= 1")
    port = port or _free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        files = _files(list(audio or []), Path(tmp))[:16] if audio else [str(p) for p in default_audio(Path(tmp), 8)]
        bodies = [Path(f).read_bytes() for f in files]
        cmd = [
            sys.executable,
            "-c",
            "from metaser.cli import main; main()",
            "serve",
            str(model_dir),
            "--port",
            str(port),
            "--backend",
            backend,
            "--batch-size",
            str(min(8, clients)),
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            t0 = time.monotonic()
            while True:
                if proc.poll() is not None:
                    raise MetaserError(
                        f"bench serve: the server exited ({proc.returncode}): "
                        f"{(proc.stderr.read() or '').strip()[-800:]}"
                    )
                try:
                    with urllib.request.urlopen(base + "/health", timeout=2) as r:
                        if r.status == 200:
                            break
                except (urllib.error.URLError, OSError):
                    pass
                if time.monotonic() - t0 > startup_timeout:
                    raise MetaserError(f"bench serve: no /health answer within {startup_timeout:.0f} s")
                time.sleep(0.3)
            rss_start = _rss_mb(proc.pid)
            url = base + "/v1/predict"
            with ThreadPoolExecutor(clients) as ex:  # warm-up, untimed: concurrent, so batches form
                list(ex.map(lambda i: _post(url, bodies[i % len(bodies)]), range(2 * clients)))
            rss_before = _rss_mb(proc.pid)
            console.print(f"[dim]bench serve: {requests} requests from {clients} clients ...[/]")
            res: list[tuple[int, float]] = []
            trace = []
            quarter = max(1, requests // 4)
            t0 = time.perf_counter()
            with ThreadPoolExecutor(clients) as ex:
                for q0 in range(0, requests, quarter):  # RSS after each quarter: growth vs plateau
                    n = min(quarter, requests - q0)
                    res += list(ex.map(lambda i: _post(url, bodies[i % len(bodies)]), range(q0, q0 + n)))
                    trace.append(_rss_mb(proc.pid))
            wall = time.perf_counter() - t0
            rss_after = _rss_mb(proc.pid)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
    lat = sorted(dt for _, dt in res)
    errors = sum(s != 200 for s, _ in res)
    out = {
        "kind": "serve",
        "model": str(model_dir),
        "backend": backend,
        "clients": clients,
        "requests": requests,
        "errors": errors,
        "wall_seconds": round(wall, 3),
        "requests_per_second": round(requests / wall, 2),
        "p50_ms": round(1000 * float(np.percentile(lat, 50)), 1),
        "p95_ms": round(1000 * float(np.percentile(lat, 95)), 1),
        "rss_start_mb": rss_start,
        "rss_before_mb": rss_before,
        "rss_after_mb": rss_after,
        "rss_trace_mb": trace,
        "cpu_count": os.cpu_count(),
    }
    console.print(
        f"{requests} requests, {clients} clients ({backend}): p50 {out['p50_ms']:.0f} ms, p95 "
        f"{out['p95_ms']:.0f} ms, {out['requests_per_second']:.2f} req/s, {errors} error(s); "
        f"server RSS {rss_before} -> {rss_after} MB (after start {rss_start} MB; per quarter {trace})"
    )
    if json_out:
        Path(json_out).write_text(json.dumps(out, indent=2))
    return out
