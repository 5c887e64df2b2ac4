"""`Classifier`: a network plus everything needed to use it right (preprocessing, class names, provenance).

Normalisation lives inside: `forward` takes float pixels in [0, 1] at the model's input size, so attacks
and their epsilons work in pixel space (foolbox 3 style), and `forward_image` takes a photo at its own
resolution with resize and crop as part of the differentiable forward pass.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nnprobe.models.preprocessing import tensor_resize_crop
from nnprobe.results import ModelInfo, Preprocessing


class Classifier(nn.Module):
    def __init__(self, net: nn.Module, info: ModelInfo, class_names: Sequence[str],
                 wnids: Sequence[str] | None = None) -> None:
        super().__init__()
        self.net = net
        self.info = info
        self.class_names = list(class_names)
        self.wnids = list(wnids) if wnids is not None else None
        pre = info.preprocessing
        self.register_buffer("mean", torch.tensor(pre.mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(pre.std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    @property
    def preprocessing(self) -> Preprocessing:
        return self.info.preprocessing

    @property
    def num_classes(self) -> int:
        return self.info.num_classes

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Float NCHW pixels in [0, 1] at the model's input size -> logits."""
        centred = pixels - self.mean
        # in place when no gradient flows: the same numbers without a second image-sized allocation
        return self.net(centred / self.std if centred.requires_grad else centred.div_(self.std))

    def prepare(self, pixels: torch.Tensor) -> torch.Tensor:
        """A photo at its own size (float NCHW in [0, 1]) -> model input size, differentiably."""
        return tensor_resize_crop(pixels, self.preprocessing)

    def forward_image(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.forward(self.prepare(pixels))

    def label(self, index: int) -> str:
        return self.class_names[index] if 0 <= index < len(self.class_names) else str(index)


def rebuild(classifier: Classifier, *, preprocessing: Preprocessing | None = None,
            class_names: Sequence[str] | None = None) -> Classifier:
    """The same network with other preprocessing or class names (Classifier's info is frozen)."""
    import dataclasses

    info = classifier.info
    if preprocessing is not None:
        info = dataclasses.replace(info, preprocessing=preprocessing)
    names = class_names if class_names is not None else classifier.class_names
    return Classifier(classifier.net, info, names, classifier.wnids)


def imagenet_or_numbered(num_classes: int) -> tuple[list[str], list[str] | None]:
    """Class names and wnids for a k-way head: ImageNet's when k == 1000, else '0'..'k-1'."""
    if num_classes == 1000:
        from nnprobe.models.imagenet import imagenet_names, imagenet_wnids

        return list(imagenet_names()), list(imagenet_wnids())
    return [str(i) for i in range(num_classes)], None


@torch.inference_mode()
def count_outputs(net: nn.Module, preprocessing: Preprocessing) -> int:
    """Number of classes of a network whose head we cannot read: one forward on a blank image."""
    size = preprocessing.crop_size or preprocessing.resize_size or 224
    was_training = net.training
    net.eval()
    try:
        out = net(torch.zeros(1, 3, size, size))
    except Exception as exc:  # e.g. a CIFAR network whose Linear layer expects 32x32 inputs
        from nnprobe.errors import ModelLoadError

        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelLoadError(f"Counting the model's classes with a {size}x{size} test image failed ({first}); "
                             "pass --num-classes.") from exc
    finally:
        net.train(was_training)
    if isinstance(out, (tuple, list)):
        out = out[0]
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        from nnprobe.errors import ModelLoadError

        raise ModelLoadError("The model's output is not a (batch, classes) tensor of logits.")
    return int(out.shape[1])


def from_network(net: nn.Module, *, spec: str, source: str, weights: str | None, architecture: str | None,
                 preprocessing: Preprocessing, num_classes: int | None = None,
                 published_top1: float | None = None, published_top5: float | None = None) -> Classifier:
    """Wrap a bare network: count its classes, name them, record provenance."""
    k = num_classes if num_classes is not None else count_outputs(net, preprocessing)
    names, wnids = imagenet_or_numbered(k)
    info = ModelInfo(spec=spec, source=source, weights=weights, architecture=architecture, num_classes=k,
                     preprocessing=preprocessing, published_top1=published_top1, published_top5=published_top5)
    return Classifier(net.eval(), info, names, wnids)
