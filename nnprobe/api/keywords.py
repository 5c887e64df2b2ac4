"""The core's keywords from parsed option groups (a dict of `nnprobe.options` objects, as
`options.verbs.build` makes them): said once here for every verb that passes them on. Torch-free."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Groups = Mapping[str, Any]


def device(o: Groups) -> dict[str, Any]:
    return dict(device=o["device"].device, precision=o["device"].precision)


def loader(o: Groups) -> dict[str, Any]:
    return dict(batch_size=o["loader"].batch_size, workers=o["loader"].workers)


def eval_keywords(o: Groups, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """What evaluation.evaluate takes from eval's options for every model and data set of a run (the per-sample
    file, the slice and the reference model are one run's own)."""
    s, parity = o["settings"], o["parity"]
    return dict(**device(o), **loader(o), strict=s.strict, restrict_to_present=s.restrict_to_present,
                compile=s.compile, decode=s.decode, real_labels=s.real_labels, setup_checks=s.setup_checks,
                progress=progress, **o["intervals"].keywords(), max_flips=parity.max_flips,
                max_logit_diff=parity.max_logit_diff, **o["gates"].keywords())
