"""Several data sets in one run (`--data NAME=DIR` repeated): one row per data set with its variant, top-1 and
its interval under the variant's protocol, and effective robustness against val (Taori et al. 2020). The result
of the `variants` kind; torch-free."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from nnprobe.results import SCHEMA_VERSION, Gate, ModelInfo, RunInfo, TopKRates, to_jsonable


@dataclass(frozen=True)
class Effective:
    """Effective robustness of one row: its top-1 minus the testbed fit's prediction at val's top-1 (on the
    variant's classes, under its protocol, for A, R and ObjectNet)."""

    x_name: str  # what x is, in words: "val", "val on ImageNet-A's 200 classes"
    x_correct: int  # val's images right under the variant's protocol (of those in its classes)
    x_total: int
    predicted: float  # the fit's top-1 on the variant at x
    gap: float  # measured top-1 minus predicted: the effective robustness
    fit: str  # the fit in words, with its source


@dataclass(frozen=True)
class VariantRow(TopKRates):
    """One data set of the table."""

    name: str  # the NAME of --data NAME=DIR
    path: str
    variant: str  # the variant's title, or "—" for none
    how: str  # how it was told (given, detected from ...), or "" for none
    protocol: str  # the headline top-1's protocol in words
    classes: int  # classes the headline argmax is over
    correct_top1: int
    correct_top5: int
    total: int
    correct_top1_all: int  # under the argmax over all the model's classes
    skipped: int  # files not used (undecodable, not images)
    effective: Effective | None = None  # None: no published fit for this variant, or no val row
    real: bool = False  # the `real` row: top-1/top-5 against the ReaL labels, total the images they label
    note: str = ""  # why there is no effective robustness


@dataclass(frozen=True)
class VariantTable:
    """The rows, the model, and every row's gates (each gate's message names its row)."""

    rows: tuple[VariantRow, ...]
    model: ModelInfo
    run: RunInfo
    confidence_level: float = 0.95
    gates: tuple[Gate, ...] = ()
    notes: tuple[str, ...] = ()
    results: tuple[Any, ...] = field(default=(), repr=False, compare=False)  # each row's EvalResult (not JSON)

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    def interval(self, row: VariantRow) -> Any:
        from nnprobe.intervals import clopper_pearson

        return clopper_pearson(row.correct_top1, row.total, self.confidence_level)

    def to_dict(self) -> dict[str, Any]:
        body = to_jsonable(dataclasses.replace(self, results=()))
        body.pop("results")
        for row, out in zip(self.rows, body["rows"]):
            out["top1"], out["top5"] = to_jsonable(row.top1), to_jsonable(row.top5)
            out["top1_interval"] = to_jsonable(self.interval(row))
        return {"schema_version": SCHEMA_VERSION, "kind": "variants", **body}
