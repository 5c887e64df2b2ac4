"""Thread sizing: CPUs by affinity and cgroup quota, idle CPUs measured now, workers subtracted, the
process's thread count restored after a command."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from nnprobe import device


def test_affinity_limits_available_cpus():
    code = ("import os; os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]}); "
            "from nnprobe.device import available_cpus; print(available_cpus())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "1", out.stderr


@pytest.mark.parametrize("limit, expected", [(None, 2), (0.5, 1), (1.0, 1), (1.9, 1), (8.0, 2)])
def test_cgroup_quota_caps_cpus(monkeypatch, limit, expected):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(device, "_cgroup_cpu_limit", lambda: limit)
    assert device.available_cpus() == expected


@pytest.mark.parametrize("idle, workers, expected", [
    (None, 0, 4), (4.0, 0, 4), (3.6, 0, 4), (1.2, 0, 1), (0.0, 0, 1), (4.0, 1, 3), (4.0, 7, 1), (2.0, 1, 1),
])
def test_default_threads(monkeypatch, idle, workers, expected):
    monkeypatch.setattr(device, "available_cpus", lambda: 4)
    monkeypatch.setattr(device, "idle_cpus", lambda window=0.05: idle)
    assert device.default_threads(workers) == expected


def test_idle_cpus_is_a_count_of_cpus():
    idle = device.idle_cpus()
    assert idle is not None and 0.0 <= idle <= os.cpu_count()


def test_cpu_threads_sets_and_restores():
    before = torch.get_num_threads()
    with device.cpu_threads(1) as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), device.cpu_threads(1):
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before
