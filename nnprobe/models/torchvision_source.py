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
from nnprobe.models.checkpoints import _first_line, extract_state_dict, fit_state_dict, read_checkpoint
from nnprobe.results import Preprocessing

DOWNLOAD_TIMEOUT_S = 20  # never hang offline


def is_torchvision_name(name: str) -> bool:
    from torchvision import models

    return name in models.list_models(module=models)


def is_checkpoint_path(weights: str) -> bool:
    """`--weights` names a file (not an enum) when it exists, has a folder, or a checkpoint suffix."""
    from nnprobe.models import FILE_SUFFIXES

    return os.path.exists(weights) or os.path.sep in weights or weights.lower().endswith(FILE_SUFFIXES)


def preprocessing_of(weights) -> Preprocessing:
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
    """Weights from the hub cache, downloading if needed; offline, one sentence instead of a traceback.

    nnprobe downloads itself rather than through `weights.get_state_dict()`: torch hub writes
    "Downloading: ..." to stdout (which carries only the report) and checks the hash only while
    downloading, so a truncated or substituted file already in the cache would load silently. Here the
    sha256 prefix in the file name is verified every time, and the file is read with weights_only=True.
    """
    import torch.hub

    path = _cached_path(weights)
    fresh = False
    if not os.path.exists(path):
        if os.environ.get("NNPROBE_OFFLINE"):
            raise WeightsUnavailableError(f"{weights} is not cached and NNPROBE_OFFLINE is set: download "
                                          f"{weights.url} and put it at {path}.")
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            torch.hub.download_url_to_file(weights.url, path, hash_prefix=None, progress=False)
        except (OSError, RuntimeError) as exc:  # URLError and timeouts are OSErrors
            raise WeightsUnavailableError(
                f"Could not download {weights} ({type(exc).__name__}): without network, download {weights.url} "
                f"and put it at {path}.") from exc
        finally:
            socket.setdefaulttimeout(previous)
        fresh = True
    expected = _hash_prefix(weights.url)
    if expected and not _sha256(path).startswith(expected):
        if fresh:
            os.remove(path)
            raise WeightsUnavailableError(f"The download of {weights.url} was corrupted (sha256 does not start "
                                          f"with {expected}); try again.")
        raise ModelLoadError(f"The cached weights file {path} does not match the published sha256 prefix "
                             f"{expected}; delete it or replace it with the file from {weights.url}.")
    return read_checkpoint(path, trust_pickle=False)


def _hash_prefix(url: str) -> str | None:
    from torch.hub import HASH_REGEX

    match = HASH_REGEX.search(os.path.basename(url))
    return match.group(1) if match else None


def _sha256(path: str) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_torchvision(name: str, *, weights: str | None, trust_pickle: bool, num_classes: int | None,
                     state: dict | None = None):
    """`state`: the checkpoint at `weights`, when the caller has read it already (it is not read twice)."""
    from torchvision import models

    from nnprobe.models.classifier import from_network

    if not is_torchvision_name(name):
        raise ModelLoadError(f"{name!r} is not a torchvision classification model; see "
                             "torchvision.models.list_models().")
    spec = f"torchvision:{name}"
    if weights and is_checkpoint_path(weights):
        if state is None:
            state = extract_state_dict(read_checkpoint(weights, trust_pickle=trust_pickle), weights)
        default = models.get_model_weights(name).DEFAULT
        pre = dataclasses.replace(preprocessing_of(default),
                                  source=f"torchvision {default}.transforms() (the architecture's default weights)")

        built = {}

        def build(k):
            built["k"] = k  # torchvision classifiers default to 1000 classes; a forward to count them is slow
            return models.get_model(name, weights=None, **({"num_classes": k} if k else {}))

        net = fit_state_dict(build, state, weights, num_classes)
        return from_network(net, spec=spec, source="torchvision", weights=os.path.abspath(weights),
                            architecture=name, preprocessing=pre, num_classes=built["k"] or 1000)
    member = resolve_weights(name, weights)
    if member is None:
        net = models.get_model(name, weights=None, **({"num_classes": num_classes} if num_classes else {}))
        pre = preprocessing_of(models.get_model_weights(name).DEFAULT)
        return from_network(net, spec=spec, source="torchvision", weights=None, architecture=name,
                            preprocessing=pre, num_classes=num_classes or 1000)
    if num_classes not in (None, len(member.meta["categories"])):
        raise UsageError(f"{member} has {len(member.meta['categories'])} classes, not --num-classes {num_classes}.")
    net = models.get_model(name, weights=None)
    state = _download_state_dict(member)
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelLoadError(f"The weights file of {member} does not fit torchvision's {name} "
                             f"({_first_line(exc)}).") from exc
    metrics = member.meta.get("_metrics", {}).get("ImageNet-1K", {})
    top1, top5 = metrics.get("acc@1"), metrics.get("acc@5")
    return from_network(net, spec=spec, source="torchvision", weights=str(member), architecture=name,
                        preprocessing=preprocessing_of(member), num_classes=len(member.meta["categories"]),
                        published_top1=top1 / 100 if top1 is not None else None,
                        published_top5=top5 / 100 if top5 is not None else None)
