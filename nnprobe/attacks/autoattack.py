"""AutoAttack (Croce & Hein 2020), versions 'standard', 'plus' and 'rand' as in the reference
(fra31/auto-attack `set_version`, ported by torchattacks 3.5.1's `AutoAttack`):

- standard (`autoattack`, `autoattack-l2`): APGD-CE (100 iterations, 1 restart) -> APGD-T (9 target
  classes, 1 restart) -> FAB-T (9 target classes, 1 restart) -> Square (5000 queries, p_init 0.8);
- plus (`autoattack-plus`, `-l2`): APGD-CE (5 restarts) -> APGD-DLR (5 restarts) -> FAB (5 restarts) ->
  Square (5000 queries) -> APGD-T (9 targets) -> FAB-T (9 targets);
- rand (`autoattack-rand`, `-l2`): APGD-CE -> APGD-DLR, each with expectation over transformation (the
  gradient averaged over 20 draws per step), for randomised defenses.

Each attack gets only the samples every earlier one left robust. Every component is a registered attack
and keeps its own invariants; this class only chains them:

- a sample the model already gets wrong is not attacked (its image is its adversarial);
- a sample counts as fooled by the first component that fools it, whose first fooling image is returned
  (first-success semantics, always: robust accuracy is the only use of AutoAttack); a sample no component
  fools returns the last component's image;
- each component gets the sample ids, so its random numbers depend on (seed, id) only: the batch, the
  rank, early stop and which samples an earlier component fooled change nothing;
- early stop is passed to the components (stop spending work on a fooled sample within an attack); the
  cascade itself always runs, as in the reference, so early stop changes only the work.

`steps` sets APGD's and FAB's iterations (default 100, the reference's n_iter for both), `queries`
Square's. `gradient_passes` sums the components' work: forward+backward passes of APGD and FAB, forward
queries of Square. Notes on torchattacks' port: its `AutoAttack` leaves APGD at its own default of 10
steps (the reference uses 100); nnprobe follows the reference's 100.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch

from nnprobe.attacks.base import Attack, AttackOutput, build, register
from nnprobe.attacks.norms import L2, Linf
from nnprobe.errors import UsageError

NOT_FOOLED = -1  # `fooled_by` of a sample no component fooled
WRONG_BEFORE = -2  # `fooled_by` of a sample the model got wrong before any attack (not attacked)


def _black_box(attack_id: str) -> bool:
    """Square (score-based): its budget is queries, not gradient steps."""
    return attack_id.startswith("square")


@dataclasses.dataclass
class CascadeOutput(AttackOutput):
    """An AttackOutput that also says which component fooled each sample."""

    fooled_by: torch.Tensor  # int64 per sample: index into `component_ids`, NOT_FOOLED or WRONG_BEFORE


# per version: (component id without the norm suffix, settings the reference gives it), in order
VERSIONS: dict[str, tuple[tuple[str, dict], ...]] = {
    "standard": (("apgd-ce", {}), ("apgd-t", {}), ("fab-t", {}), ("square", {})),
    "plus": (("apgd-ce", {"restarts": 5}), ("apgd-dlr", {"restarts": 5}), ("fab", {"restarts": 5}),
             ("square", {}), ("apgd-t", {}), ("fab-t", {})),
    "rand": (("apgd-ce", {"eot_iter": 20}), ("apgd-dlr", {"eot_iter": 20})),
}


@register("autoattack")
class AutoAttack(Attack):
    """L∞ AutoAttack, standard version. `steps` sets APGD's and FAB's iterations (default 100), `queries`
    Square's."""

    ball = Linf
    default_steps = 100
    default_random_start = True  # every component starts at a random point (APGD's and Square's own)
    supports_random_start = True
    untargeted_only = True
    untargeted_why = " (APGD-T and FAB-T pick their own target classes)"
    version: ClassVar[str] = "standard"
    suffix: ClassVar[str] = ""  # the components' norm suffix ("-l2")
    default_queries: ClassVar[int] = 5000

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls.component_ids = tuple(cid + cls.suffix for cid, _ in cls.schedule())

    @classmethod
    def schedule(cls) -> tuple[tuple[str, dict], ...]:
        """The components in order, each with the settings it gets (the reference's, per version)."""
        return VERSIONS[cls.version]

    def __init__(self, eps: float, *, steps: int | None = None, step_size: float | None = None,
                 random_start: bool | None = None, seed: int | None = None, queries: int | None = None) -> None:
        if step_size is not None:
            raise UsageError(f"{self.id} takes no --step-size: APGD adapts its own step and Square has none.")
        if random_start is False:
            raise UsageError(f"{self.id}'s components always start at a random point; drop --no-random-start.")
        if queries is not None and queries < 1:
            raise UsageError(f"Square's queries must be at least 1, got {queries}.")
        super().__init__(eps, steps=steps, random_start=random_start, seed=seed)
        self.queries = int(queries or self.default_queries)
        self.parts = []
        for (cid, settings), full_id in zip(self.schedule(), self.component_ids):
            part = build(full_id, eps, steps=self.queries if _black_box(cid) else self.steps, seed=seed)
            for name, value in settings.items():  # restarts, eot_iter: class defaults overridden per version
                setattr(part, name, value)
            self.parts.append(part)

    def default_step_size(self) -> float:
        """APGD's first step, 2·eps (it then halves on its own schedule); reported, not used here."""
        return 2 * self.eps

    @property
    def component_settings(self) -> tuple[dict, ...]:
        """What ran, in order, with each component's budget: for the robust result's settings."""
        described = []
        for part in self.parts:
            entry = {"attack": part.id, "norm": part.norm, "ran": True, "version": self.version}
            if _black_box(part.id):
                entry.update(queries=part.steps, p_init=getattr(part, "p_init", None), restarts=1)
            else:
                entry.update(steps=part.steps, restarts=getattr(part, "restarts", 1))
                if getattr(part, "eot_iter", 1) > 1:
                    entry["eot_iter"] = part.eot_iter
                if "-t" in part.id:  # APGD-T, FAB-T: at most this many (classes - 1 if fewer)
                    entry["target_classes"] = part.target_classes
            described.append(entry)
        return tuple(described)

    def _run(self, forward, x, goal, targeted, first_success, early_stop, autocast, gradient,
             sample_ids) -> CascadeOutput:
        n = x.shape[0]
        ids = (sample_ids if sample_ids is not None else torch.arange(n)).cpu()
        with torch.no_grad(), autocast:
            logits = forward(x).float()
        adv = x.clone()
        fooled_by = torch.full((n,), NOT_FOOLED, dtype=torch.long, device=x.device)
        fooled_by[self.fooled(logits, goal, False)] = WRONG_BEFORE
        steps = torch.zeros(n, dtype=torch.long, device=x.device)
        passes = 0
        for k, part in enumerate(self.parts):
            todo = (fooled_by == NOT_FOOLED).nonzero().flatten()  # only the still-robust go on
            if todo.numel() == 0:
                break
            out = part._run(forward, x[todo], goal[todo], False, True, early_stop, autocast, None,
                            ids[todo.cpu()])
            passes += out.gradient_passes
            adv[todo], logits[todo], steps[todo] = out.adversarial, out.logits, out.steps
            fooled_by[todo[out.success]] = k
        return CascadeOutput(adversarial=adv, logits=logits, success=self.fooled(logits, goal, False),
                             steps=steps, gradient_passes=passes, fooled_by=fooled_by)


AutoAttack.component_ids = tuple(cid for cid, _ in VERSIONS["standard"])


def _variant(version: str, l2: bool) -> type[AutoAttack]:
    """The registered class of one version and norm: `autoattack[-plus|-rand][-l2]`."""
    name = "autoattack" + ("" if version == "standard" else f"-{version}") + ("-l2" if l2 else "")
    cls = type(f"AutoAttack{version.title()}{'L2' if l2 else ''}", (AutoAttack,),
               {"version": version, "ball": L2 if l2 else Linf, "suffix": "-l2" if l2 else "",
                "__doc__": f"AutoAttack, {version} version, {'L2' if l2 else 'L∞'}.", "__module__": __name__})
    return register(name)(cls)


AutoAttackL2 = _variant("standard", True)
AutoAttackPlus, AutoAttackPlusL2 = _variant("plus", False), _variant("plus", True)
AutoAttackRand, AutoAttackRandL2 = _variant("rand", False), _variant("rand", True)
