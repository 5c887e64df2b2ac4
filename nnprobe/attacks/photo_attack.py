"""One photo attacked and judged (`fool`): what every photo of a run shares (`Setup`), the pixels the
model's resize and crop read (`Window`: the attack changes only those), one sweep over the budgets, and each
result rounded to 8 bits inside its budget, written, re-read and judged from disk (`written_item`)."""
from __future__ import annotations

import contextlib
import dataclasses
import time
from typing import Any

import torch

from nnprobe.attacks.base import sweep
from nnprobe.attacks.budget import format_eps
from nnprobe.attacks.photo_files import read_rgb, u8_nchw, write_and_reread
from nnprobe.attacks.pixels import quantize
from nnprobe.attacks.results import FoolItem, MinEpsSearch, Prediction
from nnprobe.data.checks import nonfinite_error


def top_k(logits: torch.Tensor, classifier, k: int = 5) -> tuple[Prediction, ...]:
    probs = torch.softmax(logits.float().reshape(-1), dim=0)
    values, indices = probs.topk(min(k, probs.numel()))
    return tuple(Prediction(int(i), classifier.label(int(i)), float(v)) for v, i in zip(values, indices))


def require_finite(tensors, where: str, precision: str) -> None:
    """NaN/Inf in the attack's output or the model's logits on it: stop, never judge from them."""
    if not all(bool(torch.isfinite(t).all()) for t in tensors):
        raise nonfinite_error(1, 1, precision, what=where, result="verdict")


def reaches(predicted: int, goal: int, targeted: bool) -> bool:
    """Targeted: the model answers the target; untargeted: it leaves its own top-1 on the original."""
    return predicted == goal if targeted else predicted != goal


@dataclasses.dataclass(frozen=True)
class Setup:
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


def load_photo(path: str, setup: Setup) -> tuple[torch.Tensor, torch.Tensor]:
    """The photo as uint8 (what the PNG is quantized against) and as float [0, 1] on the device; in model
    space first resized and cropped as the eval pipeline does."""
    from nnprobe.models.preprocessing import pil_resize_crop

    photo = read_rgb(path)
    if setup.space == "model":
        photo = pil_resize_crop(photo, setup.classifier.preprocessing)
    original_u8 = u8_nchw(photo)
    return original_u8, original_u8.to(setup.device, torch.float32) / 255


def clean_logits_of(paths: list[str], setup: Setup) -> list[torch.Tensor]:
    """Every photo's clean logits first: NaN/Inf logits would make any verdict meaningless ("fooled" with a
    zero perturbation), so the run stops before writing anything, naming how many photos gave them."""
    clean = []
    for path in paths:
        with torch.no_grad(), setup.autocast:
            clean.append(setup.forward(load_photo(path, setup)[1]).float())
    broken = [p for p, logits in zip(paths, clean) if not torch.isfinite(logits).all()]
    if broken:
        raise nonfinite_error(len(broken), len(paths), setup.precision, what=f"photos (first: {broken[0]})",
                              result="verdict")
    return clean


def fools_eval_pipeline(setup: Setup, reread, goal: int, where: str) -> bool:
    """Image space: whether `nnprobe eval` (PIL resize and crop, not the differentiable ones) is fooled too."""
    from nnprobe.models.preprocessing import pil_resize_crop
    from torchvision.transforms.functional import to_tensor

    with torch.no_grad(), setup.autocast:
        eval_logits = setup.classifier(to_tensor(pil_resize_crop(reread, setup.classifier.preprocessing))[None]
                                       .to(setup.device)).float()
    require_finite((eval_logits,), where, setup.precision)
    return reaches(int(eval_logits.argmax(1)), goal, setup.targeted)


def precision_check(setup: Setup, xr: torch.Tensor, adv_logits: torch.Tensor, goal: int, where: str) -> dict:
    """Under bf16/fp16, the fp32 verdict on the same PNG: a result that reduced precision alone produced
    shows here."""
    with torch.no_grad(), setup.fp32:
        ref = setup.forward(xr.float()).float()
    require_finite((ref,), where, "fp32")
    return {"precision": setup.precision, "fp32_top1": top_k(ref, setup.classifier, 1)[0],
            "fp32_success": reaches(int(ref.argmax(1)), goal, setup.targeted),
            "max_probability_difference": float((ref.softmax(1) - adv_logits.softmax(1)).abs().max())}


def judge(setup: Setup, reread, reread_u8: torch.Tensor, original_index: int, where: str):
    """Classify the PNG as re-read from disk: (its logits, success, fools the eval pipeline, fp32 check)."""
    xr = reread_u8.to(setup.device, torch.float32) / 255
    with torch.no_grad(), setup.autocast:
        adv_logits = setup.forward(xr).float()
    require_finite((adv_logits,), where, setup.precision)
    goal = setup.target_index if setup.targeted else original_index
    success = reaches(int(adv_logits.argmax(1)), goal, setup.targeted)
    eval_fooled = fools_eval_pipeline(setup, reread, goal, where) if setup.space == "image" else None
    check = precision_check(setup, xr, adv_logits, goal, where) if setup.fp32 is not None else None
    return adv_logits, success, eval_fooled, check


@dataclasses.dataclass(frozen=True)
class Window:
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


def seen_window(setup: Setup, x: torch.Tensor) -> Window:
    """Which pixels the resize and crop read: those with a nonzero column in its Jacobian, found by one
    backward pass from a mid-grey photo (no bicubic clamp then) with a random cotangent. A resize and a
    centre crop are separable, so the pixels read are a grid of rows x columns."""
    if setup.space != "image":
        return Window(x, None, None)
    probe = torch.full_like(x, 0.5, requires_grad=True)
    with torch.enable_grad(), setup.fp32 or contextlib.nullcontext():
        resized = setup.classifier.prepare(probe).float()
    cotangent = torch.randn(resized.shape, generator=torch.Generator().manual_seed(0)).to(resized.device)
    grad, = torch.autograd.grad(resized, probe, cotangent)
    seen = (grad != 0).any(dim=1)[0]
    rows, cols = seen.any(dim=1).nonzero().flatten(), seen.any(dim=0).nonzero().flatten()
    if rows.numel() == x.shape[-2] and cols.numel() == x.shape[-1]:
        return Window(x, None, None)
    return Window(x, rows, cols)


@dataclasses.dataclass(frozen=True)
class Photo:
    """One photo as every attack on it needs it."""

    path: str
    original_u8: torch.Tensor  # what the PNG is quantized against
    x: torch.Tensor  # float [0, 1] on the device
    window: Window
    original: tuple[Prediction, ...]  # top-5 on the original

    def goal(self, setup: Setup) -> int:
        return setup.target_index if setup.targeted else self.original[0].index


def prepare_photo(setup: Setup, path: str, clean_logits: torch.Tensor) -> Photo:
    original_u8, x = load_photo(path, setup)
    return Photo(path, original_u8, x, seen_window(setup, x), top_k(clean_logits, setup.classifier))


def run_attack(setup: Setup, photo: Photo, attack: str, budgets, options: dict):
    """One sweep over the budgets on the pixels the model reads; each result pasted into the whole photo."""
    targets = torch.tensor([setup.target_index], device=setup.device) if setup.targeted else None
    labels = torch.tensor([photo.original[0].index], device=setup.device)
    runs = sweep(attack, setup.classifier, photo.window.crop(photo.x), labels, budgets, targets=targets,
                 forward=photo.window.forward(setup.forward), autocast=setup.autocast, **options)
    return [(instance, dataclasses.replace(result, adversarial=photo.window.paste(result.adversarial).detach()))
            for instance, result in runs]


def written_item(setup: Setup, photo: Photo, instance, result, paths: tuple[str, str | None],
                  attack_seconds: float, search: MinEpsSearch | None = None) -> FoolItem:
    """Round one attack result to 8 bits inside its budget, write it, re-read it and judge the file."""
    t1 = time.perf_counter()
    adv_path, panel_path = paths
    where = f"adversarial images (of {photo.path} at eps {format_eps(instance.eps)})"
    require_finite((result.logits, result.adversarial), where, setup.precision)
    adv_u8 = quantize(result.adversarial, photo.original_u8, instance.eps, instance.norm)
    reread, reread_u8 = write_and_reread(adv_path, adv_u8)
    adv_logits, success, eval_fooled, check = judge(setup, reread, reread_u8, photo.original[0].index, where)
    delta = (adv_u8.to(torch.int64) - photo.original_u8.to(torch.int64)).double() / 255
    return FoolItem(
        image=photo.path, adversarial_image=adv_path, panel_image=panel_path,
        eps=instance.eps, space=setup.space, width=int(photo.x.shape[-1]), height=int(photo.x.shape[-2]),
        original=photo.original, adversarial=top_k(adv_logits, setup.classifier), success=bool(success),
        success_before_rounding=bool(result.success[0]), fools_eval_pipeline=eval_fooled,
        linf=float(delta.abs().max()), l2=float(delta.flatten().norm()), steps=int(result.steps[0]),
        seconds=attack_seconds + time.perf_counter() - t1, precision_check=check, search=search)
