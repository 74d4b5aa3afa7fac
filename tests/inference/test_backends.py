"""Device resolution (every fallback branch) and the batch planner."""

from __future__ import annotations

import pytest
import torch

from metaser.errors import ConfigError
from metaser.inference.backends import resolve_device
from metaser.inference.recognizer import plan_batches


def test_auto_falls_back_to_cpu_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(None) == torch.device("cpu") and resolve_device("") == torch.device("cpu")


def test_auto_takes_cuda_when_available(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


def test_cuda_asked_for_but_absent(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="CUDA is not available") as e:
        resolve_device("cuda")
    assert "--device cpu" in e.value.hint


def test_cuda_index_beyond_the_visible_devices(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(ConfigError, match="only 2 CUDA device"):
        resolve_device("cuda:2")


def test_mps_absent(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="MPS is not available"):
        resolve_device("mps")


def test_unknown_device_string():
    with pytest.raises(ConfigError, match="unknown device 'gpu0'") as e:
        resolve_device("gpu0")
    assert "auto" in e.value.hint
    assert resolve_device("cpu") == torch.device("cpu")


def test_plan_batches_sorts_caps_size_and_padding():
    lengths = [100, 1000, 110, 105, 990, 400, 120, 1010]
    batches = plan_batches(lengths, batch_size=3, max_padding=1.25)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))  # each piece once
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(lengths)  # in length order
    for b in batches:
        ls = [lengths[i] for i in b]
        assert len(b) <= 3
        assert len(b) * max(ls) <= 1.25 * sum(ls)  # padding cap holds
    # 120 opens a batch that 400 cannot join (2 x 400 > 1.25 x 520), nor the ~1000 batch
    assert [lengths[i] for i in batches[2]] == [400]
    assert plan_batches(lengths, batch_size=1, max_padding=10.0) == [
        [i] for i in sorted(range(8), key=lengths.__getitem__)
    ]
    assert plan_batches([], 4, 1.25) == []
