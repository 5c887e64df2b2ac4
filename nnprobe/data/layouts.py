"""Finding the labelled images of a data set, in every layout ImageNet users have, with labels mapped
to the model's class indices (not to whatever order a folder listing happens to give).

- Folder per class. wnid folder names -> the 1000-way index of that wnid (so Imagenette or a 3-class
  sample keep the right indices); numeric names (ImageNetV2 `0..999`) -> that integer, never text-sorted
  order; names matching the model's class names -> those; otherwise sorted order, with a note.
- The official layout: a flat val folder + devkit (`ILSVRC2012_validation_ground_truth.txt` holds
  ILSVRC2012_IDs, which are *not* the sorted-wnid index; `meta.mat` maps them to wnids).
- A flat folder + a labels file: Kaggle `LOC_val_solution.csv`, or any `file,label` CSV/TSV.
- `--class-map FILE` overrides the folder mapping: lines `folder,index` (or JSON {"folder": index}).
"""
from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from nnprobe.data.decode import is_image_name
from nnprobe.errors import DataError, UsageError
from nnprobe.results import SkippedFile

WNID_RE = re.compile(r"^n\d{8}$")
DEVKIT_TRUTH = "ILSVRC2012_validation_ground_truth.txt"
KAGGLE_SOLUTION = "LOC_val_solution.csv"


@dataclass(frozen=True)
class LabelledImages:
    """Image paths with their class index in the model's output, and how that mapping was made."""

    root: str
    samples: tuple[tuple[str, int], ...]
    layout: str
    mapping: dict[str, int] = field(default_factory=dict)  # folder name / id -> class index
    skipped: tuple[SkippedFile, ...] = ()  # files found that are not images (by name)
    notes: tuple[str, ...] = ()  # what a careful user should know (fallbacks, unmatched names)

    @property
    def classes_present(self) -> tuple[int, ...]:
        return tuple(sorted({label for _, label in self.samples}))

    def limited(self, limit: int | None) -> "LabelledImages":
        """A deterministic subset of `limit` images spread evenly over the sorted list (every class
        folder contributes, unlike taking the first N)."""
        if limit is None or limit >= len(self.samples):
            return self
        if limit <= 0:
            raise UsageError("--limit must be a positive number of images.")
        n = len(self.samples)
        picked = tuple(self.samples[(i * n) // limit] for i in range(limit))
        return LabelledImages(self.root, picked, self.layout, self.mapping, self.skipped,
                              self.notes + (f"limited to {limit} of {n} images (evenly spaced)",))


def find_images(root: str, *, class_names: Sequence[str], wnids: Sequence[str] | None, num_classes: int,
                labels_file: str | None = None, devkit: str | None = None,
                class_map: str | None = None) -> LabelledImages:
    if not os.path.isdir(root):
        raise DataError(f"Data folder {root} does not exist or is not a folder.")
    if devkit or (labels_file and os.path.basename(labels_file) == DEVKIT_TRUTH):
        return _devkit(root, devkit, labels_file, wnids)
    if labels_file:
        return _flat_with_labels(root, labels_file, class_names, wnids, num_classes)
    subdirs = sorted(d.name for d in os.scandir(root) if d.is_dir() and not d.name.startswith("."))
    if not subdirs:
        for name in (KAGGLE_SOLUTION, DEVKIT_TRUTH):
            if os.path.isfile(os.path.join(root, name)):
                return find_images(root, class_names=class_names, wnids=wnids, num_classes=num_classes,
                                   labels_file=os.path.join(root, name), devkit=None, class_map=class_map)
        raise DataError(f"{root} has no class folders and no labels file; give one folder per class, or "
                        "--labels FILE (LOC_val_solution.csv, a file,label CSV) or --devkit DIR.")
    return _class_folders(root, subdirs, class_names, wnids, num_classes, class_map)


def _class_folders(root, subdirs, class_names, wnids, num_classes, class_map) -> LabelledImages:
    notes: list[str] = []
    if class_map:
        mapping = _read_class_map(class_map)
        unknown = [d for d in subdirs if d not in mapping]
        if unknown:
            raise DataError(f"--class-map {class_map} does not name folder {unknown[0]!r} "
                            f"({len(unknown)} folders unmapped).")
        layout = "folders:class-map"
    elif all(WNID_RE.match(d) for d in subdirs):
        if wnids is None:
            raise DataError(f"The folders of {root} are ImageNet wnids but the model's {num_classes} classes "
                            "have no wnids; pass --class-map FILE.")
        index = {w: i for i, w in enumerate(wnids)}
        missing = [d for d in subdirs if d not in index]
        if missing:
            raise DataError(f"Folder {missing[0]} is not one of the model's ImageNet classes.")
        mapping = {d: index[d] for d in subdirs}
        layout = "folders:wnid"
    elif all(d.isdigit() for d in subdirs):
        mapping = {d: int(d) for d in subdirs}
        layout = "folders:index"
    else:
        lookup = _name_lookup(class_names)
        if all(d.lower() in lookup for d in subdirs):
            mapping = {d: lookup[d.lower()] for d in subdirs}
            layout = "folders:class-name"
        else:
            mapping = {d: i for i, d in enumerate(subdirs)}
            layout = "folders:sorted"
            notes.append(f"folder names are not wnids, indices or the model's class names: labelled in sorted "
                         f"order 0..{len(subdirs) - 1} (pass --class-map FILE if that is wrong)")
    bad = {d: i for d, i in mapping.items() if d in subdirs and not 0 <= i < num_classes}
    if bad:
        folder, index = next(iter(bad.items()))
        raise DataError(f"Folder {folder!r} maps to class {index}, outside the model's {num_classes} classes.")
    samples, skipped = [], []
    for folder in subdirs:
        for path in _walk_files(os.path.join(root, folder)):
            if is_image_name(path):
                samples.append((path, mapping[folder]))
            else:
                skipped.append(SkippedFile(path, "not an image file name"))
    if not samples:
        raise DataError(f"No image files found under {root}.")
    return LabelledImages(root, tuple(samples), layout, mapping, tuple(skipped), tuple(notes))


def _walk_files(folder: str) -> list[str]:
    """Files under a class folder, recursively (as ImageFolder), sorted, hidden files ignored."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(os.path.join(dirpath, f) for f in sorted(filenames) if not f.startswith("."))
    return found


def _name_lookup(class_names: Sequence[str]) -> dict[str, int]:
    """Lower-cased class name -> index, leaving out names that occur twice (ambiguous)."""
    seen: dict[str, int] = {}
    dupes = set()
    for i, name in enumerate(class_names):
        key = name.lower()
        if key in seen:
            dupes.add(key)
        seen[key] = i
    return {k: v for k, v in seen.items() if k not in dupes}


def _read_class_map(path: str) -> dict[str, int]:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise DataError(f"Cannot read --class-map {path} ({exc.strerror}).") from exc
    try:
        if text.lstrip().startswith("{"):
            return {str(k): int(v) for k, v in json.loads(text).items()}
        mapping = {}
        for row in csv.reader(line for line in text.splitlines() if line.strip() and not line.startswith("#")):
            row = row if len(row) > 1 else row[0].split("\t")
            mapping[row[0].strip()] = int(row[1])
        return mapping
    except (ValueError, IndexError, AttributeError) as exc:
        raise DataError(f"--class-map {path} is not JSON {{folder: index}} or 'folder,index' lines.") from exc


def _label_resolver(class_names, wnids, num_classes):
    """A label token (wnid, integer index, or class name) -> class index."""
    wnid_index = {w: i for i, w in enumerate(wnids)} if wnids else {}
    names = _name_lookup(class_names)

    def resolve(token: str, where: str) -> int:
        token = token.strip()
        if token in wnid_index:
            return wnid_index[token]
        if token.isdigit() and int(token) < num_classes:
            return int(token)
        if token.lower() in names:
            return names[token.lower()]
        raise DataError(f"{where}: label {token!r} is not a wnid, a class index below {num_classes}, or a "
                        "class name of the model.")

    return resolve


def _flat_with_labels(root, labels_file, class_names, wnids, num_classes) -> LabelledImages:
    resolve = _label_resolver(class_names, wnids, num_classes)
    rows = _read_rows(labels_file)
    kaggle = rows and [c.strip() for c in rows[0][:2]] == ["ImageId", "PredictionString"]
    if kaggle:
        rows = rows[1:]
    elif rows and not _is_label_row(rows[0], resolve):
        rows = rows[1:]  # a header line
    files = _files_by_stem(root)
    samples, notes = [], []
    missing = 0
    for line_no, row in enumerate(rows, start=2 if kaggle else 1):
        if len(row) < 2:
            raise DataError(f"{labels_file} line {line_no}: expected 'file,label'.")
        name, label = row[0].strip(), row[1].strip()
        if kaggle:
            label = label.split()[0] if label.split() else ""
        path = files.get(name) or files.get(os.path.splitext(name)[0])
        if path is None:
            missing += 1
            continue
        samples.append((path, resolve(label, f"{labels_file} line {line_no}")))
    if missing:
        notes.append(f"{missing} rows of {os.path.basename(labels_file)} name files not in {root}")
    labelled = {p for p, _ in samples}
    skipped = tuple(SkippedFile(p, "no label in the labels file") for p in sorted(set(files.values())) if p not in labelled)
    if not samples:
        raise DataError(f"None of the files named in {labels_file} are in {root}.")
    samples.sort()
    return LabelledImages(root, tuple(samples), "flat:kaggle" if kaggle else "flat:labels-file", {}, skipped,
                          tuple(notes))


def _is_label_row(row, resolve) -> bool:
    try:
        resolve(row[1] if len(row) > 1 else "", "header")
        return True
    except DataError:
        return False


def _read_rows(path: str) -> list[list[str]]:
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            text = handle.read()
    except OSError as exc:
        raise DataError(f"Cannot read labels file {path} ({exc.strerror}).") from exc
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    delimiter = "\t" if lines and "\t" in lines[0] else ","
    return [row for row in csv.reader(lines, delimiter=delimiter)]


def _files_by_stem(root: str) -> dict[str, str]:
    """Image files of a flat folder by full name and by stem (labels files name either)."""
    files = {}
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.is_file() and not entry.name.startswith(".") and is_image_name(entry.name):
            files[entry.name] = entry.path
            files.setdefault(os.path.splitext(entry.name)[0], entry.path)
    return files


def _devkit(root, devkit, truth_file, wnids) -> LabelledImages:
    if wnids is None:
        raise DataError("The ImageNet devkit layout needs a 1000-class ImageNet model (its classes have wnids).")
    truth = truth_file or _find(devkit, DEVKIT_TRUTH)
    meta = _find(devkit or os.path.dirname(os.path.abspath(truth)), "meta.mat")
    ids = _devkit_ids(truth)
    id_to_wnid = _read_meta_mat(meta)
    wnid_index = {w: i for i, w in enumerate(wnids)}
    files = _files_by_stem(root)
    samples, missing = [], 0
    for number, ilsvrc_id in enumerate(ids, start=1):
        path = files.get(f"ILSVRC2012_val_{number:08d}")
        if path is None:
            missing += 1
            continue
        wnid = id_to_wnid.get(ilsvrc_id)
        if wnid not in wnid_index:
            raise DataError(f"{truth} line {number}: ILSVRC2012_ID {ilsvrc_id} is not a class in {meta}.")
        samples.append((path, wnid_index[wnid]))
    if not samples:
        raise DataError(f"No ILSVRC2012_val_*.JPEG files of {truth} are in {root}.")
    notes = (f"{missing} of {len(ids)} ground-truth lines have no image in {root}",) if missing else ()
    mapping = {str(i): wnid_index[w] for i, w in sorted(id_to_wnid.items()) if w in wnid_index}
    return LabelledImages(root, tuple(samples), "devkit", mapping, (), notes)


def _find(folder: str | None, name: str) -> str:
    if folder is None:
        raise UsageError(f"The devkit layout needs --devkit DIR (holding {name}).")
    for candidate in (os.path.join(folder, name), os.path.join(folder, "data", name)):
        if os.path.isfile(candidate):
            return candidate
    raise DataError(f"{name} not found in {folder} or {os.path.join(folder, 'data')}.")


def _devkit_ids(path: str) -> list[int]:
    try:
        with open(path, encoding="ascii") as handle:
            return [int(line) for line in handle if line.strip()]
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is not a list of ILSVRC2012_IDs, one per line.") from exc


def _read_meta_mat(path: str) -> dict[int, str]:
    """ILSVRC2012_ID -> wnid for the 1000 leaf synsets of the devkit's meta.mat (num_children == 0)."""
    try:
        from scipy.io import loadmat
    except ImportError as exc:
        raise DataError("Reading the devkit's meta.mat needs scipy: pip install scipy") from exc
    try:
        synsets = loadmat(path, squeeze_me=True)["synsets"]
        mapping = {}
        for row in synsets:
            if int(row["num_children"]) == 0:
                mapping[int(row["ILSVRC2012_ID"])] = str(row["WNID"])
    except Exception as exc:  # scipy raises many kinds for a file that is not a devkit meta.mat
        raise DataError(f"{path} is not an ImageNet devkit meta.mat ({type(exc).__name__}).") from exc
    return mapping
