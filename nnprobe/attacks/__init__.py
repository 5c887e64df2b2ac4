"""Adversarial attacks in [0, 1] pixel space, and the two things people do with them.

- `fool(images, ...)`: adversarial PNGs of real photos, judged after writing (see `photo.py`).
- `robust(classifier, batches, ...)`: robust top-1/top-5 over a labelled data set per budget.
- `REGISTRY` / `register`: attacks by stable id (fgsm, bim, pgd, pgd-l2, mifgsm); a new attack
  subclasses `Attack` and writes only its update rule (`base.py` holds the invariants).
"""
from __future__ import annotations

from nnprobe.attacks.base import REGISTRY, Attack, AttackOutput, attack_ids, build, get_attack, register, sweep
from nnprobe.attacks.budget import format_eps, parse_eps, parse_eps_list, parse_gate
from nnprobe.attacks.photo import fool
from nnprobe.attacks.robustness import robust

__all__ = ["REGISTRY", "Attack", "AttackOutput", "attack_ids", "build", "get_attack", "register", "sweep",
           "format_eps", "parse_eps", "parse_eps_list", "parse_gate", "fool", "robust"]
