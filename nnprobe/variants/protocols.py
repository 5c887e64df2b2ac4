"""The ImageNet test variants and their published protocols, as data (torch-free).

Each variant says which of the model's 1000 logits the official number takes its argmax over (`groups`:
each group is one of the variant's classes, as the ImageNet indices it accepts), what the images need
before the resize (`border`), how its class folders are named (`layout`), and which column of Taori et
al.'s testbed (2020) its effective robustness is measured against. The class lists are package data
(`nnprobe/data/variant_*`), each file naming the repository and commit it was taken from.

- ImageNet-A / -R (Hendrycks et al.): 200 wnid folders; the official evaluation restricts the argmax to
  those 200 (`output[:, indices_in_1k]`); nnprobe reports the 1000-way argmax beside it.
- ObjectNet (Barbu et al. 2019): 313 class folders, 113 of which map to one or more ImageNet classes; only
  images of those 113 count, and a prediction is right when it is any ImageNet class its class maps to.
  The images carry a 1-pixel red frame: ObjectNet's own loader (objectnet-template-pytorch) and the
  testbed cut 2 pixels from each side before the resize; so does nnprobe.
- ImageNetV2 (Recht et al. 2019): folders 0..999 are the class indices; three samplings
  (matched-frequency, threshold0.7, top-images), told apart by the folder's name.
- ImageNet-Sketch and ImageNet val: val's 1000 wnid folders; ReaL (Beyer et al. 2020): val relabelled
  by `--real-labels real.json`.
"""
from __future__ import annotations

import functools
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

from nnprobe.errors import DataError, UsageError

WNID_RE = re.compile(r"^n\d{8}$")
NAMES = ("imagenet-a", "imagenet-r", "objectnet", "v2", "sketch", "real", "val")
V2_SAMPLINGS = {"matched-frequency": ("matchedfrequency", "matched-frequency", "matched_frequency"),
                "threshold0.7": ("threshold0.7", "threshold-0.7", "threshold_0.7", "threshold07"),
                "top-images": ("topimages", "top-images", "top_images")}
OBJECTNET_BORDER = 2  # pixels cut from each side: objectnet-template-pytorch's loader, crop (2, 2, w-2, h-2)


@dataclass(frozen=True)
class Protocol:
    """One variant's published evaluation."""

    name: str  # one of NAMES
    title: str  # "ImageNet-A"
    layout: str  # "wnid" (folders are wnids), "index" (folders 0..999), "objectnet" (ObjectNet's folder names)
    groups: tuple[tuple[int, ...], ...] | None = None  # the restricted argmax's classes; None: all 1000
    border: int = 0  # pixels cut from each side of every image before the resize
    sampling: str | None = None  # ImageNetV2's sampling, when the folder name says it
    testbed_x: str = "val"  # the testbed column effective robustness takes as x (val, or val on these classes)
    testbed_y: str | None = None  # the testbed column of this variant (None: no published fit)
    floor: float = 55.0  # the paper's accuracy floor (on x, percent) for the models of its fit
    source: str = ""  # where the protocol comes from

    @property
    def restricted(self) -> bool:
        return self.groups is not None

    @property
    def ways(self) -> int:
        return len(self.groups) if self.groups is not None else 1000

    def describe(self) -> str:
        """The headline number's protocol in words."""
        if self.groups is None:
            return "argmax over all 1000 classes"
        if any(len(g) > 1 for g in self.groups):
            members = sum(len(g) for g in self.groups)
            return (f"argmax over the {members} ImageNet classes of its {len(self.groups)} classes, right when it "
                    "is any class the image's class maps to (official)")
        return f"argmax over its {len(self.groups)} classes (official)"


def _lines(name: str) -> list[str]:
    text = resources.files("nnprobe.data").joinpath(name).read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


@functools.lru_cache(maxsize=None)
def subset_wnids(name: str) -> tuple[str, ...]:
    """The 200 wnids of ImageNet-A or -R (package data)."""
    return tuple(_lines(f"variant_{name.replace('-', '_')}.txt"))


@functools.lru_cache(maxsize=1)
def objectnet_folders() -> dict[str, tuple[int, ...]]:
    """ObjectNet's 313 folder names -> the ImageNet indices its class maps to (empty for the 200 with none)."""
    table = {}
    for line in _lines("variant_objectnet.tsv"):
        folder, _label, indices = line.split("\t")
        table[folder] = () if indices == "-" else tuple(int(i) for i in indices.split(","))
    return table


def _wnid_groups(name: str) -> tuple[tuple[int, ...], ...]:
    from nnprobe.models.imagenet import wnid_to_index

    index = wnid_to_index()
    return tuple((i,) for i in sorted(index[w] for w in subset_wnids(name)))


def protocol(name: str, sampling: str | None = None) -> Protocol:
    """The protocol of variant `name` (one of NAMES)."""
    if name == "imagenet-a":
        return Protocol(name, "ImageNet-A", "wnid", _wnid_groups(name), testbed_x="val-on-imagenet-a-classes",
                        testbed_y="imagenet-a", floor=75.0, source="hendrycks/natural-adv-examples eval.py")
    if name == "imagenet-r":
        return Protocol(name, "ImageNet-R", "wnid", _wnid_groups(name), testbed_x="val-on-imagenet-r-classes",
                        testbed_y="imagenet-r", floor=75.0, source="hendrycks/imagenet-r eval.py")
    if name == "objectnet":
        groups = tuple(sorted(g for g in objectnet_folders().values() if g))
        return Protocol(name, "ObjectNet", "objectnet", groups, border=OBJECTNET_BORDER,
                        testbed_x="val-on-objectnet-classes", testbed_y="objectnet-1.0-beta",
                        source="ObjectNet mappings/ and objectnet-template-pytorch")
    if name == "v2":
        column = {"matched-frequency": "imagenetv2-matched-frequency", "threshold0.7": "imagenetv2-threshold0.7",
                  "top-images": "imagenetv2-topimages"}.get(sampling or "")
        title = f"ImageNetV2 {sampling}" if sampling else "ImageNetV2"
        return Protocol(name, title, "index", sampling=sampling, testbed_y=column, source="modestyachts/ImageNetV2")
    if name == "sketch":
        return Protocol(name, "ImageNet-Sketch", "wnid", testbed_y="imagenet-sketch",
                        source="HaohanWang/ImageNet-Sketch")
    if name == "real":
        return Protocol(name, "ImageNet-ReaL", "wnid", source="google-research/reassessed-imagenet")
    if name == "val":
        return Protocol(name, "ImageNet val", "wnid", source="ILSVRC-2012")
    from nnprobe.options.base import nearest

    raise UsageError(f"--variant {name!r} is not one of {', '.join(NAMES)}{nearest(name, list(NAMES))}")


def _components(root: str) -> list[str]:
    """The lower-cased names of the folder and its parent, as hints of which variant it is."""
    real = os.path.realpath(root)
    return [os.path.basename(real).lower(), os.path.basename(os.path.dirname(real)).lower()]


def _hinted(root: str) -> str | None:
    """The variant the folder's name (or its parent's) names, if any."""
    for part in _components(root):
        if re.fullmatch(r"imagenet[-_]?a|natural[-_]adv[-_a-z]*", part):
            return "imagenet-a"
        if re.fullmatch(r"imagenet[-_]?r|imagenet[-_]renditions?", part):
            return "imagenet-r"
        if "objectnet" in part:
            return "objectnet"
        if re.search(r"imagenet[-_]?v2", part):
            return "v2"
        if "sketch" in part:
            return "sketch"
    return None


def v2_sampling(root: str) -> str | None:
    """ImageNetV2's sampling from the folder's name (imagenetv2-matched-frequency-format-val ...), or None."""
    for part in _components(root):
        squeezed = part.replace("_", "-")
        for sampling, spellings in V2_SAMPLINGS.items():
            if any(s.replace("_", "-") in squeezed for s in spellings):
                return sampling
    return None


@dataclass(frozen=True)
class Detected:
    name: str | None  # None: no variant recognised (a plain labelled folder)
    reason: str  # how it was recognised, in words (said in the report)
    warning: str | None = None  # a subset evaluated 1000-way without saying so


def detect(root: str, subdirs: Sequence[str]) -> Detected:
    """Which variant a folder of class folders is, from the folder names (and the folder's own name)."""
    hint, names = _hinted(root), set(subdirs)
    if names and all(WNID_RE.match(d) for d in names):
        return _detect_wnids(names, hint)
    if names and all(d.isascii() and d.isdigit() for d in names):
        if hint == "v2" or names == {str(i) for i in range(1000)}:
            why = "the folder's name" if hint == "v2" else "its 1000 folders 0..999"
            return Detected("v2", f"detected from {why} (ImageNetV2's layout)")
        return Detected(None, "")
    objectnet = set(objectnet_folders())
    if names and names <= objectnet and (hint == "objectnet" or names == objectnet):
        why = "the folder's name" if names != objectnet else "its 313 class folders"
        return Detected("objectnet", f"detected from {why} (ObjectNet's class folders)")
    return Detected(None, "")


def _detect_wnids(names: set[str], hint: str | None) -> Detected:
    for variant in ("imagenet-a", "imagenet-r"):
        title = protocol(variant).title
        wnids = set(subset_wnids(variant))
        if names == wnids:
            return Detected(variant, f"detected from its 200 class folders ({title}'s)")
        if hint == variant and names <= wnids:
            return Detected(variant, f"detected from the folder's name; its {len(names)} class folders are "
                                     f"among {title}'s 200")
    if hint == "sketch":
        return Detected("sketch", "detected from the folder's name (ImageNet-Sketch: val's classes)")
    if len(names) == 1000:
        return Detected("val", "detected from its 1000 wnid folders (val's classes; ImageNet-Sketch has the same: "
                               "--variant sketch names it)")
    for variant in ("imagenet-a", "imagenet-r"):
        if len(names) > 10 and names <= set(subset_wnids(variant)):
            title = protocol(variant).title
            return Detected(None, "", warning=(
                f"its {len(names)} class folders are all {title} classes, yet it was evaluated 1000-way: pass "
                f"--variant {variant} for the official {title} protocol (argmax over its 200 classes), or "
                "--variant val to say 1000-way is meant."))
    return Detected(None, "")


def check_folders(name: str, root: str, subdirs: Sequence[str]) -> None:
    """Refuse, in one sentence, class folders that `--variant name` cannot have."""
    p = protocol(name)
    bad = None
    if p.layout == "wnid" and not p.restricted:
        return  # val, Sketch, ReaL: any layout nnprobe reads (wnid folders, devkit, labels file)
    if p.layout == "wnid":
        allowed = set(subset_wnids(name))
        bad = next((d for d in subdirs if d not in allowed), None)
        what = f"one of {p.title}'s 200 class wnids"
    elif p.layout == "index":
        bad = next((d for d in subdirs if not (d.isascii() and d.isdigit() and int(d) < 1000)), None)
        what = "a class index 0..999"
    else:
        folders = objectnet_folders()
        bad = next((d for d in subdirs if d not in folders), None)
        what = "one of ObjectNet's 313 class folders"
    if bad is not None:
        raise DataError(f"--variant {name}: folder {bad!r} of {root} is not {what}.")
