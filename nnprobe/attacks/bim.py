"""BIM / I-FGSM (Kurakin et al. 2017): FGSM repeated with a small step, projected after each step."""
from __future__ import annotations

from nnprobe.attacks.base import Attack, register


@register("bim")
class BIM(Attack):
    """L∞ sign steps from x itself: the base class's update, no random start."""
