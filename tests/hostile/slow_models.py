"""Model factories for the signal tests: the colour classifier, slowed down, announcing its first forward
through a file so the test sends the signal while the model is running (no guessing with sleeps)."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a factory file: tests/ importable
import tiny_models  # noqa: E402


class _Slow(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = tiny_models.color_net(1000)

    def forward(self, x):
        started = os.environ.get("NNPROBE_TEST_STARTED")
        if started and not os.path.exists(started):
            open(started, "w").close()
        time.sleep(0.5)
        return self.net(x)


def slow_color_net() -> nn.Module:
    return _Slow()
