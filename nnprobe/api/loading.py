"""The model and the images every verb starts from: `load_classifier` and `find_images` (public, re-exported
by the package), the bundled samples, and `model_and_data`, the step eval, robust, corruptions and
diagnose's probe share. Importing this module imports no torch; each call does."""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from nnprobe.errors import UsageError
from nnprobe.options.base import Options

if TYPE_CHECKING:
    from nnprobe.data.layouts import LabelledImages
    from nnprobe.models.classifier import Classifier

_SOURCE_TREE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def bundled_samples() -> str:
    """The sample photos of the source tree (`samples/imagenet`), the default data set."""
    return os.path.join(_SOURCE_TREE, "samples", "imagenet")


def load_classifier(model: Any = None, *, weights: str | None = None, arch: str | None = None,
                    trust_pickle: bool = False, num_classes: int | None = None, resize: int | None = None,
                    crop: int | None = None, interpolation: str | None = None,
                    mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> "Classifier":
    """A `Classifier` (normalisation inside, preprocessing and class names attached) from a spec string,
    a `Classifier` (preprocessing options override its own), or a plain `nn.Module`."""
    from torch import nn

    from nnprobe.models import IMAGENET_PREPROCESSING
    from nnprobe.models import load_classifier as load_spec
    from nnprobe.models.classifier import Classifier, from_network, rebuild
    from nnprobe.models.preprocessing import with_overrides

    overrides = dict(resize=resize, crop=crop, interpolation=interpolation, mean=tuple(mean) if mean else None,
                     std=tuple(std) if std else None)
    if model is None or isinstance(model, (str, os.PathLike)):
        return load_spec(os.fspath(model) if model is not None else None, weights=weights, arch=arch,
                         trust_pickle=trust_pickle, num_classes=num_classes, **overrides)
    if not isinstance(model, nn.Module):
        raise UsageError(f"model must be a spec string, a Classifier or an nn.Module, not {type(model).__name__}.")
    if weights or arch:
        raise UsageError("weights and arch go with a model spec string; a loaded module carries its weights.")
    if isinstance(model, Classifier):
        pre = with_overrides(model.preprocessing, **overrides)
        return (rebuild(model, preprocessing=pre) if pre is not model.preprocessing else model).eval()
    name = type(model).__name__
    pre = with_overrides(IMAGENET_PREPROCESSING, **overrides)
    return from_network(model, spec=f"module:{name}", source="module", weights=None, architecture=name,
                        preprocessing=pre, num_classes=num_classes).eval()


def find_images(data: str | os.PathLike | None = None, model: Any = None, *, labels_file: str | None = None,
                devkit: str | None = None, class_map: str | None = None,
                limit: int | None = None, variant: str | None = None) -> "LabelledImages":
    """The labelled images under `data` (None: the bundled samples), labels mapped to `model`'s classes
    (a Classifier, or None for ImageNet's 1000): wnid folders keep their 1000-way index, and so on.
    `variant`: an ImageNet variant's name (its protocol travels with the images), "auto" (detected from the
    class folders), or None (none)."""
    from nnprobe.models.classifier import Classifier, imagenet_or_numbered
    from nnprobe.variants.labelling import variant_images

    if data is None:
        data = bundled_samples()
        if not os.path.isdir(data):
            raise UsageError("No data folder given and the bundled samples are not here (they ship in the "
                             "source tree): pass a data folder.")
    if isinstance(model, Classifier):
        names, wnids, k = model.class_names, model.wnids, model.num_classes
    elif model is None:
        names, wnids = imagenet_or_numbered(1000)
        k = 1000
    else:
        raise UsageError("find_images maps labels to a loaded Classifier's classes: pass load_classifier(...).")
    return variant_images(os.fspath(data), variant, class_names=names, wnids=wnids, num_classes=k,
                          labels_file=labels_file, devkit=devkit, class_map=class_map).limited(limit)


def model_and_data(model: Options, data: Options, variant: str | None = None, classifier: Any = None):
    from nnprobe.data.layouts import LabelledImages

    if classifier is None:
        classifier = load_classifier(model.model, **model.loader_keywords())
    images = data.data
    if hasattr(images, "folders"):  # options.data.DataSets
        raise UsageError("Several --data NAME=DIR make eval's table; this command takes one data set.")
    if isinstance(images, LabelledImages):
        if variant not in (None, "auto"):
            raise UsageError("variant goes with a data folder; LabelledImages carry their own (find_images(..., "
                             "variant=...)).")
        if any(getattr(data, k) is not None for k in ("labels_file", "devkit", "class_map")):
            raise UsageError("labels_file, devkit and class_map go with a data folder, not with LabelledImages "
                             "(call find_images with them).")
        return classifier, images.limited(data.limit)
    if images is not None and not isinstance(images, (str, os.PathLike)):
        return classifier, images  # an iterable of (pixels, labels) batches (robust, corruptions)
    return classifier, find_images(images, classifier, **data.finder_keywords(), variant=variant)


def with_reference(classifier, reference: Any, model: Options):
    """The candidate and the reference model of `--reference-model` (a spec, loaded here, or a Classifier):
    both see the same pixels, so the preprocessing flags apply to a reference spec too; an ONNX export
    carries no preprocessing, so without flags it takes the reference's. With several models each is a
    candidate against the one reference (loaded once: pass the returned reference on)."""
    from nnprobe.models.classifier import Classifier, rebuild

    given = {k: getattr(model, k) for k in ("resize", "crop", "interpolation", "mean", "std")
             if getattr(model, k) is not None}
    ref = reference if isinstance(reference, Classifier) else load_classifier(reference, **given)
    if classifier.info.source == "onnx" and not given:
        pre = dataclasses.replace(ref.preprocessing, source=f"the reference model's ({ref.info.spec})")
        classifier = rebuild(classifier, preprocessing=pre)
    return classifier, ref
