"""`fast` (`fast-l2`): robust accuracy at AutoAttack's level for a fraction of its cost (issue 20 part 4).

It is not AutoAttack, and its results are never labelled so: AutoAttack is the reference's attack
(`--attack autoattack`). `fast` is a schedule built from the observations of two later papers, each stage on
the samples every earlier stage left robust, with per-sample early stop everywhere (a sample leaves the batch
as soon as it is fooled):

1. **Cheapest first**: APGD-CE with a quarter of the iterations (25 for `--steps 100`; with a fifth, one image
   of the adversarially trained test net that AutoAttack's APGD-CE fools at 8/255 stayed robust). Most
   samples that fall, fall here, for a few passes each.
2. **MALT targeting** (Melamed et al., NeurIPS 2024, "MALT powers up adversarial attacks"): AutoAttack's
   APGD-T attacks the 9 classes with the highest logits. MALT ranks candidate classes instead by the
   distance to their decision boundary under a linear model of the network (mesoscopic almost linearity):
   (z_y - z_c) / ‖∇z_y - ∇z_c‖_* with the dual norm (L1 for an L∞ budget, L2 for L2), over the `candidates`
   classes with the highest logits (at most 100, MALT's choice on ImageNet), and attacks only the `targets`
   best (3). The Jacobian rows cost one backward per candidate, once per survivor.
3. **Adaptive direction initialisation** (A3, Liu et al., CVPR 2022: starts from a direction learned for
   the model instead of a uniform random point): each targeted run starts at the linearised best point
   towards its target, x + eps·sign(∇z_c - ∇z_y) for L∞ (eps times the unit direction for L2), which step 2
   computed already (no extra pass), then runs APGD on the targeted DLR loss (AutoAttack's APGD-T update).
4. **Discarding** (A3's online discarding, made per sample so that no sample's result depends on its
   batch): at each APGD checkpoint, a sample whose best targeted DLR loss has not improved since the
   previous checkpoint (or the start) while still below -`DISCARD_BELOW` (its target's logit far behind)
   leaves that target's run.

No Square and no FAB: on models whose gradients are sound they add nothing AutoAttack's first two attacks did
not find, and they are most of its cost. A model that masks its gradients is what the sanity checks of every
`robust` run flag (Square beating the white-box attacks, zero gradients, ...); run `--adaptive` or
`--attack autoattack` there. The tests check the promise on the tests' models: robust accuracy at most
AutoAttack-standard's + 0.1 point, at most 1/5 of its cost in pass equivalents (`cost.py`).
"""
from __future__ import annotations

from typing import ClassVar

import torch

from nnprobe.attacks.apgd import APGDT
from nnprobe.attacks.autoattack import AutoAttack
from nnprobe.attacks.base import SampleRandom, register
from nnprobe.attacks.norms import L2, Linf, per_sample
from nnprobe.errors import InputError

CANDIDATES = 100  # MALT: classes scored by their linearised distance (the highest logits after the label)
TARGETS = 3  # targets attacked, best linearised distance first
DISCARD_BELOW = 0.5  # targeted DLR loss under which a stalled sample is discarded (0: on the boundary)


class MALTTargets(APGDT):
    """APGD-T on the MALT-ranked targets, each run starting at the linearised best point towards its target."""

    default_random_start = False
    untargeted_only = True
    untargeted_why = " (it ranks its own target classes)"
    target_classes = TARGETS
    candidates = CANDIDATES

    def runs(self, forward, x, goal, targeted, autocast) -> list[torch.Tensor]:
        ranked, directions = self.ranked_targets(forward, x, goal, autocast)
        self._directions = directions
        return [torch.stack([goal, ranked[:, j]], dim=1) for j in range(ranked.shape[1])]

    def ranked_targets(self, forward, x, goal, autocast) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Per sample the `target_classes` best candidates by linearised distance, and per rank the gradient
        of z_target - z_label (the direction towards that target). Only dual norms are kept while ranking (a
        gradient per candidate would not fit in memory at ImageNet size); the chosen ranks' gradients are taken
        again: `candidates` + `target_classes` backwards, one forward."""
        x = x.detach().requires_grad_(True)
        with torch.enable_grad(), autocast:
            logits = forward(x).float()
        classes = logits.shape[1]
        if classes < 4:
            raise InputError(f"{self.id}'s targeted DLR loss needs at least 4 classes; the model has {classes}.")
        count = min(self.candidates, classes - 1)
        keep = min(self.target_classes, count)
        candidates = logits.detach().scatter(1, goal[:, None], float("-inf")).topk(count, dim=1).indices
        rows = torch.arange(x.shape[0], device=x.device)

        def towards(classes_: torch.Tensor, last: bool) -> tuple[torch.Tensor, torch.Tensor]:
            diff = logits[rows, classes_] - logits[rows, goal]
            grad = torch.autograd.grad(diff.sum(), x, retain_graph=not last, allow_unused=True)[0] \
                if diff.requires_grad else None
            return diff.detach(), torch.zeros_like(x) if grad is None else grad

        distance = torch.empty(x.shape[0], count, device=x.device)
        for j in range(count):
            diff, grad = towards(candidates[:, j], False)
            distance[:, j] = -diff / (self._dual(grad) + 1e-12)  # the linearised distance to its boundary
        ranked = candidates.gather(1, distance.argsort(dim=1)[:, :keep])
        directions = [towards(ranked[:, j], j == keep - 1)[1] for j in range(keep)]
        return ranked, directions

    def _dual(self, grad: torch.Tensor) -> torch.Tensor:
        flat = grad.flatten(1)
        return flat.norm(p=2, dim=1) if self.ball is L2 else flat.abs().sum(dim=1)

    def run_start(self, x, random: SampleRandom | None, active, run: int = 0) -> torch.Tensor:
        direction = self._directions[run][active]
        if self.ball is L2:
            step = direction / per_sample(direction.flatten(1).norm(p=2, dim=1).clamp_min(1e-12), direction)
        else:
            step = direction.sign()
        return x[active] + self.eps * step

    def _checkpoint(self, run, period: int) -> None:
        """APGD's checkpoint, then A3-style discarding of samples stalled far from their target."""
        before = run.checked
        super()._checkpoint(run, period)
        stalled = (run.loss_best <= before) & (run.loss_best < -DISCARD_BELOW)
        if stalled.any():
            run.keep(~stalled)


@register("apgd-t-malt")
class APGDTMALT(MALTTargets):
    """L∞ APGD-T on MALT-ranked targets (a component of `fast`)."""


@register("apgd-t-malt-l2")
class APGDTMALTL2(MALTTargets):
    """L2 APGD-T on MALT-ranked targets (a component of `fast-l2`)."""

    ball = L2


@register("fast")
class Fast(AutoAttack):
    """L∞ `fast`: APGD-CE (a quarter of `steps`) -> APGD-T on MALT-ranked targets (`steps`), early stop per sample."""

    ball = Linf
    version: ClassVar[str] = "fast"
    untargeted_why = " (it picks its own target classes)"

    @classmethod
    def schedule(cls) -> tuple[tuple[str, dict], ...]:
        return (("apgd-ce", {}), ("apgd-t-malt", {}))

    def __init__(self, eps: float, *, steps: int | None = None, step_size: float | None = None,
                 random_start: bool | None = None, seed: int | None = None, queries: int | None = None) -> None:
        super().__init__(eps, steps=steps, step_size=step_size, random_start=random_start, seed=seed,
                         queries=queries)
        self.parts[0].steps = max(self.steps // 4, 1)  # cheapest first: APGD-CE with a quarter of the iterations


@register("fast-l2")
class FastL2(Fast):
    """L2 `fast`."""

    ball = L2
    suffix = "-l2"
