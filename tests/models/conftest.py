"""Fixtures for the model tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _fixed_seed_one_thread():
    """Fixed RNG; one intra-op thread (tiny tensors: threads only add contention on shared CPUs)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)
