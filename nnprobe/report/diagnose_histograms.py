"""diagnose's `--plot`: a per-layer panel for each histogram finding (dead ReLUs, vanishing or exploding
gradients, a frozen layer, saturated activations, poor initialisation), written beside the run's figure as
STEM.histograms.SUFFIX: one bar per layer of the number the check judged, the layers the finding names in
red. Every histogram check has its panel here (PANELS; a test walks the check registry)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from nnprobe.report.plots import pyplot, save_png

MAX_LAYERS = 24  # bars per panel (the named layers always among them)


@dataclass(frozen=True)
class Panel:
    kind: str  # the histograms it shows: parameter | activation | gradient (checks.histograms' tag kinds)
    ylabel: str
    value: Callable[[list], float]  # a layer's [HistogramStats] -> the bar's height
    log: bool = False
    level: float | None = None  # the check's threshold, where it is one on this scale


def _changes(stats: list) -> float:
    return float(len({(s.min, s.max, s.mean, s.rms) for s in stats}) - 1)


def _growth(stats: list) -> float:
    first = np.median([s.rms for s in stats[:3]])
    return float(max(s.rms for s in stats) / first) if first > 0 else float("nan")


def _saturated(stats: list) -> float:
    last = stats[-1]
    return float(max(abs(last.min), abs(last.max)))


PANELS: dict[str, Panel] = {
    "frozen-layer": Panel("parameter", "snapshots that differ from the first", _changes),
    "dead-relu": Panel("activation", "share of exact zeros (last histogram)", lambda s: float(s[-1].zero_fraction),
                       level=0.9),
    "vanishing-gradients": Panel("gradient", "gradient RMS (median over steps)",
                                 lambda s: float(np.median([x.rms for x in s])), log=True),
    "exploding-gradients": Panel("gradient", "largest gradient RMS / its first", _growth, log=True),
    "saturated-activations": Panel("activation", "largest |activation| (last histogram)", _saturated),
    "poor-initialization": Panel("activation", "activation RMS at the first step", lambda s: float(s[0].rms),
                                 log=True),
}


def named_layers(finding, histograms: dict) -> list[str]:
    """The histogram tags a finding's evidence names (`layer`, `layers`, `frozen`, `first_layer` ...)."""
    named = []
    for value in (finding.evidence or {}).values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and item in histograms and item not in named:
                named.append(item)
    return named


def _layers(histograms: dict, kind: str, named: list[str]) -> list[str]:
    from nnprobe.diagnosis.checks.histograms import _kind, _layer_order  # the checks' own reading of tags

    tags = _layer_order([tag for tag in histograms if _kind(tag) == kind and histograms[tag]])
    if len(tags) > MAX_LAYERS:
        keep = set(named) | set(tags[:MAX_LAYERS - len(named)])
        tags = [tag for tag in tags if tag in keep]
    return tags


def _panel(ax, finding, panel: Panel, histograms: dict) -> list[tuple[str, str, str]]:
    named = named_layers(finding, histograms)
    tags = _layers(histograms, panel.kind, named)
    heights = [panel.value(histograms[tag]) for tag in tags]
    colours = ["#d62728" if tag in named else "#7f7f7f" for tag in tags]
    ax.bar(range(len(tags)), heights, color=colours)
    ax.set_xticks(range(len(tags)))
    ax.set_xticklabels([tag if len(tag) <= 24 else "…" + tag[-23:] for tag in tags], rotation=60, ha="right",
                       fontsize=6)
    if panel.log and all(h > 0 for h in heights if np.isfinite(h)):
        ax.set_yscale("log")
    if panel.level is not None:
        ax.axhline(panel.level, color="#d62728", linestyle="--", linewidth=1)
    ax.set_ylabel(panel.ylabel, fontsize=7)
    ax.set_title(f"{finding.id} ({finding.severity}): {len(named)} layer(s) named, in red", fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    return [("layer", finding.id, tag) for tag in named if tag in tags]


def write_histogram_plot(run, findings, path: str) -> list[tuple[str, str, str]]:
    """The per-layer panels of a run's histogram findings at `path` (nothing written when it has none);
    returns ("layer", check id, tag) for each layer drawn as named by its finding."""
    histograms = getattr(run, "histograms", None) or {}
    shown = [f for f in findings if f.id in PANELS and named_layers(f, histograms)]
    if not shown:
        return []
    plt = pyplot()
    fig, axes = plt.subplots(len(shown), 1, figsize=(7, 2.8 * len(shown) + 0.6), dpi=110, squeeze=False)
    try:
        marks = [m for f, ax in zip(shown, axes[:, 0]) for m in _panel(ax, f, PANELS[f.id], histograms)]
        fig.suptitle(f"{run.path}: the layers behind its histogram findings", fontsize=9)
    except BaseException:
        plt.close(fig)
        raise
    save_png(fig, path)
    return marks
