"""Gates: what makes a run fail (exit 1). eval's floors, robust's per-budget floors, and the comparison's
drop gates with the syntax of a drop threshold (`0.3pt`), shared by compare, eval and robust --baseline."""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from nnprobe.errors import UsageError
from nnprobe.options import parsers as p
from nnprobe.options.base import Options, PathKind, option
from nnprobe.options.budget import parse_gate

_POINT_SUFFIXES = ("pt", "pp", "%")


def parse_drop(value: str | float | int | None, name: str) -> float | None:
    """A threshold as a fraction in [0, 1]: "0.3pt" / "0.3pp" / "0.3%" -> 0.003, "0.003" or 0.003 -> 0.003.

    `0.3%` is read as percentage points of accuracy, never as 0.3 % *of* the baseline's accuracy (the
    `--min-top1 75%` of eval is absolute too); a bare number is a fraction."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise UsageError(f"{name} must be a number like 0.003 or 0.3pt, not {value!r}.")
    text = str(value).strip().lower()
    scale = 1.0
    for suffix in _POINT_SUFFIXES:
        if text.endswith(suffix):
            text, scale = text[: -len(suffix)].strip(), 0.01
            break
    try:
        number = float(text) * scale
    except ValueError:
        raise UsageError(f"{name} {value!r} is not a number like 0.003 (a fraction) or 0.3pt (points).") from None
    if not (math.isfinite(number) and 0.0 <= number <= 1.0):
        raise UsageError(f"{name} {value!r} is not a drop between 0 and 1 (or 0pt and 100pt).")
    return number


def parse_alpha(value: str | float | None, name: str = "alpha") -> float | None:
    """The significance level: a number strictly between 0 and 1."""
    if value is None:
        return None
    try:
        alpha = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{name} {value!r} is not a number between 0 and 1 (such as 0.01).") from None
    if not 0.0 < alpha < 1.0:
        raise UsageError(f"{name} must lie strictly between 0 and 1 (such as 0.01), got {value!r}.")
    return alpha


def robust_floors(value, flag: str) -> dict[float, float]:
    """`--min-robust-top1 EPS=F` (repeatable), or a mapping {eps: fraction} from the Python API."""
    if isinstance(value, Mapping):
        items = [(k, v) for k, v in value.items()]
    else:
        items = [value] if isinstance(value, str) else list(value)
    floors: dict[float, float] = {}
    for item in items:
        eps, fraction = parse_gate(item, name=flag)
        floors[eps] = fraction
    return floors


@dataclass(frozen=True)
class EvalGates(Options):
    min_top1: float | None = option("--min-top1", "Gate: exit 1 when top-1 is below F (0.75 or 75%).",
                                    parse=p.fraction, metavar="F", once=True)
    min_top5: float | None = option("--min-top5", "Gate: exit 1 when top-5 is below F.", parse=p.fraction,
                                    metavar="F", once=True)
    max_ece: float | None = option("--max-ece", "Gate: exit 1 when the expected calibration error (15 bins) is "
                                   "above F.", parse=p.fraction, metavar="F", once=True)
    min_class_top1: float | None = option("--min-class-top1", "Gate: exit 1 when the worst class's top-1 is below "
                                          "F.", parse=p.fraction, metavar="F", once=True)


@dataclass(frozen=True)
class RobustGates(Options):
    min_robust_top1: dict = option("--min-robust-top1", "Gate: exit 1 when robust top-1 at EPS is below F, e.g. "
                                   "2/255=0.30 (repeatable).", default=None, parse=robust_floors, metavar="EPS=F",
                                   multiple=True)


def _drop(value, flag: str):
    return parse_drop(value, flag)


def _alpha(value, flag: str):
    return parse_alpha(value, flag)


@dataclass(frozen=True)
class ComparisonGates(Options):
    """The gates of `nnprobe compare`, also on eval and robust with --baseline (docs/compare.md)."""
    max_drop_top1: float | None = option(
        "--max-drop-top1", "Gate: exit 1 when top-1 drops more than X below the baseline (0.3pt = 0.3 points; "
        "0.003 = a fraction). robust: at every eps.", parse=_drop, metavar="X", once=True)
    max_drop_top5: float | None = option("--max-drop-top5", "Gate: the same for top-5.", parse=_drop, metavar="X", once=True)
    max_class_drop: float | None = option("--max-class-drop", "Gate: the largest per-class top-1 drop allowed.",
                                          parse=_drop, metavar="X", once=True)
    alpha: float | None = option("--alpha", "A drop gate fails only when the drop is also significant: exact "
                                 "McNemar p < A (needs per-sample results on both sides).", parse=_alpha,
                                 metavar="A")
    allow_different_data: bool = option("--allow-different-data", "Compare the aggregates even when the two runs "
                                        "used different images or eps sweeps.", default=False, parse=p.flag,
                                        is_flag=True)

    def gates(self) -> dict:
        return {k: v for k, v in self.keywords().items() if k != "baseline"}

    def given(self) -> list[str]:
        return [name for name, value in self.gates().items() if value not in (None, False)]


@dataclass(frozen=True)
class BaselineOptions(ComparisonGates):
    """--baseline FILE and the comparison's gates: eval and robust compare themselves in the same command."""
    baseline: object = option("--baseline", "Compare with this earlier result (--format json; its "
                              "--save-predictions file is found beside it) and report the deltas, flips and "
                              "McNemar p.", parse=None, metavar="RESULT.json", path=PathKind.INPUT,
                              input_kind="result", what="Baseline result")

    def check(self) -> None:
        import os

        if self.baseline is None and self.given():
            raise UsageError(f"--{self.given()[0].replace('_', '-')} compares with a baseline: give --baseline "
                             "FILE.")
        if isinstance(self.baseline, (str, os.PathLike)):
            p.path(self.baseline, "--baseline")
