"""eval's `--plot DIR` pictures: the reliability diagram and the per-class accuracy chart (PNG).

matplotlib is imported only when a plot is asked for, and files are written atomically, through the
helpers of `nnprobe.report.plots`.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

from nnprobe.report.plots import pyplot, save_png

GAP_COLOUR = "#d62728"
BAR_COLOUR = "#1f77b4"


def write_reliability_diagram(calibration, path: str, *, title: str | None = None) -> None:
    """The reliability diagram (`reliability_figure`) written to `path`."""
    save_png(reliability_figure(calibration, title=title), path)


def reliability_figure(calibration, *, title: str | None = None):
    """Accuracy per confidence bin against the diagonal of perfect calibration, the gap between accuracy
    and mean confidence shaded, ECE in the title; below, the share of images in each bin, labelled with its
    count."""
    plt = pyplot()
    bins = [b for b in calibration.bins if b.count > 0]
    total = sum(b.count for b in calibration.bins)
    fig, (ax, share) = plt.subplots(2, 1, figsize=(5, 6), dpi=120, sharex=True,
                                    gridspec_kw={"height_ratios": [3, 1]})
    try:
        widths = [b.upper - b.lower for b in bins]
        lowers = [b.lower for b in bins]
        ax.bar(lowers, [b.accuracy for b in bins], width=widths, align="edge", color=BAR_COLOUR,
               edgecolor="black", linewidth=0.5, label="accuracy")
        ax.bar(lowers, [b.confidence - b.accuracy for b in bins], bottom=[b.accuracy for b in bins],
               width=widths, align="edge", color=GAP_COLOUR, alpha=0.3, edgecolor=GAP_COLOUR, hatch="//",
               linewidth=0.5, label="gap to mean confidence")
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_ylabel("accuracy")
        ax.legend(loc="upper left", fontsize=8)
        ece = "n/a" if not math.isfinite(calibration.ece) else f"{calibration.ece:.4f}"
        head = f"{title}: " if title else ""
        ax.set_title(f"{head}ECE {ece} ({len(calibration.bins)} bins, n={total})", fontsize=10)
        share.bar(lowers, [b.count / total for b in bins], width=widths, align="edge", color="grey")
        for b in bins:  # the bin counts themselves: a bin of 3 images says little, whatever its gap
            share.text((b.lower + b.upper) / 2, b.count / total, str(b.count), ha="center", va="bottom", fontsize=6)
        share.set_xlabel("top-1 confidence")
        share.set_ylabel("share of images (count)")
    except BaseException:
        plt.close(fig)
        raise
    return fig


def _shown(per_class: Sequence, k: int) -> list:
    """The k worst and k best classes with images, worst first (all of them when there are <= 2k)."""
    labelled = sorted((pc for pc in per_class if pc.total > 0),
                      key=lambda pc: (Fraction(pc.correct_top1, pc.total), pc.index))
    return labelled if len(labelled) <= 2 * k else labelled[:k] + labelled[-k:]


def _label(pc) -> str:
    name = pc.name if len(pc.name) <= 28 else pc.name[:27] + "…"
    return f"{name} ({pc.correct_top1}/{pc.total})"


def write_per_class_chart(per_class: Sequence, path: str, k: int = 30, *, title: str | None = None) -> None:
    """The per-class chart (`per_class_figure`) written to `path`."""
    save_png(per_class_figure(per_class, k, title=title), path)


def per_class_figure(per_class: Sequence, k: int = 30, *, title: str | None = None):
    """Top-1 of the k worst and the k best classes as horizontal bars, worst at the top, each labelled
    with its counts; a dotted line separates the two groups when classes were left out between them."""
    if k < 1:
        from nnprobe.errors import UsageError

        raise UsageError(f"The per-class chart needs k >= 1 classes per end, got {k}.")
    plt = pyplot()
    shown = _shown(per_class, k)
    fig, ax = plt.subplots(figsize=(7, 1.0 + 0.22 * max(len(shown), 1)), dpi=120)
    try:
        rows = list(range(len(shown)))
        ax.barh(rows, [pc.top1 for pc in shown], color=BAR_COLOUR, height=0.8)
        ax.set_yticks(rows, [_label(pc) for pc in shown], fontsize=7)
        ax.set_ylim(len(shown) - 0.5, -0.5)  # worst at the top, no blank margin
        ax.set_xlim(0, 1)
        ax.set_xlabel("top-1")
        ax.grid(axis="x", alpha=0.3)
        labelled = sum(1 for pc in per_class if pc.total > 0)
        if labelled > len(shown):
            ax.axhline(k - 0.5, color="black", linestyle=":", linewidth=1)
        head = f"{title}: " if title else ""
        ends = f"worst and best {k} of {labelled} classes" if labelled > len(shown) else f"{labelled} classes"
        ax.set_title(f"{head}per-class top-1, {ends}", fontsize=10)
    except BaseException:
        plt.close(fig)
        raise
    return fig


def write_eval_plots(result, reliability_path: str, per_class_path: str) -> None:
    """`nnprobe eval --plot DIR`: the reliability diagram and the per-class chart of an EvalResult."""
    if result.calibration is not None:
        write_reliability_diagram(result.calibration, reliability_path, title=f"{result.model.spec}: reliability")
    write_per_class_chart(result.per_class, per_class_path, title=f"{result.model.spec}: top-1 per class")
