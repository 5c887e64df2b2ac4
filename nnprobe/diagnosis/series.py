"""One metric of one run as arrays, after restarts are resolved.

A resumed run writes the steps after its checkpoint again (a new event file in the same folder, or new
rows). Those repeats are resolved by time: points are ordered by wall time (write order when the format
has no time), and a point at step s supersedes every earlier-written point at step >= s, which is what
TensorBoard's purge on restart means. Nothing is counted twice; how many points were superseded is kept.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nnprobe.diagnosis.readers.base import RawSeries


@dataclass(frozen=True, eq=False)
class Series:
    name: str
    source: str  # the file (or files) the points came from
    format: str
    steps: np.ndarray  # int64, non-decreasing (a step logged several times keeps every point)
    values: np.ndarray  # float64, NaN/Inf kept
    walls: np.ndarray  # float64, NaN where unknown
    epochs: np.ndarray  # float64, NaN where unknown
    superseded: int = 0  # points replaced by a later, different write of their step (restarts)
    step_from_order: bool = False  # the log gave no usable step: positions are used

    def __len__(self) -> int:
        return int(self.values.size)

    @property
    def finite(self) -> np.ndarray:
        return np.isfinite(self.values)

    def epoch_at(self, index: int) -> float | None:
        epoch = float(self.epochs[index])
        return epoch if np.isfinite(epoch) else None


WALL_LIMIT = 253402300799.0  # 9999-12-31 23:59:59 UTC: a later (or NaN) wall time is unknown


def _same(a: float, b: float) -> bool:
    return a == b or (a != a and b != b)


def resolve(name: str, parts: list[RawSeries], source: str, fmt: str) -> Series:
    """Concatenate the raw parts of one metric (in file order) and resolve repeated steps by time."""
    def joined(attr: str, dtype) -> np.ndarray:
        arrays = [np.asarray(getattr(p, attr), dtype=dtype) for p in parts]
        return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)

    steps = joined("steps", np.int64)
    values = joined("values", np.float64)
    walls = joined("walls", np.float64)
    epochs = joined("epochs", np.float64)
    walls = np.where(np.abs(walls) <= WALL_LIMIT, walls, np.nan)  # a year-30000 stamp is that point's, not the run's
    step_from_order = False
    if steps.size > 1 and np.all(steps == steps[0]):  # logged without a step: the order is the axis
        steps = np.arange(steps.size, dtype=np.int64)
        step_from_order = True
    order = np.argsort(walls, kind="stable") if steps.size and np.all(np.isfinite(walls)) \
        else np.arange(steps.size)
    ordered = steps[order]
    superseded = 0  # a repeat of the same step with the same value (Lightning logs `epoch` twice) is no restart
    if ordered.size < 2 or np.all(np.diff(ordered) > 0):
        keep = order
    else:
        kept: list[int] = []
        for index, step in zip(order.tolist(), ordered.tolist()):
            if kept and steps[kept[-1]] > step:  # the step went backwards: a restart
                while kept and steps[kept[-1]] >= step:
                    dropped = kept.pop()
                    if steps[dropped] > step or not _same(values[dropped], values[index]):
                        superseded += 1
            kept.append(index)
        keep = np.asarray(kept, dtype=np.int64)
    return Series(name=name, source=source, format=fmt, steps=steps[keep], values=values[keep],
                  walls=walls[keep], epochs=epochs[keep], superseded=superseded,
                  step_from_order=step_from_order)
