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
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from nnprobe.attacks.base import build, sweep
from nnprobe.attacks.budget import budgets_for, format_eps
from nnprobe.attacks.pixels import quantize
from nnprobe.attacks.results import AttackSettings, FoolItem, FoolResult, Prediction, fooled_gate
from nnprobe.data.checks import check_seed, nonfinite_error
from nnprobe.data.decode import MAX_PIXELS, UndecodableImage, check_header, decode_rgb
from nnprobe.data.layouts import WNID_RE
from nnprobe.errors import InputError, UsageError
from nnprobe.io import atomic_write_bytes, png_bytes, refuse_output_folder
from nnprobe.results import Gate, RunInfo

SPACES = ("image", "model")
DEFAULT_OUT = "nnprobe-fool"


def top_k(logits: torch.Tensor, classifier, k: int = 5) -> tuple[Prediction, ...]:
    probs = torch.softmax(logits.float().reshape(-1), dim=0)
    values, indices = probs.topk(min(k, probs.numel()))
    return tuple(Prediction(int(i), classifier.label(int(i)), float(v)) for v, i in zip(values, indices))


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


def fool(images: Sequence[str | os.PathLike], *, model=None, attack: str = "fgsm",
         eps: float | str | Sequence[float] = 2 / 255, steps: int | None = None, step_size: float | None = None,
         random_start: bool | None = None, target: str | int | None = None, seed: int | None = 0,
         space: str = "image", out_dir: str | os.PathLike = DEFAULT_OUT, precision: str = "fp32",
         device: str = "auto", panels: bool = False, fail_if_fooled: bool = False,
         progress: Callable[[int, int], None] | None = None) -> FoolResult:
    """Fool a classifier on photos; write `<stem>.adv.png` into `out_dir`.

    model: a `Classifier`, a `--model` spec string, or None for the embedded default.
    eps: one budget or several (`"1/255,2/255"` or a list); FGSM computes one gradient for all.
    panels: name a `<stem>.panel.png` per item (checked like every output) for the report layer to draw.
    Returns one item per (image, eps), each judged on the written PNG re-read from disk.
    """
    from nnprobe.device import autocast as make_autocast
    from nnprobe.device import resolve_device, versions
    from nnprobe.models.classifier import Classifier
    from nnprobe.models.preprocessing import pil_resize_crop
    from PIL import Image
    from torchvision.transforms.functional import to_tensor

    started = time.perf_counter()
    if space not in SPACES:
        raise UsageError(f"--space {space!r} is not one of {', '.join(SPACES)}.")
    paths = [os.fspath(p) for p in images]
    if not paths:
        raise UsageError("Give at least one image to fool.")
    budgets = budgets_for(eps, attack)
    check_seed(seed)
    dev = resolve_device(device)
    autocast = make_autocast(dev, precision)
    if model is None or isinstance(model, str):
        from nnprobe.models import load_classifier

        model = load_classifier(model)
    if not isinstance(model, Classifier):
        raise UsageError("model must be a nnprobe Classifier, a --model spec or None for the default.")
    classifier = model.to(dev).eval()
    target_index = resolve_target(classifier, target)
    options = dict(steps=steps, step_size=step_size, random_start=random_start, seed=seed)
    attacks = [build(attack, e, **options) for e in budgets]  # validates options before any work
    out = os.fspath(out_dir)
    refuse_out_among_inputs(paths, out)
    for path in paths:
        _check_readable(path)
    names = output_names(paths, out, budgets)
    forward = classifier.forward_image if space == "image" else classifier
    fp32 = torch.autocast(dev.type, enabled=False) if precision != "fp32" else None

    def load(path: str) -> tuple[object, torch.Tensor, torch.Tensor]:
        photo = read_rgb(path)
        if space == "model":
            photo = pil_resize_crop(photo, classifier.preprocessing)
        original_u8 = torch.from_numpy(np.asarray(photo, dtype=np.uint8).copy()).permute(2, 0, 1)[None]
        return photo, original_u8, original_u8.to(dev, torch.float32) / 255

    # Every photo's clean logits first: NaN/Inf logits would make any verdict meaningless ("fooled" with a
    # zero perturbation), so the run stops before writing anything, naming how many photos gave them.
    clean = []
    for path in paths:
        with torch.no_grad(), autocast:
            clean.append(forward(load(path)[2]).float())
    broken = [p for p, logits in zip(paths, clean) if not torch.isfinite(logits).all()]
    if broken:
        raise nonfinite_error(len(broken), len(paths), precision, what=f"photos (first: {broken[0]})",
                              result="verdict")

    items: list[FoolItem] = []
    total = len(paths) * len(budgets)
    for path, row, clean_logits in zip(paths, names, clean):
        photo, original_u8, x = load(path)
        original = top_k(clean_logits, classifier)
        targets = torch.tensor([target_index], device=dev) if target_index is not None else None
        t0 = time.perf_counter()
        runs = sweep(attack, classifier, x, clean_logits.argmax(1), budgets, targets=targets, forward=forward,
                     autocast=autocast, **options)
        attack_seconds = (time.perf_counter() - t0) / len(budgets)
        for (instance, result), (adv_path, panel_path) in zip(runs, row):
            t1 = time.perf_counter()
            where = f"adversarial images (of {path} at eps {format_eps(instance.eps)})"
            _require_finite((result.logits, result.adversarial), where, precision)
            adv_u8 = quantize(result.adversarial, original_u8, instance.eps, instance.norm)
            atomic_write_bytes(adv_path, png_bytes(Image.fromarray(to_uint8_hwc(adv_u8), "RGB")))
            reread = read_rgb(adv_path)  # judge exactly what was written
            reread_u8 = torch.from_numpy(np.asarray(reread, dtype=np.uint8).copy()).permute(2, 0, 1)[None]
            if not torch.equal(reread_u8, adv_u8):
                raise InputError(f"{adv_path} did not read back as written; is the disk full?")
            xr = reread_u8.to(dev, torch.float32) / 255
            with torch.no_grad(), autocast:
                adv_logits = forward(xr).float()
            _require_finite((adv_logits,), where, precision)
            goal = target_index if target_index is not None else original[0].index
            predicted = int(adv_logits.argmax(1))
            success = predicted == goal if target_index is not None else predicted != goal
            eval_fooled = None
            if space == "image":
                with torch.no_grad(), autocast:
                    eval_logits = classifier(to_tensor(pil_resize_crop(reread, classifier.preprocessing))[None]
                                             .to(dev)).float()
                _require_finite((eval_logits,), where, precision)
                eval_pred = int(eval_logits.argmax(1))
                eval_fooled = eval_pred == goal if target_index is not None else eval_pred != goal
            check = None
            if fp32 is not None:
                with torch.no_grad(), fp32:
                    ref = forward(xr.float()).float()
                _require_finite((ref,), where, "fp32")
                ref_pred = int(ref.argmax(1))
                check = {"precision": precision, "fp32_top1": top_k(ref, classifier, 1)[0],
                         "fp32_success": ref_pred == goal if target_index is not None else ref_pred != goal,
                         "max_probability_difference": float((ref.softmax(1) - adv_logits.softmax(1)).abs().max())}
            delta = (adv_u8.to(torch.int64) - original_u8.to(torch.int64)).double() / 255
            adversarial = top_k(adv_logits, classifier)
            items.append(FoolItem(
                image=path, adversarial_image=adv_path, panel_image=panel_path if panels else None,
                eps=instance.eps, space=space, width=int(x.shape[-1]), height=int(x.shape[-2]),
                original=original, adversarial=adversarial, success=bool(success),
                success_before_rounding=bool(result.success[0]), fools_eval_pipeline=eval_fooled,
                linf=float(delta.abs().max()), l2=float(delta.flatten().norm()), steps=int(result.steps[0]),
                seconds=attack_seconds + time.perf_counter() - t1, precision_check=check))
            if progress is not None:
                progress(len(items), total)

    gates: tuple[Gate, ...] = ()
    if fail_if_fooled:
        gates = (fooled_gate(sum(i.success for i in items), len(items)),)
    settings = AttackSettings(
        attack=attack, norm=attacks[0].norm, eps=tuple(budgets), steps=attacks[0].steps,
        step_size=tuple(a.step_size for a in attacks), random_start=attacks[0].random_start,
        targeted=target_index is not None,
        target_index=target_index,
        target_label=classifier.label(target_index) if target_index is not None else None)
    run = RunInfo(device=str(dev), precision=precision, world_size=1, seconds=time.perf_counter() - started,
                  versions=versions(), seed=seed)
    return FoolResult(items=tuple(items), settings=settings, model=classifier.info, run=run, out_dir=out,
                      gates=gates)
