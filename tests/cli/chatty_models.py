"""A model factory that talks on stdout, from Python and from C, the way third-party loaders do
(efficientnet_lite_pytorch prints "Loaded pretrained weights ...")."""
from __future__ import annotations

import ctypes
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a factory file: tests/ importable
import tiny_models  # noqa: E402


def chatty_color_net():
    print("Loaded pretrained weights for chatty_color_net")
    ctypes.CDLL(None).printf(b"C-level chatter on fd 1\n")
    return tiny_models.color_net_1000()
