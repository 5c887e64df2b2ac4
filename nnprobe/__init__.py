"""nnprobe: how accurate an image classifier really is, how easily it is fooled, and whether its
training run went wrong.

The public API is imported lazily so that `import nnprobe` (and `nnprobe --help`) never imports torch.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load_classifier": "nnprobe.models",
    "Classifier": "nnprobe.models",
    "evaluate": "nnprobe.evaluate",
    "fool": "nnprobe.attacks",
    "robust": "nnprobe.attacks",
    "diagnose": "nnprobe.diagnosis",
    "NnprobeError": "nnprobe.errors",
    "ExitCode": "nnprobe.errors",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nnprobe' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
