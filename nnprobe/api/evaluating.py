"""eval from parsed options: one model on one data set (with --reference-model and --baseline), several models
(api/many.py) or several --data NAME=DIR (a variants table). Split from the package's __init__, which keeps the
public verbs and their keywords; the model and the images come from api/loading.py, as for every verb."""
from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING

from nnprobe.api.keywords import eval_keywords
from nnprobe.api.loading import find_images, load_classifier, model_and_data, with_reference
from nnprobe.errors import UsageError
from nnprobe.options.base import Options

if TYPE_CHECKING:
    from nnprobe.api import Groups, Progress
    from nnprobe.model_runs import ModelRuns
    from nnprobe.results import EvalResult
    from nnprobe.variants.table import VariantTable


def refuse_sliced_baseline(o: Groups) -> None:
    if o["baseline"].baseline is not None and o["shard"].shard is not None:
        raise UsageError("A --shard slice is not the whole data set: compare the merged result (nnprobe merge, "
                         "then nnprobe compare).")


def with_baseline(result, baseline: Options):
    """The result with its comparison against `baseline` (`--baseline`), whose gates join the result's."""
    if baseline.baseline is None:
        return result
    from nnprobe.comparison import compare as run

    source = baseline.baseline
    if isinstance(source, (str, os.PathLike)):
        from nnprobe.io import check_input

        check_input(source, "Baseline result", "result")
    shown = os.fspath(source) if isinstance(source, (str, os.PathLike)) else "the baseline"
    comparison = run(source, result, names=(shown, "this run"), confidence=getattr(result, "confidence_level", 0.95),
                     **baseline.gates())
    return dataclasses.replace(result, comparison=comparison, gates=result.gates + comparison.gates)


def evaluate_with(o: Groups, progress: Progress | None = None) -> "EvalResult | ModelRuns | VariantTable":
    """`evaluate` from parsed options (`options.verbs.build(options.verbs.EVAL, ...)`); several models give a
    ModelRuns (api/many.py), several --data NAME=DIR a VariantTable (nnprobe.variants)."""
    from nnprobe.evaluation import evaluate as run
    from nnprobe.options.data import DataSets

    from nnprobe.api.many import evaluate_many, model_specs

    models = model_specs(o["model"])
    if isinstance(o["data"].data, DataSets):
        return _table(o, models, progress)
    if len(models) > 1:
        refuse_sliced_baseline(o)
        runs = evaluate_many(o, models, progress)  # each model against the one --baseline, when given
        return dataclasses.replace(runs, runs=tuple(with_baseline(r, o["baseline"]) for r in runs.runs))
    o = dict(o, model=o["model"].one(models[0] if models else None)) if hasattr(o["model"], "one") else o
    refuse_sliced_baseline(o)
    s, parity = o["settings"], o["parity"]
    classifier, images = model_and_data(o["model"], o["data"], variant=s.variant or "auto")
    reference = None
    if parity.reference_model is not None:
        classifier, reference = with_reference(classifier, parity.reference_model, o["model"])
    result = run(classifier, images, **eval_keywords(o, progress), reference=reference,
                 save_predictions=o["per_sample"].save_predictions, shard=o["shard"].shard)
    return with_baseline(result, o["baseline"])


def _table(o: Groups, models: list, progress: Progress | None) -> "VariantTable":
    """Several --data NAME=DIR: one model, each data set under its variant, into one table."""
    from nnprobe.variants.run import check_table, named_variant, table

    if len(models) > 1:
        raise UsageError("Several models and several --data NAME=DIR: give one of the two per run.")
    o = dict(o, model=o["model"].one(models[0] if models else None)) if hasattr(o["model"], "one") else o
    check_table(o)
    classifier = load_classifier(o["model"].model, **o["model"].loader_keywords())
    images = {name: named_variant(name, find_images(folder, classifier, **o["data"].finder_keywords(),
                                                    variant=named_variant(name)))
              for name, folder in o["data"].data.items}
    return table(classifier, images, eval_keywords(o, progress))
