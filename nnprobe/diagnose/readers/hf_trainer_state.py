"""Hugging Face `trainer_state.json`: `log_history` is a list of dicts (`loss`, `grad_norm`,
`learning_rate`, `eval_loss`, `eval_accuracy` ..., with `step` and a fractional `epoch`).

Python's json module accepts the bare `NaN`/`Infinity` tokens the Trainer writes (strict JSON rejects
them). The run's plan (`max_steps`, `num_train_epochs`) is kept so a run that stopped early can be told.
A `config.json` beside it gives the number of classes through `id2label` / `num_labels`.
"""
from __future__ import annotations

import json
import math
import os

from nnprobe.diagnose.readers.base import LogFile, ReadIssue, as_step

FORMAT = "hf-trainer-state"
_NOT_METRICS = frozenset({"step", "epoch", "total_flos"})


def _number(value) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    return None


def read(path: str) -> LogFile:
    log = LogFile(path=path, format=FORMAT)
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        state = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        kind = "truncated" if data.strip() and not data.rstrip().endswith(b"}") else "corrupt"
        log.issues.append(ReadIssue(kind, path, f"not valid JSON: {str(exc)[:80]}"))
        return log
    if not isinstance(state, dict) or not isinstance(state.get("log_history"), list):
        log.issues.append(ReadIssue("corrupt", path, "no log_history list in this trainer_state.json"))
        return log
    for key in ("max_steps", "num_train_epochs", "global_step", "epoch", "best_model_checkpoint",
                "best_metric", "logging_steps", "eval_steps"):
        if key in state and isinstance(state[key], (int, float, str)) and not isinstance(state[key], bool):
            log.meta[key] = state[key]
    finished = False
    for index, entry in enumerate(state["log_history"]):
        if not isinstance(entry, dict):
            log.issues.append(ReadIssue("corrupt", path, f"log_history[{index}] is not an object", index + 1))
            continue
        log.records += 1
        step = _number(entry.get("step"))
        epoch = _number(entry.get("epoch"))
        step_int = as_step(step, index)
        if "train_runtime" in entry:
            finished = True
        for key, value in entry.items():
            if key in _NOT_METRICS:
                continue
            number = _number(value)
            if number is None:
                continue
            log.series_for(key).add(step_int, number, math.nan, math.nan if epoch is None else epoch)
    log.meta["finished"] = finished
    return log


def read_config_num_classes(path: str) -> int | None:
    """K from a Hugging Face config.json (`id2label`, else `num_labels`), or None."""
    if not os.path.isfile(path):
        return None
    try:
        with open(path, "rb") as handle:
            config = json.loads(handle.read().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(config, dict):
        return None
    labels = config.get("id2label")
    if isinstance(labels, dict) and len(labels) >= 2:
        return len(labels)
    count = config.get("num_labels")
    return count if isinstance(count, int) and not isinstance(count, bool) and count >= 2 else None
