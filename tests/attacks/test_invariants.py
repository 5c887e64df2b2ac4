"""Invariants every registered attack must keep: parametrized over the registry, so a new attack is
tested the day it is registered."""
from __future__ import annotations

import pytest
import torch

import tinymodels
from nnprobe.attacks import REGISTRY, Attack, attack_ids, register
from nnprobe.attacks import build as build_attack
from nnprobe.errors import InputError, UsageError

IDS = attack_ids()
# Score-based attacks (square) query the model instead of following its gradient: 5000 queries by
# default and less damage per query, so these shared tests give them fewer queries and larger budgets
# (every invariant holds at any budget); their own tests run the full schedule on a tiny model.
QUERIES = {"square": 200, "square-l2": 200}
APGD_STEPS = {a: 10 for a in REGISTRY if a.startswith(("apgd", "fab"))}  # APGD and FAB: 100 steps by default
BUDGETS = {"square": 12 / 255, "square-l2": 1.5}
CASCADES = {a: {"steps": 5, "queries": 100} for a in REGISTRY if a.startswith(("autoattack", "fast"))}


def budget(attack_id: str) -> float:
    if attack_id in BUDGETS:
        return BUDGETS[attack_id]
    return 0.5 if REGISTRY[attack_id].norm == "l2" else 8 / 255


def build(attack_id: str, eps: float, **options):
    """The registry's `build`, with fewer queries for a score-based attack unless the test sets steps."""
    if attack_id in QUERIES:
        options.setdefault("steps", QUERIES[attack_id])
    if attack_id in APGD_STEPS:
        options.setdefault("steps", APGD_STEPS[attack_id])
    for name, value in CASCADES.get(attack_id, {}).items():  # autoattack: APGD steps and Square queries
        options.setdefault(name, value)
    return build_attack(attack_id, eps, **options)


def test_registry_has_the_documented_attacks():
    assert IDS == ["apgd-ce", "apgd-ce-l2", "apgd-dlr", "apgd-dlr-l2", "apgd-t", "apgd-t-l2", "apgd-t-malt",
                   "apgd-t-malt-l2", "autoattack",
                   "autoattack-l2", "autoattack-plus", "autoattack-plus-l2", "autoattack-rand", "autoattack-rand-l2",
                   "bim", "fab", "fab-l2", "fab-t", "fab-t-l2", "fast", "fast-l2", "fgsm", "mifgsm", "pgd", "pgd-l2",
                   "square", "square-l2"]


def test_duplicate_id_raises():
    with pytest.raises(ValueError, match="already registered"):
        register("pgd")(type("Again", (Attack,), {}))
    assert REGISTRY["pgd"].__name__ == "PGD"


@pytest.mark.parametrize("attack_id", IDS)
def test_perturbation_inside_ball_and_pixels_in_range(attack_id, tiny, batch):
    x, y = batch
    attack = build(attack_id, budget(attack_id), seed=0)
    out = attack(tiny, x, y)
    delta = out.adversarial - x
    if attack.norm == "linf":
        assert delta.abs().max().item() <= attack.eps + 1e-7
    else:
        assert delta.flatten(1).norm(dim=1).max().item() <= attack.eps + 1e-6
    assert out.adversarial.min().item() >= 0.0 and out.adversarial.max().item() <= 1.0
    assert delta.abs().max().item() > 0  # it did move
    assert out.adversarial.shape == x.shape


MODES = {"last iterate": {}, "first success": {"first_success": True},
         "early stop": {"first_success": True, "early_stop": True}}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("attack_id", IDS)
def test_success_is_measured_on_what_is_returned(attack_id, mode, tiny, batch):
    x, y = batch
    out = build(attack_id, budget(attack_id), seed=0)(tiny, x, y, **MODES[mode])
    with torch.no_grad():
        logits = tiny(out.adversarial)
    assert torch.equal(out.success, logits.argmax(1) != y)
    assert torch.allclose(out.logits, logits, atol=1e-5)
    assert 0 < int(out.success.sum()) < len(y)


@pytest.mark.parametrize("attack_id", IDS)
def test_accuracy_strictly_drops(attack_id, tiny, batch):
    x, y = batch
    with torch.no_grad():
        clean = (tiny(x).argmax(1) == y).sum().item()
    out = build(attack_id, budget(attack_id), seed=0)(tiny, x, y)
    robust = (out.logits.argmax(1) == y).sum().item()
    assert clean == 48
    assert robust < clean


@pytest.mark.parametrize("attack_id", IDS)
def test_modes_and_requires_grad_forced_during_and_restored_after(attack_id, tiny, batch):
    x, y = batch
    tiny.train()
    tiny.net.head.eval()  # a mixed state must come back exactly
    params = list(tiny.parameters())
    for i, p in enumerate(params):
        p.requires_grad_(i % 2 == 0)
    before_modes = [m.training for m in tiny.modules()]
    before_flags = [p.requires_grad for p in params]
    seen = []

    def spy(module, args):
        seen.append((any(m.training for m in tiny.modules()), any(p.requires_grad for p in params)))

    handle = tiny.register_forward_pre_hook(spy)
    try:
        out = build(attack_id, budget(attack_id), seed=0)(tiny, x, y)
    finally:
        handle.remove()
    assert seen and all(mode == (False, False) for mode in seen)
    assert [m.training for m in tiny.modules()] == before_modes
    assert [p.requires_grad for p in params] == before_flags
    assert all(p.grad is None for p in params)  # gradients w.r.t. the input only
    # in eval mode the result is deterministic: dropout and batch statistics were off
    tiny.eval()
    again = build(attack_id, budget(attack_id), seed=0)(tiny, x, y)
    assert torch.equal(out.adversarial, again.adversarial)


@pytest.mark.parametrize("attack_id", IDS)
def test_deterministic_with_a_seed(attack_id, tiny, batch):
    x, y = batch
    first = build(attack_id, budget(attack_id), seed=3)(tiny, x, y)
    second = build(attack_id, budget(attack_id), seed=3)(tiny, x, y)
    assert torch.equal(first.adversarial, second.adversarial)
    other = build(attack_id, budget(attack_id), seed=4)(tiny, x, y)
    if REGISTRY[attack_id].default_random_start:
        assert not torch.equal(first.adversarial, other.adversarial)
    else:
        assert torch.equal(first.adversarial, other.adversarial)


@pytest.mark.parametrize("attack_id", IDS)
def test_targeted_reaches_the_target_on_an_easy_model(attack_id, linear, batch):
    x, _ = batch
    with torch.no_grad():
        clean = linear(x).argmax(1)
    targets = (clean + 1) % tinymodels.CLASSES
    eps = 8.0 if REGISTRY[attack_id].norm == "l2" else 0.25
    steps = 1000 if attack_id in QUERIES else 20  # a random search needs more queries than PGD needs steps
    if getattr(REGISTRY[attack_id], "untargeted_only", False):  # autoattack: refused, in one sentence
        with pytest.raises(UsageError, match="untargeted"):
            build(attack_id, eps, seed=0)(linear, x, targets=targets)
        return
    if attack_id == "square-l2":
        # its eta squares are nearly zero-mean, so no L2 budget of 8 shifts the linear model's channel
        # means far enough; on the tiny net (own predictions + 1) it reaches every target at eps 3
        linear, eps = tinymodels.tiny_classifier(), 3.0
        with torch.no_grad():
            targets = (linear(x).argmax(1) + 1) % tinymodels.CLASSES
    out = build(attack_id, eps, steps=steps, seed=0)(linear, x, targets=targets) if REGISTRY[attack_id].iterative \
        else build(attack_id, eps)(linear, x, targets=targets)
    with torch.no_grad():
        reached = linear(out.adversarial).argmax(1)
    assert torch.equal(reached, targets)
    assert out.success.all()


@pytest.mark.parametrize("attack_id", IDS)
def test_own_prediction_is_the_default_label(attack_id, tiny, batch):
    x, _ = batch
    with torch.no_grad():
        own = tiny(x).argmax(1)
    implicit = build(attack_id, budget(attack_id), seed=0)(tiny, x)
    explicit = build(attack_id, budget(attack_id), seed=0)(tiny, x, own)
    assert torch.equal(implicit.adversarial, explicit.adversarial)


@pytest.mark.parametrize("attack_id", IDS)
def test_zero_budget_returns_the_input(attack_id, tiny, batch):
    x, y = batch
    out = build(attack_id, 0.0, seed=0)(tiny, x, y)
    assert torch.equal(out.adversarial, x)
    assert not out.success.any()


@pytest.mark.parametrize("bad", [torch.full((1, 3, 16, 16), 1.5), torch.full((1, 3, 16, 16), -0.1),
                                 torch.full((1, 3, 16, 16), float("nan")),
                                 torch.zeros(1, 3, 16, 16, dtype=torch.uint8), torch.zeros(3, 16, 16)])
def test_inputs_outside_unit_range_are_refused(bad, tiny):
    with pytest.raises(InputError):
        build("fgsm", 2 / 255)(tiny, bad, torch.zeros(1, dtype=torch.long))


def test_label_count_must_match(tiny, batch):
    x, y = batch
    with pytest.raises(InputError, match="labels"):
        build("fgsm", 2 / 255)(tiny, x, y[:3])


@pytest.mark.parametrize("options, message", [
    (dict(attack_id="fgsm", eps=2 / 255, steps=5), "one step"),
    (dict(attack_id="bim", eps=2 / 255, random_start=True), "no random start"),
    (dict(attack_id="pgd", eps=2.0), "above 1"),
    (dict(attack_id="pgd", eps=-0.1), "non-negative"),
    (dict(attack_id="pgd", eps=0.1, steps=0), "at least 1"),
    (dict(attack_id="pgd", eps=0.1, step_size=0.0), "positive"),
    (dict(attack_id="nope", eps=0.1), "not one of"),
])
def test_bad_options_are_usage_errors(options, message):
    attack_id = options.pop("attack_id")
    eps = options.pop("eps")
    with pytest.raises(UsageError, match=message):
        build(attack_id, eps, **options)


def test_default_step_sizes_are_relative_to_eps():
    assert build("fgsm", 4 / 255).step_size == 4 / 255
    assert build("pgd", 4 / 255, steps=10).step_size == pytest.approx(2.5 * 4 / 255 / 10)
    assert build("bim", 4 / 255, steps=5).step_size == pytest.approx(2.5 * 4 / 255 / 5)
    assert build("mifgsm", 4 / 255, steps=10).step_size == pytest.approx(4 / 255 / 10)
    assert build("pgd", 4 / 255, step_size=0.01).step_size == 0.01
