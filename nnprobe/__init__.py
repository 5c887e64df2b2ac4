"""nnprobe: how accurate an image classifier really is, how easily it is fooled, and whether its
training run went wrong.

The public API is imported lazily so that `import nnprobe` (and `nnprobe --help`) never imports torch.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Public name -> the module that defines it. No subpackage shares a verb's name (the ImageNet-C code is
# nnprobe.imagenet_c, evaluation.py is not evaluate.py), so importing one never shadows a verb.
_LAZY = {
    "evaluate": "nnprobe.api",
    "fool": "nnprobe.api",
    "robust": "nnprobe.api",
    "corruptions": "nnprobe.api",
    "diagnose": "nnprobe.api",
    "follow": "nnprobe.api",
    "compare": "nnprobe.api",
    "merge": "nnprobe.api",
    "list_models": "nnprobe.api",
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
