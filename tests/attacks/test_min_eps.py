"""`fool --min-eps`: the smallest budget on the 1/255 grid whose written 8-bit PNG fools the model.

References are independent of the search: a closed form on a linear model (the L∞ budget that moves
the margin by ‖w_c − w_j‖₁·k/255, on whole grey levels), a linear scan for the bracketing itself, and
plain `fool` runs at the answer and one grey level below it (same seed)."""
from __future__ import annotations

import json
import math
import os
import random

import numpy as np
import pytest
import torch
from PIL import Image

import tinymodels
from nnprobe.attacks.photo import fool
from nnprobe.attacks.photo_search import bracket

TINY = f"{os.path.join(os.path.dirname(__file__), 'tinymodels.py')}:tiny_classifier"
BIAS = torch.tensor([0.1, 0.0, -1.0, -1.0])  # class 0 on top of a grey photo, 0.1 ahead of class 1


def scan(fools, last):
    """The reference: the first level in 1..last that fools, by looking at every one."""
    return next((k for k in range(1, last + 1) if fools(k)), None)


@pytest.mark.parametrize("first", [1, 3, 32])
def test_bracket_equals_a_linear_scan_on_every_threshold(first):
    for last in range(1, 70):
        for threshold in range(0, 72):
            calls = []

            def fools(k):
                calls.append(k)
                return k >= threshold

            assert bracket(fools, first, last) == scan(lambda k: k >= threshold, last)
            assert len(calls) == len(set(calls)) and all(1 <= k <= last for k in calls)
            assert len(calls) <= 2 * math.ceil(math.log2(last + 1)) + 2


def test_bracket_on_any_verdict_answers_a_hit_whose_lower_neighbour_missed():
    rng = random.Random(0)
    for _ in range(3000):
        last = rng.randint(1, 80)
        hits = {k for k in range(1, last + 1) if rng.random() < 0.3}
        calls = []
        found = bracket(lambda k: calls.append(k) or k in hits, rng.choice([1, 2, 5]), last)
        if found is None:
            assert last in calls and last not in hits
        else:
            assert found in hits and (found == 1 or found - 1 in calls or found - 1 == 0)
            below = [k for k in calls if k < found]
            assert all(k not in hits for k in below)


def closed_form_levels(photo_path: str, model) -> int:
    """Smallest k with k/255·‖w_c − w_j‖₁ > margin_j for some j (float64): on a linear model in pixel
    space the best L∞ perturbation for class j is k/255·sign(w_j − w_c), exact on the 8-bit grid when
    no pixel is clamped."""
    x = torch.from_numpy(np.asarray(Image.open(photo_path), dtype=np.float64)).permute(2, 0, 1).reshape(-1) / 255
    weight, bias = model.net.fc.weight.detach().double(), model.net.fc.bias.detach().double()
    logits = weight @ x + bias
    c = int(logits.argmax())
    best = None
    for j in range(len(logits)):
        if j != c:
            margin, l1 = float(logits[c] - logits[j]), float((weight[c] - weight[j]).abs().sum())
            ratio = margin * 255 / l1
            assert abs(ratio - round(ratio)) > 1e-3  # not a knife-edge case for float32
            k = math.floor(ratio) + 1
            best = k if best is None else min(best, k)
    return best


@pytest.mark.parametrize("search", ["fmn", "bisection"])
@pytest.mark.parametrize("seed", [5, 11])
def test_min_eps_equals_the_closed_form_on_a_linear_model(tmp_path, seed, search):
    photo = tinymodels.save_photo(tmp_path / "in" / f"p{seed}.png", seed=seed, size=(16, 16))
    model = tinymodels.linear_classifier(BIAS)
    expected = closed_form_levels(photo, model)
    pixels = np.asarray(Image.open(photo), dtype=np.int64)
    assert expected <= pixels.min() and pixels.max() + expected <= 255  # clamping does not bind
    result = fool([photo], model=model, min_eps=True, space="model", out_dir=tmp_path / "out", device="cpu",
                  min_eps_search=search)
    (item,) = result.items
    assert result.settings.attack == "pgd" and item.search.method == search
    assert item.search.min_eps * 255 == pytest.approx(expected, abs=1e-9)
    assert item.eps == item.search.min_eps and item.success and item.search.grid == 1 / 255
    levels = [round(t.eps * 255) for t in item.search.trials]
    verdicts = {round(t.eps * 255): t.fooled for t in item.search.trials}
    doubling = [2 ** i for i in range(7) if 2 ** i < expected]
    if search == "bisection":
        assert levels[: len(doubling) + 1] == doubling + [2 ** len(doubling)]  # then bisection
    else:  # FMN's distance lands on the answer: that level and the one below are all it tries
        assert levels == [expected, expected - 1]
    assert all(verdicts[k] == (k >= expected) for k in levels)  # the float model agrees with the closed form
    assert expected - 1 in levels or expected == 1
    written = np.asarray(Image.open(item.adversarial_image), dtype=np.int64)
    assert np.abs(written - pixels).max() == expected
    assert item.linf == pytest.approx(expected / 255)


def test_one_level_below_the_answer_does_not_fool_and_the_answer_does_with_the_same_seed(tmp_path):
    photo = tinymodels.save_photo(tmp_path / "in" / "wide.png", seed=4, size=(30, 20))
    searched = fool([photo], model=tinymodels.tiny_classifier(), min_eps=True, steps=5, seed=3,
                    out_dir=tmp_path / "search", device="cpu", min_eps_search="bisection")
    (item,) = searched.items
    found = round(item.search.min_eps * 255)
    assert found >= 2, "pick a photo that needs more than one grey level"
    plain = fool([photo], model=tinymodels.tiny_classifier(), attack="pgd", steps=5, seed=3,
                 eps=[(found - 1) / 255, found / 255], out_dir=tmp_path / "plain", device="cpu")
    below, at = plain.items
    assert not below.success and at.success
    assert open(at.adversarial_image, "rb").read() == open(item.adversarial_image, "rb").read()
    assert (at.linf, at.l2, at.steps) == (item.linf, item.l2, item.steps)


def test_not_fooled_up_to_the_cap_reports_null_and_the_image_at_the_cap(tmp_path):
    photo = tinymodels.save_photo(tmp_path / "in" / "p.png", seed=5, size=(16, 16))
    result = fool([photo], model=tinymodels.linear_classifier(BIAS), min_eps=True, max_eps="5/255",
                  space="model", out_dir=tmp_path / "out", device="cpu", min_eps_search="bisection")
    (item,) = result.items
    assert item.search.min_eps is None and not item.success
    assert [round(t.eps * 255) for t in item.search.trials] == [1, 2, 4, 5]
    guided = fool([photo], model=tinymodels.linear_classifier(BIAS), min_eps=True, max_eps="5/255",
                  space="model", out_dir=tmp_path / "fmn", device="cpu").items[0]
    assert guided.search.min_eps is None and not guided.success  # FMN's distance is past the cap: tried there
    assert [round(t.eps * 255) for t in guided.search.trials] == [5] and guided.eps == 5 / 255
    assert item.eps == 5 / 255 and item.search.cap == 5 / 255
    body = result.to_dict()["items"][0]
    assert body["min_eps"] is None and body["min_eps_255"] is None
    assert [t["fooled"] for t in body["search"]["trials"]] == [False] * 4


def test_targeted_photo_already_at_the_target_needs_no_budget(tmp_path):
    photo = tinymodels.save_photo(tmp_path / "in" / "p.png", seed=5, size=(16, 16))
    result = fool([photo], model=tinymodels.linear_classifier(BIAS), min_eps=True, target=0, space="model",
                  out_dir=tmp_path / "out", device="cpu")
    (item,) = result.items
    assert item.search.min_eps == 0 and item.success and item.linf == 0
    assert [t.eps for t in item.search.trials] == [0]


def test_l2_search_answers_a_fooling_budget_whose_neighbour_below_does_not(tmp_path):
    photo = tinymodels.save_photo(tmp_path / "in" / "p.png", seed=2, size=(16, 16))
    result = fool([photo], model=tinymodels.tiny_classifier(), attack="pgd-l2", min_eps=True, steps=5,
                  space="model", out_dir=tmp_path / "out", device="cpu")
    (item,) = result.items
    trials = {round(t.eps * 255): t.fooled for t in item.search.trials}
    found = round(item.search.min_eps * 255)
    assert item.search.method.startswith("fmn") and trials[found] and item.success
    assert trials.get(found - 1) is False or found == 1
    assert item.l2 <= item.search.min_eps + 1e-9
    assert result.settings.norm == "l2"


def test_cli_min_eps_json_and_table(tmp_path, invoke):
    photo = tinymodels.save_photo(tmp_path / "in" / "p.png", seed=2)
    proc = invoke("fool", photo, "--model", TINY, "--min-eps", "--steps", "3", "--out", str(tmp_path / "o"),
                  "--format", "json", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    (item,) = json.loads(proc.stdout)["items"]
    assert item["min_eps"] == item["eps"] and item["min_eps_255"] == pytest.approx(item["eps"] * 255)
    assert item["search"]["trials"][-1]["eps"] <= 64 / 255 and item["search"]["cap"] == 64 / 255
    assert os.path.isfile(item["panel_image"])
    proc = invoke("fool", photo, "--model", TINY, "--min-eps", "--steps", "3", "--out", str(tmp_path / "t"),
                  "--device", "cpu")
    assert proc.returncode == 0 and "min eps: smallest fooling budget" in proc.stdout
    plain = invoke("fool", photo, "--model", TINY, "--eps", "8/255", "--out", str(tmp_path / "p"),
                   "--format", "json", "--device", "cpu")
    (plain_item,) = json.loads(plain.stdout)["items"]
    assert "search" not in plain_item and "min_eps" not in plain_item


@pytest.mark.parametrize("args, message", [
    (["--min-eps", "--eps", "2/255"], "--eps and --min-eps exclude each other"),
    (["--min-eps", "--attack", "fgsm"], "iterative attack"),
    (["--max-eps", "8/255"], "--max-eps caps the search"),
    (["--min-eps", "--max-eps", "0.5/255"], "--max-eps must be one budget from 1/255 to 1 for pgd"),
    (["--min-eps", "--max-eps", "2"], "--max-eps must be one budget from 1/255 to 1 for pgd"),
    (["--min-eps", "--max-eps", "x"], "--max-eps 'x' is not a number"),
])
def test_cli_min_eps_option_errors_exit_2(tmp_path, invoke, args, message):
    photo = tinymodels.save_photo(tmp_path / "in" / "p.png", seed=2)
    proc = invoke("fool", photo, "--model", TINY, *args, "--out", str(tmp_path / "o"), "--device", "cpu")
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert not (tmp_path / "o").exists()
