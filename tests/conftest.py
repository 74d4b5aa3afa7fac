"""Shared session fixtures of the training / experiments tests.

* ``synth_manifest``: the synthetic demo corpus (37 utterances, 5 sessions, 10 speakers) built
  with the package's own helpers and prepared with the IEMOCAP recipe.
* ``make_run_config``: the packaged tiny demo preset shrunk for tests (1 epoch per stage, no
  loader workers, small heads), pointing at ``synth_manifest``.
* ``cv_run``: one 5-fold cross-validation run (1 epoch per stage) on it, shared by the tests
  that read run outputs.

Every fixture limits torch to one thread: on a shared 2-core machine two OpenMP threads per
process are an order of magnitude slower than one (spin-waiting on busy cores).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY_PRESET = REPO_ROOT / "metaser" / "configs" / "demo" / "tiny.yaml"

#: overrides that make the demo preset test-sized (everything else is the preset's)
TEST_OVERRIDES = [
    "stage1.epochs=1",
    "stage2.epochs=1",
    "data.sampler.num_workers=0",
    "trainer.enable_progress_bar=false",
    "model.aux_head.hidden_dim=16",
    "model.emotion_head.hidden_dim=16",
]


#: Lightning chatter that the training commands silence when they run (metaser.training.trainer.quiet_lightning)
_LIGHTNING_NOISE = [
    r"Checkpoint directory .* exists and is not empty",
    r"Found \d+ module\(s\) in eval mode",
    r".*does not have many workers",
    r".*LeafSpec",
    r"It is recommended to use `self.log\(",
    r"Experiment logs directory .* exists and is not empty",
    r"The number of training batches",
]


def pytest_configure(config) -> None:
    for pattern in _LIGHTNING_NOISE:
        config.addinivalue_line("filterwarnings", f"ignore:{pattern}")


def single_thread() -> None:
    torch.set_num_threads(1)


def run_config_overrides(manifest: Path, output_dir: Path, *extra: str) -> list[str]:
    """The dotted overrides that turn the tiny preset into a test run config."""
    return [f"data.manifest={manifest}", f"output_dir={output_dir}", *TEST_OVERRIDES, *extra]


@pytest.fixture(scope="session")
def synth_manifest(tmp_path_factory) -> Path:
    """``.../manifest/cuts.jsonl.gz`` of the synthetic corpus (seed 0, about 40 utterances)."""
    from metaser.data.recipes import prepare_iemocap
    from metaser.experiments.demo.corpus import synthesize_demo_corpus

    single_thread()
    root = tmp_path_factory.mktemp("synth")
    synthesize_demo_corpus(root / "corpus", seed=0, size=40)
    prepare_iemocap(root / "corpus", root / "manifest")
    return root / "manifest" / "cuts.jsonl.gz"


@pytest.fixture(scope="session")
def make_run_config(synth_manifest) -> Callable[..., RunConfig]:  # noqa: F821
    """``make_run_config(output_dir, *overrides) -> RunConfig`` (tiny preset, test-sized)."""
    from metaser.config import load_config
    from metaser.training.config import RunConfig

    def make(output_dir: Path, *overrides: str) -> RunConfig:
        single_thread()
        return load_config(RunConfig, TINY_PRESET, run_config_overrides(synth_manifest, output_dir, *overrides))

    return make


@pytest.fixture(scope="session")
def cv_run(make_run_config, tmp_path_factory) -> Path:
    """Run directory of a 5-fold CV run (``run_cv``, 1 epoch per stage, name ``cv``)."""
    from metaser.experiments.cv import run_cv, run_dir

    cfg = make_run_config(tmp_path_factory.mktemp("cv"), "name=cv")
    run_cv(cfg)
    return run_dir(cfg)
