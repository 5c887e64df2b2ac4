"""Why is my accuracy near chance? The usual setup mistakes, each tested by a real measurement.

When eval's top-1 is near chance or its answers pile onto one class, the cause is most often the setup,
not the model (timm #1081, vision #222, torchattacks #11...): folders mapped to the wrong indices,
numeric folder names sorted as text, the model normalising inside while nnprobe normalised too, a model
that wants 0-255 or BGR pixels, a model stuck in training mode, logits over other classes than the data's.
Each hypothesis is measured (the label remaps on the eval's own answers, the input conventions on an
evenly spaced subset of at most `subset` images) and reported only when it explains the result: top-1
rises by at least MIN_GAIN and an exact one-sided McNemar test on the images that changed gives p < ALPHA.

Core layer: imports torch and numpy, never the report layer.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from nnprobe.errors import UsageError
from nnprobe.results import to_jsonable

MIN_GAIN = 0.05  # 5 points of top-1: on 256 images that is 13 images changing for the better
ALPHA = 0.01  # one-sided exact McNemar p-value below which a gain is not noise
OUTPUT_TOLERANCE = 1e-3  # relative logit difference above which two forwards of the same images differ
INV_255 = repr(1 / 255)  # the --std that multiplies [0, 1] pixels by 255 (float64-exact string)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
PAIRS_SHOWN = 5
SEVERITIES = ("error", "warning", "info")


@dataclass(frozen=True)
class SetupFinding:
    """One setup mistake that the measurements say explains the low accuracy, and how to fix it."""

    id: str
    severity: str  # error | warning | info
    message: str  # what was measured, with "top-1 x% -> y%"
    fix: str  # the flag or change that applies the fix
    evidence: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)


def needs_explaining(top1: float, num_classes_present: int, most_predicted_share: float, *,
                     largest_class_share: float | None = None) -> bool:
    """Whether eval's result looks like a setup mistake: top-1 below max(2/K, 0.1), capped at 0.5, for K
    classes present (twice chance for small K; for large K chance is tiny and a mistaken setup keeps a few
    percent, hence the 10% floor; the cap keeps 2-3 class sets from always triggering), or one class
    taking over half of the answers while the data has >= 2 classes (and, when known, clearly more than
    the largest class's share of the images)."""
    k = max(1, int(num_classes_present))
    if math.isfinite(top1) and top1 < min(0.5, max(2 / k, 0.1)):
        return True
    if k < 2 or not math.isfinite(most_predicted_share):
        return False
    floor = 0.5 if largest_class_share is None else max(0.5, largest_class_share + 0.1)
    return most_predicted_share > floor


def explain_low_accuracy(classifier, images, *, labels, predicted, device="cpu", subset: int = 256,
                         batch_size: int = 64, restrict_to_present: bool = False) -> tuple[SetupFinding, ...]:
    """The setup mistakes that explain eval's answers (`labels`/`predicted`: each decoded image's label and
    top-1 class, as int arrays in data order), most explanatory first; () when none does."""
    from nnprobe.device import resolve_device

    labels, predicted = _arrays(labels, predicted)
    if isinstance(subset, bool) or not isinstance(subset, int) or subset <= 0:
        raise UsageError(f"subset must be a positive number of images, got {subset!r}.")
    if labels.size and (int(labels.max()) >= classifier.num_classes or int(labels.min()) < 0):
        return (_labels_outside(classifier, labels),)  # no forward can be judged against such labels
    label, table = _label_finding(classifier, images, labels, predicted)
    probe = _Probe.decoded(classifier, images, subset, batch_size, resolve_device(device), restrict_to_present,
                           sorted(set(labels.tolist())))
    findings = probe.findings(predicted, label, table) if probe is not None else [label] if label else []
    return tuple(sorted(findings, key=lambda f: (SEVERITIES.index(f.severity), -f.evidence.get("gain", 0.0))))


def _arrays(labels, predicted) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    predicted = np.asarray(predicted, dtype=np.int64).reshape(-1)
    if labels.shape != predicted.shape:
        raise UsageError(f"labels and predicted must have one entry per image ({len(labels)} vs {len(predicted)}).")
    return labels, predicted


# ---- statistics and the assignment -------------------------------------------------------------------------

def mcnemar_greater(before: np.ndarray, after: np.ndarray) -> float:
    """Exact one-sided McNemar p-value that `after` (bool per image) is right more often than `before`:
    P(X >= b) for X ~ Binomial(b + c, 1/2), b = images wrong->right, c = right->wrong."""
    b = int(np.count_nonzero(~before & after))
    c = int(np.count_nonzero(before & ~after))
    n = b + c
    if b == 0:
        return 1.0
    logs = [math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) - n * math.log(2) for k in range(b, n + 1)]
    top = max(logs)
    return min(1.0, math.exp(top) * sum(math.exp(v - top) for v in logs))


def _verdict(before: np.ndarray, after: np.ndarray, chance: float = 0.0) -> tuple[bool, dict[str, Any]]:
    """Whether `after` (right or wrong per image) explains the result: top-1 up by at least MIN_GAIN, also
    above `chance` by MIN_GAIN (a disturbed model scores above a permuted 0% by luck), and p < ALPHA."""
    x, y = float(before.mean()), float(after.mean())
    p = mcnemar_greater(before, after)
    numbers = {"images": int(before.size), "top1_before": x, "top1_after": y, "gain": y - x, "p_value": p}
    return (y - x >= MIN_GAIN and y - chance >= MIN_GAIN and p < ALPHA), numbers


def _severity(numbers: Mapping[str, float]) -> str:
    return "error" if numbers["gain"] >= 0.2 or numbers["top1_after"] >= 2 * numbers["top1_before"] else "warning"


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


# ---- label remaps, measured on the eval's own answers ------------------------------------------------------

def _labels_outside(classifier, labels: np.ndarray) -> SetupFinding:
    low, high, k = int(labels.min()), int(labels.max()), classifier.num_classes
    return SetupFinding(
        "logits-classes-mismatch", "error",
        f"Labels run from {low} to {high} but the model's logits cover {k} classes (0..{k - 1}): the labels "
        "assume another head.",
        "Load the model with its real head (--num-classes, the right weights) or map the folders to its classes "
        "with --class-map FILE.", {"min_label": low, "max_label": high, "num_classes": k})


def _label_finding(classifier, images, labels: np.ndarray,
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


def _relabelled(labels: np.ndarray, table: Mapping[int, int]) -> np.ndarray:
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
        explained, numbers = _verdict(predicted == labels, predicted == _relabelled(labels, table),
                                      chance=1 / len(set(labels.tolist())))
        if explained and (best is None or numbers["top1_after"] > best[1]["top1_after"]):
            best = (candidate, numbers, order, table)
    if best is None:
        return None, None
    candidate, numbers, order, table = best
    sorted_as = "as text ('10' before '2', as torchvision's ImageFolder numbers them)" if order == "text" \
        else "as numbers"
    return SetupFinding(
        "numeric-folders-sorted-as-text", _severity(numbers),
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
    explained, held_out = _verdict(odd_predicted == odd_labels, odd_predicted == _relabelled(odd_labels, held),
                                   chance=1 / len(rows))
    if not explained:
        return None, None
    remap, counts, columns = _fitted_remap(rows, labels, predicted)
    if all(remap[r] == r for r in rows):
        return None, None
    before, after = predicted == labels, predicted == _relabelled(labels, remap)
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
    return SetupFinding("class-permutation", _severity(numbers), message, fix, evidence), remap


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


# ---- input conventions and the model's mode, measured on a subset -------------------------------------------

@dataclass(frozen=True)
class _Variant:
    id: str
    claim: str  # what the finding says the model expects
    how: str  # how the alternative input was made
    forward: Callable[[torch.Tensor], torch.Tensor]
    fix: str
    restrict: bool = False  # argmax over the classes present only
    evidence: dict = field(default_factory=dict)


class _Probe:
    """An evenly spaced subset of the images, decoded once (uint8), and forwards of it under alternatives."""

    def __init__(self, classifier, pixels: torch.Tensor, labels: torch.Tensor, batch_size: int,
                 dev: torch.device, restrict: bool, present: list[int]) -> None:
        self.classifier, self.pixels, self.labels = classifier, pixels, labels.numpy()
        self.batch_size, self.dev, self.restrict = batch_size, dev, restrict
        classes = sorted(set(present) | set(self.labels.tolist()))
        self.present = torch.tensor(classes, dtype=torch.int64, device=dev)
        self.saved: dict[str, torch.Tensor] = {}
        self.cache: dict[int, tuple] = {}  # id(forward) -> (forward, answers, answers over the present classes)

    @staticmethod
    def decoded(classifier, images, subset: int, batch_size: int, dev: torch.device, restrict: bool,
                present: list[int]) -> "_Probe | None":
        from nnprobe.data.loader import ImageSamples, make_loader

        n = len(images.samples)
        k = min(subset, n)
        positions = sorted({(i * n) // k for i in range(k)})
        loader = make_loader(ImageSamples(images.samples, classifier.preprocessing, positions,
                                          border=images.border), batch_size=batch_size, workers=0, pin_memory=False)
        batches = [batch for batch in loader if batch.labels.numel()]
        if not batches:
            return None
        return _Probe(classifier, torch.cat([b.pixels for b in batches]), torch.cat([b.labels for b in batches]),
                      batch_size, dev, restrict, present)

    def answers(self, forward, restrict: bool) -> np.ndarray:
        """Top-1 class of each subset image under `forward` (argmax over the present classes if `restrict`);
        one pass per forward gives both."""
        key = id(forward)
        if key not in self.cache:
            full, present = [], []
            try:
                with torch.inference_mode():
                    for start in range(0, len(self.pixels), self.batch_size):
                        x = self.pixels[start:start + self.batch_size].to(self.dev).float().div_(255)
                        logits = forward(x).float()
                        full.append(logits.argmax(1))
                        present.append(self.present[logits[:, self.present].argmax(1)])
            finally:
                self._restore()
            self.cache[key] = (forward, torch.cat(full).cpu().numpy(), torch.cat(present).cpu().numpy())
        return self.cache[key][2 if restrict else 1]

    def _restore(self) -> None:
        """Put back the buffers as found: a model in training mode moves its BatchNorm statistics on every
        forward, and one measurement must not change the next (nor the user's model)."""
        with torch.no_grad():
            for name, b in self.classifier.named_buffers():
                if name in self.saved:
                    b.copy_(self.saved[name])

    def findings(self, predicted: np.ndarray, label: SetupFinding | None,
                 table: Mapping[int, int] | None) -> list[SetupFinding]:
        """The label finding if it survives the input conventions, the input convention that explains the
        answers best (one: they are rival explanations of one symptom), and the training-mode check."""
        clf = self.classifier.to(self.dev).eval()
        self.saved = {name: b.detach().clone() for name, b in clf.named_buffers()}
        try:
            as_run = self.answers(clf, self.restrict)
            rivals = [(v, self.answers(v.forward, v.restrict)) for v in self._variants(predicted)]
            found = []
            truth = self.labels
            if label is not None:
                remapped = _relabelled(self.labels, table)
                best = self._best(rivals, as_run, self.labels)
                if best is None or np.mean(as_run == remapped) >= best.evidence["top1_after"]:
                    found.append(label)
                    truth = remapped  # judge the input conventions on the corrected labels
                else:
                    answers = dict((v.id, a) for v, a in rivals)[best.id]
                    if _verdict(answers == self.labels, answers == remapped)[0]:
                        found.append(label)
            found += [f for f in (self._best(rivals, as_run, truth), self._training_finding(as_run == truth, truth))
                      if f is not None]
        finally:
            self._restore()
        return found

    def _best(self, rivals, as_run: np.ndarray, truth: np.ndarray) -> SetupFinding | None:
        """The input convention whose answers explain the result best, with the others' top-1 as evidence."""
        tried = {v.id: float(np.mean(answers == truth)) for v, answers in rivals}
        verdicts = [(v, *_verdict(as_run == truth, answers == truth, chance=1 / len(self.present)))
                    for v, answers in rivals]
        explaining = [(v, numbers) for v, explained, numbers in verdicts if explained]
        if not explaining:
            return None
        variant, numbers = max(explaining, key=lambda item: item[1]["top1_after"])
        return SetupFinding(
            variant.id, _severity(numbers),
            f"{variant.claim}: on {numbers['images']} evenly spaced images, top-1 goes from "
            f"{numbers['top1_before']:.1%} as run to {numbers['top1_after']:.1%} {variant.how} "
            f"(p = {numbers['p_value']:.2g}).", variant.fix, {**numbers, **variant.evidence, "tried": tried})

    def _with(self, mean, std):
        from nnprobe.models.classifier import rebuild

        pre = dataclasses.replace(self.classifier.preprocessing, mean=tuple(mean), std=tuple(std))
        return rebuild(self.classifier, preprocessing=pre).to(self.dev).eval()

    def _variants(self, predicted: np.ndarray) -> list[_Variant]:
        """The input conventions to try: normalisation off (or on), 0-255 pixels, BGR, and the argmax over
        the classes present when the model has more outputs than the data has classes."""
        clf = self.classifier
        pre = clf.preprocessing
        found = []
        if tuple(pre.mean) != (0.0, 0.0, 0.0) or tuple(pre.std) != (1.0, 1.0, 1.0):
            found.append(_Variant(
                "double-normalisation", "The model seems to normalise its input itself and nnprobe normalised it "
                "again", "with nnprobe's normalisation off (mean 0, std 1)", self._with((0.0,) * 3, (1.0,) * 3),
                "--mean 0,0,0 --std 1,1,1 (API: mean=(0, 0, 0), std=(1, 1, 1))", self.restrict))
        else:
            found.append(_Variant(
                "normalisation-missing", "The model seems to expect normalised input and got raw [0, 1] pixels",
                "with ImageNet's mean and std", self._with(IMAGENET_MEAN, IMAGENET_STD),
                "--mean 0.485,0.456,0.406 --std 0.229,0.224,0.225 (or the mean/std the model was trained with)",
                self.restrict))
        found.append(_Variant(
            "expects-0-255", "The model seems to expect pixels in 0-255, not in [0, 1]",
            "with pixels scaled to 0-255 (mean 0, std 1/255)", self._with((0.0,) * 3, (float(INV_255),) * 3),
            f"--mean 0,0,0 --std {INV_255},{INV_255},{INV_255} (std 1/255 multiplies the [0, 1] pixels by 255)",
            self.restrict))
        found.append(_Variant(
            "expects-bgr", "The model seems to expect BGR channel order, not RGB",
            "with the normalised channels reversed (BGR)", lambda x: clf.net(((x - clf.mean) / clf.std).flip(1)),
            "nnprobe has no option to reverse the channels (a --bgr option would be needed): pass the network "
            "wrapped so that its forward reverses them first, net(x.flip(1))", self.restrict))
        k, present = clf.num_classes, self.present.cpu().numpy()
        if not self.restrict and k > len(present):
            outside = float(np.mean(~np.isin(predicted, present))) if predicted.size else 0.0
            found.append(_Variant(
                "logits-classes-mismatch", f"The model has {k} outputs but the data has {len(present)} classes, "
                f"and {outside:.1%} of its answers are classes absent from the data",
                f"with the argmax restricted to the {len(present)} classes present", clf,
                "If the data is a subset of the model's classes, pass --restrict-to-present; if the model should "
                f"have {len(present)} outputs, load it with its real head (--num-classes {len(present)}, the right "
                "weights).", True, {"num_classes": k, "classes_present": len(present),
                                    "answers_outside_present": outside}))
        return found

    def _training_finding(self, as_run: np.ndarray, truth: np.ndarray) -> SetupFinding | None:
        """A model that still behaves as in training after .eval(): two forwards of the same images differ
        (dropout), or an image's logits depend on the batch around it (BatchNorm on batch statistics)."""
        clf = self.classifier
        repeat, batch = self._instability(clf)
        if max(repeat, batch) <= OUTPUT_TOLERANCE:
            return None
        still = [name or type(clf).__name__ for name, m in clf.named_modules() if m.training]
        flags = {m: m.training for m in clf.modules()}
        try:
            for m in flags:
                m.training = False  # past any overridden train()/eval()
            stable = max(self._instability(clf)) <= OUTPUT_TOLERANCE
            cleared = self.answers(lambda x: clf(x), self.restrict) == truth if stable else None  # not cached
        finally:
            for m, flag in flags.items():
                m.training = flag
        evidence = {"images": int(as_run.size), "top1_before": float(as_run.mean()), "repeat_difference": repeat,
                    "batch_difference": batch, "modules_in_training_mode": still[:20]}
        how = ("two forwards of the same images differ" if repeat > OUTPUT_TOLERANCE
               else "an image's logits change with the other images in its batch")
        message = f"The model behaves as in training even after .eval(): {how}"
        if cleared is not None:
            _, numbers = _verdict(as_run, cleared)
            evidence.update(numbers)
            message += (f"; with every module's training flag cleared, top-1 on {numbers['images']} images goes "
                        f"from {numbers['top1_before']:.1%} to {numbers['top1_after']:.1%}")
        else:
            message += "; clearing every module's training flag does not stop it (a graph captured in train mode)"
        return SetupFinding(
            "training-mode", "error", message + ".",
            "Put the model in eval mode before exporting or scripting it (model.eval(), then torch.export / "
            "torch.jit.script), and remove code that forces training (an overridden train()/eval(), "
            "F.dropout(training=True), BatchNorm with track_running_stats=False).", evidence)

    def _instability(self, clf) -> tuple[float, float]:
        """(relative max difference between two forwards of one batch, between the first image alone and
        in its batch)."""
        x = self.pixels[:max(2, min(len(self.pixels), self.batch_size, 16))].to(self.dev).float().div_(255)
        try:
            with torch.inference_mode():
                first, second, alone = clf(x).float(), clf(x).float(), clf(x[:1]).float()
        finally:
            self._restore()
        scale = max(1.0, float(first.nan_to_num(0.0, 0.0, 0.0).abs().max()))

        def gap(a, b) -> float:  # non-finite logits are eval's error to report, not instability
            return float((a - b).nan_to_num(0.0, 0.0, 0.0).abs().max()) / scale

        return gap(first, second), gap(first[:1], alone) if len(x) > 1 else 0.0
