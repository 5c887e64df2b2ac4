"""Effective robustness (Taori et al. 2020, "Measuring Robustness to Natural Distribution Shifts in Image
Classification", NeurIPS): a model's top-1 on a shifted test set minus what the linear fit over a testbed of
standard ImageNet models predicts from its top-1 on val, the fit made on logit-scaled accuracies.

The testbed is package data (`nnprobe/data/variant_testbed.tsv`: the standard-training models' top-1s from
modestyachts/imagenet-testbed's robustness_top1s.csv, commit named in the file). The fit follows the paper's
plotting code: `scipy.stats.linregress` of logit(y) on logit(x), x and y in [0, 1], over the standard models
whose x is at least the paper's floor for that shift (55% of val; 75% of val on ImageNet-A's / -R's classes);
ImageNet-A's plot also leaves out resnet50. With one model, the gap to this fit is its effective robustness.
Torch-free (numpy).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from importlib import resources

TESTBED = "variant_testbed.tsv"
CITATION = "Taori et al. 2020 (NeurIPS), modestyachts/imagenet-testbed"
EXCLUDED = {"imagenet-a": ("resnet50",)}  # paper_imagenet_a.py: show_in_plot leaves resnet50 out


@dataclass(frozen=True)
class Fit:
    """logit(y) = slope * logit(x) + intercept over `models` standard models of the testbed."""

    x: str  # the testbed column of x ("val", "val-on-imagenet-a-classes")
    y: str  # the testbed column of the shift ("imagenet-a")
    slope: float
    intercept: float
    models: int
    floor: float  # x floor of the models fitted (fraction)

    def predict(self, x: float) -> float:
        """The top-1 on the shift the fit expects at top-1 `x` on val (fractions)."""
        clipped = min(max(x, 1e-6), 1 - 1e-6)
        z = self.slope * math.log(clipped / (1 - clipped)) + self.intercept
        return 1 / (1 + math.exp(-z))

    def words(self) -> str:
        return (f"logit(y) = {self.slope:.4f} logit(x) {'+' if self.intercept >= 0 else '-'} "
                f"{abs(self.intercept):.4f} over {self.models} standard models ({CITATION})")


@functools.lru_cache(maxsize=1)
def testbed() -> tuple[tuple[str, ...], tuple[tuple[str, dict[str, float]], ...]]:
    """(columns, rows): each row a model name and its top-1s in percent (columns it was not measured on absent)."""
    text = resources.files("nnprobe.data").joinpath(TESTBED).read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    header = lines[0].split("\t")
    rows = []
    for line in lines[1:]:
        cells = line.split("\t")
        rows.append((cells[0], {c: float(v) for c, v in zip(header[1:], cells[1:]) if v}))
    return tuple(header[1:]), tuple(rows)


def points(x: str, y: str, floor: float, variant: str = "") -> list[tuple[float, float]]:
    """(x, y) top-1 fractions of the testbed's standard models fitted for the shift."""
    leave_out = EXCLUDED.get(variant, ())
    return [(row[x] / 100, row[y] / 100) for name, row in testbed()[1]
            if x in row and y in row and row[x] >= floor and name.lower() not in leave_out]


@functools.lru_cache(maxsize=None)
def fit(x: str, y: str, floor: float, variant: str = "") -> Fit:
    """The paper's least-squares line in logit space (numpy's polyfit of degree 1 is the same least squares as
    scipy.stats.linregress, which the tests compare it with)."""
    import numpy as np

    pairs = np.array(points(x, y, floor, variant))
    logit = np.log(pairs / (1 - pairs))
    slope, intercept = np.polyfit(logit[:, 0], logit[:, 1], 1)
    return Fit(x, y, float(slope), float(intercept), len(pairs), floor / 100)
