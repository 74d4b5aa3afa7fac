"""The commands the documentation shows, as the docs tests see them.

Sources: the fenced ``bash`` / ``sh`` / ``python`` blocks of README.md and docs/*.md, and the
comment lines of the YAML presets (``configs/**/*.yaml``) that show a command (``#   metaser ...``)
or the overrides of a mode (``#   ... key=value ...``: the ``...`` stands for the ``metaser cv``
command shown above it in the same preset, and is replaced by it). Output blocks (```text,
```json, and blocks without a language) are not commands.

A bash block becomes one command per logical line: comments dropped, backslash continuations
joined, a here-document kept with the line that opens it. A block that starts with ``#!`` is a
script and stays whole (the SLURM batch script); a python block is one command.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SHELL_LANGS = {"bash", "sh", "shell", "console"}
PYTHON_LANGS = {"python", "py"}
_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")
_HEREDOC = re.compile(r"<<-?\s*'?\"?(\w+)'?\"?")
_YAML_COMMAND = re.compile(r"^#\s+((?:metaser|\.\.\.)\s.*)$")


@dataclass(frozen=True)
class DocCommand:
    """One command of the docs: where it is (file relative to the repo, 1-based line), its
    kind (``bash``, ``python``, ``script``) and its text (continuations joined)."""

    source: str
    line: int
    kind: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"


def doc_files(root: Path = REPO_ROOT) -> list[Path]:
    """README.md, docs/*.md and every preset under configs/ (the packaged metaser/configs)."""
    files = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    files += sorted((root / "metaser" / "configs").rglob("*.yaml"))
    return files


def strip_comment(line: str) -> str:
    """The line without a shell comment (a ``#`` at the start or after whitespace, outside quotes)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def shell_commands(block: list[str], first_line: int) -> list[tuple[int, str]]:
    """(line, command) for each logical line of a shell block."""
    out: list[tuple[int, str]] = []
    i = 0
    while i < len(block):
        start = i
        raw = block[i]
        line = strip_comment(raw)
        i += 1
        if not line.strip():
            continue
        parts = [line.strip()]
        while parts[-1].endswith("\\") and i < len(block):
            parts[-1] = parts[-1][:-1].rstrip()
            parts.append(strip_comment(block[i]).strip())
            i += 1
        text = " ".join(p for p in parts if p)
        here = _HEREDOC.search(text)
        if here:  # the body and the terminator belong to this command
            body = []
            while i < len(block) and block[i].strip() != here.group(1):
                body.append(block[i])
                i += 1
            i += 1
            text = "\n".join([text, *body, here.group(1)])
        out.append((first_line + start, text))
    return out


def markdown_commands(path: Path, root: Path = REPO_ROOT) -> list[DocCommand]:
    rel = path.relative_to(root).as_posix()
    lines = path.read_text().splitlines()
    out: list[DocCommand] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang = m.group(2), m.group(3).lower()
        body_start = i + 1
        j = body_start
        while j < len(lines) and not lines[j].strip().startswith(fence):
            j += 1
        body = lines[body_start:j]
        if lang in PYTHON_LANGS:
            out.append(DocCommand(rel, body_start + 1, "python", "\n".join(body).strip("\n")))
        elif lang in SHELL_LANGS:
            if body and body[0].startswith("#!"):
                out.append(DocCommand(rel, body_start + 1, "script", "\n".join(body)))
            else:
                out += [DocCommand(rel, n + 1, "bash", t) for n, t in shell_commands(body, body_start)]
        i = j + 1
    return out


def yaml_commands(path: Path, root: Path = REPO_ROOT) -> list[DocCommand]:
    """``#   metaser ...`` and ``#   ... overrides`` comment lines of a preset (as shown from the repo root)."""
    rel = path.relative_to(root).as_posix()
    out = []
    last_cv = None
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.startswith("#"):
            continue
        m = _YAML_COMMAND.match(line)
        if not m:
            continue
        text = m.group(1).strip()
        if text.startswith("... ") and last_cv:
            text = f"{last_cv} {text[4:].strip()}"
        elif text.startswith("metaser cv "):
            last_cv = text
        out.append(DocCommand(rel, n, "bash", text))
    return out


def all_commands(root: Path = REPO_ROOT) -> list[DocCommand]:
    out: list[DocCommand] = []
    for f in doc_files(root):
        out += markdown_commands(f, root) if f.suffix == ".md" else yaml_commands(f, root)
    return out
