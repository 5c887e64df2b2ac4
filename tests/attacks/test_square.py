"""Square attack (square, square-l2): the reference's search step for step, robust accuracy close to
torchattacks' Square, per-sample randomness, early stop, exact query counts, no gradients, and the
gradient-masking case it exists for."""
from __future__ import annotations

import math

import pytest
import torch
import torchattacks
from torch import nn

import tinymodels
from nnprobe.attacks import build
from nnprobe.attacks.base import SampleRandom
from nnprobe.attacks.square import _Streams, eta, margin, p_selection
from nnprobe.errors import UsageError

NORMS = {"square": "Linf", "square-l2": "L2"}
EPS = {"square": 12 / 255, "square-l2": 1.5}  # budgets at which a few hundred queries fool part of the tiny set


def inside(attack, x, adv) -> bool:
    return bool((attack.ball.distance(adv - x) <= attack.eps * (1 + 1e-6) + 1e-7).all())


class Queries:
    """Counts the samples the model sees and whether any forward ran with gradients enabled."""

    def __init__(self, model: nn.Module) -> None:
        self.samples, self.with_grad = 0, 0
        self.handle = model.register_forward_pre_hook(self.count)

    def count(self, module, args) -> None:
        self.samples += args[0].shape[0]
        self.with_grad += int(torch.is_grad_enabled() or args[0].requires_grad)


# ---------------------------------------------------------------- pieces equal to the reference

@pytest.mark.parametrize("n_queries", [100, 1000, 5000, 7])
def test_p_selection_is_the_references(tiny, n_queries):
    reference = torchattacks.Square(tiny, n_queries=n_queries, p_init=0.8)
    assert [p_selection(0.8, i, n_queries) for i in range(n_queries)] == \
        [reference.p_selection(i) for i in range(n_queries)]


def test_eta_is_the_references_up_to_its_random_transpose(tiny):
    reference = torchattacks.Square(tiny, norm="L2")
    reference.device = torch.device("cpu")
    for s in range(2, 24):
        theirs = reference.eta(s)
        assert torch.equal(theirs, eta(s)) or torch.equal(theirs, eta(s).T)
        assert abs(float(eta(s).norm()) - 1) < 1e-6


class Feed:
    """The uniform numbers nnprobe's square draws for one sample, in its order, served to torchattacks'
    random calls (random_choice, random_int, eta's transpose) in the reference's order of calls."""

    def __init__(self, attack, sample_id: int, init_count: int, steps: int) -> None:
        g = SampleRandom(attack.seed, 1, torch.tensor([sample_id]), "cpu").generators[0]
        width = attack.draws(3)
        blocks = [torch.rand(init_count, generator=g)]
        blocks += [torch.rand((_Streams.CHUNK, width), generator=g).flatten()
                   for _ in range(math.ceil(steps / _Streams.CHUNK))]
        self.numbers, self.at = torch.cat(blocks), 0

    def take(self, count: int) -> torch.Tensor:
        self.at += count
        return self.numbers[self.at - count:self.at]

    def patch(self, reference) -> None:
        reference.random_choice = lambda shape: torch.sign(2 * self.take(math.prod(shape)).view(*shape) - 1)
        reference.random_int = lambda low=0, high=1, shape=(1,): \
            (low + (high - low) * self.take(math.prod(shape)).view(*shape)).long()

        def fixed_eta(s):  # the reference's eta with its torch.rand transpose taken from the feed
            delta = torch.zeros(s, s)
            delta[:s // 2] = reference.eta_rectangles(s // 2, s)
            delta[s // 2:] = -reference.eta_rectangles(s - s // 2, s)
            delta /= (delta ** 2).sum(dim=(0, 1), keepdim=True).sqrt()
            return delta.permute(1, 0) if self.take(1)[0] > 0.5 else delta

        reference.eta = fixed_eta


@pytest.mark.parametrize("attack_id", ["square", "square-l2"])
def test_one_image_follows_the_references_search_exactly(attack_id, tiny, batch):
    """Fed the same random numbers, torchattacks' attack_single_run takes the same squares, keeps the
    same candidates and stops at the same query, image by image, to the last bit."""
    x, y = batch
    steps, eps = 300, EPS[attack_id]
    attack = build(attack_id, eps, steps=steps, seed=4)
    init_count = 3 * 16 if attack_id == "square" else 25 * 4  # stripes (c·w) or 5×5 eta blocks (flip + c signs)
    fooled = 0
    for i in range(8):
        xi, yi = x[i:i + 1], y[i:i + 1]
        ours = attack(tiny, xi, yi, first_success=True, early_stop=True, sample_ids=torch.tensor([50 + i]))
        reference = torchattacks.Square(tiny, norm=NORMS[attack_id], eps=eps, n_queries=steps, p_init=0.8)
        Feed(attack, 50 + i, init_count, steps).patch(reference)
        reference.init_hyperparam(xi)
        queries, theirs = reference.attack_single_run(xi, yi)
        assert torch.equal(ours.adversarial, theirs), i  # bit for bit
        assert int(ours.steps[0]) == int(queries[0]) - 1, i  # theirs counts the start as a query
        with torch.no_grad():
            assert bool(ours.success[0]) == bool(tiny(theirs).argmax(1)[0] != yi[0])
        fooled += int(ours.success[0])
    assert 0 < fooled < 8  # both outcomes were compared


@pytest.mark.parametrize("attack_id", ["square", "square-l2"])
def test_robust_accuracy_agrees_with_torchattacks(attack_id, tiny, capsys):
    """Their squares are shared by the batch, ours drawn per sample, so only the rates can agree. Over
    seeds 0–5 the robust counts of 64 were L∞ ours 7–12 (mean 9.0), theirs 8–13 (10.2); L2 ours 6–10
    (7.5), theirs 7–8 (7.7): the means agree within 1.2, each count's spread is ~2, so a difference
    above 8 (≈3 standard deviations of the difference of two counts) is a bug, not chance."""
    x, y = tinymodels.make_data(64, seed=11)
    eps, queries = EPS[attack_id], 1000
    ours = build(attack_id, eps, steps=queries, seed=0)(tiny, x, y, first_success=True, early_stop=True)
    adv = torchattacks.Square(tiny, norm=NORMS[attack_id], eps=eps, n_queries=queries, n_restarts=1,
                              p_init=0.8, seed=0)(x, y)
    with torch.no_grad():
        assert bool((tiny(x).argmax(1) == y).all())
        theirs = tiny(adv).argmax(1) != y
    both, neither = int((ours.success & theirs).sum()), int((~ours.success & ~theirs).sum())
    only_ours, only_theirs = int((ours.success & ~theirs).sum()), int((~ours.success & theirs).sum())
    with capsys.disabled():
        print(f"\n{attack_id} eps {eps:.4f} {queries} queries, 64 samples: robust ours {64 - int(ours.success.sum())}, "
              f"theirs {64 - int(theirs.sum())}; per sample: both fooled {both}, both robust {neither}, "
              f"only ours fooled {only_ours}, only theirs fooled {only_theirs}")
    assert abs(int(ours.success.sum()) - int(theirs.sum())) <= 8
    assert 0 < int(ours.success.sum()) < 64  # a comparison of two non-trivial rates
    assert both + neither >= 48  # and most samples get the same verdict


# ---------------------------------------------------------------- invariants, semantics and work

@pytest.mark.parametrize("targeted", [False, True])
@pytest.mark.parametrize("attack_id", ["square", "square-l2"])
def test_budget_range_and_success_on_what_is_returned(attack_id, targeted, tiny, batch):
    x, y = batch
    with torch.no_grad():
        goal = (tiny(x).argmax(1) + 1) % tinymodels.CLASSES if targeted else y
    attack = build(attack_id, EPS[attack_id] * (1.5 if targeted else 1), steps=200, seed=1)
    for mode in ({}, {"first_success": True}, {"first_success": True, "early_stop": True}):
        out = attack(tiny, x, targets=goal, **mode) if targeted else attack(tiny, x, y, **mode)
        assert inside(attack, x, out.adversarial) and out.adversarial.min() >= 0 and out.adversarial.max() <= 1
        with torch.no_grad():
            logits = tiny(out.adversarial)
        assert torch.allclose(out.logits, logits, atol=1e-5)
        assert torch.equal(out.success, logits.argmax(1) == goal if targeted else logits.argmax(1) != y)
        assert 0 < int(out.success.sum()) < len(y)


@pytest.mark.parametrize("attack_id", ["square", "square-l2"])
def test_last_iterate_keeps_lowering_the_margin_after_success(attack_id, tiny, batch):
    """first_success returns the first fooling image (the reference's); the last iterate searches on
    and returns one at least as confident, still fooling."""
    x, y = batch
    attack = build(attack_id, EPS[attack_id], steps=200, seed=2)
    first = attack(tiny, x, y, first_success=True)
    last = attack(tiny, x, y)
    assert torch.equal(last.success, first.success)
    fooled = first.success
    assert bool((margin(last.logits, y, False)[fooled] <= margin(first.logits, y, False)[fooled]).all())
    assert bool((margin(last.logits, y, False)[fooled] < margin(first.logits, y, False)[fooled]).any())
    assert torch.equal(last.adversarial[~fooled], first.adversarial[~fooled])


@pytest.mark.parametrize("attack_id", ["square", "square-l2"])
def test_a_sample_does_not_depend_on_its_batch(attack_id, tiny, batch):
    x, y = batch[0][:8], batch[1][:8]
    ids = torch.arange(8) + 200
    attack = build(attack_id, EPS[attack_id], steps=100, seed=3)
    for mode in ({}, {"first_success": True, "early_stop": True}):
        whole = attack(tiny, x, y, sample_ids=ids, **mode)
        flipped = attack(tiny, x.flip(0), y.flip(0), sample_ids=ids.flip(0), **mode)
        assert torch.equal(flipped.adversarial.flip(0), whole.adversarial)
        for i in range(8):
            alone = attack(tiny, x[i:i + 1], y[i:i + 1], sample_ids=ids[i:i + 1], **mode)
            assert (alone.adversarial[0] - whole.adversarial[i]).abs().max().item() <= 1e-6
            assert int(alone.steps[0]) == int(whole.steps[i]) and bool(alone.success[0]) == bool(whole.success[i])
    assert 0 < int(whole.success.sum()) < 8
    other = build(attack_id, EPS[attack_id], steps=100, seed=4)(tiny, x, y, sample_ids=ids)
    assert not torch.equal(other.adversarial, whole.adversarial)


@pytest.mark.parametrize("attack_id", ["square", "square-l2"])
def test_early_stop_changes_only_the_work_and_queries_are_counted_exactly(attack_id, tiny, batch):
    x, y = batch
    n, steps = len(y), 200
    attack = build(attack_id, EPS[attack_id], steps=steps, seed=5)
    runs = {}
    for early_stop in (False, True):
        seen = Queries(tiny)
        try:
            runs[early_stop] = attack(tiny, x, y, first_success=True, early_stop=early_stop)
        finally:
            seen.handle.remove()
        assert seen.with_grad == 0  # black-box: not one forward with gradients
        assert runs[early_stop].gradient_passes == seen.samples
    full, stopped = runs[False], runs[True]
    assert torch.equal(full.adversarial, stopped.adversarial) and torch.equal(full.steps, stopped.steps)
    assert torch.equal(full.success, stopped.success) and torch.allclose(full.logits, stopped.logits, atol=1e-5)
    assert full.gradient_passes == n + n + n * steps  # the clean image, the start, every query
    assert stopped.gradient_passes == n + n + int(stopped.steps.sum())  # each sample until its success
    assert 0 < int(stopped.success.sum()) < n and stopped.gradient_passes < full.gradient_passes


def test_samples_already_wrong_come_back_unchanged_after_one_query(tiny, batch):
    x, y = batch
    wrong = (y + 1) % tinymodels.CLASSES  # every clean prediction is right, so these labels are all wrong
    for attack_id in ("square", "square-l2"):
        out = build(attack_id, EPS[attack_id], steps=50, seed=0)(tiny, x, wrong)
        assert torch.equal(out.adversarial, x) and bool(out.success.all())
        assert out.gradient_passes == len(y) and int(out.steps.sum()) == 0


@pytest.mark.parametrize("attack_id", ["square", "square-l2"])
@pytest.mark.parametrize("size", [(12, 20), (4, 4), (31, 9)])
def test_any_image_size(attack_id, size, tiny):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, *size, generator=g)
    attack = build(attack_id, EPS[attack_id], steps=40, seed=0)
    out = attack(tiny, x)
    assert inside(attack, x, out.adversarial) and out.adversarial.min() >= 0 and out.adversarial.max() <= 1
    assert bool((attack.ball.distance(out.adversarial - x) > 0).all())
    with torch.no_grad():
        assert torch.equal(out.success, tiny(out.adversarial).argmax(1) != tiny(x).argmax(1))


class Rounded(nn.Module):
    """The tiny net behind 8-bit rounding: the input gradient is exactly zero everywhere (a masked model)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(torch.round(x * 255) / 255)


@pytest.mark.parametrize("attack_id, white_box", [("square", "pgd"), ("square-l2", "pgd-l2")])
def test_a_model_with_zero_gradients_falls_to_square_not_to_pgd(attack_id, white_box, tiny):
    x, y = tinymodels.make_data(32, seed=5)
    model = Rounded(tiny)
    pixels = x.clone().requires_grad_(True)
    grad, = torch.autograd.grad(nn.functional.cross_entropy(model(pixels), y, reduction="sum"), pixels)
    assert not grad.any()
    pgd = build(white_box, EPS[attack_id], steps=50, seed=0)(model, x, y, first_success=True)
    plain = build(white_box, EPS[attack_id], steps=50, seed=0)(tiny, x, y, first_success=True)
    square = build(attack_id, EPS[attack_id], steps=1000, seed=0)(model, x, y, first_success=True, early_stop=True)
    assert int(plain.success.sum()) == 32  # the budget is ample: without the rounding PGD fools all
    assert int(pgd.success.sum()) == 0  # with it, PGD never moves past its random start
    assert int(square.success.sum()) >= 16  # square needs no gradient (27 and 30 of 32 here)


def test_options():
    assert build("square", 8 / 255).steps == 5000 and build("square-l2", 0.5).steps == 5000
    assert build("square", 8 / 255).random_start and build("square", 8 / 255).norm == "linf"
    assert build("square-l2", 0.5).norm == "l2" and build("square", 8 / 255, steps=7).steps == 7
    with pytest.raises(UsageError, match="step-size"):
        build("square", 8 / 255, step_size=0.01)
    with pytest.raises(UsageError, match="random point"):
        build("square-l2", 0.5, random_start=False)
    with pytest.raises(UsageError, match="p_init"):
        type(build("square", 0.1))(0.1, p_init=0.0)
    with pytest.raises(UsageError, match="above 1"):
        build("square", 2.0)


@pytest.mark.parametrize("attack_id", ["square", "square-l2"])
def test_robust_counts_do_not_depend_on_batching_or_early_stop(attack_id):
    """Through `robust`: sample ids are data-set positions, so batch size and early stop change only
    the work (the queries counted), never a count."""
    from nnprobe.attacks.robustness import robust

    x, y = tinymodels.make_data(40, seed=13)
    model = tinymodels.tiny_classifier()
    eps = (0.0, EPS[attack_id])
    runs = {}
    for size, early_stop in ((40, True), (7, True), (40, False)):
        batches = [(x[i:i + size], y[i:i + size]) for i in range(0, len(y), size)]
        runs[size, early_stop] = robust(model, batches, attack=attack_id, eps=eps, steps=60, early_stop=early_stop,
                                        device="cpu").points
    counts = {key: [(p.correct_top1, p.correct_top5, p.fooled) for p in points] for key, points in runs.items()}
    assert counts[40, True] == counts[7, True] == counts[40, False]
    assert 0 < counts[40, True][1][2] < counts[40, True][0][0]  # some, not all, fooled
    assert runs[40, True][1].gradient_passes == runs[7, True][1].gradient_passes
    assert runs[40, True][1].gradient_passes < runs[40, False][1].gradient_passes == 40 * (1 + 1 + 60)
