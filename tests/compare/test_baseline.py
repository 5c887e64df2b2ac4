"""`--baseline` on eval and robust: the comparison runs in the same command, its gates decide the exit
code, and its numbers agree with the standalone `nnprobe compare` of the two saved results."""
from __future__ import annotations

import json
import textwrap

import pytest
from helpers import PLAIN_FLAGS, TESTS, factory_spec, make_wnid_folders

MODEL = factory_spec("color_net_1000")


@pytest.fixture
def setup(tmp_path):
    data = make_wnid_folders(tmp_path / "data", {5: 4, 350: 4, 998: 4, 600: 4})
    # the candidate: the same network, but every image it calls class 5 it now calls class 6 (4 of 16 flip)
    (tmp_path / "worse.py").write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(TESTS)!r})
        import torch
        from tiny_models import color_net_1000

        class Worse(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.net = color_net_1000()

            def forward(self, x):
                logits = self.net(x)
                return torch.where((logits.argmax(1) == 5)[:, None], logits.roll(1, dims=1), logits)

        def worse():
            return Worse()
    """))
    return data, f"{tmp_path / 'worse.py'}:worse"


def _eval(invoke, data, model, *extra):
    return invoke("eval", str(data), "--model", model, *PLAIN_FLAGS, "--workers", "0", *extra)


def test_eval_baseline_gates_the_drop_and_names_the_flips(invoke, setup, tmp_path, wnids):
    data, worse = setup
    base = _eval(invoke, data, MODEL, "--format", "json", "-o", str(tmp_path / "base.json"),
                 "--save-predictions", str(tmp_path / "base.preds"))
    assert base.returncode == 0, base.stderr
    cand = _eval(invoke, data, worse, "--format", "json", "--baseline", str(tmp_path / "base.json"),
                 "--max-drop-top1", "10pt", "--alpha", "0.1", "--save-predictions", str(tmp_path / "cand.preds"))
    assert cand.returncode == 1, cand.stderr  # 25 points down, p = 1/16 < 0.1
    body = json.loads(cand.stdout)
    assert (body["correct_top1"], body["total"]) == (12, 16)
    comparison = body["comparison"]
    gate = next(g for g in body["gates"] if g["name"] == "max-drop-top1")
    assert not gate["passed"] and gate in comparison["gates"]
    flips = comparison["flips_top1"]
    assert flips["right_to_wrong"] == 4 and flips["wrong_to_right"] == 0 and comparison["paired"]
    assert flips["p"] == pytest.approx(1 / 16) and all(p.startswith(f"{wnids[5]}/") for p in
                                                       flips["right_to_wrong_paths"])
    assert comparison["candidate"] == "this run" and comparison["baseline"] == str(tmp_path / "base.json")
    # the same numbers as `nnprobe compare` of the two saved results
    (tmp_path / "cand.json").write_text(cand.stdout)
    alone = invoke("compare", str(tmp_path / "base.json"), str(tmp_path / "cand.json"), "--max-drop-top1", "10pt",
                   "--alpha", "0.1", "--format", "json")
    assert alone.returncode == 1
    assert json.loads(alone.stdout)["gates"] == comparison["gates"]
    # not significant at alpha 0.05 with 4 discordant pairs (p = 0.0625): the gate passes
    lenient = _eval(invoke, data, worse, "--baseline", str(tmp_path / "base.json"), "--max-drop-top1", "10pt",
                    "--alpha", "0.05")
    assert lenient.returncode == 0, lenient.stderr


def test_baseline_needs_the_same_data_and_is_never_overwritten(invoke, setup, tmp_path):
    data, worse = setup
    assert _eval(invoke, data, MODEL, "--format", "json", "-o", str(tmp_path / "base.json"),
                 "--save-predictions", str(tmp_path / "base.preds")).returncode == 0
    before = (tmp_path / "base.json").read_bytes(), (tmp_path / "base.preds").read_bytes()
    for target in ("base.json", "base.preds"):
        refused = _eval(invoke, data, worse, "--baseline", str(tmp_path / "base.json"), "-o", str(tmp_path / target))
        assert refused.returncode == 2, refused.stderr
    assert ((tmp_path / "base.json").read_bytes(), (tmp_path / "base.preds").read_bytes()) == before
    other = make_wnid_folders(tmp_path / "other", {5: 4, 350: 4, 998: 4, 600: 3})
    different = _eval(invoke, other, MODEL, "--baseline", str(tmp_path / "base.json"))
    assert different.returncode == 2 and "Refusing to compare" in different.stderr
    orphan = _eval(invoke, data, MODEL, "--max-drop-top1", "1pt")
    assert orphan.returncode == 2 and "--baseline" in orphan.stderr


def test_robust_baseline_per_eps(invoke, setup, tmp_path):
    data, worse = setup
    args = ["--eps", "0,2/255", "--steps", "2", "--workers", "0", *PLAIN_FLAGS]
    base = invoke("robust", str(data), "--model", MODEL, *args, "--format", "json", "-o", str(tmp_path / "b.json"),
                  "--save-predictions", str(tmp_path / "b.preds"))
    assert base.returncode == 0, base.stderr
    cand = invoke("robust", str(data), "--model", worse, *args, "--format", "json", "--baseline",
                  str(tmp_path / "b.json"), "--max-drop-top1", "5pt")
    body = json.loads(cand.stdout)
    assert cand.returncode == 1 and body["points"][0]["correct_top1"] == 12
    points = body["comparison"]["points"]
    assert len(points) == 2 and body["comparison"]["paired"]
    assert [g["passed"] for g in body["comparison"]["gates"]][0] is False  # eps 0: 25 points down
