"""`path/to/file.py:function` or `package.module:function` returning an `nn.Module` (or a Classifier).

Naming a Python file runs it, as `python file.py` would: that is the user's explicit choice."""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys

from nnprobe.errors import InputError, ModelLoadError


def load_factory(spec: str, *, num_classes: int | None):
    from torch import nn

    from nnprobe.models import IMAGENET_PREPROCESSING
    from nnprobe.models.classifier import Classifier, from_network

    target, _, func_name = spec.rpartition(":")
    if target.endswith(".py"):
        if not os.path.isfile(target):
            raise InputError(f"Model factory file {target} does not exist.")
        module_name = f"nnprobe_factory_{abs(hash(os.path.abspath(target)))}"
        module_spec = importlib.util.spec_from_file_location(module_name, target)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[module_name]
            raise ModelLoadError(f"Importing {target} failed: {type(exc).__name__}: {exc}") from exc
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise ModelLoadError(f"Cannot import {target} ({exc}).") from exc
        except Exception as exc:  # the module itself raised while importing (SyntaxError, RuntimeError...)
            raise ModelLoadError(f"Importing {target} failed: {type(exc).__name__}: {exc}") from exc
    func = getattr(module, func_name, None)
    if not callable(func):
        raise ModelLoadError(f"{target} has no function {func_name}.")
    try:
        made = func()
    except Exception as exc:
        raise ModelLoadError(f"{spec}() failed: {type(exc).__name__}: {exc}") from exc
    if isinstance(made, Classifier):
        return made
    if not isinstance(made, nn.Module):
        raise ModelLoadError(f"{spec}() returned {type(made).__name__}, not a torch.nn.Module.")
    return from_network(made, spec=spec, source="factory", weights=None, architecture=type(made).__name__,
                        preprocessing=IMAGENET_PREPROCESSING, num_classes=num_classes)
