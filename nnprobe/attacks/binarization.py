"""The binarization test of Zimmermann, Brendel, Tramèr & Carlini 2022 ("Increasing Confidence in
Adversarial Robustness Evaluations", NeurIPS 2022; the reference is `active_tests/
decision_boundary_binarization.py` of google-research/active-adversarial-tests), on the probe's samples.

Per sample x, the model's last linear layer is replaced by a binary readout that must be attackable:

- training points in pixel space: x itself and `inner` points (default `INNER`, the reference's 999; the
  `--binarization-inner-points` option) drawn uniformly from the ball of radius `ETA`·eps around it (label
  0, "inner"), and one point on the ball's surface (label 1, "boundary"): a random corner of the L∞ ball
  (the reference's `--sample-from-corners`), a random direction at distance eps for L2; each clipped to the
  pixel cube, so it stays inside the ball; drawn and run through the model `CHUNK` at a time;
- their features are the inputs of the model's last `nn.Linear` (the one whose output is the logits);
  a logistic regression on them (no penalty, as the reference's sklearn fit with its `max_iter` of 1000;
  here L-BFGS in float64 on standardised features) must separate the boundary point from every inner
  point, and the readout's logits are scaled to a range of 1 (the reference's `rescale_logits="fixed"`);
- the model with that readout in place of its last layer (every layer before it and every operation
  after it kept: a defense around the model stays) must answer 0 at x and 1 at the boundary point,
  judged by fresh forwards in pixel space. Then, as the reference's drivers (`decision_boundary_closeness`
  0.9999), the readout's boundary is moved `CLOSENESS` of the way to the boundary point's score in that
  fresh forward: class 1 is only what scores about as high as the boundary point, which provably exists
  inside the ball; the user's own attack, at its largest budget, is run on the binary model with label 0.

An attack that does not find one (re-judged here: a point within the budget and the pixel cube that
the binary model answers 1) fails the test for that sample: its gradients, or the model's, do not lead
to an adversarial that is known to exist. A sample whose readout cannot be set up (not separable, or
the fresh forwards disagree with the fit: a randomised model) is counted apart, never as passed.

The readout outputs as many columns as the model has classes, so every attack (DLR's third logit,
APGD-T's targets) runs unchanged: column 0 is -z, column 1 is z (z the readout's score, computed in float64:
the boundary point's margin is 1e-4 of its score), the others -|z|-1, never the largest; cross-entropy with
label 0 still rises with z alone.

As the reference's "random ASR", `RANDOM` random points on the ball's surface are tried on the binary model
too: samples where one is already adversarial are counted (`random_point_adversarial` in the evidence); an
attack that fails where random points succeed is the strongest sign of a broken gradient.

Cost per checked sample (`cost.Meter`, pass equivalents): `inner + 2` forwards for the features (the clean
image, the inner points, the boundary point), two to verify the readout, `RANDOM` for the random points,
the attack's own passes on one sample, and one forward to re-judge its answer: 1,012 plus the attack's at
999 inner points. The one forward per process that finds the layer is not counted, so merged slices cost
what one process does. Deviations from the reference: L-BFGS in torch instead of sklearn; the closeness
measured on a fresh forward of the boundary point, not on its training features (the two differ by float
noise of the order of the 1e-4 margin); the reference's drivers mostly rescale the logits to the model's
own range ("adaptive") where this keeps its default "fixed" range of 1; no rejection resampling for
detectors; L2 points clipped to the cube instead of rescaled to their distance after clipping; 8 random
surface points instead of 200 for the random ASR (evidence only).
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from nnprobe.attacks.base import SampleRandom, frozen
from nnprobe.attacks.cost import Meter
from nnprobe.attacks.masking import _warning
from nnprobe.results import format_eps

# samples the test was asked for, those whose readout was set up and verified, those the attack failed on, those
# where one of RANDOM random points on the ball's surface is already adversarial (the reference's "random ASR":
# how hard the binary problem is without an attack), and the test's cost in pass equivalents; summed over ranks
# and merge parts like every probe count
COUNTS = ("binarization_asked", "binarization_checked", "binarization_failed", "binarization_random",
          "binarization_cost")
INNER = 999  # random inner points per sample (plus the clean image): the reference's case studies' n_inner_points
ETA = 0.95  # inner points lie within ETA·eps (the reference's relative_inner_boundary_gap of 0.05)
CLOSENESS = 0.9999  # the reference's decision_boundary_closeness (its evaluate_classifier.py and most case studies)
READOUT_STEPS = 1000  # L-BFGS iterations of the logistic regression (sklearn's max_iter in the reference)
SEED_OFFSET = 15_485_863  # the training points' draws differ from the attack's and the other checks'
CHUNK = 64  # images per forward when extracting features
RANDOM = 8  # random surface points per sample (corners for L∞) tried on the binary model, as a baseline


def readout_layer(classifier: nn.Module, x: torch.Tensor, autocast) -> nn.Linear | None:
    """The last `nn.Linear` the forward runs whose output has the logits' shape, and whose input is a
    feature vector per sample; None when the model has none (a convolutional head, no linear layer)."""
    seen: list[tuple[nn.Linear, tuple, tuple]] = []
    hooks = [m.register_forward_hook(lambda m, a, o: seen.append((m, tuple(a[0].shape), tuple(o.shape))))
             for m in classifier.modules() if isinstance(m, nn.Linear)]
    try:
        with torch.no_grad(), autocast:
            logits = classifier(x[:1])
    finally:
        for h in hooks:
            h.remove()
    for module, shape_in, shape_out in reversed(seen):
        if shape_out == tuple(logits.shape) and len(shape_in) == 2:
            return module
    return None


def features(classifier: nn.Module, layer: nn.Linear, x, autocast) -> torch.Tensor:
    """The inputs of `layer` for the images x (a tensor, or an iterable of tensors: chunks), float, detached,
    `CHUNK` images per forward."""
    chunks = (x[i:i + CHUNK] for i in range(0, x.shape[0], CHUNK)) if isinstance(x, torch.Tensor) else x
    parts: list[torch.Tensor] = []
    hook = layer.register_forward_hook(lambda m, a, o: parts.append(a[0].detach().float()))
    try:
        with torch.no_grad(), autocast:
            for chunk in chunks:
                classifier(chunk)
    finally:
        hook.remove()
    return torch.cat(parts)


def inner_points(x: torch.Tensor, ball, eps: float, random: SampleRandom, inner: int):
    """For one image x (C, H, W): chunks of at most `CHUNK` inner points, x itself first, then `inner` points
    uniform within ETA·eps, in [0, 1]; drawn chunk by chunk so that 999 photo-sized points never sit in memory
    at once (the draws are the same whatever consumes them)."""
    for start in range(0, inner + 1, CHUNK):
        k = min(CHUNK, inner + 1 - start)
        shape = (k, *x.shape)
        if ball.id == "linf":
            delta = (2 * random.uniform(shape, x.dtype) - 1) * (ETA * eps)
        else:
            direction = random.normal(shape, x.dtype)
            radius = random.uniform((k,), x.dtype) ** (1 / x.numel()) * (ETA * eps)
            delta = direction * (radius / ball.distance(direction).clamp_min(1e-12)).view(-1, 1, 1, 1)
        if start == 0:
            delta[0] = 0
        yield (x + delta).clamp(0, 1)


def training_points(x: torch.Tensor, ball, eps: float, random: SampleRandom,
                    inner: int = INNER) -> tuple[torch.Tensor, torch.Tensor]:
    """For one image x (C, H, W): the inner points (x first, then `inner` uniform within ETA·eps) and the
    boundary point (a random L∞ corner, or a random L2 direction at distance eps), in [0, 1]."""
    return torch.cat(list(inner_points(x, ball, eps, random, inner))), surface_points(x, ball, eps, random, 1)


def surface_points(x: torch.Tensor, ball, eps: float, random: SampleRandom, k: int) -> torch.Tensor:
    """k random points at distance eps from x (L∞: random corners; L2: random directions), in [0, 1]."""
    if ball.id == "linf":
        delta = torch.where(random.uniform((k, *x.shape), x.dtype) < 0.5, eps, -eps).to(x.dtype)
    else:
        direction = random.normal((k, *x.shape), x.dtype)
        delta = direction * (eps / ball.distance(direction).clamp_min(1e-12)).view(-1, 1, 1, 1)
    return (x + delta).clamp(0, 1)


def fit_readout(inner: torch.Tensor, boundary: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Logistic regression (no penalty) of boundary (1) vs inner (0) features: (w, b) in float64 with
    z = f·w + b, scaled so the training scores span a range of 1 (the reference's fixed rescaling); None when
    the fit does not separate every training point. `closer` then moves its boundary."""
    f = torch.cat([inner, boundary]).double()
    labels = torch.cat([torch.zeros(len(inner)), torch.ones(len(boundary))]).double().to(f.device)
    mean, std = f.mean(0), f.std(0)
    std = torch.where(std > 0, std, torch.ones_like(std))
    g = (f - mean) / std
    w = torch.zeros(f.shape[1], dtype=f.dtype, device=f.device, requires_grad=True)
    b = torch.zeros((), dtype=f.dtype, device=f.device, requires_grad=True)
    optimiser = torch.optim.LBFGS([w, b], max_iter=READOUT_STEPS, tolerance_grad=1e-12, tolerance_change=1e-14,
                                  line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(g @ w + b, labels)
        loss.backward()
        return loss

    with torch.enable_grad():
        optimiser.step(closure)
    w, b = (w / std).detach(), (b - (mean / std) @ w).detach()
    z = f @ w + b
    if not ((z[:len(inner)] < 0).all() and (z[len(inner):] > 0).all()):
        return None
    scale = 2 * z.abs().max()  # logits (-z, z): their range over the training points becomes 1
    return w / scale, b / scale


def closer(b: torch.Tensor, boundary_score: float, closeness: float = CLOSENESS) -> torch.Tensor:
    """The reference's `decision_boundary_closeness`: the readout's bias moved so that its boundary lies
    `closeness` of the way to the boundary point (whose score is `boundary_score`): only points that score
    at least what the boundary point does, less (1 - closeness) of it, are class 1."""
    return b - closeness * boundary_score


def binary_logits(z: torch.Tensor, classes: int) -> torch.Tensor:
    """Per row: (-z, z, then -|z|-1 for every other class): class 1 where z > 0, class 0 elsewhere."""
    rest = (-z.abs() - 1)[:, None].expand(-1, max(classes - 2, 0))
    return torch.cat([-z[:, None], z[:, None], rest], dim=1)[:, :max(classes, 2)]


@contextlib.contextmanager
def binarized(layer: nn.Linear, w: torch.Tensor, b: torch.Tensor, classes: int):
    """For the duration, `layer` returns the binary readout of its input in place of its output; yields the
    list of the scores z (float64, detached) of every forward, newest last."""
    scores: list[torch.Tensor] = []

    def replace(module, args, out):  # in float64: the boundary point scores (1 - CLOSENESS) of its own
        z = args[0].double() @ w.double() + b.double()
        scores.append(z.detach())
        return binary_logits(z, classes).to(out.dtype)

    hook = layer.register_forward_hook(replace)
    try:
        yield scores
    finally:
        hook.remove()


def _answers(classifier, x: torch.Tensor, autocast) -> torch.Tensor:
    with torch.no_grad(), autocast:
        return classifier(x).float().argmax(dim=1)


def check(attack, classifier, xs: torch.Tensor, ids: torch.Tensor, seed: int | None, autocast,
          inner: int = INNER) -> dict:
    """The test on every sample of xs with `attack` (its budget and norm) and `inner` inner points per sample:
    per-sample flags (bool tensors:
    asked, checked, failed, random) and its cost in pass equivalents (`binarization_cost`: an int64 tensor holding
    the whole cost on its first element, so that summing it like the flags gives the total)."""
    n = xs.shape[0]
    flags = {name: torch.zeros(n, dtype=torch.bool, device=xs.device) for name in COUNTS[:-1]}
    cost = torch.zeros(n, dtype=torch.int64, device=xs.device)
    flags["binarization_asked"][:] = True
    if attack.eps <= 0 or attack.ball.id not in ("linf", "l2") or n == 0:
        return {**flags, "binarization_cost": cost}
    meter = Meter()  # per sample only (finding the layer is not counted): slices add up to one process's cost
    with frozen(classifier):
        layer = readout_layer(classifier, xs, autocast)
    with frozen(classifier), meter.counting(classifier):
        for i in range(n if layer is not None else 0):
            random = SampleRandom(None if seed is None else (seed + SEED_OFFSET) % 2**31, 1, ids[i:i + 1], "cpu")
            verdict, by_chance = _sample(attack, classifier, layer, xs[i], ids[i:i + 1], random, autocast, inner)
            flags["binarization_checked"][i] = verdict != "unset"
            flags["binarization_failed"][i] = verdict == "failed"
            flags["binarization_random"][i] = by_chance
    cost[0] = meter.cost
    return {**flags, "binarization_cost": cost}


def _sample(attack, classifier, layer, x, sample_id, random, autocast, inner: int) -> tuple[str, bool]:
    """One sample: 'unset' (no verified readout), 'passed' (the attack found an adversarial of the binary
    problem within its budget, re-judged here) or 'failed'; and whether a random surface point already was."""
    eps, ball = attack.eps, attack.ball
    points = (chunk.to(x.device) for chunk in inner_points(x.cpu(), ball, eps, random, inner))
    f_inner = features(classifier, layer, points, autocast)
    boundary = surface_points(x.cpu(), ball, eps, random, 1).to(x.device)
    fit = fit_readout(f_inner, features(classifier, layer, boundary, autocast))
    if fit is None:
        return "unset", False
    w, b = fit
    with binarized(layer, w, b, layer.out_features) as scores:  # in pixel space: 0 at x, 1 at the boundary point
        _answers(classifier, torch.stack([x, boundary[0]]), autocast)
    clean, far = scores[-1].tolist()
    if not clean < 0 < far:
        return "unset", False
    with binarized(layer, w, closer(b, far), layer.out_features):
        by_chance = bool((_answers(classifier, surface_points(x.cpu(), ball, eps, random, RANDOM).to(x.device),
                                   autocast) == 1).any())
        goal = torch.zeros(1, dtype=torch.long, device=x.device)
        adv = attack._run(classifier, x[None], goal, False, True, True, autocast, None, sample_id).adversarial
        inside = bool(ball.distance(adv - x[None]) <= eps * (1 + 1e-5) + 1e-7) and 0 <= adv.min() and adv.max() <= 1
        found = inside and _answers(classifier, adv, autocast).item() == 1
    return ("passed" if found else "failed"), by_chance


def findings(m: dict, examples: dict, attacks) -> list:
    """The test's findings from the summed counts `m` (keys: COUNTS) of a run with `attacks` (the test ran
    the one of the largest budget): the attack failed on some sample, or the test was asked for and no
    sample's readout could be set up (so nothing was tested)."""
    if not m.get("binarization_asked") or not attacks:
        return []
    attack = max(attacks, key=lambda a: a.eps)
    asked, checked, failed = m["binarization_asked"], m["binarization_checked"], m["binarization_failed"]
    evidence = dict(eps=attack.eps, asked=asked, checked=checked, failed=failed,
                    random_point_adversarial=m["binarization_random"], cost=m["binarization_cost"])
    if failed:
        return [_warning(
            "binarization-test-fails",
            f"In the binarization test (Zimmermann et al. 2022) {attack.id} at eps {format_eps(attack.eps)} missed "
            f"the adversarial example known to exist for {failed} of {checked} samples: with the model's last "
            "linear layer replaced by a readout that answers 'adversarial' at a point inside the budget's ball, "
            "the attack did not reach any such point. Its robust accuracy on this model is not trustworthy.",
            "The attack cannot follow this model's gradients to adversarials that exist (masked, noisy or "
            "wrong-signed gradients, a saturated loss) or is too weak: rerun with --adaptive (Square, EoT, BPDA) "
            "or --attack autoattack, whose black-box Square does not use the gradient, and read the other "
            "findings for where the gradient breaks.",
            "square", **evidence, sample_ids=examples.get("binarization-test-fails", []))]
    if asked and not checked:
        return [_warning(
            "binarization-test-not-set-up",
            f"The binarization test was asked for but none of the {asked} samples could be tested: the model has "
            "no final nn.Linear whose input is a feature vector, no linear readout separated the boundary point "
            "from the inner points, or the model answered the training points differently when run again (a "
            "randomised forward).",
            "The test needs a deterministic model ending in a linear layer; the other findings still apply.",
            "done", **evidence)]
    return []
