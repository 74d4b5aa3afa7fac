"""Where and how the docs' commands run: one work directory per test session.

``<tmp>/repo`` plays the repository root the docs' commands are typed in (a ``configs`` and a
``scripts`` link to the checkout's; everything the commands write lands there), and
``<tmp>/shared/data/emodb`` sits where ``../shared/data/emodb`` points. Corpora, hub replicas and
audio files are made on demand by the package's own helpers (:data:`STATES`); the other states
are what a doc command ``provides`` (a prepared manifest, a trained run, an exported model, a
running server), made by running that command first: ``IEMOCAP_full_release`` is the synthetic
stand-in that docs/corpora.md's ``metaser synth-demo`` writes. Background processes (servers, the Ray
head) are ended by their process id when the session closes.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.docs import corpora
from tests.docs.extract import REPO_ROOT, DocCommand
from tests.docs.rules import PLACEHOLDERS, Rule, normalise, rule_for

__all__ = ["Outcome", "DocsWorkspace"]

_FIELD = re.compile(r"\{(ws|cwd|models|venv|python|ray_address|port:[\w-]+)\}")
_ASSIGNMENT = re.compile(r"^([A-Z_][A-Z0-9_]*)=(\$\(.*\)|\S*)$")  # NAME=value, no command after it
_TAIL = 4000


@dataclass
class Outcome:
    """What a command did: its exit code, output (stdout and stderr) and the text that ran."""

    exit_code: int
    output: str
    ran: str
    seconds: float
    stdout: str = ""

    def describe(self) -> str:
        tail = self.output[-_TAIL:]
        return f"exit {self.exit_code} after {self.seconds:.1f} s: {self.ran}\n--- output (tail) ---\n{tail}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _in_dir_with_env(cwd: Path, env: dict[str, str]):
    """chdir + environment for an in-process command; both (and torch's threads) restored after."""
    import torch

    old_cwd, old_env, threads = os.getcwd(), dict(os.environ), torch.get_num_threads()
    os.chdir(cwd)
    os.environ.update(env)
    try:
        yield
    finally:
        os.chdir(old_cwd)
        os.environ.clear()
        os.environ.update(old_env)
        torch.set_num_threads(threads)


class DocsWorkspace:
    def __init__(self, root: Path, commands: list[DocCommand]):
        self.root = root
        self.cwd = root / "repo"
        self.cwd.mkdir(parents=True, exist_ok=True)
        for name, target in (("configs", REPO_ROOT / "metaser" / "configs"), ("scripts", REPO_ROOT / "scripts")):
            (self.cwd / name).symlink_to(target)
        self.commands = commands
        self.env: dict[str, str] = {}  # shell variables the docs set (FILES=...)
        self.ports: dict[str, int] = {}
        self.done: dict[str, Outcome | None] = {}  # state -> how it was made (None: a built-in)
        self.ran: dict[str, list[Outcome]] = {}  # normalised command -> its outcome(s)
        self.background: list[tuple[subprocess.Popen, Path]] = []

    # ----------------------------------------------------------------------------- paths
    def fill(self, text: str) -> str:
        def value(m: re.Match) -> str:
            key = m.group(1)
            if key.startswith("port:"):
                return str(self.port(key[5:]))
            return {
                "ws": str(self.root),
                "cwd": str(self.cwd),
                "models": str(self.root / "models"),
                "venv": sys.prefix,
                "python": sys.executable,
                "ray_address": f"127.0.0.1:{self.port('ray')}",
            }[key]

        return _FIELD.sub(value, text)

    def port(self, name: str) -> int:
        if name not in self.ports:
            self.ports[name] = free_port()
        return self.ports[name]

    def shell_env(self) -> dict[str, str]:
        path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        pythonpath = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
        # OMP_WAIT_POLICY: the subprocesses that keep a config's 2 torch threads (scripts/gpu-bench.sh) wait
        # passively, instead of spinning against the other jobs of a shared 2-core machine
        env = {"PATH": path, "PYTHONPATH": pythonpath, "PY": sys.executable, "OMP_WAIT_POLICY": "PASSIVE"}
        return {**os.environ, **env, **self.env}

    # ----------------------------------------------------------------------------- states
    def ensure(self, state: str) -> None:
        """Make ``state`` exist: a built-in (corpora, replicas, audio) or a doc command's output."""
        if state in self.done:
            return
        if state in STATES:
            STATES[state](self)
            self.done[state] = None
            return
        for cmd in self.commands:
            rules = rule_for(cmd.text)
            if rules and rules[0].provides == state:
                outcome = self.run(cmd)[-1]
                if outcome.exit_code != rules[0].exit_code:
                    raise AssertionError(f"prerequisite {state!r} ({cmd.where}) failed: {outcome.describe()}")
                return
        raise KeyError(f"no built-in and no doc command provides the state {state!r}")

    # ------------------------------------------------------------------------------- runs
    def prepared(self, cmd: DocCommand, rule: Rule) -> list[str]:
        """The text(s) that run for ``cmd``: placeholders, the rule's substitutions, its additions."""
        text = normalise(cmd.text)
        for pattern, repl in PLACEHOLDERS:
            text = re.sub(pattern, repl, text)
        for pattern, repl in rule.subs:
            text = re.sub(pattern, repl, text, flags=re.M)
        texts = [text.replace(old, new) for old, new in rule.variants] if rule.variants else [text]
        extra = " ".join(rule.append)
        return [self.fill(f"{t} {extra}" if extra else t) for t in texts]

    def run(self, cmd: DocCommand) -> list[Outcome]:
        """Run ``cmd`` by its rule (once per session: a second call returns the first outcome)."""
        key = normalise(cmd.text)
        if key in self.ran:
            return self.ran[key]
        (rule,) = rule_for(cmd.text)
        for state in rule.needs:
            self.ensure(state)
        outcomes = [self._run_one(text, rule) for text in self.prepared(cmd, rule)]
        self.ran[key] = outcomes
        if rule.provides and all(o.exit_code == rule.exit_code for o in outcomes):
            self.done[rule.provides] = outcomes[-1]
        return outcomes

    def _run_one(self, text: str, rule: Rule) -> Outcome:
        cwd = REPO_ROOT if rule.cwd == "repo" else self.cwd
        t0 = time.perf_counter()
        runner = {
            "cli": self._cli,
            "bash": self._bash,
            "python": self._python,
            "heredoc": self._heredoc,
            "background": self._background,
        }[rule.how]
        code, output, *stdout = runner(text, cwd, rule)
        return Outcome(code, output, text, time.perf_counter() - t0, stdout[0] if stdout else output)

    def words(self, text: str, cwd: Path) -> list[str]:
        """The words bash makes of ``text`` (quotes, $VARS, $(...), globs), without running it."""
        proc = subprocess.run(
            ["bash", "-c", f"printf '%s\\0' {text}"], cwd=cwd, env=self.shell_env(), capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise AssertionError(f"bash cannot expand {text!r}: {proc.stderr}")
        return proc.stdout.split("\0")[:-1]

    def _cli(self, text: str, cwd: Path, rule: Rule) -> tuple[int, str]:
        """``metaser ...`` (``&&``-chained) in this process, through click's test runner."""
        from click.testing import CliRunner

        from metaser.cli import main

        outputs = []
        code = 0
        for part in text.split(" && "):
            argv = self.words(part, cwd)
            if argv[:1] != ["metaser"]:
                raise AssertionError(f"a cli rule runs `metaser ...` only, got {part!r}")
            with _in_dir_with_env(cwd, {k: v for k, v in self.env.items()}):
                result = CliRunner().invoke(main, argv[1:], prog_name="metaser")
            outputs.append(result.output)
            if result.exception is not None and not isinstance(result.exception, SystemExit):
                import traceback

                outputs.append("".join(traceback.format_exception(result.exception)))
            code = result.exit_code
            if code != 0:
                break
        return code, "\n".join(outputs)

    def _bash(self, text: str, cwd: Path, rule: Rule) -> tuple[int, str]:
        script = rule.wrap.replace("{cmd}", text) if rule.wrap else text
        m = _ASSIGNMENT.match(text)
        if m:  # a shell variable the next commands use: keep its value
            script = f"{text}\nprintf '%s' \"${m.group(1)}\""
        proc = subprocess.run(
            ["bash", "-c", script], cwd=cwd, env=self.shell_env(), capture_output=True, text=True, timeout=900
        )
        if m and proc.returncode == 0:
            self.env[m.group(1)] = proc.stdout
        return proc.returncode, proc.stdout + proc.stderr, proc.stdout

    def _python(self, text: str, cwd: Path, rule: Rule) -> tuple[int, str]:
        import numpy as np

        from metaser import EmotionRecognizer

        # the README's import, and `array`, the placeholder of its example: 1 s of noise at 8 kHz
        namespace = {
            "__name__": "__docs__",
            "EmotionRecognizer": EmotionRecognizer,
            "array": (0.1 * np.random.default_rng(0).standard_normal(8000)).astype(np.float32),
        }
        out = io.StringIO()
        with _in_dir_with_env(cwd, self.env), contextlib.redirect_stdout(out):
            exec(compile(text, "<docs>", "exec"), namespace)
        return 0, out.getvalue()

    def _heredoc(self, text: str, cwd: Path, rule: Rule) -> tuple[int, str]:
        first, *body, _end = text.split("\n")
        if not first.startswith("python - <<"):
            raise AssertionError(f"not a `python - <<EOF` command: {first!r}")
        return self._python("\n".join(body), cwd, rule)

    def _background(self, text: str, cwd: Path, rule: Rule) -> tuple[int, str]:
        log = self.root / "logs" / f"bg-{len(self.background)}.log"
        log.parent.mkdir(exist_ok=True)
        with log.open("w") as f:
            proc = subprocess.Popen(
                ["bash", "-c", f"exec {text}"],
                cwd=cwd,
                env=self.shell_env(),
                stdout=f,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.background.append((proc, log))
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return proc.returncode or 1, log.read_text()
            if self._ready(rule, text, log):
                return 0, log.read_text()
            time.sleep(0.5)
        return 124, log.read_text() + "\n(not ready after 180 s)"

    def _ready(self, rule: Rule, text: str, log: Path) -> bool:
        if rule.ready == "ray":
            return "Ray runtime started" in log.read_text()
        m = re.search(r"--port (\d+)", text)
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{m.group(1)}/health", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def close(self) -> None:
        """End the background processes this session started (SIGTERM to each, then its group)."""
        for proc, _ in self.background:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, _ in self.background:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=30)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # its own session: what it left behind


# ---------------------------------------------------------------------------- built-in states
def _synth_corpus(ws: DocsWorkspace) -> None:
    from metaser.experiments.demo.corpus import synthesize_demo_corpus

    synthesize_demo_corpus(ws.root / "synth" / "corpus", seed=0, size=40)


def _synth_manifest(ws: DocsWorkspace) -> None:
    from metaser.data.recipes import prepare_iemocap

    ws.ensure("synth-corpus")
    prepare_iemocap(ws.root / "synth" / "corpus", ws.root / "synth" / "manifest")


def _manifest(ws: DocsWorkspace) -> Path:
    ws.ensure("synth-manifest")
    return ws.root / "synth" / "manifest" / "cuts.jsonl.gz"


def _gpu_bench_manifest(ws: DocsWorkspace) -> None:
    from metaser.data.recipes import prepare_iemocap

    ws.ensure("synth-corpus")
    prepare_iemocap(ws.root / "synth" / "corpus", ws.cwd / "gpu-bench" / "manifest")


def _emobox_emodb(ws: DocsWorkspace) -> None:
    """EmoDB-named audio in downloads/emodb/wav and EmoBox's lists for it in EmoBox/data/emodb."""
    from tests.data.emobox_fixture import write_emobox_emodb

    audio = corpora.write_emodb(_manifest(ws), ws.cwd / "downloads" / "emodb")
    write_emobox_emodb(ws.cwd / "EmoBox" / "data" / "emodb", audio / "wav", num_folds=5)


def _emobox_track2(ws: DocsWorkspace) -> None:
    """RAVDESS-named audio in downloads/ravdess (as EmoBox downloads it) and a track-2 list of it."""
    audio = corpora.write_ravdess(_manifest(ws), ws.cwd / "downloads" / "ravdess" / "Audio_Speech_Actors_01-24")
    corpora.write_track2_list(audio, ws.cwd / "EmoBox" / "data" / "track2" / "RAVDESS_selected_balenced.jsonl")


def _emobox_iemocap(ws: DocsWorkspace) -> None:
    """EmoBox's lists (EmoBox/data/iemocap) for the IEMOCAP_full_release the docs synthesize."""
    ws.ensure("iemocap-manifest")
    corpus, out = ws.cwd / "IEMOCAP_full_release", ws.cwd / "EmoBox" / "data" / "iemocap"
    corpora.write_emobox_iemocap(ws.cwd / "data" / "iemocap" / "cuts.jsonl.gz", corpus, out)


def _calib_audio(ws: DocsWorkspace) -> None:
    """my_calibration_audio/: 8 utterances of the synthetic corpus."""
    (ws.cwd / "my_calibration_audio").mkdir()
    for u in corpora.labelled_utterances(_manifest(ws))[-8:]:
        shutil.copyfile(u["path"], ws.cwd / "my_calibration_audio" / f"{u['id']}.wav")


def _replicas(ws: DocsWorkspace) -> None:
    from tests.hub_replicas import KINDS, write_hub_replica

    for kind in KINDS:
        write_hub_replica(kind, ws.root / "models" / kind)


def _audio(ws: DocsWorkspace) -> None:
    """call.wav, a.wav and recordings/ (two files) in the work dir: utterances of the synthetic corpus."""
    utts = corpora.labelled_utterances(_manifest(ws))
    shutil.copyfile(utts[0]["path"], ws.cwd / "call.wav")
    shutil.copyfile(utts[1]["path"], ws.cwd / "a.wav")
    (ws.cwd / "recordings").mkdir()
    for u in utts[2:4]:
        shutil.copyfile(u["path"], ws.cwd / "recordings" / f"{u['id']}.wav")


STATES: dict[str, Callable[[DocsWorkspace], None]] = {
    "synth-corpus": _synth_corpus,
    "synth-manifest": _synth_manifest,
    "gpu-bench-manifest": _gpu_bench_manifest,
    "emodb-corpus": lambda ws: corpora.write_emodb(_manifest(ws), ws.root / "shared" / "data" / "emodb"),
    "ravdess-corpus": lambda ws: corpora.write_ravdess(_manifest(ws), ws.root / "RAVDESS"),
    "csv-corpus": lambda ws: corpora.write_csv_corpus(_manifest(ws), ws.cwd / "my_corpus.tsv", ws.root / "audio"),
    "csv-regression": lambda ws: corpora.write_csv_corpus(
        _manifest(ws), ws.cwd / "my_corpus.csv", ws.cwd / "audio", delimiter=",", regression=True
    ),
    "csv-cp1252": lambda ws: corpora.write_cp1252_table(
        _manifest(ws), ws.cwd / "export_cp1252.csv", ws.cwd / "export_audio"
    ),
    "ravdess-actors": lambda ws: corpora.write_ravdess(_manifest(ws), ws.cwd / "Audio_Speech_Actors_01-24"),
    "emobox-emodb": _emobox_emodb,
    "emobox-track2": _emobox_track2,
    "emobox-iemocap": _emobox_iemocap,
    "calib-audio": _calib_audio,
    "replicas": _replicas,
    "audio": _audio,
}
