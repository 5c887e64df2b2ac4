"""Hugging Face `trainer_state.json`: `log_history` is a list of dicts (`loss`, `grad_norm`,
`learning_rate`, `eval_loss`, `eval_accuracy` ..., with `step` and a fractional `epoch`).

Python's json module accepts the bare `NaN`/`Infinity`/`-Infinity` tokens the Trainer writes (strict
JSON rejects them). The Trainer rewrites the whole file at each save: one cut mid-write still gives its
complete log_history entries (a truncated tail); one that does not parse otherwise is unreadable. The run's
plan (`max_steps`, `num_train_epochs`) is kept so a run that stopped early can be told.
A `config.json` beside it gives the number of classes through `id2label` / `num_labels`.
"""
from __future__ import annotations

import json
import math
import os

from nnprobe.diagnosis.readers.base import (SIZE_CAPS, LogFile, ReadIssue, Unreadable, as_float, as_step,
                                          head_of, read_capped)
from nnprobe.diagnosis.readers.registry import Sniffer, register_reader

FORMAT = "hf-trainer-state"
_NOT_METRICS = frozenset({"step", "epoch", "total_flos"})


_number = as_float


class _Cut(Unreadable):
    """The JSON ends before it is complete: the file was cut while being written or copied."""


def _load(data: bytes, what: str):
    """JSON text to Python, or `Unreadable` (`_Cut` when the text stops mid-way) saying why in a few words."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Unreadable(f"is not UTF-8 text (byte {exc.start})") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise Unreadable(f"is not a {what}: its JSON nests too deeply") from None
    except json.JSONDecodeError as exc:
        tail = text.rstrip()
        if tail and not tail.endswith(("}", "]")) and (exc.pos >= len(tail) - 32 or exc.msg.startswith("Unterminated")):
            raise _Cut("is not valid JSON: it ends before the JSON does (cut while written or copied)") from None
        raise Unreadable(f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except ValueError:  # Python refuses integers of more than 4300 digits
        raise Unreadable("is not valid JSON: it holds an integer too long to convert") from None


def _salvage(data: bytes) -> list:
    """The complete log_history entries before the cut of a trainer_state.json that was cut while being
    written (the Trainer rewrites the whole file at each save), else []."""
    text = data.decode("utf-8", errors="replace")
    start = text.find('"log_history"')
    start = text.find("[", start) + 1 if start >= 0 else 0
    if not start:
        return []
    decoder, entries, pos = json.JSONDecoder(), [], start
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        try:
            entry, pos = decoder.raw_decode(text, pos)
        except (ValueError, RecursionError):
            return entries
        entries.append(entry)


def is_trainer_state(path: str) -> bool:
    """A .json the user names (not found in a folder, where config.json lives) whose head has the
    trainer's keys; an unreadable one is not (it is read as JSON lines, which says why)."""
    head = head_of(path) or b""
    return b"log_history" in head or b"global_step" in head


@register_reader(FORMAT, patterns=("trainer_state.json",), sniffer=Sniffer(("*.json",), is_trainer_state),
                 priority=40)  # its sniffer before JSON lines' catch-all
def read(path: str) -> LogFile:
    log = LogFile(path=path, format=FORMAT)
    data = read_capped(path, SIZE_CAPS[FORMAT])
    try:
        state = _load(data, "trainer_state.json")
    except _Cut:
        entries = _salvage(data)
        if not entries:
            raise
        state = {"log_history": entries}
        log.issues.append(ReadIssue("truncated", path, f"the file ends before its JSON does (cut while "
                                                       f"written); the {len(entries)} complete log_history "
                                                       f"entries before the cut were read", len(data)))
    if not isinstance(state, dict) or not isinstance(state.get("log_history"), list):
        raise Unreadable("has no log_history list: not a Hugging Face trainer_state.json")
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


def read_config_num_classes(path: str) -> tuple[int | None, str | None]:
    """(K from a Hugging Face config.json: `id2label`, else `num_labels`; why a value there was ignored).
    A config.json without either key is no claim about K: (None, None)."""
    from nnprobe.diagnosis.readers import class_count

    try:
        config = _load(read_capped(path, SIZE_CAPS["hparams"]), "config.json")
    except Unreadable as exc:
        return None, f"{os.path.basename(path)} {exc}, so it was ignored"
    if not isinstance(config, dict):
        return None, None
    labels = config.get("id2label")
    if isinstance(labels, dict) and len(labels) >= 2:
        return class_count(len(labels), f"{os.path.basename(path)} id2label:")
    if "num_labels" not in config:
        return None, None
    return class_count(config["num_labels"], f"{os.path.basename(path)} num_labels:")
