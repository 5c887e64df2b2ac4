"""Results of `fool` and `robust`: frozen dataclasses, raw counts, fractions in [0, 1], provenance.

Units: every `eps`, `linf` and `l2` is in [0, 1] pixel units (the same unit as the attack budget);
`*_255` fields repeat a value in grey levels of an 8-bit image for people. No torch here (the
`nnprobe.attacks` package imports it; the report layer imports these types only for type checking).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from nnprobe.results import SCHEMA_VERSION, Gate, Gated, ModelInfo, RunInfo, TopKRates, format_eps, to_jsonable


@dataclass(frozen=True)
class Prediction:
    index: int
    label: str
    confidence: float  # softmax probability


@dataclass(frozen=True)
class AttackSettings:
    attack: str
    norm: str  # linf | l2
    eps: tuple[float, ...]
    steps: int
    step_size: tuple[float, ...]  # one per eps (defaults are relative to eps)
    random_start: bool
    targeted: bool
    target_index: int | None  # the class a targeted attack aims at
    target_label: str | None
    early_stop: bool = False
    components: tuple[dict[str, Any], ...] = ()  # autoattack: each component attack run, in order, with its budget


@dataclass(frozen=True)
class RobustSettings(AttackSettings):
    """`robust`'s settings: the attack's, and with `--binarization-test` its inner points per sample."""
    binarization_inner_points: int | None = None  # None: the binarization test did not run


@dataclass(frozen=True)
class SearchTrial:
    """One budget tried by `fool --min-eps`: whether the 8-bit image at that budget fools the model."""

    eps: float
    fooled: bool  # the 8-bit image (the bytes the PNG holds) fools it
    fooled_before_rounding: bool  # the float attack output fooled it


@dataclass(frozen=True)
class MinEpsSearch:
    """`fool --min-eps`: the bracketing search over the budget (doubling, then bisection on the grid)."""

    min_eps: float | None  # the smallest budget on the grid whose 8-bit image fools; None: not up to the cap
    cap: float  # the largest budget the search may try
    grid: float  # the search's resolution: L∞ 1/255 (exact on the 8-bit grid), L2 its tolerance
    trials: tuple[SearchTrial, ...]  # in the order tried
    method: str = "bisection"  # fmn: from FMN's distance, checked on the grid; fmn+bisection: bisection finished it


@dataclass(frozen=True)
class FoolItem:
    """One (image, eps): what the written 8-bit PNG does to the model, re-read from disk."""

    image: str
    adversarial_image: str
    panel_image: str | None
    eps: float
    space: str  # image (photo's own resolution) | model (the cropped model input)
    width: int
    height: int
    original: tuple[Prediction, ...]  # top-5 on the original
    adversarial: tuple[Prediction, ...]  # top-5 on the written PNG, re-read
    success: bool  # the written PNG fools the model (untargeted: top-1 moved; targeted: top-1 is the target)
    success_before_rounding: bool  # the float attack output fooled it
    fools_eval_pipeline: bool | None  # the PNG also fools through PIL resize/crop as `nnprobe eval` reads it
    linf: float  # max |δ| of the 8-bit perturbation, pixel units
    l2: float  # ‖δ‖₂ of the 8-bit perturbation over all pixels and channels, pixel units
    steps: int
    seconds: float
    precision_check: dict[str, Any] | None = None  # bf16/fp16 runs: the fp32 verdict on the same PNG
    search: MinEpsSearch | None = None  # `--min-eps` runs: the search; `eps` is then its result (or the cap)

    @property
    def rounding_undid(self) -> bool:
        return self.success_before_rounding and not self.success

    @property
    def linf_255(self) -> float:
        return self.linf * 255


@dataclass(frozen=True)
class FoolResult(Gated):
    items: tuple[FoolItem, ...]
    settings: AttackSettings
    model: ModelInfo
    run: RunInfo
    out_dir: str
    gates: tuple[Gate, ...] = ()

    @property
    def fooled(self) -> int:
        return sum(item.success for item in self.items)

    def to_dict(self) -> dict[str, Any]:
        body = to_jsonable(self)
        body["items"] = [
            dict(to_jsonable(item), original_prediction=to_jsonable(item.original[0]),
                 adversarial_prediction=to_jsonable(item.adversarial[0]), linf_255=item.linf_255,
                 rounding_undid=item.rounding_undid, **_search_keys(item))
            for item in self.items
        ]
        for item in body["items"]:
            if item["search"] is None:  # a plain run's JSON is unchanged
                del item["search"]
        return {"schema_version": SCHEMA_VERSION, "kind": "fool", "fooled": self.fooled,
                "total": len(self.items), "passed": self.passed, **body}


def _search_keys(item: FoolItem) -> dict[str, Any]:
    """`--min-eps` items: `min_eps` (null when not fooled up to the cap) and `min_eps_255` at top level."""
    if item.search is None:
        return {}
    found = item.search.min_eps
    return {"min_eps": found, "min_eps_255": None if found is None else found * 255}


def fooled_gate(fooled: int, total: int) -> Gate:
    """`--fail-if-fooled`: passes only when no written image fools the model."""
    return Gate("fail-if-fooled", 0.0, float(fooled), fooled == 0,
                f"{fooled} of {total} adversarial images fool the model")


@dataclass(frozen=True)
class RobustPoint(TopKRates):
    """Robust accuracy at one budget, as exact counts over the whole data set."""

    eps: float
    correct_top1: int  # still right under attack (top-1)
    correct_top5: int
    total: int
    clean_correct: int  # right before the attack: the samples the attack success rate is about
    fooled: int  # of clean_correct, how many the attack moved off the true label
    mean_linf: float  # mean ‖δ‖∞ over attacked (initially correct) samples, pixel units
    mean_l2: float  # mean ‖δ‖₂ over attacked samples, pixel units
    gradient_passes: int  # the attack's own work count: APGD/PGD/FAB gradient passes, Square's queries
    fp32_correct_top1: int | None = None  # bf16/fp16 runs: the same adversarial images judged in fp32
    cost: int | None = None  # pass equivalents through the model, forward 1 and backward 2 per image (`cost.py`)

    @property
    def cost_per_image(self) -> float | None:
        """Pass equivalents per initially correct image (the images the attack works on); None when unknown."""
        return self.cost / self.clean_correct if self.cost is not None and self.clean_correct else None

    @property
    def attack_success_rate(self) -> float:
        return self.fooled / self.clean_correct if self.clean_correct else float("nan")


@dataclass(frozen=True)
class RobustFinding:
    """A sanity check of `robust` that fired (AutoAttack `checks.py` style): why the robust accuracy may be
    overstated, the evidence, and the sources' advice."""

    id: str  # stable, e.g. zero-gradients
    severity: str  # warning
    message: str
    hint: str
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MinNormPoint:
    """Robust accuracy at one budget as the minimum-norm distances say: right before the attack and no
    fooling point within eps (a distance d fools at every eps >= d)."""

    eps: float
    correct_top1: int
    total: int


@dataclass(frozen=True)
class MinNormDistribution:
    """`robust --min-norm`: each initially correct sample's smallest fooling distance (FMN), summarised.
    Distances are in the norm's units (L∞/L2/L1: pixel units; L0: changed values over pixels and channels);
    a quantile is None when more samples than it covers were never fooled (their distance is unbounded)."""

    attack: str  # fmn-linf, fmn-l2, fmn-l1, fmn-l0
    norm: str
    steps: int
    attacked: int  # initially correct samples (the others need no budget: distance 0)
    found: int  # of those, fooled within the run (a finite distance)
    still_improving: int  # best distance still shrinking over the last tenth of the steps (not converged)
    levels: tuple[float, ...]  # the quantile levels
    quantiles: tuple[float | None, ...]  # the distances at those levels, over the attacked samples
    median: float | None
    curve: tuple[MinNormPoint, ...]  # robust accuracy against eps derived from the distances
    gradient_passes: int


@dataclass(frozen=True)
class RobustResult(Gated):
    points: tuple[RobustPoint, ...]
    settings: RobustSettings
    model: ModelInfo
    data: dict[str, Any]
    run: RunInfo
    plot: str | None = None
    gates: tuple[Gate, ...] = ()
    per_sample: Any = None  # PerSampleFile: where `--save-predictions` wrote the rows, their sha256 and count
    samples: Any = field(default=None, repr=False, compare=False)  # RobustSamples: each image's verdict (not JSON)
    findings: tuple[RobustFinding, ...] = ()  # sanity checks that fired (`nnprobe.attacks.sanity`)
    comparison: Any = None  # Comparison with `--baseline` (its gates are among `gates`)
    median_min_eps: float | None = None  # median smallest fooling budget on the sweep's grid (None: above it)
    sanity: dict[str, Any] | None = None  # the sanity checks' raw counts (`Probe.counts`): `merge` sums them
    # over slices and re-derives the findings of the whole; not in the JSON when None
    confidence_level: float = 0.95  # of each point's robust top-1 interval (exact Clopper-Pearson, derived)
    min_norm: MinNormDistribution | None = None  # `--min-norm`: the distances' distribution (not in the JSON when None)

    def top1_intervals(self) -> list[Any]:
        """Each point's robust top-1 with its exact Clopper-Pearson interval, in `points` order: every image
        is attacked on its own (its own random start and steps), so the verdicts are independent draws and
        robust accuracy is a binomial proportion (one vectorised inversion for all budgets)."""
        from nnprobe.intervals import Interval, clopper_pearson_bounds

        lo, hi = clopper_pearson_bounds([p.correct_top1 for p in self.points], [p.total for p in self.points],
                                        self.confidence_level)
        return [Interval(p.top1, float(a), float(b), "clopper-pearson") for p, a, b in zip(self.points, lo, hi)]

    def to_dict(self) -> dict[str, Any]:
        body = to_jsonable(dataclasses.replace(self, samples=None, comparison=None))
        body.pop("samples")
        body["comparison"] = self.comparison.to_dict() if self.comparison is not None else None
        body["points"] = [dict(to_jsonable(p), top1=to_jsonable(p.top1), top5=to_jsonable(p.top5),
                               top1_interval=to_jsonable(iv), attack_success_rate=to_jsonable(p.attack_success_rate),
                               cost_per_image=to_jsonable(p.cost_per_image))
                          for p, iv in zip(self.points, self.top1_intervals())]
        for key in ("sanity", "min_norm"):
            if body[key] is None:
                del body[key]
        return {"schema_version": SCHEMA_VERSION, "kind": "robust", "passed": self.passed, **body}


def robust_gate(eps: float, threshold: float, point: RobustPoint) -> Gate:
    """`--min-robust-top1 EPS=FRACTION`: the robust top-1 at `eps` must be at least `threshold`."""
    passed = point.top1 >= threshold
    return Gate(f"min-robust-top1@{format_eps(eps)}", threshold, point.top1, passed,
                f"robust top-1 at eps {format_eps(eps)} is {point.top1:.4f} ({point.correct_top1}/{point.total}), "
                f"{'meets' if passed else 'below'} the required {threshold:.4f}")
