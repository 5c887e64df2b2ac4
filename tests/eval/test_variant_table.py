"""Several --data NAME=DIR in one run: one table, each row under its variant's protocol, and effective
robustness against val (Taori et al. 2020) checked with an independent fit (scipy.stats.linregress over the
testbed file read with the csv module) and a plain loop for val's accuracy on a subset's classes."""
from __future__ import annotations

import csv
import json
import math
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats
from torchvision import transforms as T

import tiny_models
from helpers import factory_spec, make_wnid_folders, solid_image
from nnprobe import api
from nnprobe.models.imagenet import imagenet_wnids
from nnprobe.variants.fits import fit
from nnprobe.variants.protocols import objectnet_folders, subset_wnids

WNIDS = imagenet_wnids()
PLAIN = dict(resize=40, crop=32, mean="0,0,0", std="1,1,1", device="cpu", workers=0, setup_checks=False)
FLAGS = ["--resize", "40", "--crop", "32", "--mean", "0,0,0", "--std", "1,1,1", "--workers", "0", "--no-setup-checks"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sets")
    # val: A classes (6, 11), ObjectNet classes (409, 954), others; some painted wrong
    val = make_wnid_folders(root / "val", {6: 2, 11: 1, 409: 1, 954: 2, 100: 1, 7: 1}, wrong={6: 1, 954: 1})
    r, g, b = tiny_models.class_color(11)
    solid_image(val / WNIDS[11] / "near12.png", (r, g, b + 0.6 / 9))  # 1000-way: 12; among A's classes: 11
    a = make_wnid_folders(root / "imagenet-a", {6: 1, 11: 1}, wrong={11: 2})
    objectnet = root / "objectnet-1.0" / "images"
    for folder, k in (("banana", 954), ("alarm_clock", 530), ("alarm_clock", 3)):
        solid_image(objectnet / folder / f"{k}.png", tiny_models.class_color(k))
    v2 = root / "imagenetv2-top-images-format-val"
    for k in (6, 100, 101):
        solid_image(v2 / str(k) / "a.png", tiny_models.class_color(k if k != 101 else 102))
    return {"val": val, "a": a, "objectnet": objectnet, "v2": v2}


def _logits(paths) -> np.ndarray:
    net, prep = tiny_models.color_net_1000(), T.Compose([T.Resize(40), T.CenterCrop(32), T.ToTensor()])
    with torch.no_grad():
        return np.stack([net(prep(Image.open(p).convert("RGB"))[None])[0].numpy() for p in paths])


def _testbed_fit(x: str, y: str, floor: float, leave_out=()) -> tuple[float, float, int]:
    """scipy's linregress in logit space over the testbed rows, read here with the csv module."""
    text = resources.files("nnprobe.data").joinpath("variant_testbed.tsv").read_text()
    rows = list(csv.DictReader((line for line in text.splitlines() if not line.startswith("#")), delimiter="\t"))
    pairs = [(float(r[x]) / 100, float(r[y]) / 100) for r in rows
             if r[x] and r[y] and float(r[x]) >= floor and r["model"].lower() not in leave_out]
    logit = np.log(np.array(pairs) / (1 - np.array(pairs)))
    line = stats.linregress(logit[:, 0], logit[:, 1])
    return line.slope, line.intercept, len(pairs)


def _predict(slope, intercept, x):
    z = slope * math.log(x / (1 - x)) + intercept
    return 1 / (1 + math.exp(-z))


@pytest.mark.parametrize("x, y, floor, leave_out, variant", [
    ("val-on-imagenet-a-classes", "imagenet-a", 75, ("resnet50",), "imagenet-a"),
    ("val-on-imagenet-r-classes", "imagenet-r", 75, (), "imagenet-r"),
    ("val-on-objectnet-classes", "objectnet-1.0-beta", 55, (), "objectnet"),
    ("val", "imagenetv2-matched-frequency", 55, (), "v2"),
    ("val", "imagenet-sketch", 55, (), "sketch"),
])
def test_fit_is_scipys_linregress_in_logit_space(x, y, floor, leave_out, variant):
    slope, intercept, n = _testbed_fit(x, y, floor, leave_out)
    line = fit(x, y, floor, variant)
    assert (line.slope, line.intercept) == pytest.approx((slope, intercept), abs=1e-9) and line.models == n > 50
    assert line.predict(0.8) == pytest.approx(_predict(slope, intercept, 0.8), abs=1e-12)


def test_table_rows_and_effective_robustness(folders):
    table = api.evaluate(factory_spec("color_net_1000"), {n: str(p) for n, p in folders.items()}, **PLAIN)
    rows = {r.name: r for r in table.rows}
    assert [r.name for r in table.rows] == ["val", "a", "objectnet", "v2"]
    val = rows["val"]
    files = sorted(p for p in folders["val"].glob("*/*.png"))
    logits = _logits(files)
    labels = np.array([WNIDS.index(p.parent.name) for p in files])
    assert (val.correct_top1, val.total) == (int((logits.argmax(1) == labels).sum()), len(files))
    # x for ImageNet-A: val's images of A's classes, argmax over A's 200 (the plain loop)
    a_cols = np.array(sorted(WNIDS.index(w) for w in subset_wnids("imagenet-a")))
    inside = np.isin(labels, a_cols)
    x_right = int((a_cols[logits[inside][:, a_cols].argmax(1)] == labels[inside]).sum())
    e = rows["a"].effective
    assert (e.x_correct, e.x_total) == (x_right, int(inside.sum()))
    assert x_right > int((logits[inside].argmax(1) == labels[inside]).sum())  # the restriction mattered
    slope, intercept, _ = _testbed_fit("val-on-imagenet-a-classes", "imagenet-a", 75, ("resnet50",))
    expected = _predict(slope, intercept, x_right / inside.sum())
    assert e.predicted == pytest.approx(expected, abs=1e-9)
    assert e.gap == pytest.approx(rows["a"].top1 - expected, abs=1e-9)
    # x for ObjectNet: val's images of its 125 classes, argmax over them, right within the image's class
    groups = [g for g in objectnet_folders().values() if g]
    union = np.array(sorted({c for g in groups for c in g}))
    group_of = {c: i for i, g in enumerate(groups) for c in g}
    mask = np.isin(labels, union)
    o_right = sum(group_of[int(union[row[union].argmax()])] == group_of[int(label)]
                  for row, label in zip(logits[mask], labels[mask]))
    assert (rows["objectnet"].effective.x_correct, rows["objectnet"].effective.x_total) == (o_right, int(mask.sum()))
    # V2 top-images: x is val's top-1
    slope, intercept, _ = _testbed_fit("val", "imagenetv2-topimages", 55)
    assert rows["v2"].variant == "ImageNetV2 top-images"
    assert rows["v2"].effective.predicted == pytest.approx(_predict(slope, intercept, val.top1), abs=1e-9)
    assert val.effective is None and "reference" in val.note


def test_without_val_each_row_says_why(folders):
    table = api.evaluate(factory_spec("color_net_1000"), [f"a={folders['a']}"], **PLAIN)
    assert table.rows[0].effective is None and "no val data set" in table.rows[0].note


def test_cli_table_json_markdown_and_gates_per_row(folders, invoke, tmp_path):
    args = ["eval", "--model", factory_spec("color_net_1000"), *FLAGS, "--data", f"val={folders['val']}",
            "--data", f"imagenet-a={folders['a']}"]
    proc = invoke(*args, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    body = json.loads(proc.stdout)
    assert body["kind"] == "variants" and [r["name"] for r in body["rows"]] == ["val", "imagenet-a"]
    assert body["rows"][1]["how"] == "named by --data imagenet-a=DIR" and body["rows"][1]["classes"] == 200
    assert body["rows"][1]["top1_interval"]["method"] == "clopper-pearson"
    markdown = invoke(*args, "--format", "markdown").stdout
    assert "| data set | variant | top-1 |" in markdown and "effective robustness" in markdown
    gated = invoke(*args, "--min-top1", "0.9")
    assert gated.returncode == 1 and "imagenet-a: " in gated.stdout


@pytest.mark.parametrize("extra, message", [
    (["--variant", "imagenet-a"], "name each data set's variant"),
    (["--shard", "1/2"], "not with --shard"),
    (["--data", "/nonexistent/x"], "several data sets make one table, each named"),
    (["--data", "val=/nonexistent/y"], "given twice"),
])
def test_table_refusals_exit_2(folders, invoke, extra, message):
    proc = invoke("eval", "--model", factory_spec("color_net_1000"), *FLAGS, "--data", f"val={folders['val']}",
                  *extra)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_plot_and_missing_folder_refused(folders, invoke, tmp_path):
    base = ["eval", "--model", factory_spec("color_net_1000"), *FLAGS, "--data", f"val={folders['val']}"]
    proc = invoke(*base, "--data", f"a={folders['a']}", "--plot", str(tmp_path / "p.png"))
    assert proc.returncode == 2 and "--plot draws one data set's figures" in proc.stderr
    proc = invoke(*base, "--data", f"a={tmp_path / 'missing'}")
    assert proc.returncode == 2 and "does not exist" in proc.stderr
