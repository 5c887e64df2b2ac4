"""Plots as PNG, SVG or PDF files (the suffix of --plot FILE sets the format); matplotlib is imported only here
and only when a plot is asked for."""
from __future__ import annotations

import io
import warnings

from nnprobe.errors import UsageError
from nnprobe.io import atomic_write_bytes


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend, imported only when a plot is asked for."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install matplotlib") from None
    return plt


FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}


def figure_bytes(fig, fmt: str = "png") -> bytes:
    """`fig` rendered in memory as png, svg or pdf (no date in its metadata, so the same figure gives the
    same bytes), then closed: what `--plot` writes and what `--format html` inlines."""
    plt = pyplot()
    try:
        buffer = io.BytesIO()
        with warnings.catch_warnings():  # a class name in a script the font lacks still plots, as boxes
            warnings.filterwarnings("ignore", message="Glyph .* missing from", category=UserWarning)
            fig.tight_layout()
            fig.savefig(buffer, format=fmt, **({"metadata": {"Date": None}} if fmt == "svg" else
                                                   {"metadata": {"CreationDate": None}} if fmt == "pdf" else {}))
    finally:
        plt.close(fig)
    return buffer.getvalue()


def save_png(fig, path: str) -> None:
    """Render `fig` in the format `path`'s suffix names (.png, .svg, .pdf; anything else is PNG, as the
    callers' own names such as the fool panels) in memory, close it, then write it atomically (never a
    half-written file)."""
    import os

    atomic_write_bytes(path, figure_bytes(fig, FORMATS.get(os.path.splitext(path)[1].lower(), "png")))


def _min_norm_curve(ax, result) -> None:
    """`--min-norm`: the robust top-1 the distances imply, a step line (on a second x axis when the
    minimum-norm attack's norm is not the run's)."""
    m = getattr(result, "min_norm", None)
    if m is None or not m.curve:
        return
    scale = 1 if m.norm in ("l0", "l1") else 255
    target = ax if m.norm == result.settings.norm else ax.twiny()
    target.step([c.eps * scale for c in m.curve], [c.correct_top1 / c.total if c.total else 0 for c in m.curve],
                where="post", color="tab:red", label=f"{m.attack} distances (robust top-1)")
    if target is not ax:
        target.set_xlabel(f"{m.attack} distance" + (" (/255)" if scale == 255 else ""))
        target.legend(loc="lower left")


def write_accuracy_plot(result, path: str) -> None:
    """Robust top-1 and top-5 against eps (in /255 units), with the attack named in the title."""
    save_png(accuracy_figure(result), path)


def accuracy_figure(result):
    """The figure of `write_accuracy_plot`."""
    plt = pyplot()
    eps = [p.eps * 255 for p in result.points]
    s = result.settings
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    try:
        ax.plot(eps, [p.top1 for p in result.points], marker="o", label="robust top-1")
        ax.plot(eps, [p.top5 for p in result.points], marker="s", linestyle="--", label="robust top-5")
        _min_norm_curve(ax, result)
        ax.set_xlabel("eps (L∞, /255)" if s.norm == "linf" else "eps (L2, ×1/255)")
        ax.set_ylabel("accuracy")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend()
        steps = f"-{s.steps}" if s.steps > 1 else ""
        ax.set_title(f"{result.model.spec}: {s.attack}{steps}, n={result.points[0].total}", fontsize=10)
    except BaseException:
        plt.close(fig)
        raise
    return fig
