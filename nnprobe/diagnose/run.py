"""One run's logs merged into one set of series: restarts resolved per format, and a metric written by
two loggers (Lightning's CSV and TensorBoard side by side) taken once, from the richer file."""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nnprobe.diagnose.readers import RunFiles, hparams_num_classes, read_log
from nnprobe.diagnose.readers.base import LogFile, RawSeries, ReadIssue
from nnprobe.diagnose.readers.hf_trainer_state import read_config_num_classes
from nnprobe.diagnose.results import SourceRead
from nnprobe.diagnose.series import Series, resolve

_FORMAT_PREFERENCE = ("tensorboard", "hf-trainer-state", "jsonl", "lightning-csv", "keras-csv")


@dataclass(frozen=True, eq=False)
class RunData:
    path: str
    series: dict[str, Series]
    sources: tuple[SourceRead, ...]
    issues: tuple[ReadIssue, ...]
    ignored: tuple[tuple[str, str], ...]
    meta: dict[str, Any] = field(default_factory=dict)
    class_hints: tuple[tuple[int, str], ...] = ()  # (K, where it was found)

    @property
    def superseded(self) -> int:
        return sum(s.superseded for s in self.series.values())


def load_run(files: RunFiles, *, verify_crc: bool = True) -> RunData:
    logs: list[LogFile] = [read_log(ref, verify_crc=verify_crc) for ref in files.logs]
    sources = tuple(
        SourceRead(path=log.path, format=log.format, records=log.records, points=log.points,
                   series=tuple(sorted(log.series)),
                   issues=tuple(dataclasses.asdict(i) for i in log.issues),
                   skipped=str(log.meta.get("skipped", "")))
        for log in logs
    )
    by_format: dict[str, dict[str, list[tuple[RawSeries, str]]]] = {}
    for log in logs:
        for name, raw in log.series.items():
            by_format.setdefault(log.format, {}).setdefault(name, []).append((raw, log.path))
    candidates: dict[str, list[Series]] = {}
    for fmt, named in by_format.items():
        for name, parts in named.items():
            paths = sorted({p for _, p in parts})
            source = paths[0] if len(paths) == 1 else f"{len(paths)} {fmt} files"
            candidates.setdefault(name, []).append(resolve(name, [raw for raw, _ in parts], source, fmt))
    series: dict[str, Series] = {}
    for name, options in candidates.items():
        options.sort(key=lambda s: (-len(s), _FORMAT_PREFERENCE.index(s.format)))
        series[name] = options[0]
    _fill_epochs(series)
    meta: dict[str, Any] = {}
    for log in logs:
        meta.update({k: v for k, v in log.meta.items() if k not in ("columns", "skipped")})
    hints = [(k, f"from {os.path.basename(p)} (num_classes)") for p in files.hparams
             if (k := hparams_num_classes(p)) is not None]
    hints += [(k, f"from {os.path.basename(p)} (id2label)") for p in files.hf_configs
              if (k := read_config_num_classes(p)) is not None]
    return RunData(path=files.root, series=series, sources=sources,
                   issues=tuple(i for log in logs for i in log.issues), ignored=tuple(files.ignored),
                   meta=meta, class_hints=tuple(hints))


def _fill_epochs(series: dict[str, Series]) -> None:
    """Give event-file points their epoch: Keras' epoch_* tags are logged at step = epoch; Lightning logs
    an `epoch` scalar next to the metrics, which maps steps to epochs."""
    epoch_series = series.get("epoch")
    for name, one in list(series.items()):
        if not len(one) or np.all(np.isfinite(one.epochs)):
            continue
        epochs = one.epochs.copy()
        missing = ~np.isfinite(epochs)
        if name.split("/")[-1].startswith("epoch_") and one.format == "tensorboard":
            epochs[missing] = one.steps[missing]
        elif epoch_series is not None and len(epoch_series) and name != "epoch":
            pos = np.searchsorted(epoch_series.steps, one.steps, side="right") - 1
            known = missing & (pos >= 0)
            epochs[known] = epoch_series.values[pos[known]]
        else:
            continue
        series[name] = dataclasses.replace(one, epochs=epochs)


def infer_num_classes(train_loss: Series | None) -> int | None:
    """K from a first loss logged at initialisation: a fresh K-way head gives L0 ~ ln K."""
    if train_loss is None or not len(train_loss):
        return None
    first = float(train_loss.values[0])
    if not math.isfinite(first) or int(train_loss.steps[0]) > 10 or first < math.log(2) * 0.9 or first > 14:
        return None
    tokens = train_loss.name.lower().replace("/", "_").split("_")
    if "epoch" in tokens or train_loss.format == "keras-csv":
        return None
    k = int(round(math.exp(first)))
    return k if k >= 2 else None
