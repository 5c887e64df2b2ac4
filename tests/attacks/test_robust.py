"""Robust accuracy: early stop reports exactly what running every step reports, and both equal a plain
hand-written loop; folder data through the data layer equals the same tensors; gates."""
from __future__ import annotations

import pytest
import torch

import tinymodels
from nnprobe.attacks.robustness import gates_for, robust, robust_batches
from nnprobe.data.layouts import find_images
from nnprobe.errors import UsageError

EPS = (0.0, 4 / 255, 8 / 255)


def batches_of(x, y, size=32):
    return [(x[i:i + size], y[i:i + size]) for i in range(0, len(y), size)]


@pytest.fixture(scope="module")
def data():
    return tinymodels.make_data(96, seed=11)


@pytest.mark.parametrize("attack", ["pgd", "bim", "mifgsm", "pgd-l2"])
def test_early_stop_reports_the_same_as_all_steps(attack, data):
    x, y = data
    model = tinymodels.tiny_classifier()
    eps = (0.0, 0.25, 0.5) if attack == "pgd-l2" else EPS
    _, fast = robust_batches(model, batches_of(x, y), attack=attack, eps=eps, early_stop=True)
    _, full = robust_batches(model, batches_of(x, y), attack=attack, eps=eps, early_stop=False)
    assert torch.equal(fast.counts[:, :5], full.counts[:, :5])  # top-1, top-5, total, clean, fooled
    assert torch.allclose(fast.norms, full.norms, rtol=1e-6, atol=1e-9)
    assert 0 < fast.counts[2, 4] < fast.counts[2, 3]  # some but not all fooled at the largest eps
    assert fast.counts[2, 5] < full.counts[2, 5]  # and early stop did less work


def test_early_stop_returns_the_first_fooling_iterate_of_a_full_run(tiny, batch):
    from nnprobe.attacks import build

    x, y = batch
    attack = build("pgd", 8 / 255, steps=10, seed=5)
    fast = attack(tiny, x, y, first_success=True, early_stop=True)
    full = attack(tiny, x, y, first_success=True, early_stop=False)
    assert torch.equal(fast.success, full.success)
    assert (fast.adversarial - full.adversarial).abs().max().item() <= 1e-6
    assert torch.equal(fast.steps, full.steps)
    assert fast.gradient_passes < full.gradient_passes == 10 * len(y)


def plain_robust_top1(model, x, y, eps, steps, alpha) -> int:
    """Reference: full-batch PGD without random start, every step for every sample; a sample is robust
    when no iterate (the input, any intermediate, the last) changes its top-1 away from the label."""
    model.eval()
    adv = x.clone()
    ever = torch.zeros(len(y), dtype=torch.bool)
    for _ in range(steps):
        adv.requires_grad_(True)
        logits = model(adv)
        ever |= logits.argmax(1) != y
        grad, = torch.autograd.grad(torch.nn.functional.cross_entropy(logits, y), adv)
        adv = torch.clamp(x + torch.clamp(adv.detach() + alpha * grad.sign() - x, -eps, eps), 0, 1)
    with torch.no_grad():
        ever |= model(adv).argmax(1) != y
    return int((~ever).sum())


def test_robust_top1_equals_a_plain_loop(data):
    x, y = data
    model = tinymodels.tiny_classifier()
    result = robust(model, batches_of(x, y), attack="pgd", eps=EPS, steps=10, step_size=1 / 255,
                    random_start=False)
    expected = [plain_robust_top1(model, x, y, e, 10, 1 / 255) for e in EPS]
    assert [p.correct_top1 for p in result.points] == expected
    assert expected[0] == 96 and expected[2] < expected[1] < 96
    p = result.points[2]
    assert (p.total, p.clean_correct, p.fooled) == (96, 96, 96 - expected[2])
    assert p.attack_success_rate == (96 - expected[2]) / 96
    assert p.mean_linf <= 8 / 255 + 1e-7 and p.mean_l2 > 0


def test_folder_data_equals_the_same_tensors(tmp_path):
    model = tinymodels.tiny_classifier()
    pixels, labels = tinymodels.save_class_folders(tmp_path / "data", 40, seed=3)
    images = find_images(str(tmp_path / "data"), class_names=model.class_names, wnids=None,
                         num_classes=model.num_classes)
    assert len(images.samples) == 40
    from_folder = robust(model, images, attack="pgd", eps=EPS, batch_size=16, workers=0, device="cpu")
    from_tensors = robust(model, batches_of(pixels, labels, 16), attack="pgd", eps=EPS, device="cpu")
    assert [(p.correct_top1, p.correct_top5, p.total, p.fooled) for p in from_folder.points] == \
        [(p.correct_top1, p.correct_top5, p.total, p.fooled) for p in from_tensors.points]
    assert from_folder.points[0].total == 40
    assert from_folder.data["layout"] and from_folder.data["skipped"] == []


def test_bf16_reports_the_fp32_verdict_on_the_same_images(data):
    x, y = data
    result = robust(tinymodels.tiny_classifier(), batches_of(x[:32], y[:32]), attack="fgsm", eps=(0.0, 8 / 255),
                    precision="bf16", device="cpu")
    assert all(p.fp32_correct_top1 is not None for p in result.points)
    assert result.points[0].fp32_correct_top1 == 32
    assert abs(result.points[1].fp32_correct_top1 - result.points[1].correct_top1) <= 4
    fp32 = robust(tinymodels.tiny_classifier(), batches_of(x[:32], y[:32]), attack="fgsm", eps=(0.0, 8 / 255))
    assert fp32.points[1].fp32_correct_top1 is None


def test_gates(data):
    x, y = data
    result = robust(tinymodels.tiny_classifier(), batches_of(x, y), attack="pgd", eps=EPS,
                    min_robust_top1={8 / 255: 0.99, 0.0: 0.5})
    top1 = result.points[2].top1
    assert top1 < 0.99
    assert [(g.name, g.passed) for g in result.gates] == [("min-robust-top1@8/255", False),
                                                         ("min-robust-top1@0", True)]
    assert not result.passed
    with pytest.raises(UsageError, match="not among"):
        gates_for(result.points, {3 / 255: 0.1})
    body = result.to_dict()
    assert [set(p) >= {"eps", "top1", "top5", "correct_top1", "total"} for p in body["points"]] == [True] * 3
    assert body["points"][2]["top1"] == top1


@pytest.mark.parametrize("attack_id", ["pgd", "pgd-l2"])
def test_random_start_depends_on_the_sample_not_its_batch(attack_id, tiny, batch):
    from nnprobe.attacks import build

    x, y = batch
    eps = 0.5 if attack_id == "pgd-l2" else 8 / 255
    attack = build(attack_id, eps, steps=3, seed=9)
    whole = attack(tiny, x[:12], y[:12], sample_ids=torch.arange(12))
    part = attack(tiny, x[5:12], y[5:12], sample_ids=torch.arange(5, 12))
    assert (whole.adversarial[5:] - part.adversarial).abs().max().item() <= 1e-6
    other_seed = build(attack_id, eps, steps=3, seed=10)(tiny, x[:12], y[:12], sample_ids=torch.arange(12))
    assert not torch.equal(whole.adversarial, other_seed.adversarial)


def test_batch_size_does_not_change_robust_counts_with_random_start(data):
    x, y = data
    model = tinymodels.tiny_classifier()
    small = robust(model, batches_of(x, y, 7), attack="pgd", eps=EPS, steps=5)
    large = robust(model, batches_of(x, y, 48), attack="pgd", eps=EPS, steps=5)
    assert [(p.correct_top1, p.correct_top5, p.fooled) for p in small.points] == \
        [(p.correct_top1, p.correct_top5, p.fooled) for p in large.points]
    assert small.settings.random_start
