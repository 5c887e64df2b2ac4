"""The attack base class: every invariant lives here, so a new attack writes only its update rule.

Guaranteed for every registered attack (foolbox 3 style, tested by parametrizing over the registry):

- inputs are float NCHW pixels in [0, 1] (else `InputError`, one sentence);
- the model runs in eval mode and every module's train/eval flag is restored afterwards;
- parameters do not require grad during the attack (gradients are taken w.r.t. the input only, which
  skips weight-gradient work), and each parameter's flag is restored afterwards;
- after each step the perturbation is projected onto the eps ball of the attack's norm (`ball`, a
  strategy class from `norms.py`) and the image clamped to [0, 1];
- `success` and `logits` describe exactly the tensor that is returned.

Losses are summed per sample (not averaged), so a sample's gradient does not depend on which other
samples share its batch: early stopping (dropping fooled samples from the batch) then changes the work
done, never the result.
"""
from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import ClassVar

import torch
from torch import nn

from nnprobe.attacks.norms import Linf, Norm
from nnprobe.errors import InputError, UsageError

REGISTRY: dict[str, type["Attack"]] = {}
ProgressCallback = Callable[[int, int], None]


def register(attack_id: str) -> Callable[[type["Attack"]], type["Attack"]]:
    """Class decorator: make an attack available under a stable id (`pgd`); a duplicate id raises."""

    def decorate(cls: type["Attack"]) -> type["Attack"]:
        if attack_id in REGISTRY:
            raise ValueError(f"attack id {attack_id!r} is already registered by {REGISTRY[attack_id].__name__}")
        cls.id = attack_id
        REGISTRY[attack_id] = cls
        return cls

    return decorate


def get_attack(attack_id: str) -> type["Attack"]:
    try:
        return REGISTRY[attack_id]
    except KeyError:
        raise UsageError(f"--attack {attack_id!r} is not one of {', '.join(sorted(REGISTRY))}.") from None


def attack_ids() -> list[str]:
    return sorted(REGISTRY)


@dataclasses.dataclass
class AttackOutput:
    """What an attack returns; `logits` and `success` are measured on `adversarial` itself."""

    adversarial: torch.Tensor  # same shape as the input, in [0, 1]
    logits: torch.Tensor  # float32 logits of the model on `adversarial`
    success: torch.Tensor  # bool per sample: moved off the label (untargeted) or onto the target
    steps: torch.Tensor  # int64 per sample: update steps that produced the returned image
    gradient_passes: int  # forward+backward passes summed over samples: the work done


@contextlib.contextmanager
def frozen(model: nn.Module) -> Iterator[None]:
    """Eval mode and no parameter gradients for the duration; every flag restored exactly afterwards."""
    modes = [(module, module.training) for module in model.modules()]
    flags = [(param, param.requires_grad) for param in model.parameters()]
    model.eval()
    for param, _ in flags:
        param.requires_grad_(False)
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training
        for param, requires_grad in flags:
            param.requires_grad_(requires_grad)


def check_pixels(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise InputError("Attack inputs must be a float tensor of pixels in [0, 1].")
    if x.dim() != 4:
        raise InputError(f"Attack inputs must be a batch of images (N, C, H, W); got shape {tuple(x.shape)}.")
    if x.numel() and (not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1):
        raise InputError("Attack inputs must be pixels in [0, 1] (normalisation happens inside the classifier); "
                         f"got values in [{x.min().item():.4g}, {x.max().item():.4g}].")


def objective_gradient(forward, x: torch.Tensor, objective: Callable[[torch.Tensor], torch.Tensor],
                       autocast) -> tuple[torch.Tensor, torch.Tensor]:
    """The gradient of `objective(logits)` w.r.t. the input x, and the (float, detached) logits.

    A model whose output has no autograd path to its input (a hard thermometer encoding, numpy
    preprocessing turned back into a tensor, an argmax) gives an all-zero gradient, not an error: that is
    gradient masking, which the sanity checks report (`zero-gradients`) and Square or `--adaptive` get past.
    """
    x = x.detach().requires_grad_(True)
    with torch.enable_grad(), autocast:
        logits = forward(x)
    logits = logits.float()
    value = objective(logits)
    if not value.requires_grad:
        return torch.zeros_like(x), logits.detach()
    grad, = torch.autograd.grad(value, x, allow_unused=True)
    return (torch.zeros_like(x) if grad is None else grad), logits.detach()


class SampleRandom:
    """Random numbers for a random start, drawn per sample when sample ids are known.

    With ids, sample i's draws come from a generator seeded by (seed, id): its start does not depend on
    which other samples share its batch, so batch size, early stop and torchrun shards cannot change
    the result. Draws are made on the CPU and moved, so a seed means the same start on every device.
    """

    def __init__(self, seed: int | None, n: int, sample_ids: torch.Tensor | None, device) -> None:
        self.device = device
        base = torch.Generator()
        if seed is None:
            base.seed()
        else:
            base.manual_seed(seed)
        if sample_ids is None:
            self.generators = [base]
        else:
            offset = int(torch.randint(0, 2**31, (1,), generator=base)) if seed is None else seed
            self.generators = [torch.Generator().manual_seed((offset * 1_000_003 + int(i)) % 2**63)
                               for i in sample_ids.tolist()]
        self.n = n

    def _draw(self, fn, shape: tuple[int, ...], dtype) -> torch.Tensor:
        if len(self.generators) == 1:
            out = fn(shape, generator=self.generators[0], dtype=dtype)
        else:
            out = torch.stack([fn(shape[1:], generator=g, dtype=dtype) for g in self.generators])
        return out.to(self.device)

    def uniform(self, shape, dtype=torch.float32) -> torch.Tensor:
        """U[0, 1) of `shape` (first dim = samples)."""
        return self._draw(torch.rand, tuple(shape), dtype)

    def normal(self, shape, dtype=torch.float32) -> torch.Tensor:
        return self._draw(torch.randn, tuple(shape), dtype)


class Attack:
    """Base class. Subclasses set `ball` (their norm), defaults, and maybe `update` and `start`."""

    id: ClassVar[str] = ""
    ball: ClassVar[type[Norm]] = Linf  # the norm: random start, step, projection, distance
    norm: ClassVar[str] = Linf.id  # the norm's id, as reported; follows `ball`, never set by hand
    iterative: ClassVar[bool] = True
    default_steps: ClassVar[int] = 10
    default_random_start: ClassVar[bool] = False
    supports_random_start: ClassVar[bool] = False
    # True when the update at x depends only on the gradient at x (FGSM): a sweep over several eps
    # then needs one gradient, not one per eps.
    single_gradient: ClassVar[bool] = False
    untargeted_only: ClassVar[bool] = False  # refuses --target (untargeted losses, cascades)
    untargeted_why: ClassVar[str] = ""  # said after "is untargeted" when it refuses

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "norm" in vars(cls):
            raise TypeError(f"{cls.__name__} sets norm; set ball to a norm class from nnprobe.attacks.norms.")
        cls.norm = cls.ball.id

    def __init__(self, eps: float, *, steps: int | None = None, step_size: float | None = None,
                 random_start: bool | None = None, seed: int | None = None) -> None:
        if not (isinstance(eps, (int, float)) and eps >= 0 and eps == eps):
            raise UsageError(f"eps must be a non-negative number, got {eps!r}.")
        limit = self.ball.max_eps
        if limit is not None and eps > limit:
            raise UsageError(f"an {self.ball.symbol} eps of {eps:g} is above {limit:g}; pixels are in [0, 1] "
                             "(write 2/255, not 2).")
        if not self.iterative and steps not in (None, 1):
            raise UsageError(f"{self.id} takes one step; --steps {steps} needs an iterative attack (bim, pgd, mifgsm).")
        if steps is not None and steps < 1:
            raise UsageError(f"--steps must be at least 1, got {steps}.")
        if step_size is not None and not step_size > 0:
            raise UsageError(f"--step-size must be positive, got {step_size}.")
        if random_start and not self.supports_random_start:
            raise UsageError(f"{self.id} has no random start; use pgd or pgd-l2 for one.")
        from nnprobe.data.checks import check_seed

        check_seed(seed)
        self.eps = float(eps)
        self.steps = (steps or self.default_steps) if self.iterative else 1
        self.step_size = float(step_size) if step_size is not None else self.default_step_size()
        self.random_start = self.default_random_start if random_start is None else bool(random_start)
        self.seed = seed

    # ------------------------------------------------------------------ what an attack writes
    def default_step_size(self) -> float:
        """2.5·eps/steps (Madry et al.): enough to reach the ball's surface from any start."""
        return 2.5 * self.eps / self.steps

    def start(self, x: torch.Tensor, random: SampleRandom) -> torch.Tensor:
        """The first iterate with a random start (before projection): a random point of the norm's ball."""
        return x + self.ball.random_delta(x, self.eps, random)

    def init_state(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-sample state tensors (first dim = batch), e.g. MI-FGSM's momentum."""
        return {}

    def update(self, adv: torch.Tensor, grad: torch.Tensor,
               state: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One ascent step on the objective's gradient: the new (unprojected) iterate and state.

        By default the norm's steepest-ascent step (sign for L∞, unit L2 for L2), as in BIM and PGD."""
        return adv + self.ball.step(grad, self.step_size), state

    # ------------------------------------------------------------------ the invariants
    def project(self, x: torch.Tensor, adv: torch.Tensor, eps: float | None = None) -> torch.Tensor:
        """Onto the eps ball around x (the norm's projection), then into [0, 1]."""
        delta = self.ball.project(adv - x, self.eps if eps is None else eps)
        return torch.clamp(x + delta, min=0, max=1).detach()

    def __call__(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor | None = None, *,
                 targets: torch.Tensor | None = None, forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 first_success: bool = False, early_stop: bool = False,
                 autocast: contextlib.AbstractContextManager | None = None,
                 gradient: torch.Tensor | None = None, sample_ids: torch.Tensor | None = None) -> AttackOutput:
        """Attack a batch.

        labels: the classes to move away from (default: the model's own predictions on x).
        targets: when given, a targeted attack: move onto these classes instead.
        forward: the differentiable function to attack (default `model`; e.g. `model.forward_image`).
        first_success: return, per sample, the first iterate that fools the model (a sample counts as
            fooled as soon as any iterate fools it, as robust accuracy requires); otherwise the last
            iterate (torchattacks' semantics), which `fool` uses for the most confident image.
        early_stop: with first_success, stop spending gradient passes on a sample once it is fooled.
            Only the work changes: the returned images and verdicts are those of running every step.
        gradient: a precomputed objective gradient at x (FGSM sweeps share one).
        sample_ids: a stable id per sample (its position in the data set): the random start of a sample
            then depends on (seed, id) only, not on the batch it is in.
        """
        check_pixels(x)
        if targets is not None and self.untargeted_only:
            raise UsageError(f"{self.id} is untargeted{self.untargeted_why}; drop --target.")
        forward = forward or model
        autocast = autocast or contextlib.nullcontext()
        x = x.detach()
        with frozen(model):
            if labels is None and targets is None:
                with torch.no_grad(), autocast:
                    labels = forward(x).float().argmax(dim=1)
            goal, targeted = self._goal(labels, targets, x.shape[0], x.device)
            return self._run(forward, x, goal, targeted, first_success or early_stop, early_stop, autocast,
                             gradient, sample_ids)

    @staticmethod
    def _goal(labels, targets, n, device) -> tuple[torch.Tensor, bool]:
        goal = targets if targets is not None else labels
        goal = torch.as_tensor(goal, device=device).long().reshape(-1)
        if goal.numel() == 1 and n != 1:
            goal = goal.expand(n)
        if goal.shape[0] != n:
            raise InputError(f"got {goal.shape[0]} labels for {n} images.")
        return goal, targets is not None

    @staticmethod
    def objective(logits: torch.Tensor, goal: torch.Tensor, targeted: bool) -> torch.Tensor:
        """What the attack ascends: cross-entropy of the label (untargeted) or minus that of the target."""
        loss = nn.functional.cross_entropy(logits.float(), goal, reduction="sum")
        return -loss if targeted else loss

    @staticmethod
    def fooled(logits: torch.Tensor, goal: torch.Tensor, targeted: bool) -> torch.Tensor:
        predicted = logits.argmax(dim=1)
        return predicted == goal if targeted else predicted != goal

    def input_gradient(self, forward, x, goal, targeted, autocast) -> tuple[torch.Tensor, torch.Tensor]:
        """Objective gradient w.r.t. the input only, and the logits at x."""
        return objective_gradient(forward, x, lambda logits: self.objective(logits, goal, targeted), autocast)

    def _run(self, forward, x, goal, targeted, first_success, early_stop, autocast, gradient,
             sample_ids) -> AttackOutput:
        n = x.shape[0]
        if self.random_start:
            adv = self.project(x, self.start(x, SampleRandom(self.seed, n, sample_ids, x.device)))
        else:
            adv = x.clone()
        state = self.init_state(x)
        steps = torch.zeros(n, dtype=torch.long, device=x.device)
        done = torch.zeros(n, dtype=torch.bool, device=x.device)  # first success recorded
        kept = adv.clone() if first_success else adv  # per sample: the first fooling iterate
        kept_steps = torch.zeros_like(steps)
        logits_out: torch.Tensor | None = None
        active = torch.arange(n, device=x.device)  # samples still being updated
        passes = 0
        for step in range(self.steps):
            if active.numel() == 0:
                break
            if step == 0 and gradient is not None and not self.random_start:
                grad, logits = gradient[active], None
            else:
                grad, logits = self.input_gradient(forward, adv[active], goal[active], targeted, autocast)
            passes += int(active.numel())
            if first_success and logits is not None:
                hit = self.fooled(logits, goal[active], targeted) & ~done[active]
                if hit.any():
                    if logits_out is None:
                        logits_out = torch.empty(n, logits.shape[1], device=x.device)
                    newly = active[hit]
                    logits_out[newly] = logits[hit]
                    kept[newly] = adv[newly]
                    kept_steps[newly] = steps[newly]
                    done[newly] = True
                if early_stop:
                    keep = ~done[active]
                    active, grad = active[keep], grad[keep]
                    if active.numel() == 0:
                        break
            sub_state = {k: v[active] for k, v in state.items()}
            new, sub_state = self.update(adv[active], grad, sub_state)
            adv[active] = self.project(x[active], new)
            for k, v in sub_state.items():
                state[k][active] = v
            steps[active] += 1
        remaining = (~done).nonzero().flatten()
        if remaining.numel():
            with torch.no_grad(), autocast:
                final = forward(adv[remaining]).float()
            if logits_out is None:
                logits_out = torch.empty(n, final.shape[1], device=x.device)
            logits_out[remaining] = final
            if first_success:
                kept[remaining] = adv[remaining]
        assert logits_out is not None
        if first_success:  # a sample's steps are those that produced the image it returns
            steps = torch.where(done, kept_steps, steps)
        return AttackOutput(adversarial=kept, logits=logits_out, success=self.fooled(logits_out, goal, targeted),
                            steps=steps, gradient_passes=passes)


def build(attack_id: str, eps: float, **options) -> Attack:
    """An attack instance by registry id; options left None take the attack's defaults."""
    cls = get_attack(attack_id)
    return cls(eps, **{k: v for k, v in options.items() if v is not None})


def sweep(attack_id: str, model: nn.Module, x: torch.Tensor, labels: torch.Tensor | None, eps: Sequence[float], *,
          targets: torch.Tensor | None = None, forward=None, first_success: bool = False,
          early_stop: bool = False, autocast=None,
          progress: ProgressCallback | None = None, **options) -> list[tuple[Attack, AttackOutput]]:
    """Run one attack at several budgets; single-gradient attacks (FGSM) compute one gradient for all."""
    attacks = [build(attack_id, e, **options) for e in eps]
    autocast = autocast or contextlib.nullcontext()
    forward_fn = forward or model
    shared = None
    check_pixels(x)
    if labels is None and targets is None:
        with frozen(model), torch.no_grad(), autocast:
            labels = forward_fn(x.detach()).float().argmax(dim=1)
    if len(attacks) > 1 and attacks[0].single_gradient and not attacks[0].random_start:
        goal, targeted = Attack._goal(labels, targets, x.shape[0], x.device)
        with frozen(model):
            shared, _ = attacks[0].input_gradient(forward_fn, x, goal, targeted, autocast)
    outputs = []
    for i, attack in enumerate(attacks):
        outputs.append((attack, attack(model, x, labels, targets=targets, forward=forward,
                                       first_success=first_success, early_stop=early_stop,
                                       autocast=autocast, gradient=shared)))
        if progress is not None:
            progress(i + 1, len(attacks))
    return outputs
