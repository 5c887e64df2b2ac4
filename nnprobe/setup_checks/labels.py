"""Label remaps, measured on the eval's own answers: labels outside the model's classes, numeric folders
sorted as text, and labels permuted against the model's classes (the best one-to-one remap, by the
Hungarian algorithm, fitted on half the images and judged on the other half). No torch."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from nnprobe.setup_checks.verdicts import MIN_GAIN, SetupFinding, severity, verdict

PAIRS_SHOWN = 5


def max_weight_assignment(weights) -> np.ndarray:
    """The column of each row (all distinct) maximising the total weight of an n x m matrix, n <= m: the
    Hungarian algorithm with potentials (O(n^2 m), the inner loop over columns in numpy)."""
    cost = -np.asarray(weights, dtype=np.float64)
    n, m = cost.shape
    if n > m:
        raise ValueError(f"an assignment needs at least as many columns as rows ({n} x {m})")
    u, v = np.zeros(n + 1), np.zeros(m + 1)
    owner, way = np.zeros(m + 1, dtype=np.int64), np.zeros(m + 1, dtype=np.int64)  # owner[j]: row of column j
    for row in range(1, n + 1):
        owner[0], j0 = row, 0
        minv, used = np.full(m + 1, np.inf), np.zeros(m + 1, dtype=bool)
        while owner[j0] != 0:
            used[j0] = True
            i0 = owner[j0]
            reduced = cost[i0 - 1] - u[i0] - v[1:]
            better = ~used[1:] & (reduced < minv[1:])
            minv[1:][better], way[1:][better] = reduced[better], j0
            masked = np.where(used[1:], np.inf, minv[1:])
            j1 = int(np.argmin(masked)) + 1
            delta = masked[j1 - 1]
            done = np.flatnonzero(used)
            u[owner[done]] += delta
            v[done] -= delta
            minv[1:][~used[1:]] -= delta
            j0 = j1
        while j0:
            j1 = way[j0]
            owner[j0] = owner[j1]
            j0 = j1
    columns = np.empty(n, dtype=np.int64)
    for j in range(1, m + 1):
        if owner[j]:
            columns[owner[j] - 1] = j - 1
    return columns


def labels_outside(classifier, labels: np.ndarray) -> SetupFinding:
    low, high, k = int(labels.min()), int(labels.max()), classifier.num_classes
    return SetupFinding(
        "logits-classes-mismatch", "error",
        f"Labels run from {low} to {high} but the model's logits cover {k} classes (0..{k - 1}): the labels "
        "assume another head.",
        "Load the model with its real head (--num-classes, the right weights) or map the folders to its classes "
        "with --class-map FILE.", {"min_label": low, "max_label": high, "num_classes": k})


def label_finding(classifier, images, labels: np.ndarray,
                   predicted: np.ndarray) -> tuple[SetupFinding | None, dict[int, int] | None]:
    """The label remap that explains the answers, with its table (old class -> new): numeric folders in the
    other order if that explains them, else the best one-to-one remap if it does clearly better."""
    if labels.size == 0:
        return None, None
    numeric = _numeric_finding(classifier, images, labels, predicted)
    permutation = _permutation_finding(classifier, images, labels, predicted)
    if permutation[0] is not None and (numeric[0] is None or permutation[0].evidence["top1_after"]
                                       > numeric[0].evidence["top1_after"] + MIN_GAIN):
        return permutation
    return numeric


def _folders_of(images) -> dict[str, int] | None:
    """folder -> class index of a class-folder layout (None for flat and devkit layouts)."""
    return dict(images.mapping) if images.layout.startswith("folders") and images.mapping else None


def _translate(old: Mapping[str, int], new: Mapping[str, int]) -> dict[int, int] | None:
    """Old class index -> new one, through the folders; None when two folders of one old index disagree."""
    table: dict[int, int] = {}
    for folder, index in old.items():
        if table.setdefault(index, new[folder]) != new[folder]:
            return None
    return table


def relabelled(labels: np.ndarray, table: Mapping[int, int]) -> np.ndarray:
    lookup = np.arange(max(int(labels.max()), max(table, default=0)) + 1, dtype=np.int64)
    for old, new in table.items():
        lookup[old] = new
    return lookup[labels]


def _class_map_csv(mapping: Mapping[str, int]) -> str:
    """`folder,index` lines, as `--class-map FILE` reads them (csv quoting for odd folder names)."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for folder in sorted(mapping):
        writer.writerow([folder, mapping[folder]])
    return out.getvalue()


def _numeric_finding(classifier, images, labels, predicted) -> tuple[SetupFinding | None, dict[int, int] | None]:
    """Integer folder names whose text order differs from their numeric order: the other order's labels
    (ImageFolder's `class_to_idx` is text order; nnprobe's own is the integer) measured on the answers."""
    folders = _folders_of(images)
    if not folders or not all(f.isascii() and f.isdigit() for f in folders):
        return None, None
    text = {f: i for i, f in enumerate(sorted(folders))}
    numeric = {f: int(f) for f in folders}
    if text == numeric:
        return None, None
    best = None
    for candidate, order in ((text, "text"), (numeric, "numeric")):
        table = _translate(folders, candidate)
        if candidate == folders or max(candidate.values()) >= classifier.num_classes or table is None:
            continue
        explained, numbers = verdict(predicted == labels, predicted == relabelled(labels, table),
                                      chance=1 / len(set(labels.tolist())))
        if explained and (best is None or numbers["top1_after"] > best[1]["top1_after"]):
            best = (candidate, numbers, order, table)
    if best is None:
        return None, None
    candidate, numbers, order, table = best
    sorted_as = "as text ('10' before '2', as torchvision's ImageFolder numbers them)" if order == "text" \
        else "as numbers"
    return SetupFinding(
        "numeric-folders-sorted-as-text", severity(numbers),
        f"The model's classes follow the numeric folder names sorted {sorted_as}: labelling the "
        f"{len(folders)} folders that way raises top-1 from {numbers['top1_before']:.1%} to "
        f"{numbers['top1_after']:.1%} (p = {numbers['p_value']:.2g}).",
        "Pass --class-map FILE with the 'folder,index' lines of evidence.class_map_csv.",
        {**numbers, "order": order, "class_map_csv": _class_map_csv(candidate)}), table


def _fitted_remap(rows: list[int], labels: np.ndarray, predicted: np.ndarray) -> tuple[dict[int, int], np.ndarray,
                                                                                        list[int]]:
    """The one-to-one remap of the label classes `rows` onto classes that maximises the images whose
    answer equals their remapped label (ties keep a class where it is), the label x answer count matrix,
    and its columns."""
    columns = sorted(set(rows) | set(predicted.tolist()))
    counts = np.zeros((len(rows), len(columns)), dtype=np.int64)
    np.add.at(counts, (np.searchsorted(rows, labels), np.searchsorted(columns, predicted)), 1)
    keep = np.asarray(rows)[:, None] == np.asarray(columns)[None, :]
    # integer weights, lexicographic: one more image always beats keeping every class in place
    chosen = max_weight_assignment(counts * (len(rows) + 1) + keep)
    return {r: columns[c] for r, c in zip(rows, chosen.tolist())}, counts, columns


def _permutation_finding(classifier, images, labels,
                         predicted) -> tuple[SetupFinding | None, dict[int, int] | None]:
    """Labels permuted against the model's classes: the best one-to-one remap (fitted on the even-numbered
    images, judged on the odd ones so the fit cannot flatter itself), reported with its full-data top-1."""
    folders = _folders_of(images)
    rows = sorted(set(labels.tolist()) | set(folders.values() if folders else ()))
    if labels.size < 2:
        return None, None
    held, _, _ = _fitted_remap(rows, labels[0::2], predicted[0::2])  # first: it decides, on half the data
    odd_labels, odd_predicted = labels[1::2], predicted[1::2]
    explained, held_out = verdict(odd_predicted == odd_labels, odd_predicted == relabelled(odd_labels, held),
                                   chance=1 / len(rows))
    if not explained:
        return None, None
    remap, counts, columns = _fitted_remap(rows, labels, predicted)
    if all(remap[r] == r for r in rows):
        return None, None
    before, after = predicted == labels, predicted == relabelled(labels, remap)
    numbers = {"images": int(labels.size), "top1_before": float(before.mean()), "top1_after": float(after.mean()),
               "gain": float(after.mean() - before.mean()), "p_value": held_out["p_value"],
               "held_out_images": held_out["images"], "held_out_top1_before": held_out["top1_before"],
               "held_out_top1_after": held_out["top1_after"]}
    pairs = _wrong_pairs(classifier, folders, remap, counts, rows, columns)
    shown = "; ".join(p["text"] for p in pairs[:PAIRS_SHOWN])
    changed = sum(1 for r in rows if remap[r] != r)
    message = (f"The labels look permuted against the model's classes: a one-to-one remap of {changed} of the "
               f"{len(rows)} classes raises top-1 from {numbers['top1_before']:.1%} to {numbers['top1_after']:.1%} "
               f"({held_out['top1_before']:.1%} -> {held_out['top1_after']:.1%} on the half of the images it was "
               f"not fitted on, p = {held_out['p_value']:.2g}). First wrong pairs: {shown}.")
    evidence = {**numbers, "wrong_pairs": [{k: v for k, v in p.items() if k != "text"} for p in pairs]}
    if folders:
        new = {folder: remap.get(index, index) for folder, index in folders.items()}
        evidence["class_map_csv"] = _class_map_csv(new)
        fix = "Pass --class-map FILE with the 'folder,index' lines of evidence.class_map_csv."
    else:
        evidence["remap"] = {str(r): remap[r] for r in rows if remap[r] != r}
        fix = "Relabel the images as evidence.remap says (label -> the model's class index) in the labels file."
    return SetupFinding("class-permutation", severity(numbers), message, fix, evidence), remap


def _wrong_pairs(classifier, folders, remap, counts, rows, columns) -> list[dict[str, Any]]:
    """The classes the remap moves, most images first: folder, current and suggested index, counts."""
    names: dict[int, list[str]] = {}
    for folder, index in (folders or {}).items():
        names.setdefault(index, []).append(folder)
    pairs = []
    for i, r in enumerate(rows):
        if remap[r] == r:
            continue
        total, answered = int(counts[i].sum()), int(counts[i, columns.index(remap[r])])
        folder = ",".join(sorted(names.get(r, []))) or None
        where = f"folder {folder!r}" if folder else f"label {r}"
        text = (f"{where} is labelled {r} ({classifier.label(r)}) but answered {remap[r]} "
                f"({classifier.label(remap[r])}) for {answered} of its {total} images")
        pairs.append({"folder": folder, "label": r, "suggested": remap[r], "images": total, "answered": answered,
                      "text": text})
    pairs.sort(key=lambda p: (-p["answered"], p["label"]))
    return pairs
