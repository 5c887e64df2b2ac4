"""What `compare` returns: a frozen `Comparison` (kind "compare") with the deltas, the paired image-level
evidence when both runs wrote per-sample files, and the gates. `to_dict` is the JSON report."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nnprobe.intervals import Interval
from nnprobe.results import SCHEMA_VERSION, Gate, Gated, to_jsonable


@dataclass(frozen=True)
class MetricDelta:
    """One number before and after; delta = candidate - baseline (None when either side lacks it)."""

    name: str
    baseline: float | None
    candidate: float | None
    interval: Interval | None = None  # of the delta, at the comparison's confidence level

    @property
    def delta(self) -> float | None:
        if self.baseline is None or self.candidate is None:
            return None
        return self.candidate - self.baseline


@dataclass(frozen=True)
class Flips:
    """Paired images whose verdict changed: b right -> wrong, c wrong -> right, the first paths of each,
    and the exact one-sided McNemar p-value of "the candidate is worse" (P(X >= b), X ~ Bin(b + c, 1/2))."""

    right_to_wrong: int
    wrong_to_right: int
    p: float
    right_to_wrong_paths: tuple[str, ...] = ()
    wrong_to_right_paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class ClassDelta:
    """A class's top-1 counts in both runs; drop = baseline top-1 - candidate top-1 (a fraction)."""

    index: int
    name: str
    baseline_correct: int
    baseline_total: int
    candidate_correct: int
    candidate_total: int
    p: float | None = None  # McNemar on this class's paired images, when per-sample files were compared

    @property
    def drop(self) -> float:
        return self.baseline_correct / self.baseline_total - self.candidate_correct / self.candidate_total


@dataclass(frozen=True)
class EpsDelta:
    """Robust top-1 at one budget in both runs; flips from the per-sample files ("not yet fooled at eps")."""

    eps: float
    baseline_correct: int
    baseline_total: int
    candidate_correct: int
    candidate_total: int
    flips: Flips | None = None

    @property
    def baseline_top1(self) -> float:
        return self.baseline_correct / self.baseline_total if self.baseline_total else float("nan")

    @property
    def candidate_top1(self) -> float:
        return self.candidate_correct / self.candidate_total if self.candidate_total else float("nan")

    @property
    def drop(self) -> float:
        return self.baseline_top1 - self.candidate_top1


@dataclass(frozen=True)
class FindingChange:
    """A diagnose finding matched across the runs on (id, run); the baseline's words when they changed."""

    id: str
    run: str
    severity: str
    message: str
    baseline_severity: str | None = None
    baseline_message: str | None = None


@dataclass(frozen=True)
class Comparison(Gated):
    """The candidate against the baseline: two results of one kind (`compared`), on the same data unless
    `allow_different_data` said otherwise (then `same_data` is False and only aggregates are compared)."""

    compared: str  # eval | robust | diagnose
    baseline: str  # where each result came from (a path, or "<dict>")
    candidate: str
    same_data: bool | None  # None: could not be told (a result without fingerprint and per-sample file)
    paired: bool  # image-by-image evidence from both per-sample files
    metrics: tuple[MetricDelta, ...] = ()
    classes: tuple[ClassDelta, ...] = ()  # eval: the classes that lost most (top 10 by drop)
    flips_top1: Flips | None = None
    flips_top5: Flips | None = None
    points: tuple[EpsDelta, ...] = ()  # robust: one per matched eps
    fell_earlier: int | None = None  # robust: images fooled at a smaller budget in the candidate
    fell_later: int | None = None
    fell_earlier_paths: tuple[str, ...] = ()
    new: tuple[FindingChange, ...] = ()  # diagnose
    gone: tuple[FindingChange, ...] = ()
    changed: tuple[FindingChange, ...] = ()
    unchanged: tuple[FindingChange, ...] = ()
    gates: tuple[Gate, ...] = ()
    notes: tuple[str, ...] = ()
    options: dict[str, Any] | None = None
    # eval: the smallest top-1 drop the exact McNemar test at `alpha` can call significant on these paired
    # images (every discordant image against the candidate); None when unpaired
    minimal_detectable_drop: float | None = None

    def to_dict(self) -> dict[str, Any]:
        body = to_jsonable(self)
        body["metrics"] = [dict(to_jsonable(m), delta=to_jsonable(m.delta)) for m in self.metrics]
        body["classes"] = [dict(to_jsonable(c), drop=to_jsonable(c.drop)) for c in self.classes]
        body["points"] = [dict(to_jsonable(p), baseline_top1=to_jsonable(p.baseline_top1),
                               candidate_top1=to_jsonable(p.candidate_top1), drop=to_jsonable(p.drop))
                          for p in self.points]
        return {"schema_version": SCHEMA_VERSION, "kind": "compare", "passed": self.passed, **body}
