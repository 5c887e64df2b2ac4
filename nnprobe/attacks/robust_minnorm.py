"""`robust --min-norm` over a data set: the minimum-norm attack (`minnorm.py`) on each batch's initially correct
samples, in the same pass as the sweep. Every sample's distance is kept in its row (`RobustSamples`, and the
`--save-predictions` file: `min_norm_distance`, `min_norm_improving`), and the distribution (quantiles, median,
the robust-accuracy curve) is computed from the rows: by one process, by the ranks of `--nproc` gathered in
data order, or by `merge` from the slices' per-sample files. A distance does not depend on which samples share
a batch, a rank or a slice, so each way gives the same numbers.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nnprobe.attacks.minnorm import MinNormAttack, build_min_norm, distribution
from nnprobe.errors import UsageError
from nnprobe.per_sample import min_norm_columns


def min_norm_attack(attack_id: str | None, steps: int | None, shard, save_predictions) -> MinNormAttack | None:
    """--min-norm's attack. A --shard slice keeps its distances in its per-sample file, where merge finds every
    sample's distance again: without --save-predictions it is refused."""
    if attack_id is None:
        if steps is not None:
            raise UsageError("--min-norm-steps sets the steps of --min-norm: give --min-norm too.")
        return None
    if shard is not None and not save_predictions:
        raise UsageError("--min-norm on a --shard slice needs --save-predictions: merge computes the distances' "
                         "quantiles from every slice's per-sample distances.")
    return build_min_norm(attack_id, steps)


def min_norm_batch(tally, classifier, x, labels, clean_right, autocast) -> None:
    """The minimum-norm attack on the batch's initially correct samples (`clean_right`, as the sweep judged
    them); the others are wrong at distance 0. Adds each sample's distance (inf: never fooled) and whether it
    was still improving to `tally.distances`, aligned with `tally.rows`, and the passes to the tally."""
    import torch

    right = clean_right.to(x.device)
    distance = torch.zeros(labels.numel(), dtype=torch.float64)
    improving = torch.zeros(labels.numel(), dtype=torch.bool)
    if right.any():
        out = tally.min_norm(classifier, x[right], labels[right], autocast=autocast)
        distance[right.cpu()], improving[right.cpu()] = out.distance.cpu().double(), out.improving.cpu()
        tally.min_norm_passes += int(out.gradient_passes)
    tally.distances.append((distance, improving))


def distribution_of(attack: MinNormAttack | None, samples, passes: int, eps: Sequence[float], norm: str):
    """The run's `MinNormDistribution` from its rows (`RobustSamples`, any order), or None without --min-norm;
    the curve takes the sweep's budgets when the sweep's norm is the distances' (`norm`)."""
    if attack is None:
        return None
    same = eps if attack.norm.id == norm else ()
    return distribution(attack, samples.min_norm_distance, samples.clean_correct, samples.min_norm_improving,
                        passes, same)


def merged(bodies: Sequence[Mapping[str, Any]], rows: Sequence[Mapping[str, Any]]):
    """`merge`: the slices' --min-norm distribution of the whole data set, recomputed from their per-sample rows
    (the quantiles need every distance); the passes summed. None when the slices ran without --min-norm."""
    records = [b.get("min_norm") for b in bodies]
    if all(r is None for r in records):
        return None
    first = records[0]
    attack = build_min_norm(first["attack"], first["steps"])
    settings = bodies[0]["settings"]
    distance, clean, improving = min_norm_columns(rows)
    same = settings["eps"] if attack.norm.id == settings["norm"] else ()
    return distribution(attack, distance, clean, improving, sum(r["gradient_passes"] for r in records), same)
