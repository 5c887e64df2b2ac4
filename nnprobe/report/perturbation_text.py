"""ImageNet-P's table columns, per-perturbation ratios and summary line, worded once for the table, markdown and
HTML reports."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nnprobe.imagenet_c.results import CorruptionResult

ALEXNET = "FR / T5D (AlexNet = 100)"
BASELINE = "FP / T5D vs baseline"


def ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _score(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{100 * value:.1f}"


def versus_baseline(result: "CorruptionResult", name: str) -> str:
    """'FP ratio / T5D ratio' of one perturbation against the baseline model's."""
    return f"{ratio(result.flip_rate_vs_baseline[name])} / {ratio(result.top5_distance_vs_baseline[name])}"


def versus_alexnet(result: "CorruptionResult", name: str) -> str:
    """'FR / T5D' of one perturbation, AlexNet = 100, as the paper's Tables 3 and 4 print them."""
    return f"{_score(result.flip_rate_vs_alexnet.get(name))} / {_score(result.top5_distance_vs_alexnet.get(name))}"


def ratio_columns(result: "CorruptionResult") -> tuple[str, ...]:
    """The ratio columns after the counts: against AlexNet on 1000 classes, against the baseline when given."""
    return ((ALEXNET,) if result.flip_rate_vs_alexnet is not None else ()) + \
        ((BASELINE,) if result.flip_rate_vs_baseline is not None else ())


def ratio_cells(result: "CorruptionResult", name: str) -> tuple[str, ...]:
    cells = {ALEXNET: versus_alexnet, BASELINE: versus_baseline}
    return tuple(cells[column](result, name) for column in ratio_columns(result))


def _alexnet_words(result: "CorruptionResult") -> str:
    """mFR and mT5D against AlexNet, or why there are none."""
    from nnprobe.imagenet_c.mce import IMAGENET_P_TEST

    if result.flip_rate_vs_alexnet is None:
        return "no mFR against AlexNet: its flip probabilities normalise ImageNet's 1000 classes only"
    if result.mfr is None:
        missing = [n for n in IMAGENET_P_TEST if n not in result.flip_rate_vs_alexnet]
        return (f"no mFR against AlexNet: it averages ImageNet-P's 10 test perturbations, {', '.join(missing)} "
                f"not run here")
    frames = ("sequences x264-encoded and decoded as the published videos were" if result.settings.x264_roundtrip
              else "sequences made in memory, not decoded from the published videos")
    return (f"mFR {_score(result.mfr)}, mT5D {_score(result.mt5d)} (AlexNet = 100, its values from the paper's "
            f"appendix; {frames})")


def frames_note(result: "CorruptionResult") -> list[str]:
    """The x264 round trip the frames went through, as a line to add (none for frames scored in memory)."""
    encoder = result.settings.x264_roundtrip
    return [f"frames x264-encoded and decoded as the published videos ({encoder})"] if encoder else []


def perturbation_summary(result: "CorruptionResult") -> str:
    means = (f"mean flip probability {100 * result.mean_flip_probability:.2f}%, mean top-5 distance "
             f"{result.mean_top5_distance:.3f}; {_alexnet_words(result)}")
    base = result.perturbation_baseline
    if base is None:
        return means
    if result.flip_rate_vs_baseline is None:  # a --shard slice: its counts over the whole's baseline mean nothing
        return f"{means}; against {base.model} ({base.source}): once nnprobe merge adds the slices up"
    never = [n for n, v in result.flip_rate_vs_baseline.items() if v is None]
    mfr = (f"mFR {result.mfr_vs_baseline:.3f}" if not never else
           f"no mFR ({base.model} never flipped on {', '.join(never)})")
    mt5d = "" if result.mt5d_vs_baseline is None else f", mT5D {result.mt5d_vs_baseline:.3f}"
    return (f"{means}; against {base.model} ({base.source}): {mfr}{mt5d} (each over that model's on the same "
            f"sequences, over the perturbations run)")
