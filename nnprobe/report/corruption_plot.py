"""`robust --corruptions --plot`: the corruption x severity grid of top-1 as a heat map (PNG)."""
from __future__ import annotations

from nnprobe.report.plots import pyplot, save_png


def write_corruption_plot(result, path: str) -> None:
    """Rows: corruptions (ImageNet-C order) and their mean; columns: severities; each cell its top-1 in %."""
    save_png(corruption_figure(result), path)


def corruption_figure(result):
    """The figure of `write_corruption_plot`."""
    plt = pyplot()
    s = result.settings
    grid = [[result.top1(name, severity) for severity in s.severities] for name in s.corruptions]
    means = result.per_corruption
    fig, ax = plt.subplots(figsize=(1.2 * len(s.severities) + 4, 0.38 * len(s.corruptions) + 1.8), dpi=120)
    try:
        image = ax.imshow([row + [means[name]] for row, name in zip(grid, s.corruptions)], vmin=0, vmax=1,
                          cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(s.severities) + 1), [str(v) for v in s.severities] + ["mean"])
        ax.set_yticks(range(len(s.corruptions)), list(s.corruptions))
        ax.set_xlabel("severity")
        for i, name in enumerate(s.corruptions):
            for j, value in enumerate(grid[i] + [means[name]]):
                ax.text(j, i, "—" if value != value else f"{100 * value:.0f}", ha="center", va="center",
                        color="white" if value < 0.6 else "black", fontsize=8)
        fig.colorbar(image, ax=ax, label="top-1")
        ax.set_title(f"{result.model.spec}: clean {100 * result.clean.top1:.1f}%, mean corruption "
                     f"{100 * result.mean_corruption_top1:.1f}%, n={result.clean.total}", fontsize=9)
    except BaseException:
        plt.close(fig)
        raise
    return fig
