"""--plot has one convention on every command (README, "Layout"): a FILE whose suffix sets the format (.png,
.svg, .pdf, anything else refused before any work); several figures go beside it as FILE-stem.NAME.suffix."""
from __future__ import annotations

import pytest

from nnprobe.errors import UsageError
from nnprobe.options.outputs import PlotOptions, figure_path
from nnprobe.options.verbs import VERBS, fields

MAGIC = {".png": b"\x89PNG\r\n\x1a\n", ".svg": b"<?xml", ".pdf": b"%PDF-"}


def test_every_verbs_plot_is_the_one_plot_option():
    plots = [(verb, key) for verb, groups in VERBS.items() for key, _, spec in fields(groups) if spec.flag == "--plot"]
    assert {verb for verb, _ in plots} == {"eval", "robust", "corruptions", "diagnose"}
    assert all(VERBS[verb][key] is PlotOptions for verb, key in plots)


@pytest.mark.parametrize("name", ["plot", "plot.jpg", "plot.PNG.txt", "dir/", ""])
def test_a_suffix_that_is_not_a_figure_format_is_refused(name):
    with pytest.raises(UsageError, match="--plot"):
        PlotOptions.parse(plot=name)


def test_figure_names():
    assert figure_path("out/eval.svg", "reliability") == "out/eval.reliability.svg"
    assert figure_path("out/eval.svg", None) == "out/eval.svg"
    assert PlotOptions.parse(plot="a.PDF").plot == "a.PDF"


@pytest.mark.parametrize("suffix", sorted(MAGIC))
def test_the_suffix_sets_the_bytes_written(tmp_path, suffix):
    from nnprobe.report.plots import pyplot, save_png

    plt = pyplot()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    path = tmp_path / f"figure{suffix}"
    save_png(fig, str(path))
    assert path.read_bytes().startswith(MAGIC[suffix])
