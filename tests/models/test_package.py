"""Package-level contracts of metaser.models."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_importing_the_config_stays_light():
    """The CLI parses configs without loading torch / transformers."""
    code = (
        "import sys, metaser.models.config, metaser.models; "
        "print(int('torch' in sys.modules), int('transformers' in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.stdout.split() == ["0", "0"]


def test_lazy_exports_resolve():
    import metaser.models as m
    from metaser.models.metaser import MetaSERModel

    assert m.MetaSERModel is MetaSERModel
    assert set(m.__all__) >= {
        "SSLEncoder",
        "MetaSERModel",
        "MetaSEROutput",
        "AugmentedResidualIntegration",
        "CoAttentionFusion",
        "masked_mean",
    }


def test_method_doc_cites_existing_tests():
    """Every `file::test` that docs/method.md cites exists (in the one tests/ file of that name)."""
    import re

    root = Path(__file__).resolve().parents[2]
    doc = (root / "docs" / "method.md").read_text()
    refs = set(re.findall(r"(test_\w+\.py)::(test_\w+)", doc))
    assert len(refs) >= 30
    files = {p.name: p for p in (root / "tests").rglob("test_*.py")}
    missing = [f"{f}::{t}" for f, t in sorted(refs) if f not in files or f"def {t}(" not in files[f].read_text()]
    assert missing == []
