"""Why is my accuracy near chance? The usual setup mistakes, each tested by a real measurement.

When eval's top-1 is near chance or its answers pile onto one class, the cause is most often the setup,
not the model (timm #1081, vision #222, torchattacks #11...): folders mapped to the wrong indices,
numeric folder names sorted as text, the model normalising inside while nnprobe normalised too, a model
that wants 0-255 or BGR pixels, a model stuck in training mode, logits over other classes than the data's.
Each hypothesis is measured (the label remaps on the eval's own answers, the input conventions on an
evenly spaced subset of at most `subset` images) and reported only when it explains the result: top-1
rises by at least MIN_GAIN and an exact one-sided McNemar test on the images that changed gives p < ALPHA.

The statistics and the finding are in `verdicts.py`, the label remaps in `labels.py`, the input conventions
and the training-mode check in `inputs.py`. Core layer: imports torch and numpy, never the report layer.
"""
from __future__ import annotations

import math

import numpy as np

from nnprobe.errors import UsageError
from nnprobe.setup_checks.inputs import Probe
from nnprobe.setup_checks.labels import label_finding, labels_outside
from nnprobe.setup_checks.verdicts import SEVERITIES, SetupFinding

__all__ = ["SetupFinding", "explain_low_accuracy", "needs_explaining"]


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
        return (labels_outside(classifier, labels),)  # no forward can be judged against such labels
    label, table = label_finding(classifier, images, labels, predicted)
    probe = Probe.decoded(classifier, images, subset, batch_size, resolve_device(device), restrict_to_present,
                           sorted(set(labels.tolist())))
    findings = probe.findings(predicted, label, table) if probe is not None else [label] if label else []
    return tuple(sorted(findings, key=lambda f: (SEVERITIES.index(f.severity), -f.evidence.get("gain", 0.0))))


def _arrays(labels, predicted) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    predicted = np.asarray(predicted, dtype=np.int64).reshape(-1)
    if labels.shape != predicted.shape:
        raise UsageError(f"labels and predicted must have one entry per image ({len(labels)} vs {len(predicted)}).")
    return labels, predicted
