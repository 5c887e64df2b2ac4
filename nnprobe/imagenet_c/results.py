"""The corruption sweep's result: exact counts per (corruption, severity), derived accuracies, gate.

No torch here (the report layer imports these types only for type checking).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from nnprobe.imagenet_c import mce
from nnprobe.imagenet_c.verdicts import CorruptionBootstrap, ImageVerdicts
from nnprobe.results import SCHEMA_VERSION, Gate, Gated, ModelInfo, RunInfo, TopKRates, to_jsonable


@dataclass(frozen=True)
class CleanCounts(TopKRates):
    """Accuracy on the uncorrupted images of the same pass."""

    correct_top1: int
    correct_top5: int
    total: int


@dataclass(frozen=True)
class CorruptionPoint(TopKRates):
    """Accuracy on every image corrupted by one corruption at one severity."""

    correct_top1: int
    correct_top5: int
    total: int
    corruption: str
    family: str
    severity: int


@dataclass(frozen=True)
class PerturbationPoint:
    """ImageNet-P: one perturbation's sequences over every image, counted (`perturb.py`): top-1 flips and the
    top-5 distance summed over the compared frames."""

    perturbation: str
    flips: int
    comparisons: int
    top5_distance_sum: int

    @property
    def flip_probability(self) -> float:
        """FP: the share of compared frames whose top-1 differs from the frame compared with."""
        return self.flips / self.comparisons if self.comparisons else float("nan")

    @property
    def top5_distance(self) -> float:
        """T5D: the mean top-5 distance between compared frames."""
        return self.top5_distance_sum / self.comparisons if self.comparisons else float("nan")


@dataclass(frozen=True)
class PerturbationBaseline:
    """A reference model's ImageNet-P counts on the same images and sequences (`--perturbation-baseline`):
    each FP and T5D of this run is divided by its, as the paper divides by AlexNet's (`relative.py`)."""

    source: str  # the result file the counts came from ("<dict>" or the object's type from the API)
    model: str  # that run's model spec
    perturbations: tuple[PerturbationPoint, ...]  # in the order of the result's own


def _ratio(ours: float, theirs: float) -> float | None:
    return ours / theirs if theirs > 0 else None


@dataclass(frozen=True)
class CorruptionSettings:
    corruptions: tuple[str, ...]
    severities: tuple[int, ...]
    seed: int  # each sample's generator: f(seed, position in the data set, corruption, severity)
    reference: str = "imagecorruptions 1.1.2 (Hendrycks & Dietterich 2019 parameters)"
    jpeg_roundtrip: int | None = None  # JPEG quality each corrupted image was saved and decoded at (None: none)
    benchmarks: tuple[str, ...] = ("ImageNet-C",)  # the sets the corruptions come from (ImageNet-C, ImageNet-C-bar)
    bootstrap_resamples: int = 1000  # of the intervals on the means (resampled images, seeded by `seed`)
    x264_roundtrip: str | None = None  # the encoder settings each ImageNet-P sequence went through (None: in memory)


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values and not any(math.isnan(v) for v in values) else float("nan")


@dataclass(frozen=True)
class CorruptionResult(Gated):
    clean: CleanCounts
    points: tuple[CorruptionPoint, ...]  # corruptions in ImageNet-C order, severities ascending
    settings: CorruptionSettings
    model: ModelInfo
    data: dict[str, Any]
    run: RunInfo
    plot: str | None = None
    gates: tuple[Gate, ...] = ()
    perturbations: tuple[PerturbationPoint, ...] = ()  # ImageNet-P, when asked for (--perturbations)
    confidence_level: float = 0.95  # of the bootstrap intervals
    bootstrap: CorruptionBootstrap | None = None  # intervals of the mean top-1 and mCE (None: no per-image bits)
    verdicts: ImageVerdicts | None = None  # a --shard part's per-image bits, for merge (None in a whole run)
    perturbation_baseline: PerturbationBaseline | None = None  # --perturbation-baseline

    def _versus_baseline(self, measure: str) -> dict[str, float | None] | None:
        if self.perturbation_baseline is None or "shard" in self.data:  # a slice's ratios come with merge
            return None
        pairs = zip(self.perturbations, self.perturbation_baseline.perturbations)  # in the same order
        return {p.perturbation: _ratio(getattr(p, measure), getattr(q, measure)) for p, q in pairs}

    @property
    def flip_rate_vs_baseline(self) -> dict[str, float | None] | None:
        """Each perturbation's FP over the baseline's (None where the baseline never flipped)."""
        return self._versus_baseline("flip_probability")

    @property
    def top5_distance_vs_baseline(self) -> dict[str, float | None] | None:
        return self._versus_baseline("top5_distance")

    @property
    def mfr_vs_baseline(self) -> float | None:
        """mFR with the baseline model in AlexNet's place: the FP ratios averaged over the perturbations run."""
        ratios = self.flip_rate_vs_baseline
        return None if ratios is None or None in ratios.values() else _mean(ratios.values())

    @property
    def mt5d_vs_baseline(self) -> float | None:
        ratios = self.top5_distance_vs_baseline
        return None if ratios is None or None in ratios.values() else _mean(ratios.values())

    def _versus_alexnet(self, measure: str, alexnet: dict[str, float]) -> dict[str, float] | None:
        if self.model.num_classes != mce.IMAGENET_CLASSES or not self.perturbations:
            return None
        return mce.over_alexnet({p.perturbation: getattr(p, measure) for p in self.perturbations}, alexnet)

    @property
    def flip_rate_vs_alexnet(self) -> dict[str, float] | None:
        """ImageNet-P's flip rate FR per perturbation: FP over AlexNet's (`mce.py`); None unless 1000 classes."""
        return self._versus_alexnet("flip_probability", mce.ALEXNET_FLIP_PROBABILITY)

    @property
    def top5_distance_vs_alexnet(self) -> dict[str, float] | None:
        """ImageNet-P's T5D per perturbation: the top-5 distance over AlexNet's; None unless 1000 classes."""
        return self._versus_alexnet("top5_distance", mce.ALEXNET_TOP5_DISTANCE)

    @property
    def mfr(self) -> float | None:
        """The paper's mFR (AlexNet = 1.0): FR averaged over the 10 test perturbations; None unless all 10 ran."""
        rates = self.flip_rate_vs_alexnet
        return None if rates is None else mce.mean_over_all(rates, mce.IMAGENET_P_TEST)

    @property
    def mt5d(self) -> float | None:
        rates = self.top5_distance_vs_alexnet
        return None if rates is None else mce.mean_over_all(rates, mce.IMAGENET_P_TEST)

    @property
    def mean_flip_probability(self) -> float | None:
        """FP averaged over the perturbations run (None when none ran), unnormalised: not mFR."""
        return _mean(p.flip_probability for p in self.perturbations) if self.perturbations else None

    @property
    def mean_top5_distance(self) -> float | None:
        return _mean(p.top5_distance for p in self.perturbations) if self.perturbations else None

    def top1(self, corruption: str, severity: int) -> float:
        return next(p.top1 for p in self.points if p.corruption == corruption and p.severity == severity)

    @property
    def per_corruption(self) -> dict[str, float]:
        """Top-1 averaged over the severities run, per corruption."""
        return {c: _mean(p.top1 for p in self.points if p.corruption == c) for c in self.settings.corruptions}

    @property
    def mean_corruption_top1(self) -> float:
        """Mean corruption accuracy: the per-corruption means averaged (1 - mCE's unnormalised error)."""
        return _mean(self.per_corruption.values())

    @property
    def relative_drop(self) -> float:
        """(clean top-1 - mean corruption top-1) / clean top-1."""
        clean = self.clean.top1
        return (clean - self.mean_corruption_top1) / clean if clean and clean == clean else float("nan")

    def _errors(self) -> dict[str, dict[int, float]] | None:
        if self.model.num_classes != mce.IMAGENET_CLASSES or not self.clean.total:
            return None
        errors: dict[str, dict[int, float]] = {}
        for p in self.points:
            errors.setdefault(p.corruption, {})[p.severity] = 1 - p.top1
        return errors

    @property
    def corruption_error(self) -> dict[str, float] | None:
        """ImageNet-C's CE per corruption (error over AlexNet's, `mce.py`); None unless 1000 classes."""
        errors = self._errors()
        return None if errors is None else mce.corruption_errors(errors, 1 - self.clean.top1)

    @property
    def relative_corruption_error(self) -> dict[str, float] | None:
        errors = self._errors()
        return None if errors is None else mce.corruption_errors(errors, 1 - self.clean.top1, relative=True)

    @property
    def mce(self) -> float | None:
        """The official mCE (AlexNet = 1.0); None unless all 15 corruptions ran on a 1000-class model."""
        ce = self.corruption_error
        return None if ce is None else mce.mean_over_all(ce)

    @property
    def relative_mce(self) -> float | None:
        ce = self.relative_corruption_error
        return None if ce is None else mce.mean_over_all(ce)

    def to_dict(self) -> dict[str, Any]:
        body = to_jsonable(self)
        body["clean"] = dict(body["clean"], top1=to_jsonable(self.clean.top1), top5=to_jsonable(self.clean.top5))
        body["points"] = [dict(to_jsonable(p), top1=to_jsonable(p.top1), top5=to_jsonable(p.top5))
                          for p in self.points]
        body["perturbations"] = [dict(to_jsonable(p), flip_probability=to_jsonable(p.flip_probability),
                                      top5_distance=to_jsonable(p.top5_distance)) for p in self.perturbations]
        return {"schema_version": SCHEMA_VERSION, "kind": "corruption", "passed": self.passed,
                "mean_corruption_top1": to_jsonable(self.mean_corruption_top1),
                "relative_drop": to_jsonable(self.relative_drop),
                "per_corruption_top1": to_jsonable(self.per_corruption), "mce": to_jsonable(self.mce),
                "relative_mce": to_jsonable(self.relative_mce),
                "corruption_error": to_jsonable(self.corruption_error),
                "relative_corruption_error": to_jsonable(self.relative_corruption_error),
                "mean_flip_probability": to_jsonable(self.mean_flip_probability),
                "mean_top5_distance": to_jsonable(self.mean_top5_distance),
                "flip_rate_vs_baseline": to_jsonable(self.flip_rate_vs_baseline),
                "top5_distance_vs_baseline": to_jsonable(self.top5_distance_vs_baseline),
                "mfr_vs_baseline": to_jsonable(self.mfr_vs_baseline),
                "mt5d_vs_baseline": to_jsonable(self.mt5d_vs_baseline),
                "flip_rate_vs_alexnet": to_jsonable(self.flip_rate_vs_alexnet),
                "top5_distance_vs_alexnet": to_jsonable(self.top5_distance_vs_alexnet),
                "mfr": to_jsonable(self.mfr), "mt5d": to_jsonable(self.mt5d), **body}


def corruption_gate(threshold: float, measured: float) -> Gate:
    """`--min-corruption-top1 F`: the mean corruption accuracy must be at least F."""
    passed = measured >= threshold
    return Gate("min-corruption-top1", threshold, measured, passed,
                f"mean corruption top-1 is {measured:.4f}, {'meets' if passed else 'below'} the required "
                f"{threshold:.4f}")
