"""Resolve one `--model` spec into a `Classifier`, whatever source the user has.

| spec                                   | source                                  |
| -------------------------------------- | --------------------------------------- |
| (none) / `default`                     | embedded EfficientNet-Lite0 (offline)   |
| `resnet50`, `torchvision:resnet50`     | torchvision, `--weights ENUM|DEFAULT|PATH` |
| `timm:NAME`                            | timm, its `pretrained_cfg`              |
| `m.pt`/`m.ts` (TorchScript), `m.pt2` (torch.export) | saved programs             |
| `m.pth`/`m.ckpt`/`m.safetensors` + `--arch NAME` | state dicts (Lightning's too)  |
| `file.py:fn`, `package.module:fn`      | a factory returning an `nn.Module`      |

Checkpoints load with `torch.load(weights_only=True)`; a full pickle only with `trust_pickle=True`; .pt2
archives are vetted before torch reads them (export_archive.py). What can run code: docs/safety.md.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from nnprobe.errors import ModelLoadError, UsageError
from nnprobe.results import Preprocessing

if TYPE_CHECKING:
    from nnprobe.models.classifier import Classifier

IMAGENET_PREPROCESSING = Preprocessing(source="ImageNet default (256 -> 224, bilinear, antialias)")
FILE_SUFFIXES = (".pt", ".ts", ".pt2", ".pth", ".ckpt", ".bin", ".safetensors")


def __getattr__(name: str):
    if name == "Classifier":
        from nnprobe.models.classifier import Classifier

        return Classifier
    raise AttributeError(name)


def load_classifier(spec: str | None = None, *, weights: str | None = None, arch: str | None = None,
                    trust_pickle: bool = False, num_classes: int | None = None, resize: int | None = None,
                    crop: int | None = None, interpolation: str | None = None,
                    mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                    class_names: Sequence[str] | None = None) -> "Classifier":
    """Load any classifier; preprocessing flags override what the model carries."""
    from nnprobe.models.preprocessing import with_overrides

    classifier = _load(spec, weights=weights, arch=arch, trust_pickle=trust_pickle, num_classes=num_classes)
    pre = with_overrides(classifier.info.preprocessing, resize=resize, crop=crop, interpolation=interpolation,
                         mean=tuple(mean) if mean else None, std=tuple(std) if std else None)
    if class_names is not None and len(class_names) != classifier.num_classes:
        raise UsageError(f"{len(class_names)} class names were given for a model with {classifier.num_classes} "
                         "outputs.")
    if pre is not classifier.info.preprocessing or class_names is not None:
        from nnprobe.models.classifier import rebuild

        classifier = rebuild(classifier, preprocessing=pre, class_names=class_names)
    return classifier.eval()


MAX_CLASSES = 10_000_000  # the CLI option's range too


def _load(spec, *, weights, arch, trust_pickle, num_classes) -> "Classifier":
    if num_classes is not None and not 1 <= num_classes <= MAX_CLASSES:
        raise UsageError(f"--num-classes must be between 1 and {MAX_CLASSES:,}, not "
                         f"{str(num_classes)[:20]}{'...' if len(str(num_classes)) > 20 else ''}.")
    if spec in (None, "", "default") or (spec or "").startswith("default:"):
        if weights or arch:
            raise UsageError("--weights and --arch need a --model; the embedded default carries its own weights.")
        if num_classes not in (None, 1000):
            raise UsageError(f"The embedded default model has 1000 ImageNet classes, not --num-classes {num_classes}.")
        from nnprobe.models.default import load_default

        return load_default()
    if spec.startswith("timm:"):
        from nnprobe.models.timm_source import load_timm

        return load_timm(spec[len("timm:"):], weights=weights, trust_pickle=trust_pickle, num_classes=num_classes)
    if spec.startswith("torchvision:"):
        from nnprobe.models.torchvision_source import load_torchvision

        return load_torchvision(spec[len("torchvision:"):], weights=weights, trust_pickle=trust_pickle,
                                num_classes=num_classes)
    if _looks_like_factory(spec):
        from nnprobe.models.factory import load_factory

        return load_factory(spec, num_classes=num_classes)
    if os.path.exists(spec) or spec.lower().endswith(FILE_SUFFIXES):
        from nnprobe.models.files import load_file

        return load_file(spec, arch=arch or weights_arch(weights), trust_pickle=trust_pickle, num_classes=num_classes)
    from nnprobe.models.torchvision_source import is_torchvision_name, load_torchvision

    if is_torchvision_name(spec):
        return load_torchvision(spec, weights=weights, trust_pickle=trust_pickle, num_classes=num_classes)
    raise ModelLoadError(
        f"--model {spec!r} is not a file, a torchvision model name, timm:NAME, or file.py:function / "
        "package.module:function.")


def weights_arch(weights: str | None) -> None:
    if weights:
        raise UsageError("--weights goes with a model name (resnet50 --weights W.pth); for a checkpoint file "
                         "given as --model, name its architecture with --arch.")
    return None


def _looks_like_factory(spec: str) -> bool:
    if ":" not in spec or spec.startswith(("timm:", "torchvision:", "default:")):
        return False
    target, _, func = spec.rpartition(":")
    if not func.isidentifier():
        return False
    if len(target) == 1 and target.isalpha():  # a Windows drive letter, not a module
        return False
    return target.endswith(".py") or all(part.isidentifier() for part in target.split("."))
