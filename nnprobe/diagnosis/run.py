"""One run's logs merged into one set of series: restarts resolved per format, and a metric written by
two loggers (Lightning's CSV and TensorBoard side by side) taken once, from the richer file.

Two files of one format that log the same metric are one run only when they are a restart: both carry
wall times and one ends before the other begins (TensorBoard's new event file after a resume). Otherwise
(two CSVs each with steps 0..N, two writers into one folder at once) they are separate runs, each named
after its first file, so that one run's NaN is never superseded by another run's points."""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nnprobe.diagnosis.readers import RunFiles, hparams_num_classes, read_log
from nnprobe.diagnosis.readers.base import LogFile, RawSeries, ReadIssue
from nnprobe.diagnosis.readers.hf_trainer_state import read_config_num_classes
from nnprobe.diagnosis.results import SourceRead
from nnprobe.diagnosis.series import Series, resolve

_FORMAT_PREFERENCE = ("tensorboard", "hf-trainer-state", "jsonl", "lightning-csv", "keras-csv", "mlflow", "mlflow-db",
                      "wandb")


@dataclass(frozen=True, eq=False)
class RunData:
    path: str
    series: dict[str, Series]
    sources: tuple[SourceRead, ...]
    issues: tuple[ReadIssue, ...]
    ignored: tuple[tuple[str, str], ...]
    meta: dict[str, Any] = field(default_factory=dict)
    class_hints: tuple[tuple[int, str], ...] = ()  # (K, where it was found)
    histograms: dict[str, list] = field(default_factory=dict)  # tag -> [HistogramStats] by step

    @property
    def superseded(self) -> int:
        return sum(s.superseded for s in self.series.values())


def load_runs(files: RunFiles, *, verify_crc: bool = True, logs=None) -> list[RunData]:
    """The run(s) in `files`: one, or several when its files cannot be one run (see the module doc).
    `logs`: [(ref, LogFile)] already read (follow's tails), instead of reading `files.logs`."""
    logs = [named(ref, read_log(ref, verify_crc=verify_crc)) for ref in files.logs] if logs is None else \
        [named(ref, log) for ref, log in logs]
    groups = _independent(logs)
    hints = _class_hints(files)
    if len(groups) == 1:
        return [_assemble(files.root, logs, files, hints)]
    return [_assemble(group[0].path, group, files, hints) for group in groups]


def load_run(files: RunFiles, *, verify_crc: bool = True) -> RunData:
    """All of `files` read as one run (restarts resolved, nothing split)."""
    logs = [named(ref, read_log(ref, verify_crc=verify_crc)) for ref in files.logs]
    return _assemble(files.root, logs, files, _class_hints(files))


def named(ref, log: LogFile) -> LogFile:
    """`log` with its series named as the run shows them (a new LogFile; `log` is left as it is): in an
    add_scalars folder the writer logs every point under main_tag, so `loss` in `loss_train/` (torch) or
    `loss/train/` (tensorboardX) becomes `loss/train` (what TensorBoard shows)."""
    folder = getattr(ref, "scalars_of", "")
    if not folder:
        return log
    renamed = {}
    for name, raw in log.series.items():
        bare = name[len(ref.prefix):] if ref.prefix and name.startswith(ref.prefix) else name
        tail = ""
        for head in (bare + "/", bare.replace("/", "_") + "_"):
            if folder.startswith(head) and len(folder) > len(head):
                tail = folder[len(head):]
                break
        renamed[f"{ref.prefix}{bare}/{tail}" if tail else name] = raw
    return LogFile(path=log.path, format=log.format, series=renamed, issues=log.issues, meta=log.meta,
                   records=log.records, histograms=log.histograms)


def _wall_span(raw: RawSeries) -> tuple[float, float] | None:
    walls = np.asarray(raw.walls, dtype=np.float64)
    return (float(walls.min()), float(walls.max())) if walls.size and np.all(np.isfinite(walls)) else None


def _clash(a: LogFile, b: LogFile) -> bool:
    """Whether two files cannot be one run: same format, a shared metric, and not a restart (wall times in
    both, one file's points all before the other's)."""
    if a.format != b.format:
        return False
    for name in a.series.keys() & b.series.keys():
        span_a, span_b = _wall_span(a.series[name]), _wall_span(b.series[name])
        if span_a is None or span_b is None or not (span_a[1] <= span_b[0] or span_b[1] <= span_a[0]):
            return True
    return False


def _independent(logs: list[LogFile]) -> list[list[LogFile]]:
    """The files grouped so that no two files in a group clash; file order kept (first fit)."""
    groups: list[list[LogFile]] = []
    for log in logs:
        for group in groups:
            if not any(_clash(log, other) for other in group):
                group.append(log)
                break
        else:
            groups.append([log])
    return groups


def _class_hints(files: RunFiles) -> tuple[list[tuple[int, str]], list[ReadIssue]]:
    """(K and where it was found, the values that were ignored as issues) from hparams.yaml/config.json."""
    hints, issues = [], []
    for paths, read, key in ((files.hparams, hparams_num_classes, "num_classes"),
                             (files.hf_configs, read_config_num_classes, "id2label")):
        for path in paths:
            k, problem = read(path)
            if k is not None:
                hints.append((k, f"from {os.path.basename(path)} ({key})"))
            if problem:
                issues.append(ReadIssue("invalid", path, problem))
    return hints, issues


def _assemble(root: str, logs: list[LogFile], files: RunFiles,
              hints: tuple[list[tuple[int, str]], list[ReadIssue]]) -> RunData:
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
    class_hints, hint_issues = hints
    class_hints = list(class_hints) + [(log.meta["num_classes"], log.meta["num_classes_from"]) for log in logs
                                       if "num_classes" in log.meta and "num_classes_from" in log.meta]
    histograms: dict[str, list] = {}
    for log in logs:
        for tag, stats in log.histograms.items():
            histograms.setdefault(tag, []).extend(stats)
    for stats in histograms.values():
        stats.sort(key=lambda one: (one.wall if one.wall == one.wall else 0.0, one.step))
    return RunData(path=root, series=series, sources=sources,
                   issues=tuple(i for log in logs for i in log.issues) + tuple(hint_issues),
                   ignored=tuple(files.ignored), meta=meta, class_hints=tuple(class_hints), histograms=histograms)


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


INIT_STEP_MAX = 1  # a first loss is "at init" only at step 0 or 1 (one update at most): later it has learned
# A first loss at init is ln K plus an excess, not ln K: a fresh head's logits are not 0 (logit spread s adds
# ~s^2/2 nats), so it sits in [ln K - INIT_BELOW, ln K + INIT_ABOVE] (below: labels a little unbalanced).
# Measured on real nets written by tensorboardX (10 classes): 2.373, 2.397, 2.433 = ln 10 + 0.07..0.13, and
# round(exp(L0)) said 11. Below ln K by batch sampling: the first loss is one batch's mean (the corpus'
# 72 runs with a step-0 loss, batch 8-128, samples/corpus: ln 10 - 0.061 ... ln 10 + 0.132). K is claimed
# only when exactly one integer's band holds L0; with these bands that is never so for K >= 6 (ln K -
# ln(K-1) < 0.22): K stays unknown there rather than wrong (0.02 below gave K = 9 for digits' 10 classes).
INIT_BELOW = 0.07
INIT_ABOVE = 0.15
# A loss flat at ln K for >= 10 evaluations is a model that outputs the uniform (or the balanced prior's)
# distribution: cross-entropy of any label set against uniform predictions is exactly ln K. K is read off
# only where ln K is told from ln(K +- 1): the tolerance is a quarter of the gap to the next integer's log
# (and at most 0.01 nats, rounding in the logs), the spread over the window at most 1%.
FLAT_EVALS = 10
FLAT_SPREAD = 0.01
FLAT_TOL = 0.01
# With validation accuracy logged, a second witness allows a shorter, noisier window (Keras' 10 epochs): a
# model at chance on held-out data has a loss >= H(labels), a little under ln K only by label imbalance
# (CHANCE_BELOW), and above ln K by its overconfidence (CHANCE_ABOVE: a model memorising shuffled labels ends
# 0.045 over ln 10 in Keras). K is claimed only when one integer's band [ln K - 0.03, ln K + 0.06] holds the
# level and the accuracy over the same evaluations never beat chance for that K (the gain of chance-accuracy).
CHANCE_EVALS = 5
CHANCE_SPREAD = 0.02
CHANCE_BELOW = 0.03
CHANCE_ABOVE = 0.06
CHANCE_GAIN = 0.1
# The lowest validation loss of a whole run at chance sits below H(labels) ~ ln K by the sampling noise of
# a small validation set (the corpus' shuffled-label runs, 360 digits: ln 10 - 0.04), so that band reaches
# 0.06 below ln K; still one integer only.
BEST_BELOW = 0.06


def at_chance(values: np.ndarray, k: int) -> bool:
    """Whether accuracies `values` (finite, >= 1) are at chance for K classes: their median within the gain
    of 0.1 over 1/K (Deepchecks), and no 3 consecutive evaluations averaging above twice that gain. The
    median and the 3-evaluation mean, not the best single value: a net memorising shuffled labels on 360
    validation images swings between 0.03 and 0.21 (K = 10) by chance alone (samples/corpus/*-chance)."""
    chance = 1.0 / k
    gain = CHANCE_GAIN * (1.0 - chance)
    if values.size < 3:
        return bool(values.max() <= chance + gain)
    runs = np.convolve(values, np.ones(3) / 3, mode="valid")
    return bool(np.median(values) <= chance + gain and runs.max() <= chance + 2 * gain)


def _sole_k(level: float, below: float, above: float) -> int | None:
    """The one integer K >= 2 with ln K - below <= level <= ln K + above, or None (none, or several)."""
    if not math.isfinite(level) or not 0 < level <= 14:
        return None
    lo, hi = math.ceil(math.exp(level - above) - 1e-9), math.floor(math.exp(level + below) + 1e-9)
    found = [k for k in range(max(lo, 2), hi + 1) if math.log(k) - below <= level <= math.log(k) + above]
    return found[0] if len(found) == 1 else None


def infer_num_classes(train_loss: Series | None) -> int | None:
    """K from a first loss logged at initialisation (step 0 or 1): a fresh K-way head gives L0 a little
    above ln K; K only when no other integer fits (see INIT_ABOVE)."""
    if train_loss is None or not len(train_loss):
        return None
    first = float(train_loss.values[0])
    if not math.isfinite(first) or int(train_loss.steps[0]) > INIT_STEP_MAX or first < math.log(2) * 0.9 \
            or first > 14:
        return None
    tokens = train_loss.name.lower().replace("/", "_").split("_")
    if "epoch" in tokens or train_loss.format == "keras-csv":
        return None
    return _sole_k(first, INIT_BELOW, INIT_ABOVE)


def infer_num_classes_flat(loss: Series | None, acc: Series | None = None) -> tuple[int, float] | None:
    """(K, the flat level) when the last >= 10 finite points of `loss` sit flat at ln K for an integer K
    (see FLAT_TOL): the loss of a model that guesses uniformly among K classes; or, given the validation
    accuracy `acc`, when its last >= 5 sit near ln K while accuracy stays at chance (see CHANCE_BELOW)."""
    if loss is None:
        return None
    finite = np.isfinite(loss.values)
    values = loss.values[finite][-FLAT_EVALS:]
    if values.size >= FLAT_EVALS:
        level = float(values.mean())
        if math.log(2) * 0.99 <= level <= 14 and (values.max() - values.min()) <= FLAT_SPREAD * level:
            k = int(round(math.exp(level)))
            if k >= 2 and abs(level - math.log(k)) <= min(FLAT_TOL, math.log1p(1.0 / k) / 4):
                return k, level
    return _chance_k(loss.values[finite][-CHANCE_EVALS:], loss.steps[finite][-CHANCE_EVALS:], acc)


def infer_num_classes_best(loss: Series | None, acc: Series | None) -> tuple[int, float] | None:
    """(K, the lowest loss) when the lowest validation loss ever reached sits at ln K (in [ln K - 0.06,
    ln K + 0.06], one integer only) and the validation accuracy stayed at chance for that K (`at_chance`):
    a model that never did better than a uniform guess among K classes, at any evaluation,
    on two independent witnesses. This finds K for a run that memorises shuffled labels (its validation loss
    rises from ln K) and for one logged from a late step, where the first loss is no longer at init."""
    if loss is None or acc is None:
        return None
    values = loss.values[np.isfinite(loss.values)]
    accs = acc.values[np.isfinite(acc.values)]
    if values.size < CHANCE_EVALS or accs.size < CHANCE_EVALS:
        return None
    level = float(values.min())
    k = _sole_k(level, BEST_BELOW, CHANCE_ABOVE)
    if k is None or not at_chance(accs, k):
        return None
    return k, level


def _chance_k(values: np.ndarray, steps: np.ndarray, acc: Series | None) -> tuple[int, float] | None:
    """(K, level) from a loss window that sits near ln K while `acc` over those steps stays at chance."""
    if acc is None or values.size < CHANCE_EVALS:
        return None
    level = float(values.mean())
    if not level > 0 or (values.max() - values.min()) > CHANCE_SPREAD * level:
        return None
    k = _sole_k(level, CHANCE_BELOW, CHANCE_ABOVE)
    during = acc.values[(acc.steps >= steps[0]) & (acc.steps <= steps[-1])]
    during = during[np.isfinite(during)]
    if k is None or during.size < CHANCE_EVALS or during.max() > 1.0 / k + CHANCE_GAIN * (1.0 - 1.0 / k):
        return None
    return k, level
