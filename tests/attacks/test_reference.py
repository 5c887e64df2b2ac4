"""Cross-checks against an independent implementation: torchattacks 3.5.1 on the same model and
inputs (the Classifier normalises inside, so torchattacks takes the same [0, 1] pixels)."""
from __future__ import annotations

import pytest
import torch
import torchattacks

from nnprobe.attacks import build, sweep

EPS = 8 / 255


def reference(name, model, **kwargs):
    attack = getattr(torchattacks, name)(model, **kwargs)
    return attack


def test_fgsm_equals_torchattacks(tiny, batch):
    x, y = batch
    ours = build("fgsm", EPS)(tiny, x, y).adversarial
    theirs = reference("FGSM", tiny, eps=EPS)(x, y)
    assert (ours - theirs).abs().max().item() <= 1e-6
    assert (ours != x).any()


@pytest.mark.parametrize("steps, alpha", [(10, 2 / 255), (7, 1 / 255)])
def test_pgd_without_random_start_equals_torchattacks(tiny, batch, steps, alpha):
    x, y = batch
    ours = build("pgd", EPS, steps=steps, step_size=alpha, random_start=False)(tiny, x, y).adversarial
    theirs = reference("PGD", tiny, eps=EPS, alpha=alpha, steps=steps, random_start=False)(x, y)
    assert (ours - theirs).abs().max().item() <= 1e-6


def test_bim_equals_torchattacks(tiny, batch):
    x, y = batch
    ours = build("bim", EPS, steps=6, step_size=2 / 255)(tiny, x, y).adversarial
    theirs = reference("BIM", tiny, eps=EPS, alpha=2 / 255, steps=6)(x, y)
    assert (ours - theirs).abs().max().item() <= 1e-6


def test_pgd_l2_without_random_start_equals_torchattacks(tiny, batch):
    # One image per call: torchattacks averages the loss over the batch and then adds 1e-10 to the
    # gradient norm, which shrinks the step of confidently classified samples in a large batch; we sum
    # per sample so a sample's step never depends on its batch. With one image the two agree.
    x, y = batch
    theirs_attack = reference("PGDL2", tiny, eps=0.5, alpha=0.1, steps=8, random_start=False)
    for i in range(12):
        xi, yi = x[i:i + 1], y[i:i + 1]
        ours = build("pgd-l2", 0.5, steps=8, step_size=0.1, random_start=False)(tiny, xi, yi).adversarial
        assert (ours - theirs_attack(xi, yi)).abs().max().item() <= 1e-6


def test_mifgsm_equals_torchattacks(tiny, batch):
    x, y = batch
    ours = build("mifgsm", EPS, steps=5, step_size=2 / 255)(tiny, x, y).adversarial
    theirs = reference("MIFGSM", tiny, eps=EPS, alpha=2 / 255, steps=5, decay=1.0)(x, y)
    assert (ours - theirs).abs().max().item() <= 1e-6


def test_fgsm_sweep_equals_one_fgsm_per_eps_with_one_gradient(tiny, batch):
    x, y = batch
    budgets = [1 / 255, 4 / 255, 8 / 255, 16 / 255]
    calls = []
    handle = tiny.register_forward_pre_hook(lambda module, args: calls.append(torch.is_grad_enabled()))
    try:
        swept = sweep("fgsm", tiny, x, y, budgets)
    finally:
        handle.remove()
    assert calls.count(True) == 1  # one gradient pass for the whole sweep
    assert calls.count(False) == len(budgets)  # one plain forward per eps, to judge what is returned
    for (attack, out), eps in zip(swept, budgets):
        single = build("fgsm", eps)(tiny, x, y)
        assert attack.eps == eps
        assert torch.equal(out.adversarial, single.adversarial)
        assert torch.equal(out.success, single.success)
