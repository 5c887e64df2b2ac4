"""`nnprobe merge` of the parts of a several-model eval (`nnprobe eval --model A --model B --shard K/N -o
part-{shard}.json` writes one part per model and slice): the parts are grouped by the model they record, each
model's slices are merged exactly as one model's are (nnprobe.merging), and the result is one ModelRuns with a
row per model, as the several-model eval over the whole data set gives.

Refused in one sentence: parts of other kinds than eval, of other data or another slice count N (they are
not one run), and a model whose slices are not 1..N each once (the sentence names the model).
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from nnprobe.errors import DataError, NnprobeError


def by_model(named: Sequence[tuple[str, dict]]) -> dict[str, tuple[str, list[tuple[str, dict]]]]:
    """The (name, body) parts grouped by the model each records (its spec, weights, preprocessing: the whole
    `model` entry), in the order the models first appear: each model's name and its parts. A several-model eval
    writes the model's name as the user gave it beside each part's fields ("name", taken off here); a part
    without one is named by its model's spec."""
    groups: dict[str, tuple[str, list[tuple[str, dict]]]] = {}
    for part, body in named:
        model = body.get("model") or {}
        name = body.get("name") or str(model.get("spec") or "model")
        key = json.dumps(model, sort_keys=True)
        groups.setdefault(key, (name, []))[1].append((part, {k: v for k, v in body.items() if k != "name"}))
    return groups


def check_one_run(groups: dict[str, tuple[str, list[tuple[str, dict]]]]) -> None:
    """Several models' parts are one run: eval parts of the same data, sliced into the same N."""
    firsts = [group[0] for _, group in groups.values()]
    first_name, first = firsts[0]
    for name, body in firsts[1:]:
        for what, get in (("kind", lambda b: b["kind"]),
                          ("data (fingerprint: other images or labels)", lambda b: b["data"].get("fingerprint")),
                          ("the number of slices N", lambda b: (b["data"].get("shard") or {}).get("count"))):
            if get(body) != get(first):
                raise DataError(f"{name} and {first_name} differ in {what} and in model: they are not parts of "
                                "one run.")
    if first["kind"] != "eval":
        raise DataError(f"{first_name} and {firsts[1][0]} are {first['kind']} results of different models: only "
                        "eval takes several models in one run.")


def merge_models(groups: dict[str, tuple[str, list[tuple[str, dict]]]], merge_one, *,
                 save_predictions: str | None = None,
                 **keywords: Any):
    """A ModelRuns of each model's merged slices (`merge_one(named, save_predictions=..., **keywords)` per
    model); `save_predictions` FILE becomes one file per model, FILE.MODEL.SUFFIX, as eval writes them."""
    from nnprobe.model_runs import ModelRuns
    from nnprobe.options.outputs import model_file, model_slugs

    check_one_run(groups)
    names = [name for name, _ in groups.values()]
    saves = [None] * len(names) if save_predictions is None else \
        [model_file(save_predictions, word) for word in model_slugs(names)]
    if save_predictions is not None:
        _guard_saves(saves, names, groups)
    runs = []
    for (name, group), save in zip(groups.values(), saves):
        try:
            runs.append(merge_one(group, save_predictions=save, **keywords))
        except NnprobeError as exc:
            raise type(exc)(f"{name}: {exc}") from None
    return ModelRuns(tuple(runs), tuple(names))


def _guard_saves(saves: list[str], names: list[str], groups: dict) -> None:
    """Each model's merged per-sample file can be written and is none of the parts (before any merging)."""
    from nnprobe.io import check_writable_file, refuse_overwriting_inputs
    from nnprobe.options.outputs import model_slugs

    outputs = {f"--save-predictions ({word})": path for word, path in zip(model_slugs(names), saves)}
    for option, path in outputs.items():
        check_writable_file(option, path)
    parts = [part for _, group in groups.values() for part, _ in group]
    refuse_overwriting_inputs(outputs, files=parts)
