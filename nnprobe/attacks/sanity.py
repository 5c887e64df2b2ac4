"""Sanity checks of a `robust` run, after AutoAttack's `checks.py` (Croce & Hein 2020) and the checklist
of Carlini et al. 2019 ("On evaluating adversarial robustness"): signs that robust accuracy is high
because the attack could not use the model's gradients, not because the model is robust.

Every check is always on, because each rides on the robust pass itself (`attack_batch` hands the probe
the clean logits and each budget's per-sample verdicts it computes anyway). The extra work:

- on the first `SUBSET` samples a process sees: one input-gradient pass (zero or non-finite gradients)
  and two plain forwards (randomised outputs); the clean logits, already computed, say whether the model
  returns probabilities;
- per budget: one forward over the samples the attack left robust, moved by random sign noise at the
  same budget (noise that fools where the attack did not);
- free: samples fooled at a smaller budget but not at a larger one; with autoattack, the samples that
  only Square (black-box) fooled.

That is about one forward per robust sample per budget, a few percent of a 10-step attack, so no flag is
needed to turn them off. Counts are integer tensors summed over batches and torchrun ranks like the
robust tally; the example sample ids and the largest output difference are this process's own.
"""
from __future__ import annotations

import torch

from nnprobe.attacks.base import SampleRandom, frozen, objective_gradient
from nnprobe.attacks import binarization, indicators, masking
from nnprobe.attacks.results import RobustFinding
from nnprobe.results import format_eps

SUBSET = 16  # samples per process for the model-level checks (gradients, probabilities, randomness)
EXAMPLES = 10  # sample ids kept as evidence per check
SQUARE_MARGIN = 0.002  # checks.py: Square lowering robust accuracy by more than 0.2% is a flag
PROBABILITY_TOL = 1e-3  # rows summing to 1 within this (bf16/fp16 softmax is not exact)
RANDOM_TOL = 1e-4  # checks.py: the L2 difference of L2-normalised outputs that means "randomised"
NOISE_SEED_OFFSET = 104_729  # the noise draws must not repeat the attack's random start

# model-level counts
_MODEL = ("grad_checked", "grad_zero", "grad_nonfinite", "prob_checked", "prob_rows", "random_checked",
          "random_rows", "non_monotone", *masking.COUNTS, *indicators.COUNTS, *binarization.COUNTS)
# per-budget counts: noise tried on / fooled only by noise / fooled only by square / fooled by component k
_COMPONENTS = 6  # AutoAttack plus runs six
_BUDGET = ("noise_tried", "noise_only", "square_only", *(f"by_{k}" for k in range(_COMPONENTS)))


def _col(names: tuple[str, ...], name: str) -> int:
    return names.index(name)


def input_gradient(forward, x: torch.Tensor, labels: torch.Tensor, autocast) -> torch.Tensor:
    """Cross-entropy gradient w.r.t. the input (summed per sample); zeros when the output does not depend
    on the input through autograd at all (e.g. an argmax one-hot output)."""
    loss = lambda logits: torch.nn.functional.cross_entropy(logits, labels, reduction="sum")  # noqa: E731
    return objective_gradient(forward, x, loss, autocast)[0]


def probability_rows(logits: torch.Tensor) -> torch.Tensor:
    """Rows that are a probability distribution: in [0, 1] and summing to 1 (a softmax inside the model)."""
    return ((logits.amin(dim=1) >= -1e-5) & (logits.amax(dim=1) <= 1 + 1e-5)
            & ((logits.sum(dim=1) - 1).abs() <= PROBABILITY_TOL))


def output_difference(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Per row, the L2 distance of the two outputs after L2-normalising each (checks.py's measure)."""
    a = first / (first.norm(dim=1, keepdim=True) + 1e-10)
    b = second / (second.norm(dim=1, keepdim=True) + 1e-10)
    return (a - b).norm(dim=1)


def sign_noise(ball, x: torch.Tensor, eps: float, random: SampleRandom) -> torch.Tensor:
    """Random noise on the surface of the eps ball: uniform random signs times eps for L∞ (a random vertex),
    a uniformly random direction scaled to norm eps for any other norm."""
    if ball.id == "linf":
        return eps * torch.where(random.uniform(x.shape, x.dtype) < 0.5, -1.0, 1.0).to(x.dtype)
    direction = random.normal(x.shape, x.dtype)
    scale = eps / ball.distance(direction).clamp_min(1e-12)
    return direction * scale.view(-1, *([1] * (x.dim() - 1)))


class Probe:
    """What the sanity checks saw during one robust pass; `attack_batch` calls `clean` once per batch and
    `attacked` once per budget."""

    def __init__(self, attacks, device, seed: int | None, binarization_test: bool | int = False) -> None:
        self.attacks = list(attacks)
        self.seed = seed
        # opt-in (`binarization.py`): True or its inner points per sample, each a forward
        self.binarization_test = binarization.INNER if binarization_test is True else int(binarization_test)
        self.model = torch.zeros(len(_MODEL), dtype=torch.int64, device=device)
        self.budget = torch.zeros(len(self.attacks), len(_BUDGET), dtype=torch.int64, device=device)
        self.examples: dict[str, list[int]] = {}
        self.largest_difference = 0.0
        self._right: dict[int, torch.Tensor] = {}  # this batch: budget row -> right after the attack
        self._non_monotone: torch.Tensor | None = None
        self._checked = 0

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The counts to sum over ranks (`Shard.finish`)."""
        return self.model, self.budget

    def counts(self, follow_ups: list[list[int]] | None = None, follow_up_ids: tuple[str, ...] = ()) -> dict:
        """The raw evidence as JSON (`RobustResult.sanity`): `nnprobe merge` sums it over the slices and
        re-derives the findings of the whole from it (`restored`), as one process would have found them."""
        return {"model": dict(zip(_MODEL, (int(v) for v in self.model.cpu().tolist()))),
                "budget": self.budget.cpu().tolist(), "examples": {k: list(v) for k, v in self.examples.items()},
                "largest_difference": self.largest_difference, "follow_ups": follow_ups or [],
                "follow_up_ids": list(follow_up_ids)}

    @classmethod
    def restored(cls, counts: dict, attacks) -> "Probe":
        """A probe holding `counts` (summed over slices), for `findings`."""
        probe = cls(attacks, "cpu", None)
        probe.model = torch.tensor([int(counts["model"].get(name, 0)) for name in _MODEL], dtype=torch.int64)
        # slices written when AutoAttack had fewer components carry shorter rows: the missing ones counted 0
        rows = [list(row) + [0] * (len(_BUDGET) - len(row)) for row in counts["budget"]]
        if len(rows) != len(attacks) or any(len(row) != len(_BUDGET) for row in rows):
            from nnprobe.errors import DataError

            raise DataError(f"The sanity counts hold {len(rows)} rows of up to {max(map(len, rows), default=0)} "
                            f"counts; this nnprobe writes {len(attacks)} of {len(_BUDGET)}.")
        probe.budget = torch.tensor(rows, dtype=torch.int64).reshape(len(attacks), len(_BUDGET))
        probe.examples = {k: list(v) for k, v in counts["examples"].items()}
        probe.largest_difference = float(counts["largest_difference"])
        return probe

    def _example(self, check: str, ids: torch.Tensor) -> None:
        kept = self.examples.setdefault(check, [])
        kept.extend(int(i) for i in ids.flatten().tolist()[:EXAMPLES - len(kept)])

    def clean(self, classifier, x: torch.Tensor, labels: torch.Tensor, ids: torch.Tensor,
              clean_logits: torch.Tensor, autocast) -> None:
        """Start of a batch; on the first SUBSET samples: gradients, probabilities, a repeated forward."""
        self._right = {}
        self._non_monotone = torch.zeros(labels.numel(), dtype=torch.bool, device=x.device)
        m = min(SUBSET - self._checked, labels.numel())
        if m <= 0:
            return
        self._checked += m
        xs, ys = x[:m], labels[:m]
        with frozen(classifier):
            grad = input_gradient(classifier, xs, ys, autocast)
            flat = grad.flatten(1)
            with torch.no_grad(), autocast:
                first, second = classifier(xs).float(), classifier(xs).float()
        self._masking(classifier, xs, ys, ids[:m], grad, clean_logits[:m].argmax(1) == ys, autocast)
        nonfinite = ~torch.isfinite(flat).all(dim=1)
        zero = ~nonfinite & (flat.abs().amax(dim=1) == 0)
        probs = probability_rows(clean_logits[:m])
        difference = output_difference(first, second)
        differ = (difference > RANDOM_TOL) | (first.argmax(1) != second.argmax(1))
        if differ.any():
            self.largest_difference = max(self.largest_difference, float(difference.max()))
        self._example("zero-gradients", ids[:m][(zero | nonfinite).cpu()])
        self.model[:7] += torch.tensor([m, int(zero.sum()), int(nonfinite.sum()), m, int(probs.sum()), m,
                                        int(differ.sum())], dtype=torch.int64, device=self.model.device)

    def _masking(self, classifier, xs, ys, ids, grad, right, autocast) -> None:
        """The checks of `masking.py` on this batch's checked samples."""
        if not self.attacks:
            return
        seed = None if self.seed is None else (self.seed + masking.MOVE_SEED_OFFSET) % 2**31
        random = SampleRandom(seed, xs.shape[0], ids, xs.device)
        flags = masking.check(classifier, xs, ys, grad, right, self.attacks[0].ball,
                              max(a.eps for a in self.attacks), random, autocast)
        flags["consistency_checked"] = torch.ones_like(right)
        for name in masking.COUNTS:
            self.model[_col(_MODEL, name)] += int(flags[name].sum())
        for name in ("inconsistent", "moved_zero", "unconstrained_failed"):
            check = {"inconsistent": "inconsistent-gradients", "moved_zero": "gradients-vanish-after-move",
                     "unconstrained_failed": "unconstrained-attack-fails"}[name]
            self._example(check, ids[flags[name].cpu()])
        largest = max(self.attacks, key=lambda a: a.eps)
        flags = indicators.trajectory(largest, classifier, xs, ys, ids, right, autocast)
        for name in indicators.COUNTS:
            self.model[_col(_MODEL, name)] += int(flags[name].sum())
        self._example("silent-success", ids[flags["silent_success"].cpu()])
        self._example("incomplete-optimisation", ids[flags["incomplete"].cpu()])
        if self.binarization_test:
            flags = binarization.check(largest, classifier, xs, ids, self.seed, autocast, self.binarization_test)
            for name in binarization.COUNTS:
                self.model[_col(_MODEL, name)] += int(flags[name].sum())
            self._example("binarization-test-fails", ids[flags["binarization_failed"].cpu()])

    def attacked(self, row: int, attack, classifier, x: torch.Tensor, labels: torch.Tensor, ids: torch.Tensor,
                 clean_right: torch.Tensor, right1: torch.Tensor, out, autocast) -> None:
        """One budget of a batch is done: `right1` says which samples are still right after the attack."""
        self._monotone(row, attack.eps, clean_right, right1)
        counts = torch.zeros(len(_BUDGET), dtype=torch.int64)
        survivors = (clean_right & right1).nonzero().flatten()
        if attack.eps > 0 and survivors.numel():
            noise_only = self._noise(attack, classifier, x[survivors], labels[survivors], ids[survivors.cpu()],
                                     autocast)
            counts[0], counts[1] = survivors.numel(), int(noise_only.sum())
            self._example(f"noise-beats-attack@{row}", ids[survivors.cpu()][noise_only.cpu()])
        fooled_by = getattr(out, "fooled_by", None)
        names = tuple(getattr(attack, "component_ids", ()))
        if fooled_by is not None:
            for k in range(min(len(names), _COMPONENTS)):
                counts[3 + k] = int((fooled_by == k).sum())
            square_index = next((k for k, name in enumerate(names) if name.startswith("square")), None)
            if square_index is not None:
                square = (fooled_by == square_index).cpu()
                counts[2] = int(square.sum())
                chosen = (clean_right if fooled_by.numel() == clean_right.sum() else torch.ones_like(clean_right))
                self._example(f"square-beats-white-box@{row}", ids[chosen.nonzero().flatten().cpu()][square])
        self.budget[row] += counts.to(self.budget.device)

    def _monotone(self, row: int, eps: float, clean_right: torch.Tensor, right1: torch.Tensor) -> None:
        """Count samples fooled at a smaller budget yet right at a larger one (each sample once)."""
        flag = torch.zeros_like(clean_right)
        for other, other_right in self._right.items():
            other_eps = self.attacks[other].eps
            if other_eps < eps:
                flag |= clean_right & ~other_right & right1
            elif other_eps > eps:
                flag |= clean_right & ~right1 & other_right
        self._right[row] = right1
        new = flag & ~self._non_monotone
        self._non_monotone |= flag
        self.model[_col(_MODEL, "non_monotone")] += int(new.sum())

    def _noise(self, attack, classifier, x, labels, ids, autocast) -> torch.Tensor:
        """Per sample: does random sign noise at the attack's budget fool it? (one forward)"""
        seed = None if self.seed is None else (self.seed + NOISE_SEED_OFFSET) % 2**31
        random = SampleRandom(seed, x.shape[0], ids, x.device)
        noisy = attack.project(x, x + sign_noise(attack.ball, x, attack.eps, random))
        with frozen(classifier), torch.no_grad(), autocast:
            return classifier(noisy).float().argmax(dim=1) != labels


# ---------------------------------------------------------------------------------------- findings
def _warning(check: str, message: str, hint: str, **evidence) -> RobustFinding:
    return RobustFinding(id=check, severity="warning", message=message, hint=hint, evidence=evidence)


def _gradient_finding(m: dict, probe: Probe) -> list[RobustFinding]:
    zero, nonfinite, checked = m["grad_zero"], m["grad_nonfinite"], m["grad_checked"]
    if not zero + nonfinite:
        return []
    return [_warning(
        "zero-gradients",
        f"{zero} of {checked} checked samples have an all-zero input gradient and {nonfinite} a non-finite one: "
        "gradient attacks get no direction there, so robust accuracy may be overstated (gradient masking).",
        "Look for non-differentiable steps in the forward pass (rounding, quantisation, argmax, thresholds, JPEG) "
        "and attack through a differentiable approximation (BPDA, Athalye et al. 2018); confirm with a "
        "black-box attack (--attack autoattack runs Square). AutoAttack's checks.py raises the same flag.",
        follow_up="square", checked=checked, zero=zero, nonfinite=nonfinite, sample_ids=probe.examples.get("zero-gradients", []))]


def _probability_finding(m: dict) -> list[RobustFinding]:
    if not m["prob_checked"] or m["prob_rows"] != m["prob_checked"]:
        return []
    return [_warning(
        "probabilities-not-logits",
        f"The model's outputs look like probabilities (all {m['prob_checked']} checked rows are in [0, 1] and "
        "sum to 1): a softmax is inside the model.",
        "Attacks need logits: cross-entropy of a softmax output saturates and masks the gradient (AutoAttack "
        "checks.py). Return the logits (remove the final softmax) before measuring robustness.",
        follow_up="log-probabilities", checked=m["prob_checked"], probability_rows=m["prob_rows"])]


def _random_finding(m: dict, probe: Probe) -> list[RobustFinding]:
    if not m["random_rows"]:
        return []
    return [_warning(
        "randomised-forward",
        f"The same input gave different outputs on two forward passes in eval mode ({m['random_rows']} of "
        f"{m['random_checked']} checked samples; largest normalised difference {probe.largest_difference:.3g}).",
        "A randomised model (dropout left on, random transforms, noise injection) needs an attack with "
        "Expectation over Transformation (AutoAttack version='rand', EoT over 20 draws, Athalye et al. 2018); "
        "one draw overstates robustness and does not reproduce. Make the forward deterministic or use EoT.",
        follow_up="eot", checked=m["random_checked"], differing=m["random_rows"], largest_difference=probe.largest_difference)]


def _monotone_finding(points, m: dict) -> list[RobustFinding]:
    ordered = sorted(points, key=lambda p: p.eps)
    rises = [(a, b) for i, a in enumerate(ordered) for b in ordered[i + 1:]
             if b.eps > a.eps and b.correct_top1 > a.correct_top1]
    if not rises and not m["non_monotone"]:
        return []
    pairs = [{"eps": [a.eps, b.eps], "correct_top1": [a.correct_top1, b.correct_top1]} for a, b in rises]
    said = (f"robust top-1 rises from {rises[0][0].correct_top1} at eps {format_eps(rises[0][0].eps)} to "
            f"{rises[0][1].correct_top1} at {format_eps(rises[0][1].eps)}; " if rises else "")
    return [_warning(
        "accuracy-rises-with-eps",
        f"Robust accuracy is not monotone in eps: {said}{m['non_monotone']} samples fooled at a smaller budget "
        "survived a larger one.",
        "Every image that fools at a smaller budget lies inside the larger ball, so a reliable attack never "
        "gives a higher accuracy at a larger eps (Carlini et al. 2019). The attack is missing adversarials: "
        "use more steps and restarts, or --attack autoattack.",
        follow_up="autoattack", rising_pairs=pairs, non_monotone_samples=m["non_monotone"])]


def _noise_findings(points, probe: Probe, budget: list[list[int]]) -> list[RobustFinding]:
    found = []
    for row, (attack, point, counts) in enumerate(zip(probe.attacks, points, budget)):
        tried, only = counts[0], counts[1]
        if not only:
            continue
        found.append(_warning(
            "noise-beats-attack",
            f"At eps {format_eps(attack.eps)}, random sign noise fooled {only} of the {tried} samples that "
            f"{attack.id} left robust.",
            "A gradient attack must beat random noise at the same budget (Carlini et al. 2019); when it does "
            "not, its gradients are uninformative (masked or saturated). Use more steps and restarts or "
            "--attack autoattack, and look for gradient masking.",
            follow_up="square", eps=attack.eps, tried=tried, fooled_by_noise_only=only,
            sample_ids=probe.examples.get(f"noise-beats-attack@{row}", [])))
    return found


def _square_findings(points, probe: Probe, budget: list[list[int]]) -> list[RobustFinding]:
    found = []
    for row, (attack, point, counts) in enumerate(zip(probe.attacks, points, budget)):
        names = tuple(getattr(attack, "component_ids", ()))
        only = counts[2]
        if not any(n.startswith("square") for n in names) or not point.total or only / point.total <= SQUARE_MARGIN:
            continue
        white = " and ".join(n for n in names if not n.startswith("square"))
        found.append(_warning(
            "square-beats-white-box",
            f"At eps {format_eps(attack.eps)}, the black-box Square attack fooled {only} samples "
            f"({only / point.total:.2%} of {point.total}) that the white-box {white} did not.",
            "AutoAttack's checks.py flags Square lowering robust accuracy by more than 0.2%: the gradients are "
            "likely masked, so white-box numbers are unreliable. Run Square with more queries and restarts, "
            "or an adaptive attack (Tramer et al. 2020).",
            follow_up="square", eps=attack.eps, fooled_only_by_square=only,
            fooled_by_component=dict(zip(names, counts[3:3 + len(names)])),
            sample_ids=probe.examples.get(f"square-beats-white-box@{row}", [])))
    return found


def findings(points, probe: Probe | None) -> tuple[RobustFinding, ...]:
    """The checks that fired, from the points of a finished run and its probe (summed over ranks)."""
    if probe is None:
        return tuple(_monotone_finding(points, {"non_monotone": 0}) + masking.precision_findings(points))
    m = dict(zip(_MODEL, (int(v) for v in probe.model.cpu().tolist())))
    budget = probe.budget.cpu().tolist()
    return tuple(_gradient_finding(m, probe) + _probability_finding(m) + _random_finding(m, probe)
                 + masking.findings(m, probe.examples) + indicators.findings(m, probe.examples)
                 + binarization.findings(m, probe.examples, probe.attacks)
                 + _monotone_finding(points, m)
                 + _noise_findings(points, probe, budget) + _square_findings(points, probe, budget)
                 + masking.precision_findings(points))
