"""The session's docs work directory (``tests/docs/workspace.py``), shared by every docs test."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
import torch

from tests.docs.extract import all_commands
from tests.docs.workspace import DocsWorkspace


@pytest.fixture(scope="session")
def docs_ws():
    """Outside pytest's basetemp: a long session must not lose its work dir when other pytest runs
    of the same user rotate the old basetemps away."""
    torch.set_num_threads(1)  # in-process commands on a shared 2-core machine (see tests/conftest.py)
    root = Path(tempfile.mkdtemp(prefix="metaser-docs-"))
    ws = DocsWorkspace(root, all_commands())
    yield ws
    ws.close()
    shutil.rmtree(root, ignore_errors=True)
