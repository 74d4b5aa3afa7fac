"""``metaser bench serve``: the HTTP service under load, measured.

``bench serve`` starts ``metaser serve`` in a subprocess on loopback, sends ``requests`` raw
``audio/wav`` uploads from ``clients`` threads, and reports p50 / p95 latency, requests per second,
errors and the server's resident memory (RSS) before and after.
"""

from __future__ import annotations

import json
import os
import socket
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

from metaser.bench.common import audio_files, default_audio
from metaser.errors import MetaserError

__all__ = ["bench_serve"]


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
        files = (
            audio_files(list(audio or []), Path(tmp))[:16] if audio else [str(p) for p in default_audio(Path(tmp), 8)]
        )
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
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(out, indent=2))
    return out
