"""``metaser predict``: run a model over files and directories and print / write the results.

Formats: ``table`` (a rich table for people), ``json`` (a list with one object per input,
see :meth:`Prediction.to_dict` / :meth:`PredictionError.to_dict`) and ``csv`` (one row per
input; failed inputs have an ``error`` and empty prediction columns). Results keep the order
of the arguments; directories are expanded recursively, sorted, to the audio files in them.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from metaser.errors import ConfigError, MetaserError
from metaser.inference.recognizer import EmotionRecognizer
from metaser.inference.results import Prediction, PredictionError

__all__ = ["AUDIO_EXTENSIONS", "FORMATS", "expand_inputs", "render", "run_predict", "check_writable"]

FORMATS = ("table", "json", "csv")
PROGRESS_MIN_FILES = 5  # show a progress bar from this many inputs on (on a terminal)
TRANSCRIPT_WIDTH = 40  # table: longer transcripts are truncated


def _audio_extensions() -> frozenset[str]:
    """File extensions of the formats this soundfile / libsndfile build decodes."""
    import soundfile as sf

    fmts = set(sf.available_formats())
    by_fmt = {
        "WAV": (".wav",),
        "WAVEX": (".wav",),
        "FLAC": (".flac",),
        "OGG": (".ogg", ".oga", ".opus"),
        "AIFF": (".aiff", ".aif", ".aifc"),
        "AU": (".au", ".snd"),
        "CAF": (".caf",),
        "W64": (".w64",),
        "RF64": (".rf64",),
        "MP3": (".mp3",),
        "NIST": (".sph", ".nist"),
        "VOC": (".voc",),
    }
    return frozenset(e for f, exts in by_fmt.items() if f in fmts for e in exts)


AUDIO_EXTENSIONS = _audio_extensions()


def _broken_link(path: Path) -> PredictionError:
    target = os.readlink(path)
    return PredictionError(path=str(path), reason="missing", error=f"broken symbolic link: {path} -> {target}")


def expand_inputs(paths: Sequence[str | Path]) -> list[Path | PredictionError]:
    """Files stay as given (a missing or non-audio file fails later with its reason);
    directories become their audio files (recursive, sorted), or an error entry if none.
    A broken symbolic link to an audio file inside a directory is an error entry too (it is
    listed, never skipped silently)."""
    out: list[Path | PredictionError] = []
    for p in map(Path, paths):
        if p.is_dir():
            files: list[Path | PredictionError] = []
            for f in sorted(p.rglob("*")):
                if f.suffix.lower() not in AUDIO_EXTENSIONS:
                    continue
                if f.is_file():
                    files.append(f)
                elif f.is_symlink() and not f.exists():
                    files.append(_broken_link(f))
            if files:
                out.extend(files)
            else:
                exts = ", ".join(sorted(e.lstrip(".") for e in AUDIO_EXTENSIONS))
                out.append(
                    PredictionError(
                        path=str(p), reason="no_audio", error=f"no audio files in directory {p} (looked for: {exts})"
                    )
                )
        else:
            out.append(p)
    return out


# ---------------------------------------------------------------------------- rendering
def _fmt_prob(p: float | None) -> str:
    return "" if p is None else f"{p:.2f}"


def _aux_names(results: Sequence[Prediction | PredictionError]) -> list[str]:
    names: list[str] = []
    for r in results:
        if isinstance(r, Prediction):
            names.extend(k for k in r.aux if k not in names)
    return names


def _csv_text(results: Sequence[Prediction | PredictionError], classes: list[str]) -> str:
    aux = _aux_names(results)
    cols = (
        ["path", "emotion", "prob"]
        + [f"probs_{c}" for c in classes]
        + ["gender", "gender_prob", "style", "style_prob"]
        + [c for a in aux for c in (a, f"{a}_prob")]
        + ["transcript", "duration", "segments", "error", "reason"]
    )
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in results:
        row: dict[str, Any] = {c: "" for c in cols}
        row["path"] = r.path or ""
        if isinstance(r, PredictionError):
            row["error"], row["reason"] = r.error, r.reason
        else:
            row.update(
                emotion=r.emotion,
                prob=f"{r.prob:.6f}",
                gender=r.gender or "",
                gender_prob="" if r.gender_prob is None else f"{r.gender_prob:.6f}",
                style=r.style or "",
                style_prob="" if r.style_prob is None else f"{r.style_prob:.6f}",
                transcript=r.transcript or "",
                duration=f"{r.duration:.3f}",
                segments=len(r.segments),
            )
            row.update({f"probs_{c}": f"{r.probs[c]:.6f}" for c in classes})
            for a, (lab, p) in r.aux.items():
                row[a], row[f"{a}_prob"] = lab, f"{p:.6f}"
        w.writerow(row)
    return buf.getvalue()


def _table(results: Sequence[Prediction | PredictionError], title: str | None):
    from rich.table import Table
    from rich.text import Text

    has_gender = any(isinstance(r, Prediction) and r.gender is not None for r in results)
    has_style = any(isinstance(r, Prediction) and r.style is not None for r in results)
    has_text = any(isinstance(r, Prediction) and r.transcript is not None for r in results)
    paths = [r.path for r in results if r.path]
    base = None
    if len(paths) > 1:
        try:
            base = os.path.commonpath([os.path.dirname(p) for p in paths]) or None
        except ValueError:  # relative and absolute mixed
            base = None
    if base in (".", os.sep):
        base = None
    t = Table(title=title, caption=f"files under {base}" if base else None)
    t.add_column("file", overflow="fold", ratio=3)
    t.add_column("emotion", no_wrap=True)
    t.add_column("prob", justify="right", no_wrap=True)
    if has_gender:
        t.add_column("gender", no_wrap=True)
    if has_style:
        t.add_column("style", no_wrap=True)
    t.add_column("transcript" if has_text else "note", overflow="fold", ratio=2)
    for r in results:
        shown = os.path.relpath(r.path, base) if base and r.path else (r.path or "<array>")
        path = Text(shown)
        if isinstance(r, PredictionError):
            cells = [path, Text("error", style="bold red"), Text("")]
            cells += [Text("")] * (has_gender + has_style)
            cells.append(Text(r.error.replace(r.path, shown) if r.path else r.error, style="red"))
        else:
            emo = r.emotion + (f" ({len(r.segments)} seg)" if r.segments else "")
            cells = [path, Text(emo), Text(_fmt_prob(r.prob))]
            if has_gender:
                cells.append(Text(f"{r.gender} {_fmt_prob(r.gender_prob)}" if r.gender else ""))
            if has_style:
                cells.append(Text(f"{r.style} {_fmt_prob(r.style_prob)}" if r.style else ""))
            text = r.transcript or ""
            if len(text) > TRANSCRIPT_WIDTH:
                text = text[: TRANSCRIPT_WIDTH - 1] + "…"
            cells.append(Text(text))
        t.add_row(*cells)
    return t


def render(
    results: Sequence[Prediction | PredictionError],
    fmt: str,
    classes: list[str],
    *,
    title: str | None = None,
    width: int = 160,
) -> str:
    """The results as text in ``fmt`` (``table`` is rendered without colour at ``width``)."""
    if fmt == "json":
        return json.dumps([r.to_dict() for r in results], indent=2, ensure_ascii=False) + "\n"
    if fmt == "csv":
        return _csv_text(results, classes)
    if fmt == "table":
        from rich.console import Console

        buf = io.StringIO()
        Console(file=buf, width=width, color_system=None, force_terminal=False, highlight=False).print(
            _table(results, title)
        )
        return buf.getvalue()
    raise ConfigError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")


# ---------------------------------------------------------------------------- command
def check_writable(path: Path) -> None:
    """MetaserError (exit code 2) unless ``path`` can be written: checked before any inference,
    so a long run never ends in a lost result. Creates no file."""
    if path.is_dir():
        raise MetaserError(f"-o {path}: is a directory, give a file name")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if path.exists() and not os.access(path, os.W_OK):
        raise MetaserError(f"-o {path}: permission denied")
    if not path.exists() and not (parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)):
        raise MetaserError(f"-o {path}: cannot create it ({parent} is not a writable directory)")


def run_predict(
    model_dir: str | Path,
    paths: Sequence[str | Path],
    *,
    fmt: str = "table",
    output: str | Path | None = None,
    batch_size: int = 8,
    max_seconds: float = 30.0,
    device: str = "auto",
    backend: str = "torch",
    console=None,
    err_console=None,
) -> int:
    """Predict every file (directories: every audio file inside) and print or write the results.

    backend: ``torch`` or ``onnx`` (``model.onnx`` in onnxruntime); the results are the same.

    Returns the number of inputs that failed (each has an entry with its reason). Raises
    :class:`MetaserError` (exit code 2) for a missing / invalid model directory, an unknown
    format or device, or an output path that cannot be written.
    """
    from rich.console import Console

    if fmt not in FORMATS:
        raise ConfigError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
    if not paths:
        raise MetaserError("no audio files or directories given")
    console = console or Console(highlight=False)
    err_console = err_console or Console(stderr=True, highlight=False)
    out_path = Path(output) if output is not None else None
    if out_path is not None:
        check_writable(out_path)

    rec = EmotionRecognizer.from_pretrained(
        model_dir, device=device, batch_size=batch_size, max_seconds=max_seconds, backend=backend
    )
    if rec.synthetic:
        err_console.print(
            "[yellow]note:[/] this model was trained on the synthetic demo corpus; "
            "its predictions on real speech mean nothing"
        )

    entries = expand_inputs(paths)
    files = [e for e in entries if isinstance(e, Path)]
    preds = _predict_with_progress(rec, files, err_console)
    it = iter(preds)
    results = [next(it) if isinstance(e, Path) else e for e in entries]
    n_failed = sum(isinstance(r, PredictionError) for r in results)

    title = None
    if fmt == "table":
        title = f"{Path(model_dir).name}: {len(results) - n_failed} predicted, {n_failed} failed"
    if out_path is not None:
        text = render(results, fmt, rec.emotion_labels, title=title)
        try:
            out_path.parent.mkdir(parents=True, exist_ok=True)
            out_path.write_text(text, encoding="utf-8")
        except OSError as e:
            raise MetaserError(f"-o {out_path}: cannot write ({e})") from None
        err_console.print(f"wrote {len(results)} result(s) to {out_path}")
    elif fmt == "table":
        console.print(_table(results, title))
    else:  # machine-readable: the exact text, no wrapping or markup
        f = getattr(console, "file", None) or sys.stdout
        f.write(render(results, fmt, rec.emotion_labels))
        f.flush()
    if n_failed:
        err_console.print(
            f"[red]{n_failed} of {len(results)} input(s) failed[/]"
            + ("" if fmt == "table" and out_path is None else ": see the 'error' entries")
        )
    return n_failed


def _predict_with_progress(rec: EmotionRecognizer, files: list[Path], err_console) -> list:
    if not files:
        return []
    if len(files) < PROGRESS_MIN_FILES or not getattr(err_console, "is_terminal", False):
        return rec.predict_batch(files)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("predict"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task("predict", total=len(files))
        return rec.predict_batch(files, progress=lambda n: bar.advance(task, n))
