"""`fool`: adversarial versions of real photos, written as lossless PNGs and re-checked from disk.

In image space (default) the attack runs at the photo's own resolution through
`Classifier.forward_image`, whose resize and crop are differentiable, so the fooled PNG has the size of
the input and can be opened, shared and re-classified like the original. In model space it attacks the
resized, cropped model input (as the eval pipeline produces it) and the PNG has the model's input size.
The PNGs are written through `nnprobe.io`; panels are drawn afterwards by the report layer
(`nnprobe.report.images.write_panels`, which `nnprobe.api.fool` calls): this module never imports it.

A photo has no label: an untargeted attack moves the model away from its own top-1 on the original.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nnprobe.attacks.base import build, get_attack, sweep
from nnprobe.attacks.budget import budgets_for, format_eps
from nnprobe.attacks.pixels import linf_levels, quantize
from nnprobe.attacks.results import (AttackSettings, FoolItem, FoolResult, MinEpsSearch, Prediction, SearchTrial,
                                     fooled_gate)
from nnprobe.data.checks import check_seed, nonfinite_error
from nnprobe.data.decode import MAX_PIXELS, UndecodableImage, check_header, decode_rgb
from nnprobe.data.layouts import WNID_RE
from nnprobe.errors import InputError, UsageError
from nnprobe.io import atomic_write_bytes, png_bytes, refuse_output_folder
from nnprobe.results import Gate, RunInfo

SPACES = ("image", "model")
DEFAULT_OUT = "nnprobe-fool"
DEFAULT_EPS = 2 / 255
# `--min-eps`: the largest budget tried unless --max-eps says otherwise, and where L2's doubling starts
# (L∞ starts at one grey level); both searches run on the 1/255 grid.
DEFAULT_MAX_EPS = {"linf": 64 / 255, "l2": 2048 / 255}
L2_FIRST_LEVEL = 32


def top_k(logits: torch.Tensor, classifier, k: int = 5) -> tuple[Prediction, ...]:
    probs = torch.softmax(logits.float().reshape(-1), dim=0)
    values, indices = probs.topk(min(k, probs.numel()))
    return tuple(Prediction(int(i), classifier.label(int(i)), float(v)) for v, i in zip(values, indices))


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


def _image_error(path: str, exc) -> InputError:
    """One InputError sentence for every way an image file can be unusable (`UndecodableImage.kind`)."""
    kind, reason = exc.kind, str(exc)
    if kind == "missing":
        return InputError(f"Image {path!r} does not exist.")
    if kind == "folder":
        return InputError(f"{path!r} is a folder, not an image; give image files (e.g. {path}/*.jpg).")
    if kind == "special":
        return InputError(f"Image {path!r} is {reason.split(',')[0]}, not a regular file; give an image file.")
    if kind == "bomb":
        return InputError(f"Image {path!r} is too large to decode safely ({reason}; the limit is "
                          f"{MAX_PIXELS // 2} pixels).")
    return InputError(f"Image {path!r} cannot be decoded ({reason}); is it an image file?")


def read_rgb(path: str):
    """Decode an image file to 8-bit RGB through the one decoder every command uses (data/decode.py:
    16-bit scaled, bombs refused from the header, regular files only), or one-sentence InputError."""
    try:
        return decode_rgb(path)[0]
    except UndecodableImage as exc:
        raise _image_error(path, exc) from None


def _check_readable(path: str) -> None:
    """Header check of every input before any work, so a bad file fails fast and nothing is written."""
    try:
        check_header(path)
    except UndecodableImage as exc:
        raise _image_error(path, exc) from None


def _is_class_folder(name: str) -> bool:
    """A folder named like a class of a labelled data set (an ImageNet wnid, or an index)."""
    return bool(WNID_RE.match(name)) or (name.isascii() and name.isdigit())


def refuse_out_among_inputs(images: Sequence[str], out_dir: str) -> None:
    """--out may not be the folder of an input photo, nor lie inside a labelled data set that holds one
    (the parent of a wnid or index class folder), where `nnprobe eval` would later count the PNGs."""
    data_sets = []
    for path in images:
        for folder in {os.path.dirname(os.path.abspath(path)), os.path.dirname(os.path.realpath(path))}:
            if _is_class_folder(os.path.basename(folder)):
                data_sets.append(("data set", os.path.dirname(folder)))
    refuse_output_folder("--out", out_dir, inputs=images, data_sets=data_sets)


def _stems(images: Sequence[str]) -> list[str]:
    """A distinct output stem per input, deterministic: the file's stem where no other input has it (any
    case: some file systems ignore case); otherwise `<parent folder>-<stem>`; where that still collides,
    a counter (`-2`, `-3`, ...) after the first (an input's own stem comes first), skipping names another
    input already has."""
    stems = [Path(p).stem for p in images]
    counts = Counter(s.casefold() for s in stems)
    wanted = []
    for path, stem in zip(images, stems):
        parent = os.path.basename(os.path.dirname(os.path.abspath(path)))
        wanted.append(f"{parent}-{stem}" if counts[stem.casefold()] > 1 and parent else stem)
    counts = Counter(w.casefold() for w in wanted)
    taken = {w.casefold() for w in wanted if counts[w.casefold()] == 1}
    final = list(wanted)
    # a file's own stem before a folder-prefixed one, then input order: `a-cat.png` keeps `a-cat`
    for i in sorted(range(len(wanted)), key=lambda i: (wanted[i] != stems[i], i)):
        name = wanted[i]
        if counts[name.casefold()] > 1:
            base, number = name, 1
            while name.casefold() in taken:
                number += 1
                name = f"{base}-{number}"
            taken.add(name.casefold())
            final[i] = name
    return final


def output_names(images: Sequence[str], out_dir: str, eps: Sequence[float]) -> list[list[tuple[str, str]]]:
    """(adversarial PNG, panel PNG) per image and eps: unique among all outputs (see `_stems`), and never
    an input, by real path or by inode (a link in --out to an input is refused, not written through)."""
    inputs = {os.path.realpath(p): p for p in images}
    identities = {}
    for p in images:
        with contextlib.suppress(OSError):
            info = os.stat(p)
            identities[(info.st_dev, info.st_ino)] = p
    names, seen = [], set()
    for stem in _stems(images):
        row = []
        for e in eps:
            tag = "" if len(eps) == 1 else ".eps" + format_eps(e).replace("/", "-")
            adv = os.path.join(out_dir, f"{stem}{tag}.adv.png")
            pan = os.path.join(out_dir, f"{stem}{tag}.panel.png")
            for out in (adv, pan):
                assert out.casefold() not in seen, out  # _stems makes every stem distinct
                seen.add(out.casefold())
                hit = inputs.get(os.path.realpath(out))
                if hit is None:
                    with contextlib.suppress(OSError):
                        info = os.stat(out)
                        hit = identities.get((info.st_dev, info.st_ino))
                if hit is not None:
                    raise UsageError(f"Writing {out} would overwrite the input {hit}; choose another --out folder.")
            row.append((adv, pan))
        names.append(row)
    return names


def _require_finite(tensors, where: str, precision: str) -> None:
    """NaN/Inf in the attack's output or the model's logits on it: stop, never judge from them."""
    if not all(bool(torch.isfinite(t).all()) for t in tensors):
        raise nonfinite_error(1, 1, precision, what=where, result="verdict")


def to_uint8_hwc(pixels: torch.Tensor) -> np.ndarray:
    return pixels.detach().cpu().squeeze(0).permute(1, 2, 0).numpy()


def _u8_nchw(photo) -> torch.Tensor:
    """A decoded photo as a uint8 batch of one, the form quantizing and the read-back check compare."""
    return torch.from_numpy(np.asarray(photo, dtype=np.uint8).copy()).permute(2, 0, 1)[None]


def _reaches(predicted: int, goal: int, targeted: bool) -> bool:
    """Targeted: the model answers the target; untargeted: it leaves its own top-1 on the original."""
    return predicted == goal if targeted else predicted != goal


@dataclasses.dataclass(frozen=True)
class _Setup:
    """What every photo of one run shares, so the per-photo helpers take one argument instead of six."""

    classifier: Any
    device: torch.device
    space: str
    precision: str
    autocast: Any
    target_index: int | None
    fp32: Any  # autocast switched off, for the fp32 check under bf16/fp16; None at fp32

    @property
    def targeted(self) -> bool:
        return self.target_index is not None

    @property
    def forward(self):
        """Image space runs the photo at its own size through the differentiable resize and crop."""
        return self.classifier.forward_image if self.space == "image" else self.classifier


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


def _checked_outputs(paths: list[str], out: str, budgets) -> list[list[tuple[str, str]]]:
    """Refuse a bad --out and any unreadable photo before any work, so a failed run writes nothing."""
    refuse_out_among_inputs(paths, out)
    for path in paths:
        _check_readable(path)
    return output_names(paths, out, budgets)


def _load_photo(path: str, setup: _Setup) -> tuple[torch.Tensor, torch.Tensor]:
    """The photo as uint8 (what the PNG is quantized against) and as float [0, 1] on the device; in model
    space first resized and cropped as the eval pipeline does."""
    from nnprobe.models.preprocessing import pil_resize_crop

    photo = read_rgb(path)
    if setup.space == "model":
        photo = pil_resize_crop(photo, setup.classifier.preprocessing)
    original_u8 = _u8_nchw(photo)
    return original_u8, original_u8.to(setup.device, torch.float32) / 255


def _clean_logits(paths: list[str], setup: _Setup) -> list[torch.Tensor]:
    """Every photo's clean logits first: NaN/Inf logits would make any verdict meaningless ("fooled" with a
    zero perturbation), so the run stops before writing anything, naming how many photos gave them."""
    clean = []
    for path in paths:
        with torch.no_grad(), setup.autocast:
            clean.append(setup.forward(_load_photo(path, setup)[1]).float())
    broken = [p for p, logits in zip(paths, clean) if not torch.isfinite(logits).all()]
    if broken:
        raise nonfinite_error(len(broken), len(paths), setup.precision, what=f"photos (first: {broken[0]})",
                              result="verdict")
    return clean


def _write_and_reread(adv_path: str, adv_u8: torch.Tensor):
    """Write the lossless PNG and read it back, so every verdict is on the file the user gets and a
    short write (a full disk) is an error rather than a wrong verdict."""
    from PIL import Image

    atomic_write_bytes(adv_path, png_bytes(Image.fromarray(to_uint8_hwc(adv_u8), "RGB")))
    reread = read_rgb(adv_path)  # judge exactly what was written
    reread_u8 = _u8_nchw(reread)
    if not torch.equal(reread_u8, adv_u8):
        raise InputError(f"{adv_path} did not read back as written; is the disk full?")
    return reread, reread_u8


def _fools_eval_pipeline(setup: _Setup, reread, goal: int, where: str) -> bool:
    """Image space: whether `nnprobe eval` (PIL resize and crop, not the differentiable ones) is fooled too."""
    from nnprobe.models.preprocessing import pil_resize_crop
    from torchvision.transforms.functional import to_tensor

    with torch.no_grad(), setup.autocast:
        eval_logits = setup.classifier(to_tensor(pil_resize_crop(reread, setup.classifier.preprocessing))[None]
                                       .to(setup.device)).float()
    _require_finite((eval_logits,), where, setup.precision)
    return _reaches(int(eval_logits.argmax(1)), goal, setup.targeted)


def _precision_check(setup: _Setup, xr: torch.Tensor, adv_logits: torch.Tensor, goal: int, where: str) -> dict:
    """Under bf16/fp16, the fp32 verdict on the same PNG: a result that reduced precision alone produced
    shows here."""
    with torch.no_grad(), setup.fp32:
        ref = setup.forward(xr.float()).float()
    _require_finite((ref,), where, "fp32")
    return {"precision": setup.precision, "fp32_top1": top_k(ref, setup.classifier, 1)[0],
            "fp32_success": _reaches(int(ref.argmax(1)), goal, setup.targeted),
            "max_probability_difference": float((ref.softmax(1) - adv_logits.softmax(1)).abs().max())}


def _judge(setup: _Setup, reread, reread_u8: torch.Tensor, original_index: int, where: str):
    """Classify the PNG as re-read from disk: (its logits, success, fools the eval pipeline, fp32 check)."""
    xr = reread_u8.to(setup.device, torch.float32) / 255
    with torch.no_grad(), setup.autocast:
        adv_logits = setup.forward(xr).float()
    _require_finite((adv_logits,), where, setup.precision)
    goal = setup.target_index if setup.targeted else original_index
    success = _reaches(int(adv_logits.argmax(1)), goal, setup.targeted)
    eval_fooled = _fools_eval_pipeline(setup, reread, goal, where) if setup.space == "image" else None
    check = _precision_check(setup, xr, adv_logits, goal, where) if setup.fp32 is not None else None
    return adv_logits, success, eval_fooled, check


@dataclasses.dataclass(frozen=True)
class _Window:
    """The pixels an attack may change. In image space, the rows x columns of the photo that the model's
    resize and crop read: the attack runs on that grid only and pastes it into the untouched photo, so a
    random start, a step, a projection or a norm never touches (or counts) a pixel the model cannot see."""

    photo: torch.Tensor  # the whole photo, float NCHW in [0, 1]
    rows: torch.Tensor | None  # indices of the rows read; None: every pixel is read
    cols: torch.Tensor | None

    def crop(self, full: torch.Tensor) -> torch.Tensor:
        return full if self.rows is None else full[:, :, self.rows][:, :, :, self.cols]

    def paste(self, part: torch.Tensor) -> torch.Tensor:
        """The photo with the grid replaced by `part` (differentiable in `part`)."""
        if self.rows is None:
            return part
        full = self.photo.expand(part.shape[0], -1, -1, -1).clone()
        full[:, :, self.rows[:, None], self.cols[None, :]] = part
        return full

    def forward(self, model_forward):
        return model_forward if self.rows is None else (lambda part: model_forward(self.paste(part)))


def _seen_window(setup: _Setup, x: torch.Tensor) -> _Window:
    """Which pixels the resize and crop read: those with a nonzero column in its Jacobian, found by one
    backward pass from a mid-grey photo (no bicubic clamp then) with a random cotangent. A resize and a
    centre crop are separable, so the pixels read are a grid of rows x columns."""
    if setup.space != "image":
        return _Window(x, None, None)
    probe = torch.full_like(x, 0.5, requires_grad=True)
    with torch.enable_grad(), setup.fp32 or contextlib.nullcontext():
        resized = setup.classifier.prepare(probe).float()
    cotangent = torch.randn(resized.shape, generator=torch.Generator().manual_seed(0)).to(resized.device)
    grad, = torch.autograd.grad(resized, probe, cotangent)
    seen = (grad != 0).any(dim=1)[0]
    rows, cols = seen.any(dim=1).nonzero().flatten(), seen.any(dim=0).nonzero().flatten()
    if rows.numel() == x.shape[-2] and cols.numel() == x.shape[-1]:
        return _Window(x, None, None)
    return _Window(x, rows, cols)


@dataclasses.dataclass(frozen=True)
class _Photo:
    """One photo as every attack on it needs it."""

    path: str
    original_u8: torch.Tensor  # what the PNG is quantized against
    x: torch.Tensor  # float [0, 1] on the device
    window: _Window
    original: tuple[Prediction, ...]  # top-5 on the original

    def goal(self, setup: _Setup) -> int:
        return setup.target_index if setup.targeted else self.original[0].index


def _prepare_photo(setup: _Setup, path: str, clean_logits: torch.Tensor) -> _Photo:
    original_u8, x = _load_photo(path, setup)
    return _Photo(path, original_u8, x, _seen_window(setup, x), top_k(clean_logits, setup.classifier))


def _run_attack(setup: _Setup, photo: _Photo, attack: str, budgets, options: dict):
    """One sweep over the budgets on the pixels the model reads; each result pasted into the whole photo."""
    targets = torch.tensor([setup.target_index], device=setup.device) if setup.targeted else None
    labels = torch.tensor([photo.original[0].index], device=setup.device)
    runs = sweep(attack, setup.classifier, photo.window.crop(photo.x), labels, budgets, targets=targets,
                 forward=photo.window.forward(setup.forward), autocast=setup.autocast, **options)
    return [(instance, dataclasses.replace(result, adversarial=photo.window.paste(result.adversarial).detach()))
            for instance, result in runs]


def _written_item(setup: _Setup, photo: _Photo, instance, result, paths: tuple[str, str | None],
                  attack_seconds: float, search: MinEpsSearch | None = None) -> FoolItem:
    """Round one attack result to 8 bits inside its budget, write it, re-read it and judge the file."""
    t1 = time.perf_counter()
    adv_path, panel_path = paths
    where = f"adversarial images (of {photo.path} at eps {format_eps(instance.eps)})"
    _require_finite((result.logits, result.adversarial), where, setup.precision)
    adv_u8 = quantize(result.adversarial, photo.original_u8, instance.eps, instance.norm)
    reread, reread_u8 = _write_and_reread(adv_path, adv_u8)
    adv_logits, success, eval_fooled, check = _judge(setup, reread, reread_u8, photo.original[0].index, where)
    delta = (adv_u8.to(torch.int64) - photo.original_u8.to(torch.int64)).double() / 255
    return FoolItem(
        image=photo.path, adversarial_image=adv_path, panel_image=panel_path,
        eps=instance.eps, space=setup.space, width=int(photo.x.shape[-1]), height=int(photo.x.shape[-2]),
        original=photo.original, adversarial=top_k(adv_logits, setup.classifier), success=bool(success),
        success_before_rounding=bool(result.success[0]), fools_eval_pipeline=eval_fooled,
        linf=float(delta.abs().max()), l2=float(delta.flatten().norm()), steps=int(result.steps[0]),
        seconds=attack_seconds + time.perf_counter() - t1, precision_check=check, search=search)


def _fool_photo(setup: _Setup, path: str, row, clean_logits: torch.Tensor, attack: str, budgets,
                options: dict, panels: bool) -> Iterator[FoolItem]:
    """Attack one photo at every budget in one sweep (FGSM: one gradient for all), then write and judge
    each result; yields each item as soon as it is judged, so progress moves per item."""
    photo = _prepare_photo(setup, path, clean_logits)
    t0 = time.perf_counter()
    runs = _run_attack(setup, photo, attack, budgets, options)
    attack_seconds = (time.perf_counter() - t0) / len(budgets)
    for (instance, result), (adv_path, panel_path) in zip(runs, row):
        yield _written_item(setup, photo, instance, result, (adv_path, panel_path if panels else None),
                            attack_seconds)


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


def _trial(setup: _Setup, photo: _Photo, attack: str, eps: float, options: dict):
    """One budget of the search: attack, round to 8 bits inside the budget and judge those bytes (the
    PNG would hold exactly them; the answer's image is then written, re-read and judged from disk)."""
    (instance, result), = _run_attack(setup, photo, attack, [eps], options)
    where = f"adversarial images (of {photo.path} at eps {format_eps(eps)})"
    _require_finite((result.logits, result.adversarial), where, setup.precision)
    return instance, result, _fools_u8(setup, photo, result.adversarial, eps, instance.norm)


def _fools_u8(setup: _Setup, photo: _Photo, adversarial: torch.Tensor, eps: float, norm: str) -> bool:
    """Whether `adversarial`, rounded to 8 bits inside the budget, moves the model to the goal."""
    adv_u8 = quantize(adversarial, photo.original_u8, eps, norm)
    with torch.no_grad(), setup.autocast:
        logits = setup.forward(adv_u8.to(setup.device, torch.float32) / 255).float()
    _require_finite((logits,), f"adversarial images (of {photo.path} at eps {format_eps(eps)})", setup.precision)
    return _reaches(int(logits.argmax(1)), photo.goal(setup), setup.targeted)


def _min_eps_photo(setup: _Setup, path: str, row, clean_logits: torch.Tensor, attack: str, budgets,
                   options: dict, panels: bool, minimum_norm: bool = True) -> Iterator[FoolItem]:
    """`--min-eps`: the smallest budget on the 1/255 grid whose 8-bit image fools the model: from FMN's
    distance checked on the grid (`photo_minnorm.guided`), or (`minimum_norm=False`) by `bracket` alone
    (the same seed at every budget); written and judged like any item at that budget (at the cap when
    none fools); the item carries the search and says which method found it."""
    photo = _prepare_photo(setup, path, clean_logits)
    last = linf_levels(budgets[0])
    first = 1 if get_attack(attack).norm == "linf" else L2_FIRST_LEVEL
    tried: dict[int, tuple] = {}

    def fools(level: int) -> bool:
        tried[level] = _trial(setup, photo, attack, level / 255, options)
        return tried[level][2]

    def point_fools(level: int, adv, logits, steps: int) -> bool:
        """FMN's image rounded inside the level (recorded as that level's trial)."""
        from nnprobe.attacks.photo_minnorm import point_output

        instance = build(attack, level / 255, **options)
        before = _reaches(int(logits.argmax(1)), photo.goal(setup), setup.targeted)
        tried[level] = (instance, point_output(adv, logits, steps, before),
                        _fools_u8(setup, photo, adv, level / 255, instance.norm))
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
    yield _written_item(setup, photo, instance, result, (adv_path, panel_path if panels else None),
                        time.perf_counter() - t0, search)


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
    names = _checked_outputs(paths, out, budgets)
    fp32 = torch.autocast(dev.type, enabled=False) if precision != "fp32" else None
    setup = _Setup(classifier, dev, space, precision, autocast, target_index, fp32)
    clean = _clean_logits(paths, setup)

    items: list[FoolItem] = []
    total = len(paths) * len(budgets)
    if min_eps_search not in ("fmn", "bisection"):
        raise UsageError(f"min_eps_search is 'fmn' or 'bisection', not {min_eps_search!r}.")
    for path, row, clean_logits in zip(paths, names, clean):
        run_photo = (functools.partial(_min_eps_photo, minimum_norm=min_eps_search == "fmn") if min_eps
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
