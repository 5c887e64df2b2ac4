"""eval's --plot pictures: real PNGs of the expected size, written atomically, for any valid input."""
from __future__ import annotations

import os
import struct
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from nnprobe.calibration import calibration
from nnprobe.errors import UsageError
from nnprobe.report.eval_plots import write_per_class_chart, write_reliability_diagram
from nnprobe.report.plots import write_accuracy_plot
from nnprobe.results import PerClass

PNG = b"\x89PNG\r\n\x1a\n"


def png_size(path):
    """Width and height from the IHDR chunk, after checking the file decodes completely."""
    data = open(path, "rb").read()
    assert data[:8] == PNG and data[12:16] == b"IHDR"
    with Image.open(path) as image:
        image.load()
    return struct.unpack(">II", data[16:24]), len(data)


def leftovers(folder):
    return [name for name in os.listdir(folder) if name.endswith(".partial")]


def classes(n, seed=0):
    rng = np.random.default_rng(seed)
    totals = rng.integers(1, 50, n)
    return [PerClass(i, f"class {i}", int(rng.integers(0, t + 1)), int(t)) for i, t in enumerate(totals)]


def test_reliability_diagram_is_a_png(tmp_path):
    rng = np.random.default_rng(1)
    conf = rng.uniform(0.1, 1, 500)
    result = calibration(conf, rng.random(500) < conf, np.zeros(500), np.zeros(500))
    path = tmp_path / "reliability.png"
    path.write_bytes(b"old")  # replaced whole
    write_reliability_diagram(result, str(path), title="resnet18")
    (width, height), size = png_size(path)
    assert (width, height) == (600, 720) and size > 10_000
    assert leftovers(tmp_path) == []


def test_reliability_diagram_with_empty_bins_and_no_images(tmp_path):
    for name, result in [("one.png", calibration([1.0], [True], [0.0], [0.0])),
                         ("none.png", calibration([], [], [], []))]:
        write_reliability_diagram(result, str(tmp_path / name))
        assert png_size(tmp_path / name)[0] == (600, 720)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("n,k,bars", [(1000, 30, 60), (7, 30, 7), (61, 30, 60), (60, 30, 60), (1000, 3, 6)])
def test_per_class_chart_shows_worst_and_best_k(tmp_path, n, k, bars):
    per_class = classes(n) + [PerClass(n, "never labelled", 0, 0, predicted=5)]
    labelled = sum(1 for pc in per_class if pc.total)
    assert labelled == n and min(n, 2 * k) == bars
    path = tmp_path / "classes.png"
    write_per_class_chart(per_class, str(path), k=k)
    (width, height), _ = png_size(path)
    assert width == 840 and abs(height - (1.0 + 0.22 * bars) * 120) <= 1  # the figure grows with the bars
    assert leftovers(tmp_path) == []


def test_per_class_chart_long_names_and_bad_k(tmp_path):
    per_class = [PerClass(0, "x" * 200, 1, 2), PerClass(1, "Ünïcode 名前", 2, 2)]
    write_per_class_chart(per_class, str(tmp_path / "c.png"), k=1)
    assert png_size(tmp_path / "c.png")[0][0] == 840
    with pytest.raises(UsageError, match="k >= 1"):
        write_per_class_chart(per_class, str(tmp_path / "d.png"), k=0)
    assert not (tmp_path / "d.png").exists()


def test_a_folder_in_the_way_is_refused_and_nothing_is_left(tmp_path):
    (tmp_path / "taken.png").mkdir()
    with pytest.raises(UsageError, match="it is a folder"):
        write_reliability_diagram(calibration([0.5], [True], [0.0], [0.0]), str(tmp_path / "taken.png"))
    with pytest.raises(UsageError, match="it is a folder"):
        write_per_class_chart(classes(5), str(tmp_path / "taken.png"))
    assert sorted(os.listdir(tmp_path)) == ["taken.png"]


def test_robust_accuracy_plot_still_works_through_the_shared_helpers(tmp_path):
    points = [SimpleNamespace(eps=e / 255, top1=1 - e / 10, top5=1 - e / 20, total=8) for e in range(4)]
    result = SimpleNamespace(points=points, settings=SimpleNamespace(norm="linf", steps=10, attack="pgd"),
                             model=SimpleNamespace(spec="tiny"))
    write_accuracy_plot(result, str(tmp_path / "acc.png"))
    assert png_size(tmp_path / "acc.png")[0] == (720, 480) and leftovers(tmp_path) == []
