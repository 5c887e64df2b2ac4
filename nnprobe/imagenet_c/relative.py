"""ImageNet-P flip rates relative to a reference model's (`--perturbation-baseline RESULT.json`).

The paper's mFR divides each perturbation's flip probability by AlexNet's on the same sequences and averages
(mT5D likewise with the top-5 distance); nnprobe reports that beside every 1000-class run (`mce.py`, AlexNet's
values from the paper's appendix, measured on the published videos). A baseline run instead divides by a
reference model of the user's choice run on the very same images and in-memory sequences (AlexNet from
torchvision, or the model a change started from): each FP and T5D over its, and their means, mFR and mT5D
against that model. The counts come from the same images and the same sequences or the comparison is
refused: other images, another seed (the noises' draws) or other frame counts would make the ratio compare
different things.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any

from nnprobe.errors import UsageError
from nnprobe.imagenet_c.results import CorruptionResult, PerturbationBaseline, PerturbationPoint

WHAT = "Perturbation baseline"


def _body(source: Any) -> tuple[dict, str]:
    if isinstance(source, (str, os.PathLike)):
        from nnprobe.io import check_input, read_json

        check_input(source, WHAT, "result")
        return read_json(source, f"the perturbation baseline {os.fspath(source)}"), os.fspath(source)
    if isinstance(source, dict):
        return source, "<dict>"
    if callable(getattr(source, "to_dict", None)):
        return source.to_dict(), f"<{type(source).__name__}>"
    raise UsageError(f"the perturbation baseline must be a corruptions result JSON path, a dict or a result, "
                     f"not {type(source).__name__}.")


def _checked(body: dict, origin: str, names: list[str], seed: int, fingerprint: str | None,
             encoder: str | None) -> dict[str, dict]:
    """The baseline's perturbation rows by name, once it is a whole corruption result with those sequences, on
    the same images (unless `fingerprint` is not known yet), with the same seed and frames made the same way
    (`encoder`: this run's settings.x264_roundtrip)."""
    from nnprobe import kinds

    kinds.validate(body, f"the perturbation baseline {origin}", ("corruption",))
    theirs = {p.get("perturbation"): p for p in body.get("perturbations") or []}
    missing = [n for n in names if n not in theirs]
    if missing:
        raise UsageError(f"the perturbation baseline {origin} has no {', '.join(missing)} sequences: run the "
                         f"reference model with --perturbations {','.join(names)}.")
    same_images = fingerprint is None or (body.get("data") or {}).get("fingerprint") == fingerprint
    if not same_images or (body.get("settings") or {}).get("seed") != seed:
        raise UsageError(f"the perturbation baseline {origin} ran on " + ("other images" if not same_images else
                         "another --seed (other noise draws)") + ": flip rates compare on the same sequences.")
    if "shard" in (body.get("data") or {}):
        raise UsageError(f"the perturbation baseline {origin} is one --shard slice: give the reference model's "
                         f"whole run (nnprobe merge its slices first).")
    frames = (body.get("settings") or {}).get("x264_roundtrip"), encoder
    if frames[0] != frames[1]:
        raise UsageError(f"the perturbation baseline {origin} scored other frames ({frames[0] or 'in memory'}; this "
                         f"run: {frames[1] or 'in memory'}): give both runs the same --x264-roundtrip.")
    return theirs


def _needs_perturbations(names) -> None:
    if not names:
        raise UsageError("--perturbation-baseline divides ImageNet-P flip rates: give --perturbations too.")


def preflight(source: Any, names, seed: int, images: Any = None, x264_roundtrip: bool = False) -> None:
    """Before the sweep, what needs no counts (`images`: the data set, for its fingerprint when it has one),
    so that a baseline that cannot compare costs no sweep."""
    if source is None:
        return
    from nnprobe.imagenet_c.x264 import describe

    _needs_perturbations(names)
    fingerprint = None
    if hasattr(images, "root") and hasattr(images, "samples"):
        from nnprobe.per_sample import data_fingerprint

        fingerprint = data_fingerprint(images.root, images.samples)
    _checked(*_body(source), list(names), seed, fingerprint, describe() if x264_roundtrip else None)


def _baseline_of(result: CorruptionResult, source: Any) -> PerturbationBaseline:
    """The baseline's counts for the result's perturbations, checked (`_checked`; the frame counts:
    `_check_frames`, on a whole)."""
    _needs_perturbations(result.perturbations)
    body, origin = _body(source)
    names = [p.perturbation for p in result.perturbations]
    theirs = _checked(body, origin, names, result.settings.seed, result.data.get("fingerprint"),
                      result.settings.x264_roundtrip)
    points = tuple(PerturbationPoint(n, theirs[n]["flips"], theirs[n]["comparisons"], theirs[n]["top5_distance_sum"])
                   for n in names)
    spec = (body.get("model") or {}).get("spec") or "?"
    return PerturbationBaseline(origin, str(spec), points)


def _check_frames(result: CorruptionResult) -> None:
    """A whole run's frames compared, perturbation by perturbation, equal its baseline's."""
    base = result.perturbation_baseline
    pairs = zip(base.perturbations, result.perturbations)
    uneven = [p.perturbation for p, q in pairs if p.comparisons != q.comparisons]
    if uneven:
        raise UsageError(f"the perturbation baseline {base.source} compared another number of frames on "
                         f"{', '.join(uneven)}: flip rates compare on the same sequences.")


def with_perturbation_baseline(result: CorruptionResult, source: Any) -> CorruptionResult:
    """`result` with the baseline's counts for its perturbations; one sentence when they do not compare. A
    --shard slice carries them for merge, which checks the frame counts on the whole (`merged`)."""
    if source is None:
        return result
    result = dataclasses.replace(result, perturbation_baseline=_baseline_of(result, source))
    if "shard" not in result.data:
        _check_frames(result)
    return result


def _counts(base: PerturbationBaseline) -> tuple:
    return base.model, base.perturbations


def merged(result: CorruptionResult, source: Any = None) -> CorruptionResult:
    """`nnprobe merge`'s whole with the baseline its slices carry (check_slices holds them equal) or the one
    merge is given (`--perturbation-baseline`; refused when the slices carry another), its frames checked."""
    if source is not None:
        given = _baseline_of(result, source)
        carried = result.perturbation_baseline
        if carried is not None and _counts(carried) != _counts(given):
            raise UsageError(f"the slices were run against {carried.model} ({carried.source}) and "
                             f"--perturbation-baseline {given.source} counts other flips: give merge one or the "
                             f"other.")
        result = dataclasses.replace(result, perturbation_baseline=given)
    if result.perturbation_baseline is not None:
        _check_frames(result)
    return result
