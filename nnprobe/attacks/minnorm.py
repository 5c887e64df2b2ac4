"""Minimum-norm attacks: every sample's smallest fooling distance in one batched run.

FMN (Pintor et al. 2021, "Fast Minimum-norm Adversarial Attacks through Adaptive Norm Constraints"), in
L0, L1, L2 and L∞, as the authors' code does it (maurapintor/Fast-Minimum-Norm-FMN-Attack, kept in
adversarial-library as `fmn`). Each step, per sample:

- the loss is the logit difference (label minus the best other class; targeted: the other way round);
- the budget ε shrinks by (1 - γ) while the iterate is adversarial (never above the best distance found),
  grows by (1 + γ) after an adversarial was found and the iterate is not, and before any was found jumps
  to the current norm plus the linearised distance to the boundary |loss| / ‖∇‖_dual;
- the iterate moves α along the L2-normalised gradient, is projected onto the ε ball of the norm (L0:
  the ε largest coordinates kept) and clamped to the pixel box; α and γ follow cosine annealing
  (α from 1 to α/100, γ from 0.05 to 0.001).

The attack keeps, per sample, the closest adversarial iterate it met (checked before each step, as the
reference does, and once more on the last iterate). `distance` is that point's norm (L0: the number of
changed values over pixels and channels; others in [0, 1] pixel units); samples it never fooled get
`inf` and their clean image back. Nothing depends on which samples share a batch (losses are per sample,
no randomness), so batches, shards and early exits cannot change a distance.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import ClassVar

import torch

from nnprobe.attacks.base import check_pixels, frozen
from nnprobe.errors import UsageError

DEFAULT_STEPS = 100  # the reference's default is 10; 100 brings its distances within ~1% of 1000 steps
ALPHA_INIT = 1.0  # the reference's α_init; α_final = α_init / 100
GAMMA_INIT, GAMMA_FINAL = 0.05, 0.001  # the reference's γ schedule
# `converged`: a sample is still improving when its best distance shrank by more than this share over the
# last `TAIL` of the steps (Pintor et al. 2022's "incomplete optimisation" indicator, on the min-norm run)
IMPROVING_SHARE = 0.01
TAIL = 0.1


def _l0_project(delta: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Keep each row's round(eps) largest-magnitude values, zero the rest (ties at the threshold kept)."""
    flat = delta.flatten(1)
    k = eps.long().clamp(min=0, max=flat.shape[1])
    if int(k.max()) == 0:
        return torch.zeros_like(delta)
    top = flat.abs().topk(int(k.max()), dim=1).values
    threshold = top.gather(1, (k - 1).clamp(min=0)[:, None])
    keep = (flat.abs() >= threshold) & (k[:, None] > 0)
    return (flat * keep).view_as(delta)


def _l1_project(delta: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Euclidean projection of each row onto the L1 ball of its radius (Duchi et al. 2008, by sorting)."""
    flat = delta.flatten(1)
    outside = flat.abs().sum(dim=1) > eps
    if not outside.any():
        return delta
    v = flat[outside].abs()
    u = v.sort(dim=1, descending=True).values
    index = torch.arange(1, v.shape[1] + 1, device=v.device, dtype=v.dtype)
    means = (u.cumsum(dim=1) - eps[outside, None]) / index
    last = ((u > means).to(v.dtype) * index).argmax(dim=1, keepdim=True)  # the last k with u_k > mean_k
    tau = means.gather(1, last)
    out = flat.clone()
    out[outside] = (v - tau).clamp_min(0) * flat[outside].sign()
    return out.view_as(delta)


def _l2_project(delta: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    norms = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
    return delta * (eps / norms).clamp(max=1).view(-1, *([1] * (delta.dim() - 1)))


def _linf_project(delta: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    e = eps.view(-1, *([1] * (delta.dim() - 1)))
    return torch.maximum(torch.minimum(delta, e), -e)


@dataclasses.dataclass(frozen=True)
class MinNormNorm:
    """A norm as FMN needs it: its p for distances, the dual p of the boundary distance, the projection."""

    id: str
    p: float
    dual: float
    project: object
    unit: str  # how a distance reads: pixel units or changed values

    def distance(self, delta: torch.Tensor) -> torch.Tensor:
        return delta.flatten(1).norm(p=self.p, dim=1)


MIN_NORM_NORMS = {
    "linf": MinNormNorm("linf", math.inf, 1, _linf_project, "pixel units"),
    "l2": MinNormNorm("l2", 2, 2, _l2_project, "pixel units"),
    "l1": MinNormNorm("l1", 1, math.inf, _l1_project, "pixel units"),
    "l0": MinNormNorm("l0", 0, math.nan, _l0_project, "changed values"),
}


@dataclasses.dataclass
class MinNormOutput:
    """Per sample: the closest adversarial found (the input where none), its distance (inf where none),
    whether it fools (judged on the returned tensor), its logits, and whether the distance was still
    shrinking at the end of the run."""

    adversarial: torch.Tensor
    distance: torch.Tensor  # float64 per sample
    success: torch.Tensor
    logits: torch.Tensor
    improving: torch.Tensor  # bool per sample: best distance shrank > IMPROVING_SHARE over the last TAIL steps
    gradient_passes: int


class MinNormAttack:
    """A minimum-norm attack by id (`fmn-linf`): no budget; `steps` iterations over the whole batch."""

    id: ClassVar[str] = ""
    method: ClassVar[str] = "fmn"

    def __init__(self, norm: str, steps: int | None = None) -> None:
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
            raise UsageError(f"--steps must be at least 1, got {steps}.")
        self.norm = MIN_NORM_NORMS[norm]
        self.steps = steps or DEFAULT_STEPS
        self.id = f"{self.method}-{norm}"

    def settings(self) -> dict:
        return {"attack": self.id, "method": self.method, "norm": self.norm.id, "steps": self.steps,
                "alpha": [ALPHA_INIT, ALPHA_INIT / 100], "gamma": [GAMMA_INIT, GAMMA_FINAL]}

    def __call__(self, model, x: torch.Tensor, labels: torch.Tensor, *, targeted: bool = False, forward=None,
                 autocast=None) -> MinNormOutput:
        check_pixels(x)
        forward = forward or model
        autocast = autocast or contextlib.nullcontext()
        labels = torch.as_tensor(labels, device=x.device).long().reshape(-1)
        with frozen(model):
            return self._run(forward, x.detach(), labels, targeted, autocast)

    def _loss(self, forward, adv, labels, targeted, autocast):
        """Per sample logit difference to ascend (best other minus label; targeted: target minus best other),
        its input gradient, the float logits."""
        adv = adv.detach().requires_grad_(True)
        with torch.enable_grad(), autocast:
            logits = forward(adv).float()
            own = logits.gather(1, labels[:, None])[:, 0]
            others = logits.scatter(1, labels[:, None], -math.inf).amax(dim=1)
            loss = (own - others) if targeted else (others - own)  # ascended
        grad = torch.zeros_like(adv)
        if loss.requires_grad:
            got, = torch.autograd.grad(loss.sum(), adv, allow_unused=True)
            grad = grad if got is None else got
        return loss.detach(), grad.detach(), logits.detach()

    def _run(self, forward, x, labels, targeted, autocast) -> MinNormOutput:
        n, norm = x.shape[0], self.norm
        view = (-1, *([1] * (x.dim() - 1)))
        delta = torch.zeros_like(x)
        eps = torch.ones(n, device=x.device) if norm.id == "l0" else torch.full((n,), math.inf, device=x.device)
        worst = norm.distance(torch.maximum(x, 1 - x)).float()
        best = torch.full((n,), math.inf, device=x.device)
        best_adv, found = x.clone(), torch.zeros(n, dtype=torch.bool, device=x.device)
        tail_start = max(0, self.steps - max(1, round(self.steps * TAIL)))
        before_tail = best.clone()
        for i in range(self.steps):
            cosine = (1 + math.cos(math.pi * i / self.steps)) / 2
            alpha = ALPHA_INIT / 100 + (ALPHA_INIT - ALPHA_INIT / 100) * cosine
            gamma = GAMMA_FINAL + (GAMMA_INIT - GAMMA_FINAL) * cosine
            if i == tail_start:
                before_tail = best.clone()
            size = norm.distance(delta).float()
            loss, grad, logits = self._loss(forward, x + delta, labels, targeted, autocast)
            fooled = self._fooled(logits, labels, targeted)
            better = fooled & (size < best)
            best = torch.where(better, size, best)
            best_adv = torch.where(better.view(view), x + delta, best_adv)
            found |= fooled
            eps = self._next_eps(eps, size, best, loss, grad, fooled, found, gamma).minimum(worst)
            step = grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(view)
            delta = norm.project(delta + alpha * step, eps)
            delta = (x + delta).clamp(0, 1) - x
        size = norm.distance(delta).float()
        with torch.no_grad(), autocast:
            last = forward(x + delta).float()
        better = self._fooled(last, labels, targeted) & (size < best)
        best = torch.where(better, size, best)
        best_adv = torch.where(better.view(view), x + delta, best_adv)
        with torch.no_grad(), autocast:
            logits = forward(best_adv).float()
        success = self._fooled(logits, labels, targeted)
        distance = torch.where(success, norm.distance(best_adv - x).double(), torch.full_like(best, math.inf).double())
        improving = torch.isfinite(best) & (best < before_tail * (1 - IMPROVING_SHARE))
        return MinNormOutput(best_adv, distance, success, logits, improving, n * self.steps)

    @staticmethod
    def _fooled(logits, labels, targeted):
        predicted = logits.argmax(dim=1)
        return predicted == labels if targeted else predicted != labels

    def _next_eps(self, eps, size, best, loss, grad, fooled, found, gamma):
        """The budget's adaptive update (the reference's rule; L0 in whole values)."""
        if self.norm.id == "l0":
            shrunk = torch.minimum(torch.minimum(eps - 1, (eps * (1 - gamma)).floor()), best)
            return torch.where(fooled, shrunk, torch.maximum(eps + 1, (eps * (1 + gamma)).floor())).clamp_min(0)
        boundary = loss.abs() / grad.flatten(1).norm(p=self.norm.dual, dim=1).clamp_min(1e-12)
        return torch.where(fooled, torch.minimum(eps * (1 - gamma), best),
                           torch.where(found, eps * (1 + gamma), size + boundary))


MIN_NORM_IDS = tuple(f"fmn-{norm}" for norm in MIN_NORM_NORMS)


def build_min_norm(attack_id: str, steps: int | None = None) -> MinNormAttack:
    """A minimum-norm attack by id (`fmn-linf`, `fmn-l2`, `fmn-l1`, `fmn-l0`), or one UsageError sentence."""
    if attack_id not in MIN_NORM_IDS:
        raise UsageError(f"--min-norm {attack_id!r} is not one of {', '.join(MIN_NORM_IDS)}.")
    return MinNormAttack(attack_id.split("-", 1)[1], steps=steps)


QUANTILE_LEVELS = (0.1, 0.25, 0.5, 0.75, 0.9)
CURVE_POINTS = 21  # the curve's evenly spaced budgets, from 0 to the largest distance found


def distribution(attack: MinNormAttack, distances, clean_right, improving, passes: int, eps=()):
    """The `MinNormDistribution` of a run: `distances` per sample (inf where never fooled; samples wrong
    before the attack are not attacked and count as fooled at 0), quantiles over the attacked samples,
    and the robust-accuracy curve at `eps` (the run's budgets, same norm) and evenly spaced budgets."""
    import numpy as np

    from nnprobe.attacks.results import MinNormDistribution, MinNormPoint

    d = np.asarray(distances, dtype=np.float64)
    right = np.asarray(clean_right, dtype=bool)
    attacked = d[right]
    finite = attacked[np.isfinite(attacked)]

    def quantile(level: float) -> float | None:
        if not attacked.size:
            return None
        value = float(np.quantile(attacked, level, method="inverted_cdf"))  # a distance that occurred
        return value if math.isfinite(value) else None

    top = float(finite.max()) if finite.size else 0.0
    grid = sorted({*(float(e) for e in eps), *np.linspace(0.0, top, CURVE_POINTS).tolist()})
    curve = tuple(MinNormPoint(e, int((attacked > e).sum()), int(d.size)) for e in grid)
    return MinNormDistribution(
        attack=attack.id, norm=attack.norm.id, steps=attack.steps, attacked=int(right.sum()), found=int(finite.size),
        still_improving=int(np.asarray(improving, dtype=bool)[right].sum()), levels=QUANTILE_LEVELS,
        quantiles=tuple(quantile(q) for q in QUANTILE_LEVELS), median=quantile(0.5), curve=curve,
        gradient_passes=int(passes))


def findings(points, record) -> list:
    """`min-norm-beats-attack`: at a budget of the run (same norm), fewer samples survive the minimum-norm
    distances than the fixed-budget attack left robust: adversarials exist inside the ball that the attack
    missed, so its robust accuracy is overstated (each distance's point was re-judged on the model)."""
    from nnprobe.attacks.results import RobustFinding
    from nnprobe.results import format_eps

    if record is None:
        return []
    at = {c.eps: c.correct_top1 for c in record.curve}
    found = []
    for point in points:
        fewer = point.correct_top1 - at.get(point.eps, point.correct_top1)
        if point.eps > 0 and fewer > 0:
            found.append(RobustFinding(
                id="min-norm-beats-attack", severity="warning",
                message=f"At eps {format_eps(point.eps)}, {record.attack}'s distances leave {at[point.eps]} samples "
                        f"robust where the attack left {point.correct_top1}: {fewer} have a fooling point inside the "
                        "budget that the attack missed.",
                hint="The fixed-budget attack is too weak here: report the lower number, and run a stronger attack "
                     "(more steps and restarts, --attack autoattack).",
                evidence={"eps": point.eps, "attack_correct_top1": point.correct_top1,
                          "min_norm_correct_top1": at[point.eps], "follow_up": "autoattack"}))
    return found
