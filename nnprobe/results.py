"""Results are data: frozen dataclasses with raw integer counts, fractions in [0, 1] and provenance.

Every command returns one of these; `nnprobe.report` is the only place that formats them (tables, JUnit
cases). `to_dict` gives the JSON form (with `schema_version`), so JSON output is exactly the dataclass,
nothing more. This module imports neither torch nor the report layer: every layer may import it.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field
from collections.abc import Sequence
from typing import Any

from nnprobe.calibration import Calibration, ConfusedPair, worst_classes
from nnprobe.calibration_merge import CalibrationSums
from nnprobe.calibration_suite import CalibrationSuite
from nnprobe.errors import UsageError
from nnprobe.parity import Parity

SCHEMA_VERSION = 1


def to_jsonable(value: Any) -> Any:
    """Dataclasses, tuples and paths to plain JSON types; non-finite floats to None (strict JSON)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def from_jsonable(cls: type, data: dict[str, Any]) -> Any:
    """The dataclass `cls` back from its JSON form (`to_jsonable`): nested dataclasses and tuples rebuilt
    from the type hints, derived keys (`top1`, `kind`, ...) ignored, None back to NaN for plain floats.
    `nnprobe merge` renders merged JSON results with the same renderers as the commands this way."""
    hints = _field_hints(cls)
    return cls(**{name: _from_json(hint, data[name]) for name, hint in hints if name in data})


@functools.lru_cache(maxsize=None)
def _field_hints(cls: type) -> tuple[tuple[str, Any], ...]:
    """Each field's resolved type hint, once per class: resolving them per element cost about a second of a
    10,000-part merge."""
    import typing

    hints = typing.get_type_hints(cls)
    return tuple((f.name, hints[f.name]) for f in dataclasses.fields(cls))


def _from_json(hint: Any, value: Any) -> Any:
    import types
    import typing

    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is float:
        return float("nan") if value is None else float(value)
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return from_jsonable(hint, value)
    if origin is tuple and isinstance(value, list):
        element = args[0] if args else Any
        return tuple(_from_json(element, v) for v in value)
    return value


def format_eps(eps: float) -> str:
    """`2/255` when eps is a whole number of grey levels, else a short decimal (file names, reports)."""
    levels = eps * 255
    if abs(levels - round(levels)) < 1e-6:
        return "0" if round(levels) == 0 else f"{round(levels)}/255"
    return f"{eps:.6g}"


@dataclass(frozen=True)
class Gate:
    """A threshold the user asked for (`--min-top1 0.75`) and whether the measurement met it.

    `message` is the verdict in words, a field of the JSON report; it is built from the numbers by the
    constructors beside each result (`accuracy_gate`, `robust_gate`, `fooled_gate`), never by the core."""

    name: str
    threshold: float
    measured: float
    passed: bool
    message: str


def accuracy_gate(name: str, threshold: float, measured: float) -> Gate:
    """`min-top1` / `min-top5` of eval: the measured fraction must be at least the threshold."""
    passed = measured >= threshold
    verdict = "meets" if passed else "is below"
    return Gate(name, threshold, measured, passed,
                f"{name.split('-')[1]} {measured:.4f} {verdict} the required {threshold:.4f}")


def _check_fraction(option: str, threshold: float) -> float:
    value = float(threshold)
    if not 0.0 <= value <= 1.0:  # also refuses NaN
        raise UsageError(f"{option} must be a fraction in [0, 1], got {threshold!r}.")
    return value


def ece_gate(threshold: float, result: Calibration) -> Gate:
    """`--max-ece`: passes when the ECE is at most the threshold (never when there is no ECE)."""
    limit = _check_fraction("--max-ece", threshold)
    passed = result.ece <= limit  # NaN compares False
    verdict = "is within" if passed else "exceeds"
    return Gate("max-ece", limit, result.ece, passed, f"ece {result.ece:.4f} {verdict} the allowed {limit:.4f}")


def class_gate(threshold: float, per_class: Sequence[PerClass]) -> Gate:
    """`--min-class-top1`: the worst class (with images) must reach the threshold; the message names it."""
    limit = _check_fraction("--min-class-top1", threshold)
    worst = worst_classes(per_class, 1)
    if not worst:
        return Gate("min-class-top1", limit, float("nan"), False, "no class has any images, so no worst class")
    pc = worst[0]
    passed = pc.top1 >= limit
    verdict = "meets" if passed else "is below"
    return Gate("min-class-top1", limit, pc.top1, passed,
                f"worst class {pc.name} (index {pc.index}) top-1 {pc.top1:.4f} ({pc.correct_top1}/{pc.total}) "
                f"{verdict} the required {limit:.4f}")


def parity_gates(parity: Parity, max_flips: int | None, max_logit_diff: float | None) -> tuple:
    """`max-flips` (changed top-1 answers) and `max-logit-diff`, as Gates."""
    gates = []
    if max_flips is not None:
        passed = parity.top1_changed <= max_flips
        first = f" (first: {parity.top1_changed_paths[0]})" if parity.top1_changed_paths else ""
        gates.append(Gate("max-flips", float(max_flips), float(parity.top1_changed), passed,
                          f"{parity.top1_changed} of {parity.images} top-1 answers differ from {parity.reference}"
                          f"{first}; {'within' if passed else 'more than'} the allowed {max_flips}"))
    if max_logit_diff is not None:
        passed = parity.max_logit_diff <= max_logit_diff  # NaN compares False
        gates.append(Gate("max-logit-diff", float(max_logit_diff), parity.max_logit_diff, passed,
                          f"largest logit difference {parity.max_logit_diff:.3g} (image {parity.max_logit_diff_path}, "
                          f"class {parity.max_logit_diff_class}) {'is within' if passed else 'exceeds'} "
                          f"the allowed {max_logit_diff:g}"))
    return tuple(gates)


def eval_gates(result: "EvalResult", *, min_top1: float | None = None, min_top5: float | None = None,
               max_ece: float | None = None, min_class_top1: float | None = None) -> tuple[Gate, ...]:
    """eval's gates over a whole data set (a single run, or `nnprobe merge`'s sum of slices), in flag order."""
    gates = [accuracy_gate(name, threshold, measured) for name, threshold, measured in
             (("min-top1", min_top1, result.top1), ("min-top5", min_top5, result.top5)) if threshold is not None]
    if max_ece is not None:
        gates.append(ece_gate(max_ece, result.calibration))
    if min_class_top1 is not None:
        gates.append(class_gate(min_class_top1, result.per_class))
    return tuple(gates)


@dataclass(frozen=True)
class SkippedFile:
    """An input that was not used, and why: skips are reported, never silent."""

    path: str
    reason: str


@dataclass(frozen=True)
class Preprocessing:
    """How a photo becomes the model's input: resize the short side, centre-crop, normalise.

    `resize_size` None means no resize (the crop alone, or the image as it is when crop is None too).
    Normalisation (mean/std) is applied inside the classifier, so attacks work in [0, 1] pixels.
    """

    resize_size: int | None = 256
    crop_size: int | None = 224
    interpolation: str = "bilinear"  # bilinear | bicubic | nearest
    antialias: bool = True
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    source: str = "default"  # where these values came from: torchvision weights, timm pretrained_cfg, flags


@dataclass(frozen=True)
class ModelInfo:
    """Provenance of a classifier: what was loaded, from where, with which preprocessing."""

    spec: str
    source: str  # torchvision | timm | torchscript | export | state_dict | factory | pickle | default
    weights: str | None
    architecture: str | None
    num_classes: int
    preprocessing: Preprocessing
    published_top1: float | None = None  # fraction, from the weights' own metadata
    published_top5: float | None = None


@dataclass(frozen=True)
class RunInfo:
    """Where and how a computation ran."""

    device: str
    precision: str
    world_size: int
    seconds: float
    versions: dict[str, str] = field(default_factory=dict)
    seed: int | None = None


@dataclass(frozen=True)
class PerClass:
    """Counts for one class: images labelled with it, of those right at top-1, and how often the
    model predicted it (over all images)."""

    index: int
    name: str
    correct_top1: int
    total: int
    predicted: int = 0

    @property
    def top1(self) -> float:
        return self.correct_top1 / self.total if self.total else float("nan")


@dataclass(frozen=True)
class PredictionSpread:
    """How the model's top-1 answers spread over classes: a dead network predicts one class for all."""

    distinct_classes: int
    most_predicted: int
    most_predicted_name: str
    most_predicted_share: float  # fraction of images given the most frequent answer
    entropy_nats: float  # entropy of the predicted-class distribution (0 = constant prediction)

    @staticmethod
    def from_counts(counts: list[int], label) -> "PredictionSpread":
        total = sum(counts)
        if total == 0:
            return PredictionSpread(0, -1, "", float("nan"), float("nan"))
        top = max(range(len(counts)), key=counts.__getitem__)
        entropy = -sum((c / total) * math.log(c / total) for c in counts if c)
        return PredictionSpread(sum(1 for c in counts if c), top, label(top), counts[top] / total, entropy + 0.0)


class TopKRates:
    """top1/top5 fractions derived from the integer counts `correct_top1`, `correct_top5`, `total`
    (derived, never stored, so they cannot disagree with the counts)."""

    correct_top1: int
    correct_top5: int
    total: int

    @property
    def top1(self) -> float:
        return self.correct_top1 / self.total if self.total else float("nan")

    @property
    def top5(self) -> float:
        return self.correct_top5 / self.total if self.total else float("nan")


class Gated:
    """A result with user-asked thresholds (`gates`): it passes when every gate does."""

    gates: tuple[Gate, ...]

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)


@dataclass(frozen=True)
class RealTop1:
    """Top-1 against the ImageNet-ReaL labels (Beyer et al. 2020): images ReaL left unlabelled not counted."""

    labels: str  # the real.json file
    correct_top1: int
    total: int

    @property
    def top1(self) -> float:
        return self.correct_top1 / self.total if self.total else float("nan")


@dataclass(frozen=True)
class VariantTop1:
    """The data set's ImageNet variant (`--variant`, or detected) and its published protocol: the headline top-1
    follows the protocol (A/R: argmax over their 200 classes; ObjectNet: over its 113 classes' ImageNet
    classes); `correct_top1_all` counts the argmax over all the model's classes, right when it falls in the
    image's class (ObjectNet: any ImageNet class the image's class maps to)."""

    name: str  # imagenet-a | imagenet-r | objectnet | v2 | sketch | real | val
    title: str  # "ImageNet-A", "ImageNetV2 matched-frequency"
    how: str  # "given (--variant)" or how it was detected
    protocol: str  # the headline number's protocol in words
    classes: int  # classes the headline argmax is over
    correct_top1_all: int  # right under the argmax over all the model's classes
    total: int
    excluded: int = 0  # images of classes outside the protocol, left out (ObjectNet's 200 non-ImageNet classes)
    border: int = 0  # pixels cut from each side before the resize

    @property
    def top1_all(self) -> float:
        return self.correct_top1_all / self.total if self.total else float("nan")


@dataclass(frozen=True)
class EvalResult(TopKRates, Gated):
    """Top-k accuracy of a classifier over a labelled image set, as exact integer counts."""

    correct_top1: int
    correct_top5: int
    total: int
    mean_loss: float
    skipped: tuple[SkippedFile, ...]
    converted: int  # decodable odd images (grayscale, CMYK, RGBA, palette, 16-bit) converted to RGB
    per_class: tuple[PerClass, ...]
    predictions: PredictionSpread
    model: ModelInfo
    data: dict[str, Any]  # path, layout, class mapping used, restricted logits, limit
    run: RunInfo
    images_per_second: float
    gates: tuple[Gate, ...] = ()
    per_sample: Any = None  # PerSampleFile: where `--save-predictions` wrote the rows, their sha256 and count
    calibration: Calibration | None = None  # ECE / NLL / Brier and the reliability bins
    confused_pairs: tuple[ConfusedPair, ...] = ()  # the most frequent (label, answer) mistakes
    real: RealTop1 | None = None  # ImageNet-ReaL top-1 (`--real-labels`)
    setup_findings: tuple[Any, ...] = ()  # SetupFinding: a setup mistake that explains a low top-1
    comparison: Any = None  # Comparison with `--baseline` (its gates are among `gates`)
    confidence_level: float = 0.95  # of every interval: Clopper-Pearson on counts (derived), bootstrap (suite)
    parity: Parity | None = None  # against --reference-model: changed answers, flips, logit differences
    calibration_suite: CalibrationSuite | None = None  # equal-mass/class-wise/smooth ECE, MCE, AURC, T, intervals
    variant: VariantTop1 | None = None  # the ImageNet variant's protocol, and the all-classes argmax beside it
    calibration_sums: CalibrationSums | None = None  # a --shard slice's class-wise and temperature tallies (merge)
    samples: Any = field(default=None, repr=False, compare=False)  # EvalSamples: each image's answer (not JSON)

    @property
    def top1_interval(self) -> Any:
        from nnprobe.intervals import clopper_pearson

        return clopper_pearson(self.correct_top1, self.total, self.confidence_level)

    @property
    def top5_interval(self) -> Any:
        from nnprobe.intervals import clopper_pearson

        return clopper_pearson(self.correct_top5, self.total, self.confidence_level)

    def class_intervals(self) -> list[Any]:
        """Each class's top-1 with its exact interval, in `per_class` order (one vectorised inversion)."""
        from nnprobe.intervals import Interval, clopper_pearson_bounds

        lo, hi = clopper_pearson_bounds([pc.correct_top1 for pc in self.per_class],
                                        [pc.total for pc in self.per_class], self.confidence_level)
        return [Interval(pc.top1, float(a), float(b), "clopper-pearson") for pc, a, b in zip(self.per_class, lo, hi)]

    def to_dict(self) -> dict[str, Any]:
        body = to_jsonable(dataclasses.replace(self, samples=None, comparison=None))
        body.pop("samples")
        body["comparison"] = self.comparison.to_dict() if self.comparison is not None else None
        body["per_class"] = [dict(to_jsonable(pc), top1=to_jsonable(pc.top1), top1_interval=to_jsonable(iv))
                             for pc, iv in zip(self.per_class, self.class_intervals())]
        if self.parity is not None:
            body["parity"]["agreement"] = to_jsonable(self.parity.agreement)
        if self.real is not None:
            from nnprobe.intervals import clopper_pearson

            body["real"]["top1"] = to_jsonable(self.real.top1)
            body["real"]["top1_interval"] = to_jsonable(clopper_pearson(self.real.correct_top1, self.real.total,
                                                                        self.confidence_level))
        if self.variant is not None:
            from nnprobe.intervals import clopper_pearson

            body["variant"]["top1_all"] = to_jsonable(self.variant.top1_all)
            body["variant"]["top1_all_interval"] = to_jsonable(clopper_pearson(
                self.variant.correct_top1_all, self.variant.total, self.confidence_level))
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": "eval",
            "top1": to_jsonable(self.top1),
            "top5": to_jsonable(self.top5),
            "top1_interval": to_jsonable(self.top1_interval),
            "top5_interval": to_jsonable(self.top5_interval),
            **body,
        }
