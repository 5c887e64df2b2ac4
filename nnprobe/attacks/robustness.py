"""Robust accuracy over a labelled data set as the budget grows, counted in exact integers.

Per eps, on the model's input (the resized, cropped image, as every robustness benchmark does):
robust top-1/top-5 on the attack's images, the attack success rate on the samples the model got right
before the attack, and mean perturbation norms. The attack moves away from the true label.

A sample counts as fooled as soon as any iterate fools it, and from then on no gradient pass is spent
on it (early stop; 81% of PGD-10 passes went to already-fooled images in the reference measurement).
Samples the model already gets wrong at eps 0 need no attack: the image itself is their adversarial.
`early_stop=False` does all the work for every sample and reports the same numbers (tested).
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import NamedTuple

import numpy as np
import torch

from nnprobe.attacks.adaptive import Adaptive, follow_up
from nnprobe.attacks.adaptive import findings as follow_findings
from nnprobe.attacks.base import build
from nnprobe.attacks.budget import budgets_for, format_eps, same_eps
from nnprobe.attacks.cost import Meter
from nnprobe.attacks.minnorm import MinNormAttack
from nnprobe.attacks.minnorm import findings as min_norm_findings
from nnprobe.attacks.results import RobustPoint, RobustResult, RobustSettings, robust_gate
from nnprobe.attacks.robust_minnorm import distribution_of, min_norm_attack, min_norm_batch
from nnprobe.attacks.sanity import Probe, findings
from nnprobe.errors import DataError, UsageError
from nnprobe.options.parts import parse_part, slice_info
from nnprobe.per_sample import RobustSamples, data_fingerprint, save, with_paths
from nnprobe.results import Gate, RunInfo

# per eps: correct_top1, correct_top5, total, clean_correct, fooled, gradient_passes, fp32_correct_top1, cost
_COUNTS = 8


@dataclasses.dataclass
class Tally:
    """Integer counts and float sums per eps; summed over batches and (under torchrun) over ranks."""

    counts: torch.Tensor  # int64 (len(eps), _COUNTS)
    norms: torch.Tensor  # float64 (len(eps), 2): sum of L∞ and of L2 over attacked samples
    nonfinite: torch.Tensor  # int64 (2,): samples with NaN/Inf logits (clean or at any eps), samples seen
    rows: list = dataclasses.field(default_factory=list)  # per batch: (ids, labels, clean right, fell_at) on CPU
    probe: Probe | None = None  # the sanity checks' counts (`sanity.py`), riding on the same pass
    adaptive: Adaptive | None = None  # `--adaptive`: follow-ups on each budget's survivors (`adaptive.py`)
    follow_ups: torch.Tensor | None = None  # int64 (len(eps), 4): samples fooled by each follow-up
    min_norm: MinNormAttack | None = None  # `--min-norm`: every sample's smallest fooling distance (`minnorm.py`)
    distances: list = dataclasses.field(default_factory=list)  # per batch, as `rows`: (distance, improving) on CPU
    min_norm_passes: torch.Tensor | None = None  # int64 (1,): the minimum-norm attack's gradient passes

    @classmethod
    def zeros(cls, n: int, device) -> "Tally":
        return cls(torch.zeros(n, _COUNTS, dtype=torch.int64, device=device),
                   torch.zeros(n, 2, dtype=torch.float64, device=device),
                   torch.zeros(2, dtype=torch.int64, device=device),
                   min_norm_passes=torch.zeros(1, dtype=torch.int64, device=device))

    def add_rows(self, ids: torch.Tensor, labels: torch.Tensor, clean_right: torch.Tensor,
                 wrong: torch.Tensor) -> None:
        """Each sample's verdict: the index of the first budget of the sweep that fooled it (-1: none)."""
        first = torch.where(wrong.any(dim=1), wrong.int().argmax(dim=1), -1)
        self.rows.append((ids.cpu(), labels.cpu(), clean_right.cpu(), first.cpu()))

    def samples(self) -> RobustSamples:
        """This process's rows as numpy arrays (in the order attacked), with the --min-norm distances."""
        extra = {}
        if self.min_norm is not None:
            distances, improving = (torch.cat(column).numpy() for column in zip(*self.distances)) \
                if self.distances else (np.zeros(0, np.float64), np.zeros(0, bool))
            extra = dict(min_norm_distance=distances, min_norm_improving=improving)
        if not self.rows:
            return RobustSamples(*(np.zeros(0, dtype) for dtype in (np.int64, np.int64, bool, np.int64)), **extra)
        ids, labels, right, first = (torch.cat(column) for column in zip(*self.rows))
        return RobustSamples(ids.numpy().astype(np.int64), labels.numpy().astype(np.int64), right.numpy(),
                             first.numpy().astype(np.int64), **extra)


def attack_batch(classifier, x: torch.Tensor, labels: torch.Tensor, ids: torch.Tensor, attacks: Sequence,
                 tally: Tally, *, early_stop: bool = True, autocast=None, fp32_check: bool = False) -> torch.Tensor:
    """Attack one batch of float pixels in [0, 1] at model input size at every budget; add to `tally`.
    Returns which samples the model got right before the attack.

    ids: each sample's position in the data set (its random start depends on it, not on the batch).
    """
    autocast = autocast or contextlib.nullcontext()
    with torch.no_grad(), autocast:
        clean_logits = classifier(x).float()
    clean_right = clean_logits.argmax(1) == labels
    k = min(5, clean_logits.shape[1])
    n = labels.numel()
    # NaN/Inf logits make every count below meaningless (argmax picks a NaN): counted, and `robust` refuses
    broken = ~torch.isfinite(clean_logits).all(dim=1)
    wrong = torch.zeros(n, len(attacks), dtype=torch.bool, device=x.device)
    if tally.probe is not None:
        tally.probe.clean(classifier, x, labels, ids, clean_logits, autocast)
    for row, attack in enumerate(attacks):
        meter = Meter()  # the attack's and its follow-ups' passes through the model (`cost.py`)
        logits, adv, passes, broken_row = _attack_row(classifier, x, labels, ids, attack, row, tally, clean_logits,
                                                      clean_right, early_stop, autocast, meter)
        broken |= broken_row
        top = logits.topk(k, dim=1).indices
        right1 = top[:, 0] == labels
        right5 = (top == labels[:, None]).any(dim=1)
        wrong[:, row] = ~right1
        delta = (adv - x)[clean_right].flatten(1)
        fp32_right = 0
        if fp32_check:
            with torch.no_grad():
                fp32_right = int((classifier(adv.float()).float().argmax(1) == labels).sum())
        tally.counts[row] += torch.tensor(
            [int(right1.sum()), int(right5.sum()), n, int(clean_right.sum()), int((clean_right & ~right1).sum()),
             passes, fp32_right, meter.cost], dtype=torch.int64, device=tally.counts.device)
        if delta.numel():
            tally.norms[row, 0] += delta.abs().amax(dim=1).double().sum()
            tally.norms[row, 1] += delta.norm(p=2, dim=1).double().sum()
    tally.nonfinite += torch.tensor([int(broken.sum()), n], dtype=torch.int64, device=tally.nonfinite.device)
    tally.add_rows(ids, labels, clean_right, wrong)
    return clean_right


def _attack_row(classifier, x, labels, ids, attack, row: int, tally: Tally, clean_logits, clean_right, early_stop,
                autocast, meter: Meter):
    """One budget: the attack on the samples it needs, the sanity probe, the adaptive follow-ups. Returns the
    logits and images per sample, the attack's own work count, and which samples gave non-finite output.
    `meter` counts the attack's and the follow-ups' passes, not the probe's."""
    logits, adv, passes, out = clean_logits, x, 0, None
    n = labels.numel()
    broken = torch.zeros(n, dtype=torch.bool, device=x.device)
    surrogate = tally.adaptive.surrogate if tally.adaptive is not None else None
    if attack.eps > 0:
        # Early stop skips the samples that are already wrong (fooled at iterate zero); without it
        # every sample runs every step, and any iterate that fools counts, so the numbers agree.
        chosen = clean_right.nonzero().flatten() if early_stop else torch.arange(n, device=x.device)
        if chosen.numel():
            with meter.counting(classifier):
                out = attack(classifier, x[chosen], labels[chosen], first_success=True, early_stop=early_stop,
                             autocast=autocast, sample_ids=ids[chosen.cpu()])
            logits = clean_logits.clone()
            logits[chosen] = out.logits
            adv = x.clone()
            adv[chosen] = out.adversarial
            passes = out.gradient_passes
            broken |= ~torch.isfinite(logits).all(dim=1) | ~torch.isfinite(adv.flatten(1)).all(dim=1)
    k = min(5, logits.shape[1])
    if tally.probe is not None:
        right1 = logits.topk(k, dim=1).indices[:, 0] == labels
        tally.probe.attacked(row, attack, classifier, x, labels, ids, clean_right, right1, out, autocast)
    if tally.adaptive is not None and attack.eps > 0:
        right1 = logits.topk(k, dim=1).indices[:, 0] == labels
        with meter.counting(classifier, surrogate):
            logits, adv, spent = _follow_up(tally, row, attack, classifier, x, labels, ids, clean_right & right1,
                                            logits, adv, autocast)
        passes += spent
    return logits, adv, passes, broken


def _follow_up(tally: Tally, row: int, attack, classifier, x, labels, ids, survivors, logits, adv, autocast):
    """`--adaptive`: the follow-ups on this budget's survivors; their fooling images replace the main attack's."""
    chosen = survivors.nonzero().flatten()
    if not chosen.numel():
        return logits, adv, 0
    new_adv, new_logits, by, passes = follow_up(tally.adaptive, attack, classifier, x[chosen], labels[chosen],
                                        ids[chosen.cpu()], autocast)
    logits, adv = logits.clone(), adv.clone()
    logits[chosen], adv[chosen] = new_logits, new_adv
    counts = torch.stack([(by == j).sum() for j in range(tally.follow_ups.shape[1])])
    tally.follow_ups[row] += counts.to(tally.follow_ups.device)
    return logits, adv, passes


def robust_batches(classifier, batches: Iterable[tuple], *, attack: str = "pgd",
                   eps: Sequence[float] | str = (0.0, 1 / 255, 2 / 255), steps: int | None = None,
                   step_size: float | None = None, random_start: bool | None = None, seed: int | None = 0,
                   early_stop: bool = True, precision: str = "fp32", device: str = "auto",
                   progress: Callable[[int, int], None] | None = None,
                   total: int | None = None, adaptive: Adaptive | None = None,
                   min_norm: MinNormAttack | None = None, binarization_test: bool | int = False) -> tuple[list, Tally]:
    """The attack loop over plain tensors: batches of (pixels uint8 or float [0, 1] NCHW, labels) or
    (pixels, labels, ids) where ids are the samples' positions in the data set (default: the running
    count, i.e. the position in the order given). binarization_test: True or the inner points per sample."""
    from nnprobe.device import autocast as make_autocast
    from nnprobe.device import resolve_device

    dev = resolve_device(device) if isinstance(device, str) else device
    budgets = budgets_for(eps, attack)
    attacks = [build(attack, e, steps=steps, step_size=step_size, random_start=random_start, seed=seed)
               for e in budgets]
    autocast = make_autocast(dev, precision)
    classifier = classifier.to(dev).eval()
    tally = Tally.zeros(len(attacks), dev)
    tally.probe = Probe(attacks, dev, seed, binarization_test)
    tally.adaptive = adaptive
    tally.min_norm = min_norm
    tally.follow_ups = torch.zeros(len(attacks), 4, dtype=torch.int64, device=dev)
    done = 0
    if progress is not None and total:
        progress(0, total)  # the bar knows its total from the start
    for item in batches:
        x, labels = item[0], item[1]
        ids = torch.as_tensor(item[2]) if len(item) > 2 else torch.arange(done, done + labels.numel())
        if x.numel() == 0:
            continue
        x = x.to(dev)
        x = x.float().div_(255) if x.dtype == torch.uint8 else x.float()
        clean_right = attack_batch(classifier, x, labels.to(dev).long(), ids, attacks, tally, early_stop=early_stop,
                                   autocast=autocast, fp32_check=precision != "fp32")
        if min_norm is not None:
            min_norm_batch(tally, classifier, x, labels.to(dev).long(), clean_right, autocast)
        done += labels.numel()
        if progress is not None:
            progress(done, total if total is not None else done)
    return attacks, tally


def gates_for(points: Sequence[RobustPoint], min_robust_top1: Mapping[float, float] | None) -> tuple[Gate, ...]:
    gates = []
    for gate_eps, threshold in (min_robust_top1 or {}).items():
        point = next((p for p in points if same_eps(p.eps, gate_eps)), None)
        if point is None:
            raise UsageError(f"--min-robust-top1 names eps {format_eps(gate_eps)}, which is not among --eps "
                             f"({', '.join(format_eps(p.eps) for p in points)}).")
        gates.append(robust_gate(gate_eps, threshold, point))
    return tuple(gates)


def points_from(attacks, tally: Tally, fp32_check: bool) -> tuple[RobustPoint, ...]:
    counts = tally.counts.cpu().tolist()
    norms = tally.norms.cpu().tolist()
    points = []
    for attack, row, (linf, l2) in zip(attacks, counts, norms):
        right1, right5, total, clean, fooled, passes, fp32_right, cost = row
        points.append(RobustPoint(eps=attack.eps, correct_top1=right1, correct_top5=right5, total=total,
                                  clean_correct=clean, fooled=fooled,
                                  mean_linf=linf / clean if clean else float("nan"),
                                  mean_l2=l2 / clean if clean else float("nan"), gradient_passes=passes, cost=cost,
                                  fp32_correct_top1=fp32_right if fp32_check else None))
    return tuple(points)


def settings_of(attack: str, attacks, early_stop: bool, adaptive: Adaptive | None = None,
                binarization_inner_points: int | None = None) -> RobustSettings:
    follow = adaptive.settings(attacks[0].ball.id) if adaptive is not None else ()
    main = tuple(getattr(attacks[0], "component_settings", ()))
    if follow and not main:  # the main attack first, so the chain reads in the order it ran
        main = ({"attack": attacks[0].id, "norm": attacks[0].norm, "steps": attacks[0].steps, "role": "main"},)
    return RobustSettings(attack=attack, norm=attacks[0].norm, eps=tuple(a.eps for a in attacks),
                          steps=attacks[0].steps, step_size=tuple(a.step_size for a in attacks),
                          random_start=attacks[0].random_start, targeted=False, target_index=None,
                          target_label=None, early_stop=early_stop,
                          components=main + follow, binarization_inner_points=binarization_inner_points)


class _Attacked(NamedTuple):
    """What one pass over the data left: the attacks as built, the summed counts, and where it ran."""

    attacks: list
    tally: Tally
    device: object
    world_size: int
    data: dict
    samples: RobustSamples  # every rank's rows, in data order


def _attack_data_set(classifier, data, options: dict, *, device, batch_size: int, workers: int | None,
                     part, progress) -> _Attacked:
    """A labelled data set: decoded and resized/cropped as `nnprobe eval` does, sharded over torchrun
    ranks, and the counts summed over them exactly (no padded duplicates)."""
    from nnprobe.data.shards import Shard

    if classifier.preprocessing.crop_size is None:
        raise UsageError("Robust accuracy needs a fixed input size: give the model a crop (--crop N).")
    with Shard(data, classifier.preprocessing, device=device, batch_size=batch_size, workers=workers,
               part=part, progress=progress) as shard:
        dev = shard.device
        attacks, tally = robust_batches(classifier, ((b.pixels, b.labels, b.positions) for b in shard),
                                        device=dev, **options)
        gathered = shard.finish(tally.counts, tally.norms, tally.nonfinite, *tally.probe.tensors(),
                                tally.follow_ups, tally.min_norm_passes)
        samples = with_paths(RobustSamples.merged(shard.gather(tally.samples())), data.root, data.samples)
    data_info = {"path": data.root, "layout": data.layout, "images_found": len(data.samples),
                 "fingerprint": data_fingerprint(data.root, data.samples), "notes": list(data.notes),
                 **slice_info(part, len(data.samples)),
                 "skipped": [{"path": s.path, "reason": s.reason} for s in gathered.skipped + data.skipped]}
    return _Attacked(attacks, tally, dev, gathered.world_size, data_info, samples)


def _attack_tensors(classifier, data, options: dict, *, device, progress) -> _Attacked:
    """Batches of tensors already at the model's input size: one process, no decoding."""
    from nnprobe.device import resolve_device

    dev = resolve_device(device)
    attacks, tally = robust_batches(classifier, data, device=dev, progress=progress, **options)
    return _Attacked(attacks, tally, dev, 1, {"path": None, "layout": "tensors"},
                     with_paths(tally.samples(), None, None))


def _checked_points(attacks, tally: Tally, precision: str, part=None) -> tuple[RobustPoint, ...]:
    """The points per eps, refused when any sample gave NaN/Inf logits or nothing was attacked at all,
    since either would make the accuracies meaningless."""
    broken, seen = (int(v) for v in tally.nonfinite.tolist())
    if broken:
        from nnprobe.data.checks import nonfinite_error

        raise nonfinite_error(broken, seen, precision, result="robust accuracy")
    points = points_from(attacks, tally, precision != "fp32")
    if not points[0].total and part is None:  # a --shard slice may be empty: `nnprobe merge` judges the whole
        raise DataError("No image could be attacked: the data set is empty or nothing decoded.")
    return points


def robust(classifier, data, *, attack: str = "pgd", eps: Sequence[float] | str = (0.0, 1 / 255, 2 / 255),
           steps: int | None = None, step_size: float | None = None, random_start: bool | None = None,
           seed: int | None = 0, early_stop: bool = True, batch_size: int = 32, workers: int | None = None,
           precision: str = "fp32", device: str = "auto", min_robust_top1: Mapping[float, float] | None = None,
           save_predictions: str | None = None, shard=None,
           progress: Callable[[int, int], None] | None = None, adaptive: bool | Adaptive = False,
           surrogate=None, min_norm: str | None = None, min_norm_steps: int | None = None,
           binarization_test: bool = False, binarization_inner_points: int | None = None) -> RobustResult:
    """Robust accuracy of `classifier` on `data` per budget.

    adaptive: True (or an `Adaptive` with its settings) runs the follow-up attacks of `adaptive.py` on each
    budget's survivors (Square, APGD with EoT on log-probabilities, and a transfer attack from `surrogate`
    when given); robust accuracy is then the worst case over all of them. binarization_test: the sanity
    probe also runs Zimmermann et al.'s binarization test on its samples (`binarization.py`), with
    binarization_inner_points inner points per sample (default `binarization.INNER`, the reference's 999).

    data: a `nnprobe.data.layouts.LabelledImages` (any layout `nnprobe eval` reads; decoded and
    resized/cropped by the model's preprocessing, sharded over torchrun ranks with exact counts), or an
    iterable of (pixels, labels) batches already at the model's input size.
    """
    from nnprobe.data.layouts import LabelledImages

    from nnprobe.data.checks import check_batch_size, check_seed, check_workers

    check_batch_size(batch_size)
    check_workers(workers)
    check_seed(seed)
    started = time.perf_counter()
    budgets = budgets_for(eps, attack)
    adaptive = _adaptive_of(adaptive, surrogate)
    minimum = min_norm_attack(min_norm, min_norm_steps, shard, save_predictions)
    inner = binarization_inner(binarization_test, binarization_inner_points)
    options = dict(attack=attack, eps=budgets, steps=steps, step_size=step_size, random_start=random_start,
                   seed=seed, early_stop=early_stop, precision=precision, adaptive=adaptive, min_norm=minimum,
                   binarization_test=inner or False)
    part = parse_part(shard)
    if part is not None and (min_robust_top1 or not isinstance(data, LabelledImages)):
        raise UsageError("--shard slices a labelled data set, and gates judge the whole of it: give "
                         "--min-robust-top1 to nnprobe merge, not to a --shard run.")
    if isinstance(data, LabelledImages):
        done = _attack_data_set(classifier, data, options, device=device, batch_size=batch_size,
                                workers=workers, part=part, progress=progress)
    else:
        done = _attack_tensors(classifier, data, options, device=device, progress=progress)
    points = _checked_points(done.attacks, done.tally, precision, part)
    from nnprobe import distributed

    result = _result(done, classifier, points, attack=attack, early_stop=early_stop, adaptive=adaptive,
                     minimum=minimum, gates=gates_for(points, min_robust_top1), run=(precision, seed, started),
                     inner=inner)
    if save_predictions and distributed.from_env().is_main:
        result = dataclasses.replace(result, per_sample=save(result, save_predictions))
    return result


def binarization_inner(test: bool, inner_points: int | None) -> int | None:
    """The binarization test's inner points per sample (None: the test is off); a count alone is refused."""
    from nnprobe.attacks.binarization import INNER

    if inner_points is not None and not test:
        raise UsageError("--binarization-inner-points sets the binarization test's points: add --binarization-test.")
    return (INNER if inner_points is None else inner_points) if test else None


def _adaptive_of(adaptive: bool | Adaptive, surrogate) -> Adaptive | None:
    """`--adaptive`'s settings with the `--surrogate` model, or None; a surrogate alone is refused."""
    if surrogate is not None and not adaptive:
        raise UsageError("A surrogate model is used by the adaptive follow-up only: add --adaptive.")
    if adaptive is True:
        return Adaptive(surrogate=surrogate)
    if adaptive is not False and surrogate is not None:
        return dataclasses.replace(adaptive, surrogate=surrogate)
    return adaptive or None


def _result(done: _Attacked, classifier, points, *, attack: str, early_stop: bool, adaptive: Adaptive | None,
            minimum: MinNormAttack | None, gates: tuple[Gate, ...], run: tuple,
            inner: int | None = None) -> RobustResult:
    """The RobustResult of one pass: the sanity findings, then --min-norm's distribution and its finding, then
    the follow-ups' findings (merge re-derives them in this order). `run`: (precision, seed, start time);
    `inner`: the binarization test's inner points per sample (None: off)."""
    from nnprobe.device import versions

    precision, seed, started = run
    eps = [a.eps for a in done.attacks]
    follow_ups = done.tally.follow_ups.cpu().tolist()
    distances = distribution_of(minimum, done.samples, int(done.tally.min_norm_passes), eps, done.attacks[0].norm)
    found = findings(points, done.tally.probe) + tuple(min_norm_findings(points, distances))
    if adaptive is not None:
        found += tuple(follow_findings(adaptive, done.attacks, follow_ups))
    return RobustResult(points=points, settings=settings_of(attack, done.attacks, early_stop, adaptive, inner),
                        model=classifier.info, data=done.data, gates=gates,
                        run=RunInfo(device=str(done.device), precision=precision, world_size=done.world_size,
                                    seconds=time.perf_counter() - started, versions=versions(), seed=seed),
                        samples=done.samples, findings=found,
                        sanity=done.tally.probe.counts(follow_ups, adaptive.ids if adaptive is not None else ()),
                        median_min_eps=_median_min_eps(done.samples, eps), min_norm=distances)


def _median_min_eps(samples: RobustSamples, eps: Sequence[float]) -> float | None:
    """The median first fooling budget over the data set, from each sample's first fooling eps."""
    from nnprobe.per_sample import median_min_eps

    fell = [float(eps[i]) if i >= 0 else None for i in samples.fell_at.tolist()]
    return median_min_eps(samples.clean_correct, fell) if len(eps) > 1 else None
