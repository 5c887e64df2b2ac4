"""The built-in model sources, registered on import (`nnprobe.models` imports this module).

Each loader imports its backend (torch, timm, torchvision) only when called. They are registered in the
order the error for an unknown spec names them; `priority` sets the order they are tried in.
"""
from __future__ import annotations

import os

from nnprobe.errors import UsageError
from nnprobe.models.registry import MODEL_SOURCES, ModelRequest, register_source

EXPORT_SUFFIXES = (".pt2",)
SAVED_SUFFIXES = (".pt", ".ts", ".pth", ".ckpt", ".bin", ".safetensors")  # TorchScript or a checkpoint


def weights_arch(weights: str | None) -> None:
    if weights:
        raise UsageError("--weights goes with a model name (resnet50 --weights W.pth); for a checkpoint file "
                         "given as --model, name its architecture with --arch.")
    return None


@register_source("file", suffixes=SAVED_SUFFIXES, test=os.path.exists, priority=40, accepts="a file")
def _saved_file(path: str, request: ModelRequest):
    """TorchScript, a state dict (with --arch), or with --trust-pickle a pickled module."""
    from nnprobe.models.files import load_file

    return load_file(path, arch=request.arch or weights_arch(request.weights), trust_pickle=request.trust_pickle,
                     num_classes=request.num_classes)


def _is_torchvision_name(spec: str) -> bool:
    from nnprobe.models.torchvision_source import is_torchvision_name

    return is_torchvision_name(spec)


@register_source("torchvision-name", test=_is_torchvision_name, priority=90, accepts="a torchvision model name")
@register_source("torchvision", prefix="torchvision:", priority=10)
def _torchvision(name: str, request: ModelRequest):
    from nnprobe.models.torchvision_source import load_torchvision

    return load_torchvision(name, weights=request.weights, trust_pickle=request.trust_pickle,
                            num_classes=request.num_classes)


@register_source("timm", prefix="timm:", priority=10, accepts="timm:NAME")
def _timm(name: str, request: ModelRequest):
    from nnprobe.models.timm_source import load_timm

    return load_timm(name, weights=request.weights, trust_pickle=request.trust_pickle,
                     num_classes=request.num_classes)


def looks_like_factory(spec: str) -> bool:
    """`file.py:fn` or `package.module:fn`, and not another source's prefix (`timm:resnet18`)."""
    if ":" not in spec or any(s.prefix and spec.startswith(s.prefix) for s in MODEL_SOURCES.values()):
        return False
    target, _, func = spec.rpartition(":")
    if not func.isidentifier():
        return False
    if len(target) == 1 and target.isalpha():  # a Windows drive letter, not a module
        return False
    return target.endswith(".py") or all(part.isidentifier() for part in target.split("."))


@register_source("factory", test=looks_like_factory, priority=20,
                 accepts="file.py:function / package.module:function")
def _factory(spec: str, request: ModelRequest):
    from nnprobe.models.factory import load_factory

    return load_factory(spec, num_classes=request.num_classes)


@register_source("default", prefix="default:", test=lambda spec: spec in ("", "default"), priority=0)
def _default(name: str, request: ModelRequest):
    if request.weights or request.arch:
        raise UsageError("--weights and --arch need a --model; the embedded default carries its own weights.")
    if request.num_classes not in (None, 1000):
        raise UsageError(f"The embedded default model has 1000 ImageNet classes, not --num-classes "
                         f"{request.num_classes}.")
    from nnprobe.models.default import load_default

    return load_default()


@register_source("onnx", suffixes=(".onnx",), priority=30)
def _onnx(path: str, request: ModelRequest):
    """An ONNX export, run by onnxruntime; external data only from beside it (onnx_source.py)."""
    from nnprobe.models.onnx_source import load_onnx

    if request.arch or request.weights or request.trust_pickle:
        raise UsageError("An .onnx file carries its own graph and weights: --arch, --weights and --trust-pickle "
                         "do not apply to it.")
    return load_onnx(path, num_classes=request.num_classes)


@register_source("export", suffixes=EXPORT_SUFFIXES, priority=30)
def _exported(path: str, request: ModelRequest):
    """A torch.export program, vetted before torch reads it (export_archive.py)."""
    from nnprobe.models.files import load_export

    if not request.arch:  # as for any file: --weights names a checkpoint for a model name, not for a file
        weights_arch(request.weights)
    return load_export(path, trust_pickle=request.trust_pickle, num_classes=request.num_classes)
