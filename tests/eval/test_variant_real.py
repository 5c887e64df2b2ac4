"""The `real` row of the --data NAME=DIR table: val's images scored against the ImageNet-ReaL labels (Beyer et
al. 2020) by the same scorer as --variant real — right when the answer is in the image's ReaL list, images with an
empty list left out; top-5 right when any of the five is in it (timm's RealLabelsImagenet) — checked against a
plain loop over a hand-built folder and a hand-written real.json."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T

import tiny_models
from helpers import factory_spec, solid_image
from nnprobe import api
from nnprobe.intervals import clopper_pearson
from nnprobe.models.imagenet import imagenet_wnids

WNIDS = imagenet_wnids()
PLAIN = dict(resize=40, crop=32, mean="0,0,0", std="1,1,1", device="cpu", workers=0, setup_checks=False)
FLAGS = ["--resize", "40", "--crop", "32", "--mean", "0,0,0", "--std", "1,1,1", "--workers", "0", "--no-setup-checks"]
# ILSVRC2012_val_N: (its val label, the class its colour is); then the ReaL list of every val image 1..9
IMAGES = {1: (5, 5), 2: (5, 5), 3: (11, 11), 4: (100, 600), 5: (400, 400), 6: (400, 900), 7: (11, 11)}
REAL = [[5], [], [13], [600, 100], [400, 401], [400, 800], [], [3], [7]]


@pytest.fixture(scope="module")
def val(tmp_path_factory):
    root = tmp_path_factory.mktemp("real")
    for number, (label, painted) in IMAGES.items():
        solid_image(root / "val" / WNIDS[label] / f"ILSVRC2012_val_{number:08d}.png", tiny_models.class_color(painted))
    (root / "real.json").write_text(json.dumps(REAL))
    return root


def _plain_loop(root):
    """(val top-1, val total), (ReaL top-1, ReaL top-5, images with a ReaL label) by hand."""
    net, prep = tiny_models.color_net_1000(), T.Compose([T.Resize(40), T.CenterCrop(32), T.ToTensor()])
    val_right = real1 = real5 = counted = 0
    for path in sorted((root / "val").glob("*/*.png")):
        with torch.no_grad():
            top = net(prep(Image.open(path).convert("RGB"))[None])[0].topk(5).indices.tolist()
        val_right += top[0] == WNIDS.index(path.parent.name)
        labels = REAL[int(path.stem[-8:]) - 1]
        if labels:
            counted += 1
            real1 += top[0] in labels
            real5 += any(answer in labels for answer in top)
    return (val_right, len(IMAGES)), (real1, real5, counted)


def test_real_row_is_real_top1_against_a_plain_loop(val):
    (val_right, val_total), (real1, real5, counted) = _plain_loop(val)
    assert (val_right, val_total) == (5, 7) and (real1, real5, counted) == (3, 4, 5)  # the data tell them apart
    table = api.evaluate(factory_spec("color_net_1000"), {"val": str(val / "val"), "real": str(val / "val")},
                         real_labels=str(val / "real.json"), **PLAIN)
    rows = {r.name: r for r in table.rows}
    assert (rows["val"].correct_top1, rows["val"].total, rows["val"].real) == (val_right, val_total, False)
    row = rows["real"]
    assert (row.correct_top1, row.correct_top5, row.total, row.real) == (real1, real5, counted, True)
    assert row.variant == "ImageNet-ReaL" and "2 image(s) with an empty list left out" in row.protocol
    assert table.interval(row) == clopper_pearson(real1, counted, 0.95)
    body = table.to_dict()["rows"][1]
    assert body["top1"] == pytest.approx(real1 / counted) and body["top1_interval"]["value"] == pytest.approx(0.6)
    # the single-model --variant real keeps its ReaL top-1 beside val's, from the same scorer
    single = api.evaluate(factory_spec("color_net_1000"), str(val / "val"), variant="real",
                          real_labels=str(val / "real.json"), **PLAIN)
    assert (single.real.correct_top1, single.real.total) == (real1, counted)
    assert np.isclose(single.top1, val_right / val_total)


def test_cli_real_row_gates_judge_real_top1(val, invoke):
    args = ["eval", "--model", factory_spec("color_net_1000"), *FLAGS, "--data", f"val={val / 'val'}",
            "--data", f"real={val / 'val'}", "--real-labels", str(val / "real.json")]
    proc = invoke(*args, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)["rows"]
    assert [(r["name"], r["correct_top1"], r["correct_top5"], r["total"]) for r in rows] == [
        ("val", 5, 5, 7), ("real", 3, 4, 5)]
    gated = invoke(*args, "--min-top1", "0.65", "--format", "json")  # val 5/7 = 0.714 passes, ReaL 3/5 fails
    assert gated.returncode == 1
    gates = json.loads(gated.stdout)["gates"]
    assert [(g["passed"], g["measured"]) for g in gates] == [(True, pytest.approx(5 / 7)), (False, 0.6)]
    assert gates[1]["message"].startswith("real: top1 0.6000 is below")
    table = " ".join(invoke(*args).stdout.split())  # the console wraps long lines at its width
    assert "ImageNet-ReaL" in table and "3/5" in table and "ReaL labels of" in table


@pytest.mark.parametrize("data, extra, message", [
    (["val", "real"], [], "The real=DIR row scores val's images against the ReaL labels: give --real-labels"),
    (["val", "imagenet-a"], ["--real-labels", "REAL"], "--real-labels scores the table's real row: add --data real"),
])
def test_real_row_and_labels_need_each_other(val, invoke, data, extra, message):
    args = [a for name in data for a in ("--data", f"{name}={val / 'val'}")]
    extra = [str(val / "real.json") if e == "REAL" else e for e in extra]
    proc = invoke("eval", "--model", factory_spec("color_net_1000"), *FLAGS, *args, *extra)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == ""
