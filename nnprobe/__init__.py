"""nnprobe: how accurate an image classifier really is, how easily it is fooled, and whether its
training run went wrong.

The public API is imported lazily so that `import nnprobe` (and `nnprobe --help`) never imports torch.
"""
from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__version__ = "0.1.0"

# Public name -> the module that defines it. Only `corruptions` is also a subpackage's name (the ImageNet-C
# code): `_Package` keeps the verb when that subpackage is imported (it stays importable by name).
_LAZY = {
    "evaluate": "nnprobe.api",
    "fool": "nnprobe.api",
    "robust": "nnprobe.api",
    "corruptions": "nnprobe.api",
    "diagnose": "nnprobe.api",
    "follow": "nnprobe.api",
    "compare": "nnprobe.api",
    "merge": "nnprobe.api",
    "load_classifier": "nnprobe.api",
    "find_images": "nnprobe.api",
    "Classifier": "nnprobe.models.classifier",
    "LabelledImages": "nnprobe.data.layouts",
    "NnprobeError": "nnprobe.errors",
    "ExitCode": "nnprobe.errors",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nnprobe' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


class _Package(types.ModuleType):
    """The import system sets `nnprobe.corruptions` to the subpackage once it is imported; the public verb
    keeps that name (`import nnprobe.corruptions` and `from nnprobe.corruptions import ...` still work)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if _LAZY.get(name) == "nnprobe.api" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
