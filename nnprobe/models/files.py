"""Classifiers saved as files: TorchScript, torch.export programs, state dicts (with --arch), and, only
with --trust-pickle, whole pickled modules."""
from __future__ import annotations

import os

from nnprobe.errors import InputError, ModelLoadError, UsageError
from nnprobe.models.checkpoints import extract_state_dict, is_torchscript, read_checkpoint


def load_file(path: str, *, arch: str | None, trust_pickle: bool, num_classes: int | None):
    import torch
    from torch import nn

    from nnprobe.models import IMAGENET_PREPROCESSING
    from nnprobe.models.classifier import Classifier, from_network

    if not os.path.isfile(path):
        raise InputError(f"Model file {path} does not exist.")
    kwargs = dict(spec=path, weights=os.path.abspath(path), preprocessing=IMAGENET_PREPROCESSING,
                  num_classes=num_classes)
    if path.lower().endswith(".pt2"):
        try:
            program = torch.export.load(path)
        except Exception as exc:
            raise ModelLoadError(f"{path} is not a readable torch.export program ({type(exc).__name__}).") from exc
        return from_network(program.module(), source="export", architecture=None, **kwargs)
    if is_torchscript(path):
        try:
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

        return load_timm(arch[len("timm:"):], weights=path, trust_pickle=trust_pickle, num_classes=num_classes)
    from nnprobe.models.torchvision_source import load_torchvision

    return load_torchvision(arch.removeprefix("torchvision:"), weights=path, trust_pickle=trust_pickle,
                            num_classes=num_classes)
