"""`robust --adaptive`: the follow-up attacks the sanity checks name, run on every budget's survivors.

A gradient attack that left a sample robust proves nothing when the gradients are masked (Athalye et al.
2018; Tramer et al. 2020). The follow-ups, each on the samples every earlier attack left robust, each
fooling image counted (robust accuracy is the worst case over the main attack and the follow-ups):

1. `square`: the black-box Square attack (5000 queries, AutoAttack's budget): no gradient, so zero,
   noisy, wrong-sign or detector-stopped gradients do not stop it;
2. `apgd-eot`: APGD-CE on the log of the outputs where they are probabilities (a softmax inside), with
   expectation over transformation (EoT, 20 gradient draws per step, AutoAttack's version='rand') for the
   samples whose forward is randomised (two forwards differ), one draw for the others;
3. `bpda`: APGD-CE through the model with every layer that stops the gradient (quantisation, numpy
   preprocessing, a hard encoding: `bpda.stopping_layers`) given the identity's backward (BPDA, Athalye
   et al. 2018); run when there are such layers among the model's submodules, on the samples left;
4. `transfer` (when a surrogate model is given): APGD-CE against the surrogate, judged on the model
   (a transfer attack; the surrogate stands in for a non-differentiable defense, as BPDA does).

Which follow-up fooled a sample is counted per budget (`follow_ups`), and the finding
`adaptive-follow-up` says how much the main attack overstated robust accuracy.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch

from nnprobe.attacks.base import build, frozen
from nnprobe.attacks.results import RobustFinding
from nnprobe.attacks.sanity import probability_rows
from nnprobe.results import format_eps

EOT_ITER = 20  # the reference's eot_iter for version='rand'
QUERIES = 5000  # Square's queries, AutoAttack's standard


@dataclasses.dataclass(frozen=True)
class Adaptive:
    """The follow-up settings: Square's queries, APGD's steps and EoT draws, an optional surrogate."""

    queries: int = QUERIES
    steps: int = 100
    eot_iter: int = EOT_ITER
    surrogate: object = None  # a Classifier at the same input size, or None

    @property
    def ids(self) -> tuple[str, ...]:
        return ("square", "apgd-eot", "bpda") + (("transfer",) if self.surrogate is not None else ())

    def settings(self, ball_id: str) -> tuple[dict, ...]:
        suffix = "" if ball_id == "linf" else "-l2"
        entries = [{"attack": "square" + suffix, "role": "adaptive", "queries": self.queries, "restarts": 1},
                   {"attack": "apgd-ce" + suffix, "role": "adaptive", "steps": self.steps,
                    "eot_iter": self.eot_iter, "on": "log of probability outputs; EoT where the forward is random"},
                   {"attack": "apgd-ce" + suffix, "role": "adaptive bpda", "steps": self.steps,
                    "on": "identity backward through the layers that stop the gradient (when there are any)"}]
        if self.surrogate is not None:
            entries.append({"attack": "apgd-ce" + suffix, "role": "adaptive transfer", "steps": self.steps,
                            "surrogate": getattr(getattr(self.surrogate, "info", None), "spec", None)})
        return tuple(entries)


class _LogOfProbabilities(torch.nn.Module):
    """The model's outputs with rows that are probabilities replaced by their log (logits up to a shift)."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, x):
        out = self.model(x)
        rows = probability_rows(out.detach().float())
        return torch.where(rows[:, None], out.float().clamp_min(1e-30).log(), out.float())


def _randomised(classifier, x: torch.Tensor, autocast) -> torch.Tensor:
    with torch.no_grad(), autocast:
        return (classifier(x).float() != classifier(x).float()).any(dim=1)


def follow_up(adaptive: Adaptive, attack, classifier, x: torch.Tensor, labels: torch.Tensor, ids: torch.Tensor,
              autocast) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Attack the survivors x with each follow-up in turn; returns the adversarial images, the model's logits
    on them, per sample the index in `adaptive.ids` of the follow-up that fooled it (-1: none), and the
    gradient passes (Square: forward queries) spent."""
    suffix = "" if attack.ball.id == "linf" else "-l2"
    adv = x.clone()
    with torch.no_grad(), autocast:
        logits = classifier(x).float()
    by = torch.full((x.shape[0],), -1, dtype=torch.long, device=x.device)
    passes = 0
    for k, name in enumerate(adaptive.ids):
        todo = (by == -1).nonzero().flatten()
        if not todo.numel():
            break
        xs, ys, sample_ids = x[todo], labels[todo], ids[todo.cpu()]
        with frozen(classifier):
            if name == "square":
                part = build("square" + suffix, attack.eps, steps=adaptive.queries, seed=attack.seed)
                out = part._run(classifier, xs, ys, False, True, True, autocast, None, sample_ids)
                out_adv, spent = out.adversarial, out.gradient_passes
            elif name == "apgd-eot":
                out_adv, spent = _eot(adaptive, attack, suffix, classifier, xs, ys, sample_ids, autocast)
            elif name == "bpda":
                out_adv, spent = _bpda(adaptive, attack, suffix, classifier, xs, ys, sample_ids, autocast)
            else:
                part = build("apgd-ce" + suffix, attack.eps, steps=adaptive.steps, seed=attack.seed)
                with frozen(adaptive.surrogate):
                    out = part._run(adaptive.surrogate, xs, ys, False, True, True, autocast, None, sample_ids)
                out_adv, spent = out.adversarial, out.gradient_passes
            with torch.no_grad(), autocast:
                out_logits = classifier(out_adv).float()
        fooled = out_logits.argmax(1) != ys
        adv[todo[fooled]], logits[todo[fooled]] = out_adv[fooled], out_logits[fooled]
        by[todo[fooled]] = k
        passes += spent
    return adv, logits, by, passes


def _eot(adaptive: Adaptive, attack, suffix: str, classifier, xs, ys, sample_ids, autocast) -> tuple[torch.Tensor, int]:
    """APGD-CE on the log-probability view; EoT draws for the randomised samples only."""
    view = _LogOfProbabilities(classifier)
    random = _randomised(classifier, xs, autocast)
    adv, passes = xs.clone(), 0
    for eot, chosen in ((adaptive.eot_iter, random), (1, ~random)):
        if not chosen.any():
            continue
        part = build("apgd-ce" + suffix, attack.eps, steps=adaptive.steps, seed=attack.seed)
        part.eot_iter = eot
        out = part._run(view, xs[chosen], ys[chosen], False, True, True, autocast, None, sample_ids[chosen.cpu()])
        adv[chosen], passes = out.adversarial, passes + out.gradient_passes
    return adv, passes


def _bpda(adaptive: Adaptive, attack, suffix: str, classifier, xs, ys, sample_ids, autocast) -> tuple[torch.Tensor, int]:
    """APGD-CE through the model with the identity's backward on the layers that stop the gradient (none
    found: nothing to run, the samples stay)."""
    from nnprobe.attacks.bpda import BPDA, stopping_layers

    with autocast:
        layers = stopping_layers(classifier, xs)
    if not layers:
        return xs.clone(), 0
    part = build("apgd-ce" + suffix, attack.eps, steps=adaptive.steps, seed=attack.seed)
    out = part._run(BPDA(classifier, layers), xs, ys, False, True, True, autocast, None, sample_ids)
    return out.adversarial, out.gradient_passes


def findings(adaptive: Adaptive, attacks: Sequence, counts: list[list[int]]) -> list[RobustFinding]:
    """Per budget where a follow-up fooled samples the main attack left robust: how many, by which."""
    found = []
    for attack, row in zip(attacks, counts):
        by = dict(zip(adaptive.ids, row))
        total = sum(by.values())
        if not total:
            continue
        names = ", ".join(f"{k} {v}" for k, v in by.items() if v)
        found.append(RobustFinding(
            id="adaptive-follow-up", severity="warning",
            message=f"At eps {format_eps(attack.eps)}, the adaptive follow-up fooled {total} samples that "
                    f"{attack.id} left robust ({names}); the robust accuracy reported is the lower number.",
            hint="The main attack overstated robustness: report the adaptive number, and look at the other "
                 "findings for why the gradients failed.",
            evidence={"eps": attack.eps, "fooled_by_follow_up": by, "follow_up": "done"}))
    return found
