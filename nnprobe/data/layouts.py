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
import dataclasses
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from nnprobe.data.decode import is_image_name
from nnprobe.data.files import read_text
from nnprobe.errors import DataError, UsageError
from nnprobe.results import SkippedFile

WNID_RE = re.compile(r"^n\d{8}$")
DEVKIT_TRUTH = "ILSVRC2012_validation_ground_truth.txt"
KAGGLE_SOLUTION = "LOC_val_solution.csv"
LABELS_MAX_BYTES = 256 * 2**20  # ImageNet's train labels are ~40 MiB; a larger "labels file" is a mistake
CLASS_MAP_MAX_BYTES = 16 * 2**20  # ~1M lines `folder,index`
MAX_INDEX_DIGITS = 18  # a class index longer than this is not one (and int() of 5000 digits raises)


@dataclass(frozen=True)
class LabelledImages:
    """Image paths with their class index in the model's output, and how that mapping was made."""

    root: str
    samples: tuple[tuple[str, int], ...]
    layout: str
    mapping: dict[str, int] = field(default_factory=dict)  # folder name / id -> class index
    skipped: tuple[SkippedFile, ...] = ()  # files found that are not images (by name)
    notes: tuple[str, ...] = ()  # what a careful user should know (fallbacks, unmatched names)
    border: int = 0  # pixels cut from each side of every image before the resize (ObjectNet's frame)
    variant: Any = None  # nnprobe.variants.labelling.Variant: the ImageNet variant and its protocol, if any

    @property
    def classes_present(self) -> tuple[int, ...]:
        return tuple(sorted({label for _, label in self.samples}))

    def limited(self, limit: int | None) -> "LabelledImages":
        """A deterministic subset of `limit` images spread evenly over the sorted list (every class
        folder contributes, unlike taking the first N)."""
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0):
            raise UsageError(f"--limit must be a positive number of images, got {limit!r}.")
        if limit is None or limit >= len(self.samples):
            return self
        n = len(self.samples)
        picked = tuple(self.samples[(i * n) // limit] for i in range(limit))
        return dataclasses.replace(self, samples=picked,
                                   notes=self.notes + (f"limited to {limit} of {n} images (evenly spaced)",))


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
    elif all(_is_index(d) for d in subdirs):
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
    found, duplicates, walk_notes = _walk_class_folders(root, subdirs)
    samples, skipped = [], []
    for path, folder in found:
        if is_image_name(path):
            samples.append((path, mapping[folder]))
        else:
            skipped.append(SkippedFile(path, "not an image file name"))
    if not samples:
        raise DataError(f"No image files found under {root}.")
    return LabelledImages(root, tuple(samples), layout, mapping, tuple(skipped + duplicates),
                          tuple(notes + walk_notes))


def _walk_class_folders(root: str, subdirs: Sequence[str]) -> tuple[list[tuple[str, str]], list[SkippedFile],
                                                                    list[str]]:
    """(path, class folder) of every file under the class folders, recursively (as ImageFolder), in
    ImageFolder's order (folders sorted; in each folder its files sorted, then its subfolders), hidden
    names ignored; plus the duplicates skipped and notes.

    Links are followed once: each real folder is read once, and each real file is listed once. Where a
    file or folder can be reached in several ways, the way through the fewest links wins (so a link in
    n01/ to the sibling class folder n02/ never relabels n02's images as n01), then the first in order.
    A linked folder that leads back into the data set (a loop, a sibling class, the root or a folder
    above it) is not followed; that is a note. A second way to the same file is a skipped file."""
    walk = _LinkSafeWalk(os.path.realpath(root))
    for index, folder in enumerate(subdirs):
        path = os.path.join(root, folder)
        walk.queue(path, folder, 1 if os.path.islink(path) else 0, (index,))
    walk.run()
    return walk.result()


class _LinkSafeWalk:
    """One walk of the class folders. Folders are read level by level of links (every folder reached
    through n links before any reached through n + 1), so the way with the fewest links claims each real
    folder first; a file reached again keeps the way with fewer links, then the earlier in order."""

    def __init__(self, root_real: str):
        self.root_real = root_real
        self.visited = {root_real}  # real folders already read
        self.files: dict[str, tuple[int, tuple, str, str]] = {}  # real path -> (links, order key, path, folder)
        self.duplicates: list[tuple[str, str]] = []  # (path, real path) reached again
        self.not_followed: list[str] = []
        self.unreadable: list[str] = []
        self.pending: dict[int, list[tuple[str, str, int, tuple]]] = {}  # links -> (path, folder, links, key)

    def queue(self, path: str, folder: str, links: int, key: tuple) -> None:
        """Read `path` (of class `folder`, reached through `links` links) once its link level comes."""
        self.pending.setdefault(links, []).append((path, folder, links, key))

    def run(self) -> None:
        """Read every queued folder, fewest links first; reading may queue linked folders one level on."""
        level = 0
        while self.pending:
            for path, folder, links, key in self.pending.pop(level, []):
                self._enter(path, folder, links, key)
            level += 1

    def _enter(self, path: str, folder: str, links: int, key: tuple) -> None:
        """Read the tree below `path` depth-first in order, unless a link leads to a folder already read
        or back into the data set (a loop, a sibling class, the root or above)."""
        real = os.path.realpath(path)
        if (links and real in self.visited) or _inside(self.root_real, real):
            self.not_followed.append(path)
            return
        self.visited.add(real)
        stack = [(path, key)]
        while stack:
            current, current_key = stack.pop()
            stack.extend(reversed(self._read_folder(current, current_key, folder, links)))

    def _read_folder(self, current: str, current_key: tuple, folder: str, links: int) -> list[tuple[str, tuple]]:
        """Record the files of one folder and queue its linked subfolders; returns its plain subfolders
        (path, order key) still to read. An unreadable folder is a note, not an error."""
        try:
            entries = sorted((e for e in os.scandir(current) if not e.name.startswith(".")),
                             key=lambda e: e.name)
        except OSError as exc:
            self.unreadable.append(f"{current} ({exc.strerror or exc})")
            return []
        subfolders = []
        for entry in entries:
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if not is_dir:
                self._add_file(entry.path, links + (1 if entry.is_symlink() else 0),
                               current_key + ((0, entry.name),), folder)
                continue
            sub_key = current_key + ((1, entry.name),)
            if entry.is_symlink():
                self.queue(entry.path, folder, links + 1, sub_key)
                continue
            sub_real = os.path.realpath(entry.path)
            if sub_real in self.visited:  # reached without a link: a bind mount or similar
                self.not_followed.append(entry.path)
                continue
            self.visited.add(sub_real)
            subfolders.append((entry.path, sub_key))
        return subfolders

    def _add_file(self, path: str, links: int, key: tuple, folder: str) -> None:
        """Keep one way to each real file: the one with fewer links, then the earlier; the other is a
        duplicate."""
        real = os.path.realpath(path)
        kept = self.files.get(real)
        if kept is None or (links, key) < (kept[0], kept[1]):
            if kept is not None:
                self.duplicates.append((kept[2], real))
            self.files[real] = (links, key, path, folder)
        else:
            self.duplicates.append((path, real))

    def result(self) -> tuple[list[tuple[str, str]], list[SkippedFile], list[str]]:
        """(path, class folder) in ImageFolder order, the duplicates as skipped files, and the notes."""
        ordered = sorted(self.files.values(), key=lambda item: item[1])
        found = [(path, folder) for _, _, path, folder in ordered]
        skipped = [SkippedFile(path, f"same file as {self.files[real][2]} (reached again through a link)")
                   for path, real in sorted(self.duplicates)]
        notes = []
        if self.not_followed:
            notes.append(f"{len(self.not_followed)} linked folder(s) not followed because they lead back into "
                         f"the data set (a link loop or a second way to a folder already read), e.g. "
                         f"{self.not_followed[0]}")
        if self.unreadable:
            notes.append(f"{len(self.unreadable)} folder(s) could not be read, e.g. {self.unreadable[0]}")
        return found, skipped, notes


def _inside(folder: str, maybe_parent: str) -> bool:
    """`folder` is `maybe_parent` or lies below it (both real paths)."""
    return folder == maybe_parent or folder.startswith(maybe_parent.rstrip(os.sep) + os.sep)


def _is_index(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= MAX_INDEX_DIGITS


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
    what = f"--class-map {path}"
    text = read_text(path, what, CLASS_MAP_MAX_BYTES)
    try:
        if text.lstrip().startswith("{"):
            return {str(k): _class_index(v) for k, v in json.loads(text).items()}
        mapping = {}
        for row in csv.reader(line for line in text.splitlines() if line.strip() and not line.startswith("#")):
            row = row if len(row) > 1 else row[0].split("\t")
            mapping[row[0].strip()] = _class_index(row[1])
        return mapping
    except RecursionError:
        raise DataError(f"{what} is nested too deeply to be a JSON {{folder: index}} map.") from None
    except (ValueError, IndexError, AttributeError, OverflowError, csv.Error) as exc:
        raise DataError(f"{what} is not JSON {{folder: index}} or 'folder,index' lines "
                        "(indices are whole numbers).") from exc


def _class_index(value) -> int:
    """A class index from a class map: a whole number (JSON number or digits), never a bool, a fraction
    or a number too long to be an index (ValueError otherwise)."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not a class index")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?[0-9]{1,%d}\s*" % MAX_INDEX_DIGITS, value):
        value = int(value)
    if not isinstance(value, int) or abs(value) >= 10**MAX_INDEX_DIGITS:
        raise ValueError(f"not a class index: {str(value)[:20]!r}")
    return value


def _label_resolver(class_names, wnids, num_classes):
    """A label token (wnid, integer index, or class name) -> class index."""
    wnid_index = {w: i for i, w in enumerate(wnids)} if wnids else {}
    names = _name_lookup(class_names)

    def resolve(token: str, where: str) -> int:
        token = token.strip()
        if token in wnid_index:
            return wnid_index[token]
        if _is_index(token) and int(token) < num_classes:
            return int(token)
        if token.lower() in names:
            return names[token.lower()]
        raise DataError(f"{where}: label {token[:40]!r} is not a wnid, a class index below {num_classes}, or a "
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
    text = read_text(path, f"labels file {path}", LABELS_MAX_BYTES)
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    delimiter = "\t" if lines and "\t" in lines[0] else ","
    try:
        return [row for row in csv.reader(lines, delimiter=delimiter)]
    except csv.Error as exc:
        raise DataError(f"labels file {path} is not CSV/TSV 'file,label' lines ({exc}).") from None


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
    text = read_text(path, path, LABELS_MAX_BYTES)
    try:
        return [_class_index(line) for line in text.splitlines() if line.strip()]
    except ValueError as exc:
        raise DataError(f"{path} is not a list of ILSVRC2012_IDs, one per line.") from exc


def _read_meta_mat(path: str) -> dict[int, str]:
    """ILSVRC2012_ID -> wnid for the 1000 leaf synsets of the devkit's meta.mat (num_children == 0)."""
    try:
        from scipy.io import loadmat
    except ImportError as exc:
        raise DataError("Reading the devkit's meta.mat needs scipy: pip install scipy") from exc
    from nnprobe.io import open_regular

    try:
        with open_regular(path) as handle:
            synsets = loadmat(handle, squeeze_me=True)["synsets"]
        mapping = {}
        for row in synsets:
            if int(row["num_children"]) == 0:
                mapping[int(row["ILSVRC2012_ID"])] = str(row["WNID"])
    except Exception as exc:  # scipy raises many kinds for a file that is not a devkit meta.mat
        raise DataError(f"{path} is not an ImageNet devkit meta.mat ({type(exc).__name__}).") from exc
    return mapping
