"""`nnprobe eval --data NAME=DIR ...`: each data set measured under its variant's protocol, one model loaded
once, val first, with a tally of val's accuracy on each subset variant's classes under that variant's
protocol (the x of Taori et al.'s fit for A, R and ObjectNet) taken from val's own forward pass."""
from __future__ import annotations

import dataclasses

import torch

from nnprobe.errors import UsageError
from nnprobe.evaluation import Restriction
from nnprobe.variants.fits import fit
from nnprobe.variants.protocols import NAMES, Protocol
from nnprobe.variants.table import Effective, VariantRow, VariantTable


class ClassSubsets:
    """For each protocol: val's images in its classes, and those right under its argmax (an `observe` hook)."""

    def __init__(self, protocols: list[Protocol]) -> None:
        self.protocols = protocols
        self.counts = {p.name: [0, 0] for p in protocols}
        self.restrictions: dict[str, Restriction] = {}

    def __call__(self, pixels, positions, labels: torch.Tensor, logits: torch.Tensor) -> None:
        for p in self.protocols:
            r = self.restrictions.get(p.name)
            if r is None:
                r = self.restrictions[p.name] = Restriction(p.groups, logits.shape[1], logits.device)
            targets = r.position_of[labels]
            inside = targets >= 0
            hits = r.logits(logits[inside]).argmax(dim=1) == targets[inside]
            self.counts[p.name][0] += int(hits.sum())
            self.counts[p.name][1] += int(inside.sum())


def check_table(o) -> None:
    """Options a table cannot take, in one sentence."""
    from nnprobe import distributed

    parts = [("--shard", o["shard"].shard), ("--baseline", o["baseline"].baseline),
             ("--save-predictions", o["per_sample"].save_predictions),
             ("--reference-model", o["parity"].reference_model), ("--variant", o["settings"].variant)]
    given = [flag for flag, value in parts if value is not None]
    if distributed.from_env().world_size > 1:
        given.append("--nproc/torchrun")
    if given:
        why = " (name each data set's variant: --data imagenet-a=DIR)" if "--variant" in given else ""
        raise UsageError(f"Several --data NAME=DIR make one table in one process: not with {', '.join(given)}{why}.")
    check_real(o["settings"].real_labels, [name for name, _ in o["data"].data.items])


def check_real(real_labels, names: list[str]) -> None:
    """--real-labels scores the table's `real` row (val's images against the ReaL labels), and that row needs
    it: either without the other is one sentence."""
    if "real" in names and real_labels is None:
        raise UsageError("The real=DIR row scores val's images against the ReaL labels: give --real-labels "
                         "real.json.")
    if real_labels is not None and "real" not in names:
        raise UsageError("--real-labels scores the table's real row: add --data real=DIR (val's folder), or leave "
                         "--real-labels out.")


def named_variant(name: str, images=None):
    """Without `images`: the variant a NAME asks for (a variant's name, else detected). With them: the images,
    saying that NAME chose their variant."""
    if images is None:
        return name if name in NAMES else "auto"
    if name not in NAMES or images.variant is None:
        return images
    return dataclasses.replace(images, variant=dataclasses.replace(images.variant, how=f"named by --data {name}=DIR"))


def table(classifier, images: dict, keywords: dict) -> VariantTable:
    """Each labelled set in `images` (NAME -> LabelledImages with its variant) through `evaluate`, val first
    (the set whose variant is val is the reference of effective robustness), into one table."""
    from nnprobe.evaluation import evaluate

    val = next((n for n, i in images.items() if i.variant is not None and i.variant.protocol.name == "val"), None)
    subsets = ClassSubsets([i.variant.protocol for n, i in images.items() if n != val and i.variant is not None
                            and i.variant.protocol.groups is not None])
    order = ([val] if val else []) + [n for n in images if n != val]
    results = {n: evaluate(classifier, images[n], **_keywords(keywords, images[n]),
                           observe=subsets if n == val else None) for n in order}
    rows = tuple(_row(n, images[n], results[n], val and results[val], subsets) for n in images)
    gates = tuple(dataclasses.replace(g, message=f"{n}: {g.message}") for n, row in zip(images, rows)
                  for g in _gates(row, results[n], keywords))
    first = results[order[0]]
    notes = tuple(f"{n}: {note}" for n in images for note in results[n].data["notes"])
    return VariantTable(rows, first.model, first.run, first.confidence_level, gates, notes,
                        tuple(results[n] for n in images))


def _is_real(images) -> bool:
    return images.variant is not None and images.variant.protocol.name == "real"


def _keywords(keywords: dict, images) -> dict:
    """evaluate's keywords for one row: the ReaL labels go to the real row only."""
    return dict(keywords, real_labels=keywords.get("real_labels") if _is_real(images) else None)


def _gates(row: VariantRow, result, keywords: dict) -> tuple:
    """The row's gates: the real row's top-1 and top-5 gates judge its ReaL numbers (its headline)."""
    if not row.real:
        return result.gates
    from nnprobe.results import accuracy_gate

    measured = {"min-top1": row.top1, "min-top5": row.top5}
    return tuple(accuracy_gate(g.name, keywords[g.name.replace("-", "_")], measured[g.name])
                 if g.name in measured else g for g in result.gates)


def _real_counts(images, result) -> tuple[int, int, int]:
    """(ReaL top-1, ReaL top-5, images with a ReaL label) of the real row, by the one ReaL scorer."""
    from nnprobe.calibration import real_labels, real_topk

    samples = result.samples
    paths = [images.samples[p][0] for p in samples.positions.tolist()]
    return real_topk(real_labels(result.real.labels), paths, samples.top)


def _row(name: str, images, result, val, subsets: ClassSubsets) -> VariantRow:
    v, variant = result.variant, images.variant
    effective, note = _effective(result, variant and variant.protocol, val, subsets)
    row = VariantRow(name=name, path=images.root, variant=v.title if v else "—", how=v.how if v else "",
                     protocol=v.protocol if v else result.data["logits"], classes=v.classes if v else
                     result.model.num_classes, correct_top1=result.correct_top1, correct_top5=result.correct_top5,
                     total=result.total, correct_top1_all=v.correct_top1_all if v else result.correct_top1,
                     skipped=len(result.skipped), effective=effective, note=note)
    if not _is_real(images):
        return row
    top1, top5, counted = _real_counts(images, result)
    dropped = result.total - counted
    return dataclasses.replace(
        row, correct_top1=top1, correct_top5=top5, total=counted, correct_top1_all=top1, real=True,
        protocol=(f"ReaL labels of {result.real.labels} (Beyer et al. 2020): right when the answer is in the "
                  f"image's ReaL list; {dropped} image(s) with an empty list left out"))


def _effective(result, p: Protocol | None, val, subsets: ClassSubsets) -> tuple[Effective | None, str]:
    """(effective robustness, '') or (None, why there is none)."""
    if p is None:
        return None, "no ImageNet variant: nothing to fit against"
    if p.name == "val":
        return None, "the reference (x of every fit)"
    if val is None:
        return None, "no val data set (--data val=DIR) to measure it against"
    if p.testbed_y is None:
        why = ("the folder's name does not say which V2 sampling (matched-frequency, threshold0.7, top-images)"
               if p.name == "v2" else f"no published fit for {p.title}")
        return None, why
    if p.testbed_x == "val":
        x_name, (right, total) = "val", (val.correct_top1, val.total)
    else:
        x_name, (right, total) = f"val on {p.title}'s {p.ways} classes", subsets.counts[p.name]
    if not total:
        return None, f"val has no images of {p.title}'s classes"
    if right in (0, total):
        return None, f"{x_name} top-1 is {right}/{total}, where a logit-scaled fit says nothing"
    line = fit(p.testbed_x, p.testbed_y, p.floor, p.name)
    predicted = line.predict(right / total)
    below = (f"{x_name} top-1 is below the fitted models' {100 * line.floor:g}%: the line is extrapolated"
             if right / total < line.floor else "")
    return Effective(x_name, right, total, predicted, result.top1 - predicted, line.words()), below
