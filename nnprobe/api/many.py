"""eval of several models in one run (`--model A --model B`, `--models FILE`, `timm:convnext_*`): the image
folder is listed and labelled once and shared by every model whose classes are the same; each model is then
evaluated as a single-model eval would be, with its own intervals and gates."""
from __future__ import annotations

from typing import Any


def model_specs(model: Any) -> list:
    """The run's models in order from eval's model options (each --model, a timm wildcard expanded from the
    local cache, then the --models file's specs); a single-model verb's options give their one model."""
    if not hasattr(model, "models"):
        return [model.model]
    from nnprobe.models.catalog import model_list

    return model_list(model.model, model.models)


def model_words(models: list) -> list[str]:
    """Each model's word in the files written per model (`--save-predictions`, `--plot`): from its spec as the
    user gave it (options.outputs.model_slugs), `modelN` for one given as an object."""
    import os

    from nnprobe.options.outputs import model_slugs

    return model_slugs([os.fspath(s) if isinstance(s, (str, os.PathLike)) and s else f"model{i + 1}"
                        for i, s in enumerate(models)])


def per_model_files(path: Any, models: list) -> list:
    """The file each model writes for a flag naming `path` (None: none): FILE.WORD.SUFFIX."""
    import os

    from nnprobe.options.outputs import model_file

    if path is None:
        return [None] * len(models)
    return [model_file(os.fspath(path), word) for word in model_words(models)]


PASS_MODELS = 8  # models one shared decoding pass holds at once ...
PASS_BYTES = 4 << 30  # ... and their weights' bytes: a longer list takes several passes


def evaluate_many(o: dict, models: list, progress=None) -> Any:
    """A ModelRuns: each model of `models` on the same images, reported in order; with `--reference-model`, each
    model is a candidate held against that one reference (its parity and its --max-flips/--max-logit-diff gates
    its own, as in a single-model run; the reference's logits on a batch computed once for the candidates that
    take their turns on it: parity_tally.SharedReference). Models with the same classes
    share the labelled images and one decoding pass (nnprobe.data.shared_decode), up to PASS_MODELS models or
    PASS_BYTES of weights at a time; with --decode device each model decodes on its own. With `--shard K/N` each
    model's result is its part of the slice (what `nnprobe merge` adds up); under torchrun (`--nproc`) the ranks
    split the images (or the slice) once for every model of a pass."""
    from nnprobe.api.keywords import eval_keywords
    from nnprobe.api.loading import load_classifier, model_and_data, with_reference
    from nnprobe.model_runs import ModelRuns

    from nnprobe.parity_tally import SharedReference

    reference, shared_reference = o["parity"].reference_model, None
    variant = o["settings"].variant or "auto"
    keywords = dict(eval_keywords(o, progress), shard=o["shard"].shard)
    alone = keywords["decode"] != "workers"
    saves = per_model_files(o["per_sample"].save_predictions, models)
    results: list = [None] * len(models)
    shared: dict = {}
    pending: dict = {}
    for i, spec in enumerate(models):
        one = o["model"].one(spec)
        classifier = load_classifier(one.model, **one.loader_keywords())
        if reference is not None:  # loaded by the first model's call, then passed on
            classifier, reference = with_reference(classifier, reference, one)
        key = (classifier.num_classes, tuple(classifier.class_names))
        if key not in shared:
            _, shared[key] = model_and_data(one, o["data"], variant=variant, classifier=classifier)
        group = pending.setdefault(key, [])
        if reference is not None and shared_reference is None:
            shared_reference = SharedReference(reference)
        group.append((i, classifier, {"save_predictions": saves[i], "reference": shared_reference}))
        if alone or len(group) >= PASS_MODELS or sum(_weight_bytes(c) for _, c, _ in group) >= PASS_BYTES:
            _run(group, shared[key], keywords, results)
    for key, group in pending.items():
        _run(group, shared[key], keywords, results)
    return ModelRuns(tuple(results), tuple(_name(spec, r) for spec, r in zip(models, results)))


def _run(group: list, images: Any, keywords: dict, results: list) -> None:
    """Evaluate the (position, classifier, own keywords) of `group` into `results`, one decoding pass for all;
    empty it."""
    from nnprobe.data.shared_decode import evaluate_shared
    from nnprobe.evaluation import evaluate

    if len(group) == 1:
        i, classifier, own = group[0]
        results[i] = evaluate(classifier, images, **keywords, **own)
    elif group:
        together = evaluate_shared([c for _, c, _ in group], images, keywords, [own for _, _, own in group])
        for (i, _, _), result in zip(group, together):
            results[i] = result
    group.clear()


def _weight_bytes(classifier: Any) -> int:
    import itertools

    return sum(t.numel() * t.element_size() for t in itertools.chain(classifier.parameters(), classifier.buffers()))


def _name(spec: Any, result: Any) -> str:
    """A model as the user named it: the spec text (a state dict's file, not its --arch), else its own spec."""
    import os

    return os.fspath(spec) if isinstance(spec, (str, os.PathLike)) and spec else result.model.spec


def list_models_with(o: dict) -> Any:
    """`list_models` from parsed options."""
    from nnprobe.models.offline import list_offline

    return list_offline(o["catalog"].pattern)
