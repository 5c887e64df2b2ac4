"""The cost of an attack in pass equivalents (forward 1, backward 2 per image; `nnprobe/attacks/cost.py`):
counted by module hooks, checked against a model that counts its own forwards and backwards (an
autograd.Function on its input), for every registered attack, and reported per eps by `robust`."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import tinymodels
from nnprobe.attacks import REGISTRY, build
from nnprobe.attacks.cost import Meter
from nnprobe.attacks.robustness import robust
from nnprobe.models.classifier import Classifier


class _CountBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, counter):
        ctx.counter = counter
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        ctx.counter.backwards += grad.shape[0]
        return grad, None


class Counting(nn.Module):
    """The tiny net, counting the images of each forward and of each backward that reaches its input."""

    def __init__(self) -> None:
        super().__init__()
        self.net = tinymodels.TinyNet()
        self.net.load_state_dict(tinymodels._trained_state())
        self.forwards = self.backwards = 0

    def forward(self, x):
        self.forwards += x.shape[0]
        if x.requires_grad:
            x = _CountBackward.apply(x, self)
        return self.net(x)


def counting_classifier() -> Classifier:
    return Classifier(Counting(), tinymodels.info("counting"), [f"class{i}" for i in range(4)]).eval()


def cheap(attack_id: str) -> dict:
    if attack_id.startswith("square"):
        return {"steps": 30}
    cls = REGISTRY[attack_id]
    options = {"steps": 3} if cls.iterative else {}
    if "autoattack" in attack_id or attack_id.startswith("fast"):
        options["queries"] = 20
    return options


@pytest.mark.parametrize("attack_id", sorted(REGISTRY))
def test_meter_counts_what_the_model_runs_for_every_attack(attack_id):
    model = counting_classifier()
    x, y = tinymodels.make_data(6, seed=3)
    eps = 0.5 if REGISTRY[attack_id].ball.id == "l2" else 8 / 255
    attack = build(attack_id, eps, seed=0, **cheap(attack_id))
    meter = Meter()
    with meter.counting(model):
        attack(model, x, y, first_success=True, early_stop=True, sample_ids=torch.arange(6))
    inner = model.net
    assert inner.forwards > 0
    assert (meter.forwards, meter.backwards) == (inner.forwards, inner.backwards)
    assert meter.cost == inner.forwards + 2 * inner.backwards
    if attack_id.startswith("square"):
        assert meter.backwards == 0
    else:
        assert meter.backwards > 0


def test_pgd_cost_by_hand():
    """PGD, 5 steps, no early stop: 5 gradients and one forward of the returned images per sample."""
    model = counting_classifier()
    x, y = tinymodels.make_data(4, seed=1)
    meter = Meter()
    with meter.counting(model):
        build("pgd", 2 / 255, steps=5, random_start=False)(model, x, y)
    assert (meter.forwards, meter.backwards, meter.cost) == (6 * 4, 5 * 4, (6 + 10) * 4)


def test_robust_reports_cost_per_eps_and_early_stop_lowers_it():
    model = counting_classifier()
    x, y = tinymodels.make_data(16, seed=5)
    runs = {}
    for early_stop in (True, False):
        model.net.forwards = model.net.backwards = 0
        runs[early_stop] = robust(model, [(x, y)], attack="pgd", eps=(0.0, 8 / 255), steps=5, early_stop=early_stop,
                                  device="cpu")
    stopped, full = runs[True].points, runs[False].points
    assert stopped[0].cost == full[0].cost == 0  # eps 0: nothing attacked
    assert 0 < stopped[1].cost < full[1].cost
    # without early stop every sample runs 5 gradient steps (3 each); then one forward of the returned image
    # for every sample no earlier iterate fooled, which includes every sample still right
    assert 16 * 5 * 3 + full[1].correct_top1 <= full[1].cost <= 16 * 5 * 3 + 16
    assert full[1].cost_per_image == full[1].cost / full[1].clean_correct
    body = runs[True].to_dict()["points"][1]
    assert body["cost"] == stopped[1].cost and body["cost_per_image"] == pytest.approx(stopped[1].cost_per_image)
