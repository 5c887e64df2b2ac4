"""ImageNet-P's summary line and per-perturbation ratio, worded once for the table, markdown and HTML reports."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nnprobe.imagenet_c.results import CorruptionResult


def ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def versus_baseline(result: "CorruptionResult", name: str) -> str:
    """'FP ratio / T5D ratio' of one perturbation against the baseline model's."""
    return f"{ratio(result.flip_rate_vs_baseline[name])} / {ratio(result.top5_distance_vs_baseline[name])}"


def perturbation_summary(result: "CorruptionResult") -> str:
    means = (f"mean flip probability {100 * result.mean_flip_probability:.2f}%, mean top-5 distance "
             f"{result.mean_top5_distance:.3f}")
    base = result.perturbation_baseline
    if base is None:
        return (f"{means} (no mFR: AlexNet's flip probabilities are not published; --perturbation-baseline "
                f"divides by a reference model's run)")
    never = [n for n, v in result.flip_rate_vs_baseline.items() if v is None]
    mfr = (f"mFR {result.mfr_vs_baseline:.3f}" if not never else
           f"no mFR ({base.model} never flipped on {', '.join(never)})")
    mt5d = "" if result.mt5d_vs_baseline is None else f", mT5D {result.mt5d_vs_baseline:.3f}"
    return (f"{means}; against {base.model} ({base.source}): {mfr}{mt5d} (each over that model's on the same "
            f"sequences; the paper's are against AlexNet, whose values are not published)")
