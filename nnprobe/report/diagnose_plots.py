"""diagnose's `--plot DIR`: one PNG per run, loss and accuracy curves (train and val) in two panels, with
the non-finite points, each finding and the best epoch marked at their steps.

matplotlib is imported only when a plot is asked for, and files are written atomically, through the
helpers of `nnprobe.report.plots`. Each drawing returns the marks it drew as (kind, label, step), so tests
check the marks exactly instead of analysing pixels.
"""
from __future__ import annotations

import math
import os
import re

import numpy as np

from nnprobe.report.plots import pyplot, save_png

PANELS = (("loss", ("train_loss", "val_loss")), ("accuracy", ("train_acc", "val_acc")))
COLOURS = {"train_loss": "#1f77b4", "val_loss": "#ff7f0e", "train_acc": "#1f77b4", "val_acc": "#ff7f0e"}
SEVERITY_COLOURS = {"error": "#d62728", "warning": "#e0a800", "info": "#17becf"}


def plot_file_names(names) -> dict[str, str]:
    """Run name -> a file name for its PNG: characters other than letters, digits, '.', '_', '-' become '_',
    and names that collide (also when only their case differs) get -2, -3 ..."""
    files: dict[str, str] = {}
    taken: set[str] = set()
    for name in names:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:100] or "run"
        candidate, n = stem, 1
        while candidate.lower() in taken:
            n += 1
            candidate = f"{stem}-{n}"
        taken.add(candidate.lower())
        files[name] = candidate + ".png"
    return files


def finding_step(finding) -> int | None:
    """Where a finding happened: its evidence's step, or the step of its evidence's `at`."""
    evidence = finding.evidence or {}
    for value in (evidence.get("step"), (evidence.get("at") or {}).get("step")
                  if isinstance(evidence.get("at"), dict) else None):
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return int(value)
    return None


def run_marks(run, findings) -> list[tuple[str, str, int]]:
    """The marks a run's picture carries: ("not-finite", role, step) per NaN/Inf point of a loss or accuracy
    curve, ("finding", id, step) per finding with a step, ("best", "val_acc", step) for the best epoch."""
    marks = []
    for _, roles in PANELS:
        for role in roles:
            series = run.series.get(role)
            if series is not None and len(series):
                marks += [("not-finite", role, int(s)) for s in series.steps[~np.isfinite(series.values)]]
    marks += [("finding", f.id, step) for f in findings if (step := finding_step(f)) is not None]
    best = (run.summary or {}).get("best val_acc step")
    if best is not None:
        marks.append(("best", "val_acc", int(best)))
    return marks


def _curves(ax, run, roles: tuple[str, ...], marks) -> None:
    """The panel's curves (non-finite points left out of the line) and their non-finite points as red x on
    the step axis, where no value could be drawn."""
    drawn = False
    for role in roles:
        series = run.series.get(role)
        if series is None or not len(series):
            continue
        values = np.where(np.isfinite(series.values), series.values, np.nan)
        ax.plot(series.steps, values, label=role, color=COLOURS[role], linewidth=1,
                linestyle="-" if role.startswith("train") else "--", marker="." if len(series) <= 60 else None)
        drawn = True
        bad = [step for kind, label, step in marks if kind == "not-finite" and label == role]
        if bad:
            ax.plot(bad, [0.0] * len(bad), "x", color="red", markersize=8, mew=2, clip_on=False,
                    transform=ax.get_xaxis_transform(), label=f"{role} NaN/Inf", zorder=5)
            drawn = True
    finite = [v for role in roles if role in run.series for v in run.series[role].values[
        np.isfinite(run.series[role].values)].tolist()]
    if finite and min(finite) > 0 and max(finite) / min(finite) > 1e3:
        ax.set_yscale("log")  # a divergence to 1e15 would flatten the rest of the curve
    if not drawn:
        ax.text(0.5, 0.5, "not logged", transform=ax.transAxes, ha="center", va="center", color="grey")


def _draw(fig, axes, run, findings, marks) -> None:
    by_id = {f.id: f for f in findings}
    for (title, roles), ax in zip(PANELS, axes):
        _curves(ax, run, roles, marks)
        for kind, label, step in marks:
            if kind == "finding":
                colour = SEVERITY_COLOURS.get(by_id[label].severity, "grey")
                ax.axvline(step, color=colour, linewidth=1, alpha=0.7)
                if title == "loss":
                    ax.text(step, 0.98, f" {label}", transform=ax.get_xaxis_transform(), rotation=90,
                            va="top", ha="left", fontsize=7, color=colour)
            elif kind == "best":
                ax.axvline(step, color="green", linestyle=":", linewidth=1.2,
                           label="best val_acc" if title == "accuracy" else None)
                if title == "accuracy" and run.summary.get("best val_acc") is not None:
                    ax.plot([step], [run.summary["best val_acc"]], "*", color="green", markersize=12, zorder=6)
        ax.set_ylabel(title)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="best")
    axes[-1].set_xlabel("step")
    best = (run.summary or {}).get("best val_acc")
    epoch = (run.summary or {}).get("best val_acc epoch")
    where = f", best val_acc {best:.4f}" + (f" (epoch {epoch:g})" if epoch is not None else "") \
        if best is not None else ""
    errors = sum(f.severity == "error" for f in findings)
    fig.suptitle(f"{run.path}: {errors} error(s), {len(findings) - errors} other finding(s){where}", fontsize=9)


def write_run_plot(run, findings, path: str) -> list[tuple[str, str, int]]:
    """One run's PNG at `path`; returns the marks drawn (see `run_marks`)."""
    fig, marks = run_figure(run, findings)
    save_png(fig, path)
    return marks


def run_figure(run, findings):
    """One run's figure and the marks drawn on it (see `run_marks`)."""
    plt = pyplot()
    marks = run_marks(run, findings)
    fig, axes = plt.subplots(2, 1, figsize=(7, 6), dpi=110, sharex=True)
    try:
        _draw(fig, axes, run, findings, marks)
    except BaseException:
        plt.close(fig)
        raise
    return fig, marks


def write_diagnose_plots(result, plot: str) -> dict[str, list[tuple[str, str, int]]]:
    """`--plot FILE`: one run's figure at FILE; several runs' beside it as FILE-stem.<run>.suffix (the suffix
    sets the format). Returns path -> marks drawn."""
    from nnprobe.options.outputs import figure_path

    names = plot_file_names(run.path for run in result.runs)
    written = {}
    for run in result.runs:
        name = None if len(result.runs) == 1 else names[run.path].removesuffix(".png")
        path = figure_path(plot, name)
        written[path] = write_run_plot(run, result.run_findings(run), path)
    return written
