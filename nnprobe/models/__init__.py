"""Resolve one `--model` spec into a `Classifier`, whatever source the user has.

| spec                                   | source                                  |
| -------------------------------------- | --------------------------------------- |
| (none) / `default`                     | embedded EfficientNet-Lite0 (offline)   |
| `resnet50`, `torchvision:resnet50`     | torchvision, `--weights ENUM|DEFAULT|PATH` |
| `timm:NAME`                            | timm, its `pretrained_cfg`              |
| `m.pt`/`m.ts` (TorchScript), `m.pt2` (torch.export) | saved programs             |
| `m.pth`/`m.ckpt`/`m.safetensors` + `--arch NAME` | state dicts (Lightning's too)  |
| `file.py:fn`, `package.module:fn`      | a factory returning an `nn.Module`      |

Each row is a source in `MODEL_SOURCES` (registry.py, registered in sources.py): a new source registers
with a prefix, file suffixes or a predicate, and is tested the day it lands (tests/models/
test_source_registry.py). Checkpoints load with `torch.load(weights_only=True)`; a full pickle only with
`trust_pickle=True`; .pt2 archives are vetted before torch reads them (export_archive.py). What can run
code: docs/safety.md.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from nnprobe.errors import UsageError
from nnprobe.models.registry import (MODEL_SOURCES, ModelRequest, ModelSource, model_sources, register_source,
                                     source_for)
from nnprobe.models.sources import EXPORT_SUFFIXES, SAVED_SUFFIXES, weights_arch  # registers the built-ins
from nnprobe.results import Preprocessing

if TYPE_CHECKING:
    from nnprobe.models.classifier import Classifier

IMAGENET_PREPROCESSING = Preprocessing(source="ImageNet default (256 -> 224, bilinear, antialias)")
FILE_SUFFIXES = SAVED_SUFFIXES + EXPORT_SUFFIXES
__all__ = ["FILE_SUFFIXES", "IMAGENET_PREPROCESSING", "MODEL_SOURCES", "ModelRequest", "ModelSource",
           "load_classifier", "model_sources", "register_source", "source_for", "weights_arch"]


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
    """The one source that claims the spec loads it (registry.source_for says what is accepted)."""
    if num_classes is not None and not 1 <= num_classes <= MAX_CLASSES:
        raise UsageError(f"--num-classes must be between 1 and {MAX_CLASSES:,}, not "
                         f"{str(num_classes)[:20]}{'...' if len(str(num_classes)) > 20 else ''}.")
    spec = spec or ""
    source = source_for(spec)
    request = ModelRequest(weights=weights, arch=arch, trust_pickle=trust_pickle, num_classes=num_classes)
    return source.load(source.name_in(spec), request)
