"""Checking that the output tree is shared by every worker before anything trains."""

from __future__ import annotations

import contextlib
import socket
import uuid
from pathlib import Path

from metaser.errors import MetaserError
from metaser.launch.ray_launcher import RayLauncher
from metaser.launch.tasks import Launcher


def _probe(directory: str, driver_token: str) -> dict:
    """On one worker: can it see the driver's probe file, and write one the driver can see?"""
    d = Path(directory)
    seen = (d / driver_token).is_file()
    name = f".metaser-probe-{uuid.uuid4().hex}"
    try:
        d.mkdir(parents=True, exist_ok=True)
        (d / name).write_text(socket.gethostname())
    except OSError as e:
        return {"host": socket.gethostname(), "seen": seen, "wrote": None, "error": str(e)}
    return {"host": socket.gethostname(), "seen": seen, "wrote": name, "error": None}


def judge_probes(d: Path, answers: list[dict]) -> None:
    """Remove the workers' probe files; raise unless each saw ours and we see each of theirs."""
    bad = []
    for a in answers:
        wrote = a["wrote"]
        if a["error"] or not a["seen"] or not (wrote and (d / wrote).is_file()):
            bad.append(f"{a['host']}: " + (a["error"] or "writes to a different filesystem than this machine"))
        if wrote:
            with contextlib.suppress(OSError):
                (d / wrote).unlink()
    if bad:
        raise MetaserError(
            f"the output directory {d} is not shared with every Ray worker ({'; '.join(bad)})",
            hint="outputs must live on a filesystem every worker sees (NFS, Lustre, ...): set output_dir=/shared/path",
        )


def check_shared_output(path: str | Path, launcher: Launcher) -> None:
    """Fail with a clear message unless every worker can write ``path`` and the driver sees it.

    Local: this process must be able to create and write the directory. Ray: one tiny task per
    alive node writes a probe file there, which this process must then see (and removes).
    """
    d = Path(path).resolve()
    token = f".metaser-probe-{uuid.uuid4().hex}"
    try:
        d.mkdir(parents=True, exist_ok=True)
        (d / token).write_text("driver")
    except OSError as e:
        raise MetaserError(f"cannot write the output directory {d}: {e}") from None
    try:
        if not isinstance(launcher, RayLauncher):
            return
        ray = launcher.ensure_started()
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        probe = ray.remote(_probe)
        nodes = [n["NodeID"] for n in ray.nodes() if n.get("Alive")]
        refs = [
            probe.options(
                num_cpus=0, max_retries=0, scheduling_strategy=NodeAffinitySchedulingStrategy(n, soft=False)
            ).remote(str(d), token)
            for n in nodes
        ]
        try:
            answers = ray.get(refs, timeout=120)
        except Exception as e:
            raise MetaserError(f"the output-directory probe did not finish on every Ray node: {e}") from None
        judge_probes(d, answers)
    finally:
        with contextlib.suppress(OSError):
            (d / token).unlink()
