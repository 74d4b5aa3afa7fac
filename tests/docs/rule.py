"""A rule of the docs tests' registry (``tests/docs/rules.py``) and the shrinks rules share."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Rule",
    "normalise",
    "replica",
    "TRAIN",
    "DEMO",
    "BENCH",
    "HUB",
    "HUB_REPLICA",
    "FAST",
    "DDP",
]


@dataclass(frozen=True)
class Rule:
    """How the commands that ``match`` (a regex over the whole normalised command) run; the
    fields are described in ``tests/docs/rules.py``."""

    match: str
    how: str = "cli"
    subs: tuple[tuple[str, str], ...] = ()
    append: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    provides: str | None = None
    exit_code: int = 0
    cwd: str = "work"
    xfail: str | None = None
    xfail_output: str | None = None  # with xfail: the failure is the known one only if its output matches this
    reason: str = ""
    variants: tuple[tuple[str, str], ...] = ()  # (text, replacement): the command runs once per replacement
    wrap: str | None = None  # bash: the command inside a script ({cmd})
    ready: str | None = None  # background: "http" (GET /health) or "ray" (the GCS port answers)
    check: str | None = None


def normalise(text: str) -> str:
    """One line, single spaces (here-documents keep their lines)."""
    if "\n" in text:
        return text.strip()
    return " ".join(text.split())


#: the shrinking overrides of a training command: fold 1, one epoch per stage, 2 batches
TRAIN = (
    "--folds",
    "1",
    "stage1.epochs=1",
    "stage2.epochs=1",
    "emotion_only.epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=2",
    "data.sampler.num_workers=0",
    "trainer.num_threads=1",
    "trainer.enable_progress_bar=false",
)
DEMO = TRAIN[2:]  # `metaser demo` has no --folds: its 5 folds run
BENCH = ("--steps", "2", "--warmup", "1", "data.sampler.num_workers=0", "trainer.num_threads=1")


def replica(kind: str) -> str:
    """The override that points a hub-id preset at its tiny hub-format replica."""
    return f"model.encoder.name_or_path={{models}}/{kind}"


HUB = "wav2vec2-base|hubert-base|wavlm-base"
HUB_REPLICA = (rf"configs/iemocap/({HUB})\.yaml", "configs/iemocap/\\1.yaml model.encoder.name_or_path={models}/\\1")
FAST = (
    "data.sampler.mode=bucketing data.sampler.max_duration=100 trainer.precision=bf16-mixed "
    "trainer.matmul_precision=high cache.mode=auto"
)
DDP = (
    "trainer.devices=4 on CPU starts 4 processes on 2 cores: 2 (gloo) here; "
    "Lightning re-launches the command, so it runs as a subprocess"
)
