"""zcproxy._malloc: glibc's mmap threshold is fixed once per process, only when asked (CLI --low-memory);
score() never touches the process's allocator."""
from __future__ import annotations

import platform
import sys

import pytest
import torch
from torch import nn

import zcproxy.scoring as scoring
from zcproxy import _malloc
from zcproxy.cli import main as cli_main

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(_malloc, "_state", {})
    monkeypatch.delenv(_malloc.ENV_VAR, raising=False)


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_applied_on_glibc_once(fresh, monkeypatch):
    calls = []
    real = _malloc._apply
    monkeypatch.setattr(_malloc, "_apply", lambda: calls.append(1) or real())
    assert _malloc.release_large_frees() is True
    assert _malloc.release_large_frees() is True
    assert calls == [1]


def test_skipped_without_glibc_or_when_the_user_set_the_variable(fresh, monkeypatch):
    monkeypatch.setattr(_malloc.sys, "platform", "darwin")
    assert _malloc.release_large_frees() is False
    monkeypatch.setattr(_malloc, "_state", {})
    monkeypatch.setattr(_malloc.sys, "platform", "linux")
    monkeypatch.setenv(_malloc.ENV_VAR, "65536")
    assert _malloc.release_large_frees() is False


def test_score_never_changes_the_allocator(monkeypatch, fresh):
    calls = []
    monkeypatch.setattr(_malloc, "_apply", lambda: calls.append(1) or True)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
    batch = (torch.rand(4, 3, 8, 8), torch.randint(0, 10, (4,)))
    scoring.score(net, ["params", "grad_norm", "ntk_clean"], batch=batch)
    assert calls == [] and _malloc._state == {}


@pytest.mark.parametrize("flag", [False, True])
def test_the_cli_applies_it_with_low_memory_only(monkeypatch, capsys, flag):
    calls = []
    monkeypatch.setattr("zcproxy.cli.release_large_frees", lambda: calls.append(1) or True)
    assert cli_main(["--low-memory"] * flag + ["arch", "13714"]) == 0
    assert calls == [1] * flag
