"""``metaser bench serve``: the HTTP service under load, measured.

``bench serve`` starts ``metaser serve`` in a subprocess on loopback, warms it up with
``warmup`` concurrent requests, then sends ``requests`` raw ``audio/wav`` uploads of mixed
lengths from ``clients`` threads, and reports p50 / p95 latency, requests per second, errors and
the server's resident memory (RSS) after start, after the warm-up, after each quarter and at the end.

``long``: a long recording (e.g. 10 minutes) that ``long_clients`` more threads upload again and
again while the short requests are timed, as a mix of traffic. The short requests' latency is
then what a long upload costs everyone else; the long uploads' own latencies are reported apart.

``max_rss_growth``: fail (MetaserError, exit 2) when the server's RSS grew by more than this
fraction from after the warm-up to the end (0.05: 5 %); the JSON is written first.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from metaser.bench.common import audio_files, default_audio
from metaser.errors import MetaserError
from metaser.inference.serve.memory import rss_mb

__all__ = ["bench_serve", "check_rss_growth"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, data: bytes, timeout: float = 600.0) -> tuple[int, float]:
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


def _latency(res: list[tuple[int, float]]) -> dict[str, Any]:
    lat = sorted(dt for _, dt in res)
    return {
        "requests": len(res),
        "errors": sum(s != 200 for s, _ in res),
        "p50_ms": round(1000 * float(np.percentile(lat, 50)), 1) if lat else None,
        "p95_ms": round(1000 * float(np.percentile(lat, 95)), 1) if lat else None,
        "max_ms": round(1000 * lat[-1], 1) if lat else None,
    }


def _start_server(model_dir, port: int, backend: str, batch_size: int, log_file, startup_timeout: float):
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
        str(batch_size),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log_file)  # a file: a full pipe would block it
    base = f"http://127.0.0.1:{port}"
    t0 = time.monotonic()
    while True:
        if proc.poll() is not None:
            log_file.flush()
            raise MetaserError(
                f"bench serve: the server exited ({proc.returncode}): {Path(log_file.name).read_text()[-800:]}"
            )
        try:
            with urllib.request.urlopen(base + "/health", timeout=2) as r:
                if r.status == 200:
                    return proc
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() - t0 > startup_timeout:
            proc.kill()
            raise MetaserError(f"bench serve: no /health answer within {startup_timeout:.0f} s")
        time.sleep(0.3)


def bench_serve(
    model_dir: str | Path,
    audio: list[Path] | None = None,
    *,
    clients: int = 8,
    requests: int = 200,
    warmup: int | None = None,
    long: Path | None = None,
    long_clients: int = 1,
    max_rss_growth: float | None = None,
    backend: str = "torch",
    port: int = 0,
    startup_timeout: float = 180.0,
    json_out: Path | None = None,
    console=None,
) -> dict[str, Any]:
    """Load-test ``metaser serve MODEL_DIR`` on loopback; see the module docstring."""
    from rich.console import Console

    console = console or Console()
    if clients < 1 or requests < 1 or long_clients < 1:
        raise MetaserError("bench serve: --clients, --requests and --long-clients must be >= 1")
    if max_rss_growth is not None and not max_rss_growth > 0:
        raise MetaserError(f"bench serve: --max-rss-growth must be > 0, got {max_rss_growth}")
    if long is not None and not Path(long).is_file():
        raise MetaserError(f"bench serve: --long {long}: no such file")
    warmup = 2 * clients if warmup is None else max(0, int(warmup))
    port = port or _free_port()
    url = f"http://127.0.0.1:{port}/v1/predict"
    with tempfile.TemporaryDirectory() as tmp:
        files = (
            audio_files(list(audio or []), Path(tmp))[:16] if audio else [str(p) for p in default_audio(Path(tmp), 16)]
        )
        bodies = [Path(f).read_bytes() for f in files]
        long_body = Path(long).read_bytes() if long is not None else None
        with open(Path(tmp) / "server.log", "w+") as log_file:
            proc = _start_server(model_dir, port, backend, min(8, clients), log_file, startup_timeout)
            try:
                rss_start = rss_mb(proc.pid)
                with ThreadPoolExecutor(clients) as ex:  # warm-up, untimed: concurrent, so batches form
                    list(ex.map(lambda i: _post(url, bodies[i % len(bodies)]), range(warmup)))
                rss_before = rss_mb(proc.pid)
                long_res: list[tuple[int, float]] = []
                stop = threading.Event()

                def send_long():
                    while not stop.is_set():
                        long_res.append(_post(url, long_body))

                threads = [threading.Thread(target=send_long, daemon=True) for _ in range(long_clients if long else 0)]
                for t in threads:
                    t.start()
                what = f" while {long_clients} client(s) upload {Path(long).name} again and again" if long else ""
                console.print(f"[dim]bench serve: {requests} requests from {clients} clients{what} ...[/]")
                res: list[tuple[int, float]] = []
                trace = []
                quarter = max(1, requests // 4)
                t0 = time.perf_counter()
                with ThreadPoolExecutor(clients) as ex:
                    for q0 in range(0, requests, quarter):  # RSS after each quarter: growth vs plateau
                        n = min(quarter, requests - q0)
                        res += list(ex.map(lambda i: _post(url, bodies[i % len(bodies)]), range(q0, q0 + n)))
                        trace.append(rss_mb(proc.pid))
                wall = time.perf_counter() - t0
                stop.set()
                for t in threads:  # the long uploads in flight finish (they are counted)
                    t.join()
                rss_after = rss_mb(proc.pid)
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
    short = _latency(res)
    growth = None if not (rss_before and rss_after) else round((rss_after - rss_before) / rss_before, 4)
    out = {
        "kind": "serve",
        "model": str(model_dir),
        "backend": backend,
        "clients": clients,
        "requests": requests,
        "warmup": warmup,
        "errors": short["errors"],
        "wall_seconds": round(wall, 3),
        "requests_per_second": round(requests / wall, 2),
        "p50_ms": short["p50_ms"],
        "p95_ms": short["p95_ms"],
        "max_ms": short["max_ms"],
        "long": None if long is None else {"file": str(long), "clients": long_clients, **_latency(long_res)},
        "rss_start_mb": rss_start,
        "rss_before_mb": rss_before,
        "rss_after_mb": rss_after,
        "rss_trace_mb": trace,
        "rss_growth": growth,
        "max_rss_growth": max_rss_growth,
        "cpu_count": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    console.print(
        f"{requests} requests, {clients} clients ({backend}): p50 {out['p50_ms']:.0f} ms, p95 "
        f"{out['p95_ms']:.0f} ms, {out['requests_per_second']:.2f} req/s, {short['errors']} error(s); "
        f"server RSS {rss_before} -> {rss_after} MB ({_pct(growth)} after a warm-up of {warmup}; after start "
        f"{rss_start} MB; per quarter {trace})"
    )
    if out["long"] is not None:
        lg = out["long"]
        console.print(
            f"long uploads ({Path(long).name}, {long_clients} client(s)): {lg['requests']} done, {lg['errors']} "
            f"error(s), p50 {_ms(lg['p50_ms'])}, p95 {_ms(lg['p95_ms'])}; the short requests above ran alongside"
        )
    if json_out:
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(out, indent=2))
    check_rss_growth(rss_before, rss_after, max_rss_growth, requests)
    return out


def check_rss_growth(before: float | None, after: float | None, limit: float | None, requests: int) -> None:
    """Raise MetaserError when RSS grew from ``before`` to ``after`` by more than ``limit`` (a
    fraction; None: no rule). An unknown RSS (no /proc) fails the rule too: it cannot be checked."""
    if limit is None:
        return
    growth = None if not (before and after) else (after - before) / before
    if growth is None or growth > limit:
        raise MetaserError(
            f"bench serve: the server's RSS grew by {_pct(growth)} ({before} -> {after} MB) over "
            f"{requests} requests after the warm-up, more than --max-rss-growth {limit:g}",
            hint="see docs/serve.md, 'Memory', for where a server's memory goes",
        )


def _pct(x: float | None) -> str:
    return "unknown" if x is None else f"{100 * x:+.1f} %"


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f} ms"
