"""Adversarial attacks in [0, 1] pixel space, and the two things people do with them.

- `fool(images, ...)`: adversarial PNGs of real photos, judged after writing (see `photo.py`).
- `robust(classifier, batches, ...)`: robust top-1/top-5 over a labelled data set per budget.
- `REGISTRY` / `register`: attacks by stable id (fgsm, bim, pgd, pgd-l2, mifgsm); a new attack
  subclasses `Attack` and writes only its update rule (`base.py` holds the invariants).
- `NORMS` / `register_norm`: norms as strategy classes (`norms.py`: L∞, L2), each owning its random
  start, step, projection and distance; an attack names one as `ball`.

The registry is complete on import: this package imports every attack module (each registers itself
by decorator); `base.py` never imports its subclasses.
"""
from __future__ import annotations

from nnprobe.attacks import bim, fgsm, mifgsm, pgd  # noqa: F401  (registration by decorator)
from nnprobe.attacks import apgd  # noqa: F401  (apgd-ce, apgd-ce-l2, apgd-t, apgd-t-l2: Croce & Hein 2020)
from nnprobe.attacks import square  # noqa: F401  (square, square-l2: score-based, no gradients)
from nnprobe.attacks import fab  # noqa: F401  (fab-t, fab-t-l2: minimum-norm boundary attack, AutoAttack's FAB-T)
from nnprobe.attacks import autoattack  # noqa: F401  (autoattack, autoattack-l2: APGD-CE -> APGD-T -> Square)
from nnprobe.attacks import fast  # noqa: F401  (fast, fast-l2: cheapest first, MALT targets, A3 starts and discarding)
from nnprobe.attacks.base import REGISTRY, Attack, AttackOutput, attack_ids, build, get_attack, register, sweep
from nnprobe.attacks.budget import format_eps, parse_eps, parse_eps_list, parse_gate
from nnprobe.attacks.norms import NORMS, Norm, register_norm
from nnprobe.attacks.photo import fool
from nnprobe.attacks.robustness import robust

__all__ = ["REGISTRY", "Attack", "AttackOutput", "attack_ids", "build", "get_attack", "register", "sweep",
           "NORMS", "Norm", "register_norm",
           "format_eps", "parse_eps", "parse_eps_list", "parse_gate", "fool", "robust"]
