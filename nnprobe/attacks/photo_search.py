"""`fool --min-eps`: the smallest budget on the 1/255 grid whose 8-bit image fools the model, found by
doubling then bisection with the attack (`bracket`), or from FMN's distance checked on the grid
(`photo_minnorm.guided`); each budget tried is a `SearchTrial`."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import torch

from nnprobe.attacks.base import build, get_attack
from nnprobe.attacks.budget import format_eps
from nnprobe.attacks.photo_attack import Photo, Setup, prepare_photo, reaches, require_finite, run_attack, written_item
from nnprobe.attacks.pixels import linf_levels, quantize
from nnprobe.attacks.results import FoolItem, MinEpsSearch, SearchTrial

# The largest budget tried unless --max-eps says otherwise, and where L2's doubling starts (L∞ starts at one
# grey level); both searches run on the 1/255 grid.
DEFAULT_MAX_EPS = {"linf": 64 / 255, "l2": 2048 / 255}
L2_FIRST_LEVEL = 32


def bracket(fools: Callable[[int], bool], first: int, last: int) -> int | None:
    """The smallest level in [1, last] where `fools` says yes: try first, 2·first, 4·first, ... (capped
    at last) until one fools, then bisect between the last miss (or 0) and that hit. Exact for a verdict
    that is monotone in the level; for any verdict, the answer fools and the level below it was tried
    and did not (or is 0). None when even `last` does not fool."""
    low, level = 0, min(first, last)
    while not fools(level):
        if level == last:
            return None
        low, level = level, min(2 * level, last)
    high = level
    while high - low > 1:
        middle = (low + high) // 2
        if fools(middle):
            high = middle
        else:
            low = middle
    return high


def trial(setup: Setup, photo: Photo, attack: str, eps: float, options: dict):
    """One budget of the search: attack, round to 8 bits inside the budget and judge those bytes (the
    PNG would hold exactly them; the answer's image is then written, re-read and judged from disk)."""
    (instance, result), = run_attack(setup, photo, attack, [eps], options)
    where = f"adversarial images (of {photo.path} at eps {format_eps(eps)})"
    require_finite((result.logits, result.adversarial), where, setup.precision)
    return instance, result, fools_u8(setup, photo, result.adversarial, eps, instance.norm)


def fools_u8(setup: Setup, photo: Photo, adversarial: torch.Tensor, eps: float, norm: str) -> bool:
    """Whether `adversarial`, rounded to 8 bits inside the budget, moves the model to the goal."""
    adv_u8 = quantize(adversarial, photo.original_u8, eps, norm)
    with torch.no_grad(), setup.autocast:
        logits = setup.forward(adv_u8.to(setup.device, torch.float32) / 255).float()
    require_finite((logits,), f"adversarial images (of {photo.path} at eps {format_eps(eps)})", setup.precision)
    return reaches(int(logits.argmax(1)), photo.goal(setup), setup.targeted)


def min_eps_photo(setup: Setup, path: str, row, clean_logits: torch.Tensor, attack: str, budgets,
                   options: dict, panels: bool, minimum_norm: bool = True) -> Iterator[FoolItem]:
    """`--min-eps`: the smallest budget on the 1/255 grid whose 8-bit image fools the model: from FMN's
    distance checked on the grid (`photo_minnorm.guided`), or (`minimum_norm=False`) by `bracket` alone
    (the same seed at every budget); written and judged like any item at that budget (at the cap when
    none fools); the item carries the search and says which method found it."""
    photo = prepare_photo(setup, path, clean_logits)
    last = linf_levels(budgets[0])
    first = 1 if get_attack(attack).norm == "linf" else L2_FIRST_LEVEL
    tried: dict[int, tuple] = {}

    def fools(level: int) -> bool:
        tried[level] = trial(setup, photo, attack, level / 255, options)
        return tried[level][2]

    def point_fools(level: int, adv, logits, steps: int) -> bool:
        """FMN's image rounded inside the level (recorded as that level's trial)."""
        from nnprobe.attacks.photo_minnorm import point_output

        instance = build(attack, level / 255, **options)
        before = reaches(int(logits.argmax(1)), photo.goal(setup), setup.targeted)
        tried[level] = (instance, point_output(adv, logits, steps, before),
                        fools_u8(setup, photo, adv, level / 255, instance.norm))
        return tried[level][2]

    t0 = time.perf_counter()
    method = "bisection"
    if setup.targeted and photo.original[0].index == setup.target_index:
        found = 0 if fools(0) else None  # the photo already answers the target: no budget needed
    elif minimum_norm:
        from nnprobe.attacks.photo_minnorm import guided

        found, method = guided(setup, photo, attack, first, last, fools, point_fools, bracket)
    else:
        found = bracket(fools, first, last)
    trials = tuple(SearchTrial(level / 255, verdict, bool(result.success[0]))
                   for level, (_, result, verdict) in tried.items())
    search = MinEpsSearch(None if found is None else found / 255, last / 255, 1 / 255, trials, method)
    instance, result, _ = tried[last if found is None else found]
    adv_path, panel_path = row[0]
    yield written_item(setup, photo, instance, result, (adv_path, panel_path if panels else None),
                        time.perf_counter() - t0, search)
