"""APGD (Croce & Hein 2020, Auto-PGD): PGD with momentum and a step size that halves at checkpoints.

The update rule follows the reference code (github fra31/auto-attack, as ported by torchattacks 3.5.1):

- the step size starts at 2·eps (per sample); momentum alpha 0.75 from the second step on;
- checkpoints after 22% of the iterations, then periods shrinking by 3% down to 6% (integer
  iterations: 22, 41, 57, 70, 80, 87, 93, 99 for 100 steps);
- at a checkpoint a sample halves its step and restarts from its best point when (i) at most
  rho = 0.75 of the steps since the last checkpoint increased its loss, or (ii) neither its step size
  nor its best loss changed since the last checkpoint. As in the reference, (ii) is off at the first
  checkpoint and the first step's increase is counted against a loss of 0 (the reference's unfilled
  history), not against the start's loss;
- the random start is the reference's: t uniform in [-1, 1] per pixel, scaled so that ‖t‖∞ = 1 (L∞),
  or a Gaussian direction on the sphere (L2); the start is therefore on the ball's surface.

Every state (step size, best point, checkpoint counters) is per sample and every loss is per sample,
so a sample's trajectory never depends on its batch: early stop, batch size and shards change only
the work. APGD-T (targeted DLR loss) runs once per target class, the 9 classes the clean image scores
highest after the true one; only still-robust samples go to the next target.
"""
from __future__ import annotations

import dataclasses

import torch
from torch import nn

from nnprobe.attacks.base import Attack, AttackOutput, SampleRandom, register
from nnprobe.attacks.norms import L2, per_sample
from nnprobe.errors import InputError

MOMENTUM = 0.75
RHO = 0.75
TARGET_CLASSES = 9


def checkpoints(steps: int) -> list[tuple[int, int]]:
    """(iterations done, period length) at each checkpoint: the reference's integer schedule for
    p0 = 0, p1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)."""
    period, least, shrink = max(int(0.22 * steps), 1), max(int(0.06 * steps), 1), max(int(0.03 * steps), 1)
    out, done = [], 0
    while done + period <= steps:
        done += period
        out.append((done, period))
        period = max(period - shrink, least)
    return out


def dlr_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Untargeted DLR per sample: -(z_y - max_{i≠y} z_i) / (z_π1 - z_π3 + 1e-12); positive iff fooled."""
    ordered = logits.sort(dim=1, descending=True).values
    true = logits.gather(1, labels[:, None])[:, 0]
    other = logits.scatter(1, labels[:, None], float("-inf")).amax(dim=1)
    return -(true - other) / (ordered[:, 0] - ordered[:, 2] + 1e-12)


def dlr_targeted_loss(logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Targeted DLR per sample: -(z_y - z_t) / (z_π1 - (z_π3 + z_π4)/2 + 1e-12).

    A label of -1 stands for the strongest class other than the target (a targeted attack with no
    true label: the class the target has to beat)."""
    ordered = logits.sort(dim=1, descending=True).values
    competitor = logits.scatter(1, targets[:, None], float("-inf")).argmax(dim=1)
    labels = torch.where(labels < 0, competitor, labels)
    margin = logits.gather(1, labels[:, None])[:, 0] - logits.gather(1, targets[:, None])[:, 0]
    return -margin / (ordered[:, 0] - 0.5 * ordered[:, 2] - 0.5 * ordered[:, 3] + 1e-12)


@dataclasses.dataclass
class _Kept:
    """Per sample of the whole batch: what the attack will return (first or last fooling iterate, or the
    highest-loss point of a sample never fooled) and at which step of its run."""

    done: torch.Tensor
    first: torch.Tensor
    first_step: torch.Tensor
    last: torch.Tensor
    last_step: torch.Tensor
    best: torch.Tensor
    best_step: torch.Tensor
    best_loss: torch.Tensor

    @classmethod
    def empty(cls, x: torch.Tensor) -> "_Kept":
        n = x.shape[0]
        zeros = torch.zeros(n, dtype=torch.long, device=x.device)
        return cls(torch.zeros(n, dtype=torch.bool, device=x.device), x.clone(), zeros.clone(), x.clone(),
                   zeros.clone(), x.clone(), zeros.clone(), torch.full((n,), float("-inf"), device=x.device))

    def see(self, index: torch.Tensor, adv: torch.Tensor, fooled: torch.Tensor, step: int) -> None:
        """An iterate of the samples at `index`: the first and the last that fool are kept."""
        if not fooled.any():
            return
        hit = index[fooled]
        self.last[hit] = adv[fooled]
        self.last_step[hit] = step
        new = fooled & ~self.done[index]
        first = index[new]
        self.first[first] = adv[new]
        self.first_step[first] = step
        self.done[first] = True

    def result(self, first_success: bool) -> tuple[torch.Tensor, torch.Tensor]:
        image, step = (self.first, self.first_step) if first_success else (self.last, self.last_step)
        mask = per_sample(self.done, image)
        return torch.where(mask, image, self.best), torch.where(self.done, step, self.best_step)


@dataclasses.dataclass
class _Trajectory:
    """The state of one APGD run over the samples still attacked (all tensors: first dim = those samples)."""

    index: torch.Tensor  # their positions in the batch
    x: torch.Tensor
    goal: torch.Tensor  # what the loss uses (label, or label and target)
    judge: torch.Tensor  # what `fooled` uses (label or target)
    adv: torch.Tensor
    old: torch.Tensor  # the previous iterate (momentum)
    grad: torch.Tensor
    best: torch.Tensor
    grad_best: torch.Tensor
    loss_best: torch.Tensor
    best_step: torch.Tensor
    size: torch.Tensor  # step size, (m, 1, 1, 1)
    previous: torch.Tensor  # the last iterate's loss
    increases: torch.Tensor  # steps since the last checkpoint that increased the loss
    reduced: torch.Tensor  # halved at the last checkpoint
    checked: torch.Tensor  # best loss at the last checkpoint

    def keep(self, mask: torch.Tensor) -> None:
        for field in dataclasses.fields(self):
            setattr(self, field.name, getattr(self, field.name)[mask])


class APGD(Attack):
    """APGD-CE: the cross-entropy of the label (untargeted) or minus that of the target (targeted).

    Returns per sample: with first_success its first fooling iterate, otherwise the last fooling
    iterate of its run (torchattacks' return); a sample never fooled returns its highest-loss point
    (torchattacks returns the clean image). `steps` counts iterations within the run that produced it.
    """

    default_steps = 100
    default_random_start = True
    supports_random_start = True
    eot_iter = 1  # gradients averaged over this many forward/backward passes per step (the reference's EoT)
    restarts = 1  # runs from fresh random starts (the reference's n_restarts; AutoAttack plus: 5)

    def default_step_size(self) -> float:
        return 2 * self.eps  # the reference's initial step; halved per sample at checkpoints

    def input_gradient(self, forward, x, goal, targeted, autocast):
        """With EoT (`eot_iter` > 1, AutoAttack's version='rand'): the mean gradient over `eot_iter` passes
        of a randomised model, as the reference sums `eot_iter` gradients; the logits of the last pass."""
        if self.eot_iter == 1:
            return super().input_gradient(forward, x, goal, targeted, autocast)
        total = torch.zeros_like(x)
        for _ in range(self.eot_iter):
            grad, logits = super().input_gradient(forward, x, goal, targeted, autocast)
            total += grad
        return total / self.eot_iter, logits

    def start(self, x: torch.Tensor, random: SampleRandom) -> torch.Tensor:
        """The reference's start: on the ball's surface (‖t‖∞ scaled to eps; a Gaussian direction for L2)."""
        if self.ball is L2:
            t = random.normal(x.shape, x.dtype)
            return x + self.eps * t / per_sample(t.flatten(1).norm(p=2, dim=1) + 1e-12, x)
        t = 2 * random.uniform(x.shape, x.dtype) - 1
        return x + self.eps * t / per_sample(t.flatten(1).abs().amax(dim=1).clamp_min(1e-12), x)

    def run_start(self, x: torch.Tensor, random: SampleRandom | None, active: torch.Tensor,
                  run: int = 0) -> torch.Tensor:
        """Run number `run`'s start for the samples at `active`. Every sample draws every run's start (also one no
        longer attacked), so a sample's j-th start is its own j-th draw, whatever its batch does."""
        return (self.start(x, random) if random is not None else x)[active]

    def losses(self, logits: torch.Tensor, goal: torch.Tensor, targeted: bool) -> torch.Tensor:
        """The loss APGD ascends, per sample (a sample's step never depends on its batch)."""
        loss = nn.functional.cross_entropy(logits.float(), goal, reduction="none")
        return -loss if targeted else loss

    def objective(self, logits, goal, targeted):  # base.input_gradient differentiates this sum
        return self.losses(logits, goal, targeted).sum()

    def runs(self, forward, x, goal, targeted, autocast) -> list[torch.Tensor]:
        """The loss goal of each run, in order (APGD-CE: one run per restart)."""
        return [goal] * self.restarts

    def _run(self, forward, x, goal, targeted, first_success, early_stop, autocast, gradient,
             sample_ids) -> AttackOutput:
        n = x.shape[0]
        random = SampleRandom(self.seed, n, sample_ids, x.device) if self.random_start else None
        kept = _Kept.empty(x)
        passes = 0
        for run, run_goal in enumerate(self.runs(forward, x, goal, targeted, autocast)):
            active = (~kept.done).nonzero().flatten()
            if active.numel() == 0:
                break
            start = self.run_start(x, random, active, run)
            passes += self.eot_iter * self._single_run(forward, x, start, run_goal, goal, targeted, active,
                                                       kept, first_success and early_stop, autocast)
        adversarial, steps = kept.result(first_success)
        with torch.no_grad(), autocast:
            logits = forward(adversarial).float()
        return AttackOutput(adversarial=adversarial, logits=logits,
                            success=self.fooled(logits, goal, targeted), steps=steps, gradient_passes=passes)

    def _evaluate(self, forward, adv, goal, targeted, autocast, need_grad: bool):
        """Per-sample loss, its gradient (None when not needed: the last iterate) and the logits."""
        if need_grad:
            grad, logits = self.input_gradient(forward, adv, goal, targeted, autocast)
        else:
            grad = None
            with torch.no_grad(), autocast:
                logits = forward(adv).float()
        return self.losses(logits, goal, targeted).detach(), grad, logits

    def _single_run(self, forward, x, start, run_goal, goal, targeted, active, kept, drop_fooled,
                    autocast) -> int:
        """One APGD run from `start` over the samples at `active`; returns the gradient passes spent."""
        xs = x[active]
        adv = self.project(xs, start)
        loss, grad, logits = self._evaluate(forward, adv, run_goal[active], targeted, autocast, True)
        m = active.numel()
        run = _Trajectory(index=active, x=xs, goal=run_goal[active], judge=goal[active], adv=adv, old=adv,
                          grad=grad, best=adv, grad_best=grad, loss_best=loss,
                          best_step=torch.zeros(m, dtype=torch.long, device=x.device),
                          size=torch.full((m, 1, 1, 1), self.step_size, device=x.device, dtype=x.dtype),
                          previous=torch.zeros_like(loss), increases=torch.zeros_like(loss),
                          reduced=torch.ones_like(loss, dtype=torch.bool), checked=loss)
        passes = m
        self._judge(run, logits, kept, 0, targeted, drop_fooled)
        schedule = dict(checkpoints(self.steps))
        for i in range(self.steps):
            if run.index.numel() == 0:
                break
            last = i == self.steps - 1
            self._step(run, momentum=MOMENTUM if i > 0 else 1.0)
            loss, grad, logits = self._evaluate(forward, run.adv, run.goal, targeted, autocast, not last)
            passes += 0 if last else run.index.numel()
            self._remember(run, loss, grad, i + 1)
            self._judge(run, logits, kept, i + 1, targeted, drop_fooled)
            if i + 1 in schedule:
                self._checkpoint(run, schedule[i + 1])
        improved = run.loss_best > kept.best_loss[run.index]
        where = run.index[improved]
        kept.best[where], kept.best_step[where] = run.best[improved], run.best_step[improved]
        kept.best_loss[where] = run.loss_best[improved]
        return passes

    def _step(self, run: _Trajectory, momentum: float) -> None:
        """z = P(x_k + η·step(∇)); x_{k+1} = P(x_k + α(z - x_k) + (1 - α)(x_k - x_{k-1}))."""
        change = run.adv - run.old
        run.old = run.adv
        z = self.project(run.x, run.adv + self.ball.step(run.grad, run.size))
        run.adv = self.project(run.x, run.adv + (z - run.adv) * momentum + change * (1 - momentum))

    @staticmethod
    def _remember(run: _Trajectory, loss: torch.Tensor, grad: torch.Tensor | None, step: int) -> None:
        """The best point so far (strictly higher loss) and the count of steps that increased the loss."""
        better = loss > run.loss_best
        run.best = torch.where(per_sample(better, run.adv), run.adv, run.best)
        if grad is not None:
            run.grad = grad
            run.grad_best = torch.where(per_sample(better, grad), grad, run.grad_best)
        run.loss_best = torch.where(better, loss, run.loss_best)
        run.best_step = torch.where(better, step, run.best_step)
        run.increases += loss > run.previous
        run.previous = loss

    @staticmethod
    def _checkpoint(run: _Trajectory, period: int) -> None:
        """Halve the step and restart from the best point where progress stalled."""
        stalled = run.increases <= period * RHO
        stalled |= ~run.reduced & (run.checked >= run.loss_best)
        run.reduced, run.checked = stalled, run.loss_best.clone()
        run.increases = torch.zeros_like(run.increases)
        mask = per_sample(stalled, run.adv)
        run.size = torch.where(mask, run.size / 2, run.size)
        run.adv = torch.where(mask, run.best, run.adv)
        run.grad = torch.where(mask, run.grad_best, run.grad)

    def _judge(self, run: _Trajectory, logits, kept: _Kept, step: int, targeted: bool, drop_fooled: bool) -> None:
        fooled = self.fooled(logits, run.judge, targeted)
        kept.see(run.index, run.adv, fooled, step)
        if drop_fooled and fooled.any():
            run.keep(~fooled)


@register("apgd-ce")
class APGDCE(APGD):
    """L∞ APGD on the cross-entropy."""


@register("apgd-ce-l2")
class APGDCEL2(APGD):
    """L2 APGD on the cross-entropy."""

    ball = L2


@register("apgd-t")
class APGDT(APGD):
    """APGD-T: the targeted DLR loss, one run per target class (the clean image's top classes after the
    label, at most 9); untargeted in what it counts (a sample is fooled once its label loses the top)."""

    target_classes = TARGET_CLASSES

    def losses(self, logits, goal, targeted):
        return dlr_targeted_loss(logits.float(), goal[:, 0], goal[:, 1])

    def runs(self, forward, x, goal, targeted, autocast) -> list[torch.Tensor]:
        with torch.no_grad(), autocast:
            logits = forward(x).float()
        classes = logits.shape[1]
        if classes < 4:
            raise InputError(f"{self.id}'s targeted DLR loss needs at least 4 classes; the model has {classes} "
                             "(use apgd-ce).")
        if targeted:  # the caller's target: one run, against the strongest other class
            return [torch.stack([torch.full_like(goal, -1), goal], dim=1)]
        others = logits.scatter(1, goal[:, None], float("-inf")).argsort(dim=1, descending=True)
        count = min(self.target_classes, classes - 1)
        return [torch.stack([goal, others[:, j]], dim=1) for j in range(count) for _ in range(self.restarts)]


@register("apgd-t-l2")
class APGDTL2(APGDT):
    """L2 APGD-T."""

    ball = L2


@register("apgd-dlr")
class APGDDLR(APGD):
    """APGD on the untargeted DLR loss (AutoAttack's 'apgd-dlr', in its plus and rand versions): invariant
    to shifting and scaling the logits, so a saturated softmax does not flatten it."""

    untargeted_only = True

    def losses(self, logits, goal, targeted):
        if logits.shape[1] < 3:
            raise InputError(f"{self.id}'s DLR loss needs at least 3 classes; the model has {logits.shape[1]}.")
        return dlr_loss(logits.float(), goal)


@register("apgd-dlr-l2")
class APGDDLRL2(APGDDLR):
    """L2 APGD-DLR."""

    ball = L2
