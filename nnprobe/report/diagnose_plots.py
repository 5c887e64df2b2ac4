"""diagnose's `--plot FILE`: one figure per run, loss and accuracy curves (train and val) in two panels, with
every mark of `diagnose_marks` drawn: NaN/Inf points, each finding at its step (a line), over its window
(a band), at its level (a horizontal line), or listed under the figure; the best epoch. Labels never
overlap: marks of one check close together share one label with a count, others are stacked in rows.
Histogram findings get a per-layer panel beside it (diagnose_histograms).

matplotlib is imported only when a plot is asked for; files are written atomically (`report.plots`). Each
drawing returns the marks it drew, so tests check the marks exactly instead of analysing pixels.
"""
from __future__ import annotations

import numpy as np

from nnprobe.report.diagnose_marks import PANELS, Mark, finding_step, plot_file_names, run_marks  # noqa: F401
from nnprobe.report.plots import pyplot, save_png

COLOURS = {"train_loss": "#1f77b4", "val_loss": "#ff7f0e", "train_acc": "#1f77b4", "val_acc": "#ff7f0e"}
SEVERITY_COLOURS = {"error": "#d62728", "warning": "#e0a800", "info": "#17becf"}
LABEL_GID = "mark-label"  # the gid of every mark's label (tests find them by it)


def _curves(ax, run, roles: tuple[str, ...], marks: list[Mark]) -> None:
    """The panel's curves (non-finite points left out of the line) and their NaN/Inf points as red x on the
    step axis, where no value could be drawn."""
    drawn = False
    for role in roles:
        series = run.series.get(role)
        if series is None or not len(series):
            continue
        values = np.where(np.isfinite(series.values), series.values, np.nan)
        ax.plot(series.steps, values, label=role, color=COLOURS[role], linewidth=1,
                linestyle="-" if role.startswith("train") else "--", marker="." if len(series) <= 60 else None)
        drawn = True
        bad = [m.step for m in marks if m.kind == "not-finite" and m.label == role]
        if bad:
            ax.plot(bad, [0.0] * len(bad), "x", color="red", markersize=8, mew=2, clip_on=False,
                    transform=ax.get_xaxis_transform(), label=f"{role} NaN/Inf ({len(bad)})", zorder=5)
    finite = [v for role in roles if role in run.series for v in run.series[role].values[
        np.isfinite(run.series[role].values)].tolist()]
    if finite and min(finite) > 0 and max(finite) / min(finite) > 1e3:
        ax.set_yscale("log")  # a divergence to 1e15 would flatten the rest of the curve
    if not drawn:
        ax.text(0.5, 0.5, "not logged", transform=ax.transAxes, ha="center", va="center", color="grey")


def _mark(ax, mark: Mark, panel: str) -> None:
    """One mark's line, band or level on a panel (a finding's line on both panels; its label comes later)."""
    colour = SEVERITY_COLOURS.get(mark.severity, "grey")
    if mark.kind == "finding":
        ax.axvline(mark.step, color=colour, linewidth=1, alpha=0.7)
    elif mark.kind == "span" and panel == mark.panel:
        ax.axvspan(mark.step, mark.end if mark.end != mark.step else mark.step + 0.5, color=colour, alpha=0.15,
                   label=mark.text)
    elif mark.kind == "level" and panel == mark.panel:
        ax.axhline(mark.value, color=colour, linestyle="-.", linewidth=1, label=mark.text)
    elif mark.kind == "best":
        ax.axvline(mark.step, color="green", linestyle=":", linewidth=1.2,
                   label="best val_acc" if panel == "accuracy" else None)
        if panel == "accuracy" and mark.value is not None:
            ax.plot([mark.step], [mark.value], "*", color="green", markersize=12, zorder=6)


def _grouped(fig, ax, marks: list[Mark]) -> list[tuple[Mark, int]]:
    """The finding lines' labels to draw, (first mark, how many): marks of one check whose lines are closer
    than that label's width share it."""
    ordered = sorted((m for m in marks if m.kind == "finding"), key=lambda m: (m.label, m.step))
    width = _text_width(fig, ax, "x" * 18)
    x_of = ax.transData.transform
    groups: list[list[Mark]] = []
    for mark in ordered:
        last = groups[-1][-1] if groups else None
        if last is not None and last.label == mark.label and \
                abs(x_of((mark.step, 0))[0] - x_of((last.step, 0))[0]) < width:
            groups[-1].append(mark)
        else:
            groups.append([mark])
    return sorted(((group[0], len(group)) for group in groups), key=lambda g: g[0].step)


def _text_width(fig, ax, text: str) -> float:
    probe = ax.text(0, 0, text, fontsize=7)
    width = probe.get_window_extent(fig.canvas.get_renderer()).width
    probe.remove()
    return width


def _label(fig, ax, x: float, text: str, colour: str, placed: list) -> None:
    """A label at step `x` near the top of `ax`, moved down a row until it overlaps no label placed before."""
    renderer = fig.canvas.get_renderer()
    right = ax.transAxes.inverted().transform(ax.transData.transform((x, 0)))[0] > 0.6
    row = 0
    while True:
        label = ax.text(x, 0.97 - 0.075 * row, f" {text} " if not right else f"{text} ",
                        transform=ax.get_xaxis_transform(), ha="right" if right else "left", va="top", fontsize=7,
                        color=colour, gid=LABEL_GID, bbox=dict(boxstyle="square,pad=0.1", fc="white", ec="none",
                                                               alpha=0.8))
        label.set_in_layout(False)  # so the layout made before the labels is the one saved
        box = label.get_window_extent(renderer)
        if not any(box.overlaps(other) for other in placed) or row > 40:
            placed.append(box)
            return
        label.remove()
        row += 1


def _labels(fig, axes, marks: list[Mark]) -> None:
    """Every finding line's label on the loss panel, grouped and stacked so none overlaps another."""
    ax = axes[0]
    fig.tight_layout()
    placed: list = []
    for mark, count in _grouped(fig, ax, marks):
        text = mark.text + (f" ×{count}" if count > 1 else "")
        _label(fig, ax, mark.step, text, SEVERITY_COLOURS.get(mark.severity, "grey"), placed)


def _notes(fig, axes, run, findings, marks: list[Mark]) -> None:
    """The title (errors, other findings, best epoch) and the error findings with no place on the step axis,
    listed in the accuracy panel's corner."""
    notes = [m.text for m in marks if m.kind == "note"]
    best = (run.summary or {}).get("best val_acc")
    epoch = (run.summary or {}).get("best val_acc epoch")
    where = f", best val_acc {best:.4f}" + (f" (epoch {epoch:g})" if epoch is not None else "") \
        if best is not None else ""
    errors = sum(f.severity == "error" for f in findings)
    fig.suptitle(f"{run.path}: {errors} error(s), {len(findings) - errors} other finding(s){where}", fontsize=9)
    if notes:
        shown = [n if len(n) <= 100 else n[:99] + "…" for n in notes[:4]]
        shown += [f"... and {len(notes) - 4} more"] if len(notes) > 4 else []
        text = axes[-1].text(0.01, 0.02, "\n".join(shown), transform=axes[-1].transAxes, fontsize=7, va="bottom",
                             color=SEVERITY_COLOURS["error"], gid=LABEL_GID,
                             bbox=dict(boxstyle="square,pad=0.2", fc="white", ec="none", alpha=0.85))
        text.set_in_layout(False)


def _draw(fig, axes, run, findings, marks: list[Mark]) -> None:
    for (title, roles), ax in zip(PANELS, axes):
        _curves(ax, run, roles, marks)
        for mark in marks:
            _mark(ax, mark, title)
        ax.set_ylabel(title)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="lower left" if title == "loss" else "best")
    axes[-1].set_xlabel("step")
    _notes(fig, axes, run, findings, marks)
    _labels(fig, axes, marks)


def run_figure(run, findings):
    """One run's figure and the marks drawn on it (see `diagnose_marks.run_marks`)."""
    plt = pyplot()
    marks = run_marks(run, findings)
    fig, axes = plt.subplots(2, 1, figsize=(7, 6), dpi=110, sharex=True)
    try:
        _draw(fig, axes, run, findings, marks)
    except BaseException:
        plt.close(fig)
        raise
    return fig, marks


def write_run_plot(run, findings, path: str) -> list[Mark]:
    """One run's figure at `path`; returns the marks drawn."""
    fig, marks = run_figure(run, findings)
    save_png(fig, path)
    return marks


def write_diagnose_plots(result, plot: str) -> dict[str, list]:
    """`--plot FILE`: one run's figure at FILE; several runs' beside it as FILE-stem.<run>.suffix (a short
    stable name, diagnose_marks.plot_file_names); a run with histogram findings also gets its per-layer panel
    as FILE-stem[.<run>].histograms.suffix. Returns path -> marks drawn."""
    from nnprobe.options.outputs import figure_path
    from nnprobe.report.diagnose_histograms import write_histogram_plot

    names = plot_file_names(run.path for run in result.runs)
    written = {}
    for run in result.runs:
        name = None if len(result.runs) == 1 else names[run.path].removesuffix(".png")
        findings = result.run_findings(run)
        written[figure_path(plot, name)] = write_run_plot(run, findings, figure_path(plot, name))
        panel = figure_path(plot, "histograms" if name is None else f"{name}.histograms")
        drawn = write_histogram_plot(run, findings, panel)
        if drawn:
            written[panel] = drawn
    return written
