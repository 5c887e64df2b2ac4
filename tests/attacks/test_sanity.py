"""Gradient-masking and sanity checks of `robust`: each check fires on a tiny model built to trip it, with
its evidence, and none fires on the healthy tiny model; the checks change no robust count."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import tinymodels
from nnprobe.attacks.robustness import robust, robust_batches
from nnprobe.attacks.sanity import SUBSET, Probe, output_difference, probability_rows, sign_noise
from nnprobe.attacks.base import SampleRandom
from nnprobe.attacks.norms import L2, Linf
from nnprobe.models.classifier import Classifier

EPS = (0.0, 4 / 255, 8 / 255)


@pytest.fixture(scope="module")
def data():
    return tinymodels.make_data(48, seed=21)


def batches_of(x, y, size=24):
    return [(x[i:i + size], y[i:i + size]) for i in range(0, len(y), size)]


def trained_net() -> tinymodels.TinyNet:
    net = tinymodels.TinyNet()
    net.load_state_dict(tinymodels._trained_state())
    return net.eval()


class Wrapped(nn.Module):
    """The trained tiny net with a twist applied to its input or output."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.net, self.kind = trained_net(), kind

    def forward(self, x):
        if self.kind == "round":  # quantised input: the gradient of round() is zero everywhere
            return self.net(torch.round(x * 4) / 4)
        logits = self.net(x)
        if self.kind == "onehot":  # argmax one-hot, still in the graph (0 * logits): zero gradients
            return nn.functional.one_hot(logits.argmax(1), logits.shape[1]).float() * 10 + 0 * logits
        if self.kind == "softmax":
            return logits.softmax(dim=1)
        if self.kind == "dropout":  # dropout forced on, even in eval mode
            return nn.functional.dropout(logits, p=0.5, training=True)
        if self.kind == "detached":  # the net's own outputs, but no gradient reaches the input
            return self.net(x.detach()) + 0 * x.sum()
        if self.kind == "reversed":  # gradients point the wrong way: ascent on the loss descends it
            return Reverse.apply(logits)
        return logits


class Reverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return -grad


def wrapped(kind: str) -> Classifier:
    return Classifier(Wrapped(kind), tinymodels.info(kind), [f"class{i}" for i in range(tinymodels.CLASSES)]).eval()


class Bump(nn.Module):
    """Class 1 only in a narrow band of the mean pixel just above 0.5: FGSM's +eps on every pixel enters the
    band at 4/255 and overshoots it at 16/255, so its robust accuracy rises with eps."""

    def forward(self, x):
        m = x.flatten(1).mean(1)
        bump = 4 * torch.exp(-((m - 0.52) / 0.01) ** 2)
        return torch.stack([torch.full_like(m, 2.0), bump, torch.zeros_like(m), torch.zeros_like(m)], dim=1)


def ids_of(result):
    return sorted(f.id for f in result.findings)


def run(model, data, attack="pgd", eps=EPS, **kw):
    x, y = data
    return robust(model, batches_of(x, y), attack=attack, eps=eps, **kw)


def test_healthy_model_fires_nothing_and_counts_are_unchanged(data):
    model = tinymodels.tiny_classifier()
    result = run(model, data, eps=(0.0, 2 / 255, 4 / 255, 8 / 255))
    assert result.findings == ()
    assert [p.correct_top1 for p in result.points][0] == 48 > result.points[-1].correct_top1
    x, y = data
    _, with_probe = robust_batches(model, batches_of(x, y), attack="pgd", eps=EPS)
    _, again = robust_batches(model, batches_of(x, y), attack="pgd", eps=EPS)
    again.probe = None
    assert torch.equal(with_probe.counts, again.counts)
    m = dict(zip(("grad_checked", "grad_zero", "grad_nonfinite", "prob_checked", "prob_rows", "random_checked",
                  "random_rows", "non_monotone", "consistency_checked", "inconsistent", "moved_checked",
                  "moved_zero", "unconstrained_checked", "unconstrained_failed"), with_probe.probe.model.tolist()))
    assert m == {"grad_checked": SUBSET, "grad_zero": 0, "grad_nonfinite": 0, "prob_checked": SUBSET,
                 "prob_rows": 0, "random_checked": SUBSET, "random_rows": 0, "non_monotone": 0,
                 "consistency_checked": SUBSET, "inconsistent": 0, "moved_checked": SUBSET, "moved_zero": 0,
                 "unconstrained_checked": SUBSET, "unconstrained_failed": 0}


@pytest.mark.parametrize("kind", ["round", "onehot"])
def test_zero_gradients_fire_on_rounding_and_argmax(kind, data):
    result = run(wrapped(kind), data, eps=(0.0, 8 / 255), attack="bim")
    assert "zero-gradients" in ids_of(result)
    finding = next(f for f in result.findings if f.id == "zero-gradients")
    assert finding.severity == "warning"
    assert finding.evidence["checked"] == SUBSET and finding.evidence["zero"] == SUBSET
    assert finding.evidence["sample_ids"] == list(range(10))
    assert "BPDA" in finding.hint
    assert "probabilities-not-logits" not in ids_of(result) and "randomised-forward" not in ids_of(result)


def test_softmax_output_fires_probabilities(data):
    result = run(wrapped("softmax"), data, eps=(0.0, 4 / 255))
    assert "probabilities-not-logits" in ids_of(result)
    finding = next(f for f in result.findings if f.id == "probabilities-not-logits")
    assert finding.evidence == {"checked": SUBSET, "probability_rows": SUBSET, "follow_up": "log-probabilities"}
    assert "zero-gradients" not in ids_of(result)


def test_dropout_left_on_fires_randomised_forward(data):
    result = run(wrapped("dropout"), data, eps=(0.0, 4 / 255))
    finding = next(f for f in result.findings if f.id == "randomised-forward")
    assert finding.evidence["checked"] == SUBSET and 0 < finding.evidence["differing"] <= SUBSET
    assert finding.evidence["largest_difference"] > 1e-4
    assert "EoT" in finding.hint or "Expectation over Transformation" in finding.hint


def test_noise_beats_a_misled_gradient_attack(data):
    """Reversed gradients: BIM descends the loss and fools nothing; sign noise at 48/255 fools some (the tiny
    net shrugs off noise below 32/255)."""
    x, y = data
    eps = 48 / 255
    result = run(wrapped("reversed"), data, eps=(0.0, eps), attack="bim")
    finding = next(f for f in result.findings if f.id == "noise-beats-attack")
    # independent count: the same sign noise (same seed, per-sample ids), judged by the plain net
    plain = tinymodels.tiny_classifier()
    with torch.no_grad():
        adv_right = plain(x).argmax(1) == y
    assert result.points[1].correct_top1 == int(adv_right.sum())  # the misled attack fooled nothing
    noise = sign_noise(Linf, x, eps, SampleRandom((0 + 104_729) % 2**31, len(y), torch.arange(len(y)), "cpu"))
    with torch.no_grad():
        noisy_wrong = plain((x + noise).clamp(0, 1)).argmax(1) != y
    expected = int((noisy_wrong & adv_right).sum())
    assert expected > 0
    assert finding.evidence["fooled_by_noise_only"] == expected and finding.evidence["tried"] == int(adv_right.sum())
    assert finding.evidence["eps"] == eps
    assert "zero-gradients" not in ids_of(result)


def test_robust_accuracy_rising_with_eps_fires():
    x = torch.full((8, 3, 16, 16), 0.5)
    y = torch.zeros(8, dtype=torch.long)
    pre = tinymodels.linear_classifier().info.preprocessing
    model = Classifier(Bump(), tinymodels.info("bump", pre), [f"class{i}" for i in range(4)]).eval()
    result = robust(model, [(x, y)], attack="fgsm", eps=(0.0, 4 / 255, 16 / 255))
    assert [p.correct_top1 for p in result.points] == [8, 0, 8]
    finding = next(f for f in result.findings if f.id == "accuracy-rises-with-eps")
    assert finding.evidence["non_monotone_samples"] == 8
    assert finding.evidence["rising_pairs"] == [{"eps": [4 / 255, 16 / 255], "correct_top1": [0, 8]}]


def test_findings_reach_json_table_and_junit(data):
    from rich.console import Console

    from nnprobe.report.junit import junit_cases
    from nnprobe.report.robust_table import render

    result = run(wrapped("softmax"), data, eps=(0.0, 4 / 255))
    body = json.loads(json.dumps(result.to_dict()))
    assert [f["id"] for f in body["findings"]] == ids_of(result)
    assert body["findings"][0]["severity"] == "warning" and body["findings"][0]["evidence"]
    console = Console(record=True, width=200)
    render(result, console)
    text = console.export_text()
    assert "sanity checks: 1 warning" in text and "probabilities-not-logits" in text
    cases = [c for c in junit_cases(result) if c.classname == "nnprobe.robust.sanity"]
    assert [c.name for c in cases] == ["probabilities-not-logits"] and cases[0].status == "passed"
    assert "[warning]" in cases[0].message
    healthy = run(tinymodels.tiny_classifier(), data, eps=(0.0, 2 / 255))
    console = Console(record=True, width=200)
    render(healthy, console)
    assert "sanity checks: no warning" in console.export_text() and healthy.to_dict()["findings"] == []


def test_helpers_against_plain_definitions():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 4, generator=g)
    assert probability_rows(logits.softmax(1)).all() and not probability_rows(logits).any()
    assert not probability_rows(torch.full((1, 4), 0.3)).any()  # in [0, 1] but sums to 1.2
    a = torch.randn(3, 4, generator=g)
    assert torch.allclose(output_difference(a, 2 * a), torch.zeros(3), atol=1e-6)  # scale is not randomness
    x = torch.full((4, 3, 8, 8), 0.5)
    ids = torch.tensor([3, 1, 4, 1])
    linf = sign_noise(Linf, x, 0.1, SampleRandom(0, 4, ids, "cpu"))
    assert torch.equal(linf.abs(), torch.full_like(x, 0.1))
    assert torch.equal(linf[1], linf[3])  # the same sample id draws the same noise, whatever the batch
    l2 = sign_noise(L2, x, 0.5, SampleRandom(0, 4, ids, "cpu"))
    assert torch.allclose(l2.flatten(1).norm(dim=1), torch.full((4,), 0.5))
    probe = Probe([], "cpu", 0)
    from nnprobe.attacks import binarization, indicators, masking

    model_counts = 8 + len(masking.COUNTS) + len(indicators.COUNTS) + len(binarization.COUNTS)  # sanity.py: 8 own
    assert [t.shape for t in probe.tensors()] == [torch.Size([model_counts]), torch.Size([0, 9])]


def test_square_beating_the_white_box_attacks_fires_and_not_on_a_healthy_model(data, monkeypatch):
    """No gradient reaches the input: APGD-CE and APGD-T fool nothing; Square needs no gradient and fools
    most samples at 12/255, each one fooled only by Square."""
    from nnprobe.attacks import build
    from nnprobe.attacks.autoattack import AutoAttack

    monkeypatch.setattr(AutoAttack, "default_queries", 400)
    x, y = data
    x, y = x[:16], y[:16]
    eps = 12 / 255
    result = robust(wrapped("detached"), [(x, y)], attack="autoattack", eps=(0.0, eps), steps=10)
    finding = next(f for f in result.findings if f.id == "square-beats-white-box")
    # independent count: Square alone (same seed, ids, queries) on the plain net
    alone = build("square", eps, steps=400, seed=0)(tinymodels.tiny_classifier(), x, y, first_success=True,
                                                    early_stop=True, sample_ids=torch.arange(16))
    fooled = int(alone.success.sum())
    assert finding.evidence["fooled_only_by_square"] == fooled > 4
    assert finding.evidence["fooled_by_component"] == {"apgd-ce": 0, "apgd-t": 0, "fab-t": 0, "square": fooled}
    assert finding.evidence["sample_ids"] == alone.success.nonzero().flatten().tolist()[:10]
    assert result.points[1].fooled == fooled
    assert "zero-gradients" in ids_of(result)
    healthy = robust(tinymodels.tiny_classifier(), batches_of(*data), attack="autoattack", eps=(0.0, 4 / 255, 8 / 255),
                     steps=10)
    assert healthy.findings == () and healthy.points[2].fooled > 0
