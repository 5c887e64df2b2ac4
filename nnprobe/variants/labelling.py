"""A variant's folder -> its labelled images, with the variant and its protocol attached (torch-free).

`--variant NAME` checks the folder against the variant's classes (one sentence for a folder it cannot
have); without it, the variant is detected from the class folders (and the folder's own name), and the
detection is said in the report. ObjectNet's folders are labelled here (its folder names are not ImageNet
names); every other variant through the one finder, `nnprobe.data.layouts.find_images`.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass

from nnprobe.data.layouts import LabelledImages, find_images
from nnprobe.errors import DataError, UsageError
from nnprobe.variants.protocols import (Detected, Protocol, check_folders, detect, objectnet_folders, protocol,
                                       v2_sampling)

AUTO = "auto"


@dataclass(frozen=True)
class Variant:
    """Which variant a data set is, how nnprobe knows, and its protocol."""

    protocol: Protocol
    how: str  # "given (--variant)" or "detected from ..."
    excluded: int = 0  # images of classes outside the protocol, left out (ObjectNet's 200 non-ImageNet classes)


def class_folders(root: str) -> list[str]:
    try:
        return sorted(d.name for d in os.scandir(root) if d.is_dir() and not d.name.startswith("."))
    except OSError:
        return []  # the finder says what is wrong with the folder


def variant_images(root: str, variant: str | None, *, class_names: Sequence[str], wnids: Sequence[str] | None,
                   num_classes: int, labels_file: str | None = None, devkit: str | None = None,
                   class_map: str | None = None) -> LabelledImages:
    """The labelled images of `root` with their variant: `variant` a name (checked against the folder), AUTO
    (detected from the class folders), or None (no variant: the plain finder)."""
    finder = dict(class_names=class_names, wnids=wnids, num_classes=num_classes, labels_file=labels_file,
                  devkit=devkit, class_map=class_map)
    subdirs = class_folders(root) if os.path.isdir(root) else []
    if variant is None or (variant == AUTO and (labels_file or devkit or class_map or wnids is None)):
        return find_images(root, **finder)
    if variant == AUTO:
        found = detect(root, subdirs)
        if found.name is None:
            images = find_images(root, **finder)
            return dataclasses.replace(images, notes=images.notes + ((found.warning,) if found.warning else ()))
        name, how = found.name, found.reason
    else:
        name, how = variant, "given (--variant)"
        protocol(name)  # an unknown name is one sentence
    if wnids is None or num_classes != 1000:
        raise UsageError(f"--variant {name} applies ImageNet's protocol: it needs a 1000-class ImageNet model, "
                         f"not one with {num_classes} classes.")
    if subdirs:
        check_folders(name, root, subdirs)
    p = protocol(name, v2_sampling(root) if name == "v2" else None)
    if p.layout == "objectnet":
        return _objectnet(root, subdirs, p, how)
    images = find_images(root, **finder)
    return dataclasses.replace(images, variant=Variant(p, how))


def _objectnet(root: str, subdirs: list[str], p: Protocol, how: str) -> LabelledImages:
    """ObjectNet's class folders: the images of the 113 classes that map to ImageNet, each labelled with the
    first ImageNet index its class maps to (any index of its class counts as right)."""
    from nnprobe.data.decode import is_image_name
    from nnprobe.data.layouts import _walk_class_folders
    from nnprobe.results import SkippedFile

    if not subdirs:
        raise DataError(f"{root} has no class folders: ObjectNet's images are in one folder per class "
                        "(objectnet-1.0/images).")
    folders = objectnet_folders()
    kept = [d for d in subdirs if folders[d]]
    if not kept:
        raise DataError(f"None of the {len(subdirs)} class folders of {root} is one of the 113 ObjectNet classes "
                        "that map to ImageNet classes.")
    found, duplicates, notes = _walk_class_folders(root, kept)
    left_out, _, _ = _walk_class_folders(root, [d for d in subdirs if not folders[d]])
    excluded = sum(1 for path, _ in left_out if is_image_name(path))
    samples = tuple((path, folders[folder][0]) for path, folder in found if is_image_name(path))
    skipped = tuple(SkippedFile(path, "not an image file name") for path, _ in found if not is_image_name(path))
    if not samples:
        raise DataError(f"No image files found under {root}.")
    if excluded:
        notes.append(f"{excluded} images of ObjectNet classes with no ImageNet class left out (the protocol)")
    return LabelledImages(root, samples, "folders:objectnet", {d: folders[d][0] for d in kept},
                          skipped + tuple(duplicates), tuple(notes), border=p.border,
                          variant=Variant(p, how, excluded))


__all__ = ["AUTO", "Detected", "Variant", "variant_images"]
