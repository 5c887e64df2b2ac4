"""`fool`: adversarial versions of real photos, written as lossless PNGs and re-checked from disk.

In image space (default) the attack runs at the photo's own resolution through
`Classifier.forward_image`, whose resize and crop are differentiable, so the fooled PNG has the size of
the input and can be opened, shared and re-classified like the original. In model space it attacks the
resized, cropped model input (as the eval pipeline produces it) and the PNG has the model's input size.
The PNGs are written through `nnprobe.io`; panels are drawn afterwards by the report layer
(`nnprobe.report.images.write_panels`, which `nnprobe.api.fool` calls): this module never imports it.

A photo has no label: an untargeted attack moves the model away from its own top-1 on the original.

This module checks the options and runs the photos; `photo_files.py` reads the photos and names and writes
the outputs, `photo_attack.py` attacks one photo and judges what was written, `photo_search.py` (with
`photo_minnorm.py`) is `--min-eps`'s search.
"""
from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterator, Sequence

import torch

from nnprobe.attacks.base import build, get_attack
from nnprobe.attacks.budget import budgets_for
from nnprobe.attacks.photo_attack import Setup, clean_logits_of, prepare_photo, run_attack, written_item
from nnprobe.attacks.photo_files import checked_outputs
from nnprobe.attacks.photo_search import DEFAULT_MAX_EPS, min_eps_photo
from nnprobe.attacks.pixels import linf_levels
from nnprobe.attacks.results import AttackSettings, FoolItem, FoolResult, fooled_gate
from nnprobe.data.checks import check_seed
from nnprobe.errors import UsageError
from nnprobe.results import Gate, RunInfo

SPACES = ("image", "model")
DEFAULT_OUT = "nnprobe-fool"
DEFAULT_EPS = 2 / 255


# WordNet gives two ILSVRC classes the same name; torchvision's categories tell them apart as "crane bird" /
# "crane" and "maillot" / "maillot tank suit" (REFERENCE.md), so the bare word names both.
IMAGENET_HOMONYMS = {"crane": (134, 517), "maillot": (638, 639)}


def resolve_target(classifier, text: str | int | None) -> int | None:
    """A class index (`859`), a class name (`toaster`, any case) or a wnid (`n04442312`)."""
    if text is None:
        return None
    names = classifier.class_names
    spelled = str(text).strip()
    if spelled.lstrip("-").isdigit():
        index = int(spelled)
        if not 0 <= index < classifier.num_classes:
            raise UsageError(f"--target {index} is not a class index of this model (0..{classifier.num_classes - 1}).")
        return index
    lowered = spelled.lower()
    if classifier.wnids and len(names) == 1000 and lowered in IMAGENET_HOMONYMS:  # one word, two classes
        (a, b) = IMAGENET_HOMONYMS[lowered]
        raise UsageError(f"--target {spelled!r} names two ImageNet classes, {a} ({names[a]}) and {b} ({names[b]}): "
                         "give the index.")
    hits = [i for i, name in enumerate(names) if name.lower() == lowered]
    if not hits and classifier.wnids:
        hits = [i for i, wnid in enumerate(classifier.wnids) if wnid == lowered]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise UsageError(f"--target {spelled!r} names several classes ({', '.join(map(str, hits))}); give the index.")
    import difflib

    close = difflib.get_close_matches(lowered, [n.lower() for n in names], n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise UsageError(f"--target {spelled!r} is not a class name, wnid or index of this model.{hint}")


def _check_options(images, space: str, eps, attack: str, seed, min_eps: bool,
                   max_eps) -> tuple[list[str], tuple[float, ...]]:
    """The options that need no model, checked first so a typo costs no model load. With `min_eps` the
    one budget is the search's cap."""
    if space not in SPACES:
        raise UsageError(f"--space {space!r} is not one of {', '.join(SPACES)}.")
    paths = [os.fspath(p) for p in images]
    if not paths:
        raise UsageError("Give at least one image to fool.")
    check_seed(seed)
    if not min_eps:
        if max_eps is not None:
            raise UsageError("--max-eps caps the search of --min-eps; without --min-eps give --eps.")
        return paths, budgets_for(DEFAULT_EPS if eps is None else eps, attack)
    if eps is not None:
        raise UsageError("--eps and --min-eps exclude each other: the search picks the budgets (cap them with "
                         "--max-eps).")
    cls = get_attack(attack)
    if not cls.iterative:
        raise UsageError(f"--min-eps searches with an iterative attack (bim, pgd, pgd-l2, mifgsm), not {attack}.")
    try:
        cap = budgets_for(DEFAULT_MAX_EPS[cls.norm] if max_eps is None else max_eps, attack)
    except UsageError:
        cap = ()
    if len(cap) != 1 or linf_levels(cap[0]) < 1:
        top = "1" if cls.ball.max_eps is not None else "any size"
        raise UsageError(f"--max-eps must be one budget from 1/255 to {top} for {attack}, got {max_eps!r}.")
    return paths, (linf_levels(cap[0]) / 255,)


def _classifier_on(model, dev):
    """A `Classifier` from whatever `model` was given (None: the embedded default), in eval mode on `dev`."""
    from nnprobe.models.classifier import Classifier

    if model is None or isinstance(model, str):
        from nnprobe.models import load_classifier

        model = load_classifier(model)
    if not isinstance(model, Classifier):
        raise UsageError("model must be a nnprobe Classifier, a --model spec or None for the default.")
    return model.to(dev).eval()


def _fool_photo(setup: Setup, path: str, row, clean_logits: torch.Tensor, attack: str, budgets,
                options: dict, panels: bool) -> Iterator[FoolItem]:
    """Attack one photo at every budget in one sweep (FGSM: one gradient for all), then write and judge
    each result; yields each item as soon as it is judged, so progress moves per item."""
    photo = prepare_photo(setup, path, clean_logits)
    t0 = time.perf_counter()
    runs = run_attack(setup, photo, attack, budgets, options)
    attack_seconds = (time.perf_counter() - t0) / len(budgets)
    for (instance, result), (adv_path, panel_path) in zip(runs, row):
        yield written_item(setup, photo, instance, result, (adv_path, panel_path if panels else None),
                            attack_seconds)


def _settings(attack: str, attacks, budgets, classifier, target_index: int | None) -> AttackSettings:
    """The attack as it ran, with the defaults each budget resolved to (step sizes are relative to eps)."""
    return AttackSettings(
        attack=attack, norm=attacks[0].norm, eps=tuple(budgets), steps=attacks[0].steps,
        step_size=tuple(a.step_size for a in attacks), random_start=attacks[0].random_start,
        targeted=target_index is not None,
        target_index=target_index,
        target_label=classifier.label(target_index) if target_index is not None else None)


def fool(images: Sequence[str | os.PathLike], *, model=None, attack: str | None = None,
         eps: float | str | Sequence[float] | None = None, steps: int | None = None, step_size: float | None = None,
         random_start: bool | None = None, target: str | int | None = None, seed: int | None = 0,
         space: str = "image", out_dir: str | os.PathLike = DEFAULT_OUT, precision: str = "fp32",
         device: str = "auto", panels: bool = False, fail_if_fooled: bool = False,
         progress: Callable[[int, int], None] | None = None, min_eps: bool = False,
         max_eps: float | str | None = None, min_eps_search: str = "fmn") -> FoolResult:
    """Fool a classifier on photos; write `<stem>.adv.png` into `out_dir`.

    model: a `Classifier`, a `--model` spec string, or None for the embedded default.
    attack: a registry id (default fgsm; pgd with min_eps).
    eps: one budget or several (`"1/255,2/255"` or a list; default 2/255); FGSM computes one gradient for all.
    min_eps: instead of eps, search per photo for the smallest budget (on the 1/255 grid) whose 8-bit image
        fools the model, up to max_eps (default L∞ 64/255, L2 2048/255); one item per photo at that budget.
    min_eps_search: "fmn" (default: FMN's minimum-norm distance, checked on the grid with the attack; see
        photo_minnorm.py) or "bisection" (doubling then bisection with the attack alone).
    panels: name a `<stem>.panel.png` per item (checked like every output) for the report layer to draw.
    Returns one item per (image, eps), each judged on the written PNG re-read from disk.
    """
    from nnprobe.device import autocast as make_autocast
    from nnprobe.device import resolve_device, versions

    started = time.perf_counter()
    attack = attack or ("pgd" if min_eps else "fgsm")
    paths, budgets = _check_options(images, space, eps, attack, seed, min_eps, max_eps)
    dev = resolve_device(device)
    autocast = make_autocast(dev, precision)
    classifier = _classifier_on(model, dev)
    target_index = resolve_target(classifier, target)
    options = dict(steps=steps, step_size=step_size, random_start=random_start, seed=seed)
    attacks = [build(attack, e, **options) for e in budgets]  # validates options before any work
    out = os.fspath(out_dir)
    names = checked_outputs(paths, out, budgets)
    fp32 = torch.autocast(dev.type, enabled=False) if precision != "fp32" else None
    setup = Setup(classifier, dev, space, precision, autocast, target_index, fp32)
    clean = clean_logits_of(paths, setup)

    items: list[FoolItem] = []
    total = len(paths) * len(budgets)
    if min_eps_search not in ("fmn", "bisection"):
        raise UsageError(f"min_eps_search is 'fmn' or 'bisection', not {min_eps_search!r}.")
    for path, row, clean_logits in zip(paths, names, clean):
        run_photo = (functools.partial(min_eps_photo, minimum_norm=min_eps_search == "fmn") if min_eps
                     else _fool_photo)
        for item in run_photo(setup, path, row, clean_logits, attack, budgets, options, panels):
            items.append(item)
            if progress is not None:
                progress(len(items), total)

    gates: tuple[Gate, ...] = ()
    if fail_if_fooled:
        gates = (fooled_gate(sum(i.success for i in items), len(items)),)
    run = RunInfo(device=str(dev), precision=precision, world_size=1, seconds=time.perf_counter() - started,
                  versions=versions(), seed=seed)
    return FoolResult(items=tuple(items), settings=_settings(attack, attacks, budgets, classifier, target_index),
                      model=classifier.info, run=run, out_dir=out, gates=gates)
