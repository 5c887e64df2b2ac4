"""Classifiers saved as files: TorchScript, torch.export programs, state dicts (with --arch), and, only
with --trust-pickle, whole pickled modules."""
from __future__ import annotations

import contextlib
import os
import pickle
from collections.abc import Iterator

from torch import nn

from nnprobe.errors import InputError, ModelLoadError, UnsafeCheckpointError, UsageError
from nnprobe.models.checkpoints import extract_state_dict, is_torchscript, read_checkpoint


def _exported_classes(program, path: str) -> int:
    """The class count from the program's recorded output shape (a forward could violate its shape guards,
    e.g. a program exported with a static batch of 8)."""
    try:
        output = next(n for n in program.graph.nodes if n.op == "output")
        first = output.args[0][0] if isinstance(output.args[0], (tuple, list)) else output.args[0]
        shape = first.meta["val"].shape
        if len(shape) == 2:
            return int(shape[1])
    except (StopIteration, KeyError, AttributeError, IndexError, TypeError):
        pass
    raise ModelLoadError(f"{path}: the exported program's output is not a (batch, classes) tensor of logits.")


class ExportedNet(nn.Module):
    """An exported program's module: its train/eval mode was fixed at export time and it refuses
    `.eval()`, so mode changes stop here instead of reaching it."""

    def __init__(self, program_module: nn.Module) -> None:
        super().__init__()
        self.program = program_module

    def forward(self, x):
        return self.program(x)

    def train(self, mode: bool = True):
        self.training = mode
        return self


@contextlib.contextmanager
def _weights_only_unless(trusted: bool) -> Iterator[None]:
    """torch.export.load unpickles pickled weights and constants with torch.load(weights_only=False), and
    falls back to it when weights_only=True fails: a crafted .pt2 could run code. Unless the user trusts
    the file, force weights_only=True for the duration of the load."""
    import torch

    if trusted:
        yield
        return
    original = torch.load

    def weights_only_load(*args, **kwargs):
        kwargs["weights_only"] = True
        return original(*args, **kwargs)

    torch.load = weights_only_load
    try:
        yield
    finally:
        torch.load = original


def load_file(path: str, *, arch: str | None, trust_pickle: bool, num_classes: int | None):
    import torch

    from nnprobe.models import IMAGENET_PREPROCESSING
    from nnprobe.models.classifier import Classifier, from_network

    if not os.path.isfile(path):
        raise InputError(f"Model file {path} does not exist or is not a file.")
    kwargs = dict(spec=path, weights=os.path.abspath(path), preprocessing=IMAGENET_PREPROCESSING,
                  num_classes=num_classes)
    if path.lower().endswith(".pt2"):
        import zipfile

        if not zipfile.is_zipfile(path):  # checked first: torch.export.load logs a traceback on junk
            raise ModelLoadError(f"{path} is not a readable torch.export program (not a .pt2 zip archive).")
        try:
            with _weights_only_unless(trust_pickle):
                program = torch.export.load(path)
        except pickle.UnpicklingError as exc:
            raise UnsafeCheckpointError(
                f"{path} holds pickled Python objects beyond tensors, and unpickling can run arbitrary code; "
                "pass --trust-pickle only if you trust the file.") from exc
        except Exception as exc:
            raise ModelLoadError(f"{path} is not a readable torch.export program ({type(exc).__name__}).") from exc
        if kwargs["num_classes"] is None:
            kwargs["num_classes"] = _exported_classes(program, path)
        return from_network(ExportedNet(program.module()), source="export", architecture=None, **kwargs)
    if is_torchscript(path):
        import warnings

        try:
            with warnings.catch_warnings():  # torch >= 2.9 deprecates TorchScript; the user's file is still fine
                warnings.simplefilter("ignore", FutureWarning)
                net = torch.jit.load(path, map_location="cpu")
        except Exception as exc:
            raise ModelLoadError(f"{path} is not a readable TorchScript file ({type(exc).__name__}).") from exc
        return from_network(net, source="torchscript", architecture=None, **kwargs)
    obj = read_checkpoint(path, trust_pickle=trust_pickle)
    if isinstance(obj, Classifier):
        return obj
    if isinstance(obj, nn.Module):  # reached only with --trust-pickle
        return from_network(obj, source="pickle", architecture=type(obj).__name__, **kwargs)
    state = extract_state_dict(obj, path)
    if not arch:
        raise UsageError(f"{path} is a state dict: name its architecture with --arch (e.g. --arch resnet50 or "
                         "--arch timm:convnext_tiny).")
    if arch.startswith("timm:"):
        from nnprobe.models.timm_source import load_timm

        return load_timm(arch[len("timm:"):], weights=path, trust_pickle=trust_pickle, num_classes=num_classes,
                         state=state)
    from nnprobe.models.torchvision_source import load_torchvision

    return load_torchvision(arch.removeprefix("torchvision:"), weights=path, trust_pickle=trust_pickle,
                            num_classes=num_classes, state=state)
