"""torchvision classifiers by name, with `--weights ENUM|DEFAULT|none|PATH`.

Preprocessing and class names come from the weights' own `transforms()` and `meta` (232 -> 224 for
ResNet-50 V2, 236 for ConvNeXt-T, bicubic for EfficientNet...), never a hard-coded 256 -> 224.
Online, the enum downloads through torch hub as usual; offline it fails fast naming the file and the
cache folder to put it in.
"""
from __future__ import annotations

import dataclasses
import os
import socket

from nnprobe.errors import ModelLoadError, UsageError, WeightsUnavailableError
from nnprobe.models.checkpoints import extract_state_dict, fit_state_dict, read_checkpoint
from nnprobe.results import Preprocessing

DOWNLOAD_TIMEOUT_S = 20  # never hang offline


def is_torchvision_name(name: str) -> bool:
    from torchvision import models

    return name in models.list_models(module=models)


def is_checkpoint_path(weights: str) -> bool:
    """`--weights` names a file (not an enum) when it exists, has a folder, or a checkpoint suffix."""
    from nnprobe.models import FILE_SUFFIXES

    return os.path.exists(weights) or os.path.sep in weights or weights.lower().endswith(FILE_SUFFIXES)


def _preprocessing_of(weights) -> Preprocessing:
    t = weights.transforms()
    return Preprocessing(resize_size=int(t.resize_size[0]), crop_size=int(t.crop_size[0]),
                         interpolation=t.interpolation.value, antialias=bool(t.antialias),
                         mean=tuple(float(v) for v in t.mean), std=tuple(float(v) for v in t.std),
                         source=f"torchvision {weights}.transforms()")


def resolve_weights(name: str, weights: str | None):
    """The weights enum member for `name` (None means DEFAULT; 'none' means random init)."""
    from torchvision import models

    enum = models.get_model_weights(name)
    choice = (weights or "DEFAULT").split(".")[-1]
    if choice.lower() == "none":
        return None
    try:
        return enum[choice.upper()] if choice.upper() == "DEFAULT" else enum[choice]
    except KeyError:
        known = ", ".join(["DEFAULT"] + [w.name for w in enum])
        raise UsageError(f"--weights {weights} is not a weights enum of {name}: use one of {known}, "
                         "none, or a checkpoint path.") from None


def _cached_path(weights) -> str:
    from torch.hub import get_dir

    return os.path.join(get_dir(), "checkpoints", os.path.basename(weights.url))


def _download_state_dict(weights):
    """Weights from the hub cache, downloading if needed; offline, one sentence instead of a traceback."""
    path = _cached_path(weights)
    if not os.path.exists(path) and os.environ.get("NNPROBE_OFFLINE"):
        raise WeightsUnavailableError(f"{weights} is not cached and NNPROBE_OFFLINE is set: download "
                                      f"{weights.url} and put it at {path}.")
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    except (OSError, RuntimeError) as exc:  # URLError is an OSError; a bad hash is a RuntimeError
        raise WeightsUnavailableError(
            f"Could not get {weights} ({type(exc).__name__}): without network, download {weights.url} and put "
            f"it at {path}.") from exc
    finally:
        socket.setdefaulttimeout(previous)


def load_torchvision(name: str, *, weights: str | None, trust_pickle: bool, num_classes: int | None):
    from torchvision import models

    from nnprobe.models.classifier import from_network

    if not is_torchvision_name(name):
        raise ModelLoadError(f"{name!r} is not a torchvision classification model; see "
                             "torchvision.models.list_models().")
    spec = f"torchvision:{name}"
    if weights and is_checkpoint_path(weights):
        state = extract_state_dict(read_checkpoint(weights, trust_pickle=trust_pickle), weights)
        default = models.get_model_weights(name).DEFAULT
        pre = dataclasses.replace(_preprocessing_of(default),
                                  source=f"torchvision {default}.transforms() (the architecture's default weights)")

        def build(k):
            return models.get_model(name, weights=None, **({"num_classes": k} if k else {}))

        net = fit_state_dict(build, state, weights, num_classes)
        return from_network(net, spec=spec, source="torchvision", weights=os.path.abspath(weights),
                            architecture=name, preprocessing=pre)
    member = resolve_weights(name, weights)
    if member is None:
        net = models.get_model(name, weights=None, **({"num_classes": num_classes} if num_classes else {}))
        pre = _preprocessing_of(models.get_model_weights(name).DEFAULT)
        return from_network(net, spec=spec, source="torchvision", weights=None, architecture=name,
                            preprocessing=pre)
    if num_classes not in (None, len(member.meta["categories"])):
        raise UsageError(f"{member} has {len(member.meta['categories'])} classes, not --num-classes {num_classes}.")
    net = models.get_model(name, weights=None)
    net.load_state_dict(_download_state_dict(member))
    metrics = member.meta.get("_metrics", {}).get("ImageNet-1K", {})
    top1, top5 = metrics.get("acc@1"), metrics.get("acc@5")
    return from_network(net, spec=spec, source="torchvision", weights=str(member), architecture=name,
                        preprocessing=_preprocessing_of(member), num_classes=len(member.meta["categories"]),
                        published_top1=top1 / 100 if top1 is not None else None,
                        published_top5=top5 / 100 if top5 is not None else None)
