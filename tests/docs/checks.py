"""What a docs test checks besides the exit code: that the command did what the docs say it does.

``CHECKS[name](ws, outcome, arg)``; a rule names its check as ``name`` or ``name:arg``.
"""

from __future__ import annotations

import gzip
import json
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tests.docs.corpora import CP1252_TEXT
from tests.docs.workspace import DocsWorkspace, Outcome

__all__ = ["CHECKS", "run_check"]


def _manifest(ws: DocsWorkspace, out: Outcome, arg: str) -> None:
    cuts = ws.cwd / arg / "cuts.jsonl.gz"
    with gzip.open(cuts, "rt") as f:
        assert sum(1 for _ in f) >= 10, f"{cuts}: too few utterances"


def _run(ws: DocsWorkspace, out: Outcome, arg: str) -> None:
    runs = sorted((ws.cwd / "runs").glob(f"{arg}/fold1/metrics.json"))
    assert runs, f"no runs/{arg}/fold1/metrics.json"
    metrics = json.loads(runs[-1].read_text())
    assert 0.0 <= metrics["test"]["ua"] <= 1.0


def _demo(ws: DocsWorkspace, out: Outcome, arg: str) -> None:
    assert (ws.cwd / "demo" / "model" / "config.json").is_file()
    assert (ws.cwd / "demo" / "runs" / "demo-tiny" / "report.md").is_file()
    assert "mean UA" in out.output and "(synthetic)" in out.output


def _plan(ws: DocsWorkspace, out: Outcome, arg: str) -> None:
    plan = json.loads(out.output)
    assert plan, "an empty plan"


def _ablation(ws: DocsWorkspace, out: Outcome, arg: str) -> None:
    assert "summary:" in out.output and "summary.md" in out.output


def _report(ws: DocsWorkspace, out: Outcome, arg: str) -> None:
    assert (ws.cwd / "runs" / "iemocap-wavlm-base" / "report.md").is_file()
    assert "report:" in out.output


def _model(ws: DocsWorkspace, out: Outcome, arg: str) -> None:
    for name in ("config.json", "model.safetensors"):
        assert (ws.cwd / "models" / "wavlm-ser" / name).is_file(), name


def _onnx_model(ws: DocsWorkspace, out: Outcome, arg: str) -> None:
    assert (ws.cwd / "models" / "wavlm-ser" / "model.onnx").is_file()


def _predictions(ws: DocsWorkspace, out: Outcome, arg: str) -> None:
    rows = json.loads((ws.cwd / "out.json").read_text())
    names = sorted(Path(r["path"]).name for r in rows)
    expected = sorted(["call.wav", *(p.name for p in (ws.cwd / "recordings").iterdir())])
    assert names == expected
    assert all("emotion" in r and "error" not in r for r in rows)


def _cuts(ws: DocsWorkspace, manifest: str) -> list[dict]:
    with gzip.open(ws.cwd / manifest / "cuts.jsonl.gz", "rt") as f:
        return [json.loads(line) for line in f]


def _numeric(ws: DocsWorkspace, out: Outcome, arg: str) -> None:
    """arg ``DIR:COL,COL``: the manifest's summary lists the columns as numeric, the cuts hold floats."""
    manifest, _, cols = arg.partition(":")
    summary = json.loads((ws.cwd / manifest / "summary.json").read_text())
    assert set(cols.split(",")) <= set(summary["numeric_fields"]), summary["numeric_fields"]
    custom = _cuts(ws, manifest)[0]["supervisions"][0]["custom"]
    assert all(isinstance(custom[c], float) for c in cols.split(",")), custom


def _cp1252(ws: DocsWorkspace, out: Outcome, arg: str) -> None:
    """The table's cp1252 text arrives decoded (the right single quote, not a latin-1 control byte)."""
    texts = {c["supervisions"][0].get("text") or c["supervisions"][0]["custom"].get("text_raw") for c in _cuts(ws, arg)}
    assert any(CP1252_TEXT.lower() in (t or "").lower() for t in texts), texts


def _corpus(ws: DocsWorkspace, out: Outcome, arg: str) -> None:
    assert len(list((ws.cwd / arg).rglob("*.wav"))) >= 30, f"{arg}: too few files"


def _prediction_json(ws: DocsWorkspace, out: Outcome, arg: str) -> None:
    """arg, when given: the answer's ``path`` (the X-Filename header)."""
    body = json.loads(out.stdout)
    assert body.get("emotion") and body.get("labels"), body
    if arg:
        assert body.get("path") == arg, body


def _head(ws: DocsWorkspace, out: Outcome, arg: str) -> None:
    """``curl -I``: a 200 status line and headers, no body."""
    lines = out.stdout.strip().splitlines()
    assert lines and lines[0].startswith("HTTP/") and " 200" in lines[0], out.stdout
    assert not any(line.startswith("{") for line in lines), out.stdout


def _quiet_server(ws: DocsWorkspace, out: Outcome, arg: str) -> None:
    """A server as :func:`_server`, whose log shows none of the requests (--no-access-log)."""
    _server(ws, out, arg)
    log = next(log for proc, log in ws.background if str(ws.port(arg)) in " ".join(proc.args))
    assert "GET /health" not in log.read_text(), log.read_text()


def _stream(ws: DocsWorkspace, out: Outcome, arg: str) -> None:
    """The WebSocket client printed the ready message, its windows and an overall emotion, no error."""
    last = out.output.strip().splitlines()[-1]
    assert "'type': 'ready'" in out.output and " s  " in out.output, out.output
    assert last.startswith("overall: ") and not last.startswith("overall: None") and last.endswith("None"), last


def _paper_json(ws: DocsWorkspace, out: Outcome, arg: str) -> None:
    """arg ``FILE[:N]``: the JSON of `metaser paper-tables` (with N runs placed)."""
    name, _, runs = arg.partition(":")
    body = json.loads((ws.cwd / name).read_text())
    assert body["tables"] and body["prose"], list(body)
    if runs:
        assert len(body["runs"]) >= int(runs), body["runs"]


def _int8_model(ws: DocsWorkspace, out: Outcome, arg: str) -> None:
    d = ws.cwd / "models" / "wavlm-ser"
    assert (d / "model.int8.onnx").is_file()
    guard = json.loads((d / "config.json").read_text())["int8"]
    assert guard["calibration"]["set"] == arg, guard["calibration"]


def _server(ws: DocsWorkspace, out: Outcome, arg: str) -> None:
    base = f"http://127.0.0.1:{ws.port(arg)}"
    with urllib.request.urlopen(f"{base}/health", timeout=10) as r:
        assert json.loads(r.read())["status"] == "ok"
    with urllib.request.urlopen(f"{base}/", timeout=10) as r:
        assert r.status == 200


def _sweep(ws: DocsWorkspace, out: Outcome, arg: str) -> None:
    assert "summary:" in out.output and "summary.json" in out.output


def _bench_train(ws: DocsWorkspace, out: Outcome, arg: str) -> None:
    files = list((ws.cwd / "bench").glob("train-*.json"))
    assert files and all(json.loads(f.read_text())["results"] for f in files)


def _gpu_smoke(ws: DocsWorkspace, out: Outcome, arg: str) -> None:
    assert (ws.cwd / "gpu-bench" / "report.md").is_file()


def _env(ws: DocsWorkspace, out: Outcome, arg: str) -> None:
    files = ws.env[arg].split()
    assert len(files) == 20 and all(Path(f).is_file() for f in files)  # the 20-utterance corpus


CHECKS: dict[str, Callable[[DocsWorkspace, Outcome, str], None]] = {
    "manifest": _manifest,
    "run": _run,
    "demo": _demo,
    "plan": _plan,
    "ablation": _ablation,
    "report": _report,
    "model": _model,
    "onnx-model": _onnx_model,
    "predictions": _predictions,
    "prediction-json": _prediction_json,
    "numeric": _numeric,
    "cp1252": _cp1252,
    "corpus": _corpus,
    "head": _head,
    "quiet-server": _quiet_server,
    "stream": _stream,
    "paper-json": _paper_json,
    "int8-model": _int8_model,
    "server": _server,
    "sweep": _sweep,
    "bench-train": _bench_train,
    "gpu-smoke": _gpu_smoke,
    "env": _env,
}


def run_check(ws: DocsWorkspace, name: str, outcome: Outcome) -> None:
    key, _, arg = name.partition(":")
    CHECKS[key](ws, outcome, arg)
