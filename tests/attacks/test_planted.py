"""Planted gradient-masking defenses (`planted.py`): the sanity checks of `robust` flag every one with the
check built for it, flag none of the controls, name a follow-up for each flag, and `adaptive=True` runs
the follow-ups with exact accounting against an independent run of the same attack."""
from __future__ import annotations

import os

import pytest
import torch

import planted
import tinymodels
from nnprobe.attacks import REGISTRY, build
from nnprobe.attacks.adaptive import Adaptive
from nnprobe.attacks.masking import CONSISTENCY_MIN, cosine, precision_findings
from nnprobe.attacks.results import RobustPoint
from nnprobe.attacks.robustness import robust

EPS = (0.0, 8 / 255)
FOLLOW_UPS = {"square", "eot", "log-probabilities", "autoattack", "fp32", "done", "more-steps"}


class Wave(torch.nn.Module):
    """Class 0 while cos(40·mean pixel) > 0: a fixed step of 0.05 jumps across the band where class 1 wins."""

    def forward(self, x):
        s = x.flatten(1).mean(1)
        return torch.stack([torch.cos(40 * s), torch.zeros_like(s)], 1)


def _wave():
    import dataclasses

    from nnprobe.models.classifier import Classifier

    pixels = dataclasses.replace(tinymodels.PRE, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))  # sees [0, 1] as is
    return Classifier(Wave(), tinymodels.info("wave", pixels, classes=2), ["a", "b"]).eval()


# Pintor et al. 2022's indicators are about a failing attack, not a defense: each is planted as an attack
# setting that fails on an honest model, checked by the indicator built for it (and by nothing on the controls)
ATTACK_FAILURES = {
    "silent-success": (_wave, dict(attack="bim", eps=(0.0, 0.3), steps=10, step_size=0.05)),
    "incomplete-optimisation": (lambda: planted.classifier("plain"),
                                dict(attack="pgd", eps=(0.0, 8 / 255), step_size=0.4 / 255)),
}


@pytest.fixture(scope="module")
def data():
    x, y = tinymodels.make_data(32, seed=21)
    return planted.on_grid(x), y  # decoded images: the detector sees them unmoved


def ids_of(result) -> set[str]:
    return {f.id for f in result.findings}


@pytest.mark.parametrize("kind", sorted(planted.PLANTED))
def test_every_planted_defense_is_flagged_with_a_follow_up(kind, data):
    torch.manual_seed(0)
    result = robust(planted.classifier(kind), [data], attack="pgd", eps=EPS)
    assert planted.PLANTED[kind] <= ids_of(result), (kind, ids_of(result))
    assert all(f.evidence["follow_up"] in FOLLOW_UPS and f.hint for f in result.findings)
    # the masking is why the robust accuracy is high: the plain net under the same PGD is fooled far more
    plain = robust(planted.classifier("plain"), [data], attack="pgd", eps=EPS)
    assert result.points[1].correct_top1 > plain.points[1].correct_top1 or kind in ("softmax-output",
                                                                                     "noisy-forward")


@pytest.mark.parametrize("kind", planted.CONTROLS)
def test_no_control_is_flagged(kind, data):
    result = robust(planted.classifier(kind), [data], attack="pgd", eps=(0.0, 4 / 255, 8 / 255))
    assert result.findings == ()
    assert result.points[0].correct_top1 > 0


@pytest.mark.parametrize("attack", ["fgsm", "bim", "pgd", "mifgsm", "apgd-ce", "apgd-t", "pgd-l2"])
def test_no_autograd_path_is_a_masking_finding_not_a_crash(attack, data):
    """A hard thermometer encoding has no autograd path from the input: every gradient attack gets a zero
    gradient (fooling nothing) and the run reports zero gradients."""
    x, y = data[0][:8], data[1][:8]
    eps = (0.0, 0.5) if attack.endswith("l2") else EPS
    steps = None if attack == "fgsm" else 3
    result = robust(planted.classifier("thermometer"), [(x, y)], attack=attack, eps=eps, steps=steps)
    assert result.points[1].fooled == 0
    finding = next(f for f in result.findings if f.id == "zero-gradients")
    assert finding.evidence["zero"] == 8


def test_gradient_consistency_against_a_plain_cosine():
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(4, 3, 8, 8, generator=g), torch.randn(4, 3, 8, 8, generator=g)
    expected = torch.nn.functional.cosine_similarity(a.flatten(1), b.flatten(1)).double()
    assert torch.allclose(cosine(a, b), expected, atol=1e-6)
    assert cosine(a, 3 * a).tolist() == pytest.approx([1.0] * 4)
    zero = torch.zeros_like(a)
    assert cosine(zero, zero).tolist() == [1.0] * 4 and cosine(zero, a).tolist() == [0.0] * 4
    assert (cosine(a, b) < CONSISTENCY_MIN).all()


def test_precision_disagreement_is_flagged_only_when_fp32_sees_more_fooled():
    common = dict(eps=4 / 255, correct_top5=9, total=10, clean_correct=9, fooled=2, mean_linf=0.01, mean_l2=0.1,
                  gradient_passes=90)
    masked = RobustPoint(correct_top1=7, fp32_correct_top1=5, **common)
    agree = RobustPoint(correct_top1=7, fp32_correct_top1=7, **common)
    plain = RobustPoint(correct_top1=7, **common)
    found = precision_findings([masked, agree, plain])
    assert [f.id for f in found] == ["half-precision-disagrees"]
    assert found[0].evidence == {"eps": 4 / 255, "half_correct_top1": 7, "fp32_correct_top1": 5, "follow_up": "fp32"}


def test_adaptive_follow_up_counts_match_square_run_alone(data):
    """The detector stops PGD; `adaptive` sends PGD's survivors to Square, whose verdicts (same seed, same
    sample ids, on the undefended net: the detector's forward is the net's) lower the robust count exactly."""
    eps = 16 / 255
    settings = Adaptive(queries=300, steps=5, eot_iter=2)
    main = robust(planted.classifier("detector"), [data], attack="pgd", eps=(0.0, eps))
    result = robust(planted.classifier("detector"), [data], attack="pgd", eps=(0.0, eps), adaptive=settings)
    x, y = data
    with torch.no_grad():
        survivors = (planted.classifier("plain")(x).argmax(1) == y).nonzero().flatten()
    survivors = survivors[[i for i in range(survivors.numel())]]  # PGD fools none: the detector stops it
    assert main.points[1].correct_top1 == survivors.numel()
    alone = build("square", eps, steps=300, seed=0)(planted.classifier("plain"), x[survivors], y[survivors],
                                                    first_success=True, early_stop=True, sample_ids=survivors)
    fooled = int(alone.success.sum())
    assert fooled > 0
    assert result.points[1].correct_top1 == main.points[1].correct_top1 - fooled
    finding = next(f for f in result.findings if f.id == "adaptive-follow-up")
    assert finding.evidence["fooled_by_follow_up"] == {"square": fooled, "apgd-eot": 0, "bpda": 0}
    assert [c["attack"] for c in result.settings.components] == ["pgd", "square", "apgd-ce", "apgd-ce"]
    assert result.points[1].gradient_passes > main.points[1].gradient_passes


def test_adaptive_eot_and_transfer_reach_what_the_main_attack_missed(data):
    """Random resize-and-pad: EoT-APGD fools samples one-draw PGD left; a surrogate (the plain net) gives a
    transfer attack; the surrogate without --adaptive is a usage error."""
    model, surrogate = planted.classifier("random-resize-pad"), planted.classifier("plain")
    torch.manual_seed(0)  # the defense's draws
    settings = Adaptive(queries=20, steps=20, eot_iter=8)
    result = robust(model, [data], attack="pgd", eps=(0.0, 8 / 255), adaptive=settings, surrogate=surrogate)
    finding = next(f for f in result.findings if f.id == "adaptive-follow-up")
    assert set(finding.evidence["fooled_by_follow_up"]) == {"square", "apgd-eot", "bpda", "transfer"}
    assert sum(finding.evidence["fooled_by_follow_up"].values()) > 0
    from nnprobe.errors import UsageError

    with pytest.raises(UsageError, match="--adaptive"):
        robust(planted.classifier("plain"), [data], attack="pgd", eps=EPS, surrogate=planted.classifier("plain"))


@pytest.mark.parametrize("check", sorted(ATTACK_FAILURES))
def test_every_planted_attack_failure_is_flagged(check, data):
    make, options = ATTACK_FAILURES[check]
    x, y = data
    if check == "silent-success":
        x = torch.full((4, 3, 4, 4), 0.5) + torch.tensor([0.0, 0.002, 0.004, 0.006]).view(4, 1, 1, 1)
        y = torch.zeros(4, dtype=torch.long)
    result = robust(make(), [(x, y)], **options)
    finding = next(f for f in result.findings if f.id == check)
    assert finding.evidence["follow_up"] in FOLLOW_UPS and finding.evidence["sample_ids"]


def test_silent_success_against_a_plain_loop():
    """The indicator's count equals a hand-written BIM loop's: samples fooled at some iterate, not the last."""
    x = torch.full((4, 3, 4, 4), 0.5) + torch.tensor([0.0, 0.002, 0.004, 0.006]).view(4, 1, 1, 1)
    y = torch.zeros(4, dtype=torch.long)
    model, adv, seen = Wave(), x.clone(), []
    for _ in range(10):
        adv.requires_grad_(True)
        logits = model(adv)
        seen.append(logits.argmax(1) != y)
        grad, = torch.autograd.grad(torch.nn.functional.cross_entropy(logits, y, reduction="sum"), adv)
        adv = (x + (adv.detach() + 0.05 * grad.sign() - x).clamp(-0.3, 0.3)).clamp(0, 1)
    last = model(adv).argmax(1) != y
    expected = int((torch.stack(seen).any(0) & ~last).sum())
    result = robust(_wave(), [(x, y)], attack="bim", eps=(0.0, 0.3), steps=10, step_size=0.05)
    assert expected > 0 and result.sanity["model"]["silent_success"] == expected


def test_bpda_finds_the_quantising_layer_and_its_gradient_is_the_nets_at_the_quantised_point(data):
    """Athalye et al.'s identity BPDA: the gradient through the patched model equals the plain net's gradient
    at g(x) (computed here without nnprobe), the layer is found on its own, and nothing is patched in an
    honest model."""
    from nnprobe.attacks.bpda import BPDA, stopping_layers

    model = planted.classifier("quantise-layer")
    x, y = data[0][:6], data[1][:6]
    layers = stopping_layers(model, x)
    assert layers == [model.net.squeeze]
    mean, std = torch.tensor(tinymodels.PRE.mean).view(1, 3, 1, 1), torch.tensor(tinymodels.PRE.std).view(1, 3, 1, 1)
    # the Classifier normalises before the planted module, so the squeezing sees normalised pixels: the plain
    # net's gradient at the squeezed point, chained through the normalisation, is what BPDA must give
    xr = x.clone().requires_grad_(True)
    patched, = torch.autograd.grad(torch.nn.functional.cross_entropy(BPDA(model, layers)(xr), y), xr)
    normalised = ((x - mean) / std).requires_grad_(True)
    squeezed = model.net.squeeze(normalised).detach().requires_grad_(True)
    inner, = torch.autograd.grad(torch.nn.functional.cross_entropy(model.net.net(squeezed), y), squeezed)
    assert torch.allclose(patched, inner / std, atol=1e-6) and patched.abs().amax() > 0
    assert stopping_layers(planted.classifier("plain"), x) == []
    assert stopping_layers(planted.classifier("differentiable-blur"), x) == []


def test_adaptive_bpda_fools_what_square_with_few_queries_and_apgd_could_not(data):
    settings = Adaptive(queries=1, steps=20, eot_iter=2)
    model = planted.classifier("quantise-layer")
    result = robust(model, [data], attack="pgd", eps=(0.0, 8 / 255), adaptive=settings)
    main = robust(model, [data], attack="pgd", eps=(0.0, 8 / 255))
    finding = next(f for f in result.findings if f.id == "adaptive-follow-up")
    by = finding.evidence["fooled_by_follow_up"]
    assert by["bpda"] > 0 and by["bpda"] == main.points[1].correct_top1 - result.points[1].correct_top1 - by["square"]


def test_planted_list_covers_the_registry_of_masking_checks():
    """Every masking check has a planted defense that it alone is expected to catch or share, and every
    indicator of attack failure a planted failing attack."""
    assert set(ATTACK_FAILURES) == {"silent-success", "incomplete-optimisation"}
    expected = set().union(*planted.PLANTED.values())
    assert expected >= {"zero-gradients", "probabilities-not-logits", "randomised-forward", "inconsistent-gradients",
                        "gradients-vanish-after-move", "unconstrained-attack-fails"}
    assert len(planted.PLANTED) >= 8 and len(planted.CONTROLS) >= 3
    assert {"apgd-ce", "apgd-t", "pgd", "square"} <= set(REGISTRY)


class AroundDefault(torch.nn.Module):
    """A planted defense in pixel space around the whole default classifier (which normalises inside)."""

    def __init__(self, inner, kind: str) -> None:
        super().__init__()
        self.inner, self.kind = inner, kind

    def forward(self, x):
        if self.kind == "wrong-sign-ste":
            x = planted.WrongSignQuantise.apply(x)
        elif self.kind == "thermometer":
            levels = torch.linspace(0, 1, 17, device=x.device)[1:-1]
            x = (x[..., None] > levels).float().mean(dim=-1)
        return self.inner(x)


def default_photos(base) -> torch.Tensor:
    """The bundled ImageNet photos (the first 4) at the default model's input size, pixels in [0, 1]."""
    import numpy as np
    from PIL import Image

    from nnprobe.models.preprocessing import pil_resize_crop

    root = os.path.join(os.path.dirname(__file__), "..", "..", "samples", "imagenet")
    paths = sorted(os.path.join(root, d, f) for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))
                   for f in os.listdir(os.path.join(root, d)))[:4]
    return torch.stack([torch.from_numpy(np.array(pil_resize_crop(Image.open(p).convert("RGB"), base.preprocessing)))
                        .permute(2, 0, 1).float() / 255 for p in paths])


def test_planted_defenses_around_the_default_model_on_a_photo():
    """The default model (EfficientNet-Lite0) on a bundled photo: a wrong-sign straight-through quantiser
    and a hard thermometer encoding are flagged by their checks; the bare model is flagged by none."""
    import dataclasses

    from nnprobe.models import load_classifier
    from nnprobe.models.classifier import Classifier

    base = load_classifier()
    x = default_photos(base)[:1]  # one photo: the checks are per sample
    identity = dataclasses.replace(base.preprocessing, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    expected = {"wrong-sign-ste": "unconstrained-attack-fails", "thermometer": "zero-gradients"}
    for kind, check in expected.items():
        model = Classifier(AroundDefault(base, kind), dataclasses.replace(base.info, preprocessing=identity),
                           base.class_names).eval()
        with torch.no_grad():
            y = model(x).argmax(1)  # the defended model's own answer: the image starts right
        result = robust(model, [(x, y)], attack="pgd", eps=(0.0, 1 / 255), steps=2)
        assert result.points[0].correct_top1 == 1 and check in ids_of(result), (kind, ids_of(result))
    with torch.no_grad():
        y = base(x).argmax(1)
    bare = robust(base, [(x, y)], attack="pgd", eps=(0.0, 1 / 255), steps=2)
    assert bare.findings == ()
