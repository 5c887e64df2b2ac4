"""`nnprobe merge`: the partial results of `--shard K/N` runs added up into the one result a single process
would have given, exactly (integer counts are summed; means are re-weighted by their counts).

Refused, in one sentence, unless the parts are one job: the same kind, model, settings and data (the data
fingerprint is of the whole data set, so every slice carries the same one), slices 1..N each exactly once.
Gates are applied here, to the whole, never to a slice.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

from nnprobe.errors import DataError, UsageError

MERGEABLE = ("eval", "robust", "corruption")
_RUN_FIELDS = ("run", "images_per_second", "per_sample", "gates", "passed", "plot", "top1", "top5")


def load_part(path: str, data: bytes | None = None) -> list[dict[str, Any]]:
    """One part's result JSON, read back through the one reader (a regular file, size and depth caps) and
    its kind's schema (`data`: a bucket object's bytes, fetched by part_files), as `per_model` bodies;
    anything else is one sentence."""
    from nnprobe.io import parse_json, read_json

    origin = f"Result {path}"
    return per_model(read_json(path, "Result") if data is None else parse_json(data, origin), origin)


def per_model(body: Any, origin: str) -> list[dict[str, Any]]:
    """The part's body checked against its kind's schema; the JSON of a several-model eval (what `--format
    json` prints for `eval --model A --model B --shard K/N`) gives each model's eval part, its name in it."""
    from nnprobe import kinds

    if isinstance(body, Mapping) and body.get("kind") == "eval-models":
        models = body.get("models")
        if not isinstance(models, list) or not models:
            raise DataError(f"{origin} holds no model's result: not a part nnprobe wrote.")
        return [kinds.validate(m, f"{origin}, model {i + 1}", ("eval",)) for i, m in enumerate(models)]
    return [kinds.validate(body, origin, MERGEABLE)]


def load_parts(parts: Sequence[str | os.PathLike | Mapping[str, Any]]) -> list[tuple[str, dict]]:
    """(name, body) per part, and per model of a several-model part: result dicts as given, paths, globs and
    bucket URLs through part_files."""
    from nnprobe.part_files import fetch

    named: list[tuple[str, dict]] = []
    for i, p in enumerate(parts):
        if isinstance(p, Mapping):
            named += [(f"part {i + 1}", body) for body in per_model(p, f"part {i + 1}")]
        else:
            named += [(name, body) for name, data in fetch([os.fspath(p)]) for body in load_part(name, data)]
    return named


def _same(parts: Sequence[tuple[str, dict]], what: str, get) -> None:
    first_name, first = parts[0]
    for name, body in parts[1:]:
        if get(body) != get(first):
            raise DataError(f"{name} and {first_name} differ in {what}: they are not slices of one run.")


def check_slices(parts: Sequence[tuple[str, dict]], allow_version_mismatch: bool = False) -> int:
    """The parts are slices 1..N of one job: same kind, model, settings, data; each slice exactly once."""
    for name, body in parts:
        if not isinstance(body.get("data", {}).get("shard"), dict):
            raise DataError(f"{name} is not a --shard K/N result: nothing to merge it with.")
    _same(parts, "kind", lambda b: b["kind"])
    _same(parts, "schema version", lambda b: b.get("schema_version"))
    _same(parts, "the number of slices N", lambda b: b["data"]["shard"]["count"])
    _same(parts, "data (fingerprint: other images or labels)", lambda b: b["data"].get("fingerprint"))
    _same(parts, "model", lambda b: b.get("model"))
    _same(parts, "settings", lambda b: (b.get("settings"), b["data"].get("logits"), b["data"].get("top_k"),
                                         b.get("run", {}).get("precision"), b.get("run", {}).get("seed"),
                                         b.get("confidence_level"), _bootstrap_of(b)))
    _same(parts, "--min-norm", lambda b: b.get("min_norm") and (b["min_norm"]["attack"], b["min_norm"]["steps"]))
    _same(parts, "--perturbation-baseline (the reference model's counts)",
          lambda b: b.get("perturbation_baseline") and (b["perturbation_baseline"].get("model"),
                                                         b["perturbation_baseline"].get("perturbations")))
    count = parts[0][1]["data"]["shard"]["count"]
    from nnprobe import kinds

    if not allow_version_mismatch:
        for name, body in parts[1:]:
            differ = kinds.version_difference(parts[0][1], body)
            if differ:
                raise DataError(f"{parts[0][0]} and {name} were written by {differ}: slices of one run come from "
                                "one install (--allow-version-mismatch merges them anyway).")
    seen: dict[int, str] = {}
    for name, body in parts:
        index = body["data"]["shard"]["index"]
        if index in seen:
            raise DataError(f"{name} and {seen[index]} are both slice {index}/{count}: an overlap.")
        seen[index] = name
    missing = sorted(set(range(1, count + 1)) - set(seen))
    if missing:
        shown = ", ".join(f"{k}/{count}" for k in missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise DataError(f"Slice{'s' if len(missing) > 1 else ''} {shown} missing: {len(seen)} of {count} given.")
    return count


def slice_row(kind: str, name: str, body: dict) -> dict[str, Any]:
    """What one slice counted, kept in the merged result's data.slices so its report can show the slices side
    by side with the whole: its index, the part it was read from, its images and top-1/top-5 counts (robust:
    per eps; corruption: clean, and summed over every corruption and severity), its seconds."""
    row = {"index": body["data"]["shard"]["index"], "count": body["data"]["shard"]["count"], "part": name,
           "seconds": body["run"]["seconds"], "world_size": body["run"]["world_size"]}
    if kind == "eval":
        return dict(row, images=body["total"], correct_top1=body["correct_top1"], correct_top5=body["correct_top5"])
    if kind == "robust":
        points = body["points"]
        return dict(row, images=points[0]["total"], clean_correct=points[0]["clean_correct"],
                    correct_top1=[p["correct_top1"] for p in points], correct_top5=[p["correct_top5"] for p in points])
    points = body["points"]
    return dict(row, images=body["clean"]["total"], correct_top1=body["clean"]["correct_top1"],
                correct_top5=body["clean"]["correct_top5"], corrupted_correct_top1=sum(p["correct_top1"] for p in points),
                corrupted_total=sum(p["total"] for p in points))


def _bootstrap_of(body: dict) -> tuple:
    """The resamples and seed of a slice's calibration bootstrap (the merged suite resamples with them)."""
    suite = body.get("calibration_suite")
    return (suite.get("resamples"), suite.get("seed")) if isinstance(suite, dict) else (None, None)


def _merged_data(parts: Sequence[dict]) -> dict[str, Any]:
    data = {k: v for k, v in parts[0]["data"].items() if k != "shard"}
    data["merged_from"] = len(parts)
    if "skipped" in data:  # robust keeps its skipped files under data
        data["skipped"] = _union_skipped(p["data"]["skipped"] for p in parts)
    return data


def _union_skipped(lists) -> list:
    """Files not used, from every slice, once each (files that are not images are listed by every slice)."""
    seen = {}
    for items in lists:
        for item in items:
            seen.setdefault((item["path"], item["reason"]), item)
    return [seen[k] for k in sorted(seen)]


def _merged_run(parts: Sequence[dict]) -> dict[str, Any]:
    runs = [p["run"] for p in parts]
    # the slices ran side by side: the job took as long as its slowest slice, on all their processes
    return dict(runs[0], world_size=sum(r["world_size"] for r in runs), seconds=max(r["seconds"] for r in runs))


def merge_eval(parts: Sequence[dict]) -> dict[str, Any]:
    """eval: counts summed; mean loss re-weighted by image counts; per class summed by index."""
    total = sum(p["total"] for p in parts)
    body = {k: v for k, v in parts[0].items() if k not in _RUN_FIELDS}
    for key in ("correct_top1", "correct_top5", "total", "converted"):
        body[key] = sum(p[key] for p in parts)
    body["mean_loss"] = (sum(p["mean_loss"] * p["total"] for p in parts if p["total"]) / total) if total else None
    body["skipped"] = _union_skipped(p["skipped"] for p in parts)
    classes: dict[int, dict] = {}
    for p in parts:
        for pc in p["per_class"]:
            into = classes.setdefault(pc["index"], {"index": pc["index"], "name": pc["name"], "correct_top1": 0,
                                                    "total": 0, "predicted": 0})
            for key in ("correct_top1", "total", "predicted"):
                into[key] += pc[key]
    body["per_class"] = [classes[i] for i in sorted(classes)]
    reals = [p.get("real") for p in parts]
    body["real"] = None if None in reals else dict(
        labels=reals[0]["labels"], correct_top1=sum(r["correct_top1"] for r in reals),
        total=sum(r["total"] for r in reals))
    variants = [p.get("variant") for p in parts]
    body["variant"] = None if None in variants else dict(
        variants[0], **{key: sum(v[key] for v in variants) for key in ("correct_top1_all", "total", "excluded")})
    # from the slices' rows when they are merged (top-k of a sum is not the sum of top-k's)
    body["confused_pairs"], body["setup_findings"], body["comparison"] = [], [], None
    body["calibration_suite"] = body["calibration_sums"] = None  # the whole's, from every slice: _eval_result
    body["data"] = _merged_data(parts)
    body["run"] = _merged_run(parts)
    body["images_per_second"] = total / body["run"]["seconds"] if body["run"]["seconds"] else None
    return body


def merge_robust(parts: Sequence[dict]) -> dict[str, Any]:
    """robust: per eps, counts summed; mean perturbation norms re-weighted by the attacked counts."""
    body = {k: v for k, v in parts[0].items() if k not in _RUN_FIELDS}
    points = []
    for row in zip(*(p["points"] for p in parts)):
        point = {"eps": row[0]["eps"]}
        for key in ("correct_top1", "correct_top5", "total", "clean_correct", "fooled", "gradient_passes"):
            point[key] = sum(p[key] for p in row)
        for key in ("fp32_correct_top1", "cost"):  # None in any slice (not judged, an older file): unknown
            values = [p.get(key) for p in row]
            point[key] = None if None in values else sum(values)
        for key in ("mean_linf", "mean_l2"):
            weighted = [(p[key], p["clean_correct"]) for p in row if p["clean_correct"]]
            known = point["clean_correct"] and all(v is not None for v, _ in weighted)
            point[key] = sum(v * n for v, n in weighted) / point["clean_correct"] if known else None
        points.append(point)
    body["points"] = points
    body["data"] = _merged_data(parts)
    body["run"] = _merged_run(parts)
    return body


def merge_corruption(parts: Sequence[dict]) -> dict[str, Any]:
    """robust --corruptions: clean counts and each (corruption, severity) point's counts summed."""
    body = {k: v for k, v in parts[0].items() if k not in _RUN_FIELDS}
    keys = ("correct_top1", "correct_top5", "total")
    body["clean"] = {k: sum(p["clean"][k] for p in parts) for k in keys}
    body["points"] = [dict({k: v for k, v in row[0].items() if k not in ("top1", "top5")},
                           **{k: sum(p[k] for p in row) for k in keys}) for row in zip(*(p["points"] for p in parts))]
    moved = ("flips", "comparisons", "top5_distance_sum")
    body["perturbations"] = [dict({k: v for k, v in row[0].items() if k not in ("flip_probability", "top5_distance")},
                                  **{k: sum(p[k] for p in row) for k in moved})
                             for row in zip(*(p.get("perturbations", []) for p in parts))]
    body["verdicts"], body["bootstrap"] = _merged_verdicts(parts), None  # resampled whole by _corruption_result
    body["data"] = _merged_data(parts)
    body["run"] = _merged_run(parts)
    return body


def _merged_verdicts(parts: Sequence[dict]) -> dict | None:
    """The slices' per-image bits as one record in data order (None when a slice has none: an older file)."""
    from nnprobe.imagenet_c.verdicts import ImageVerdicts, concatenated
    from nnprobe.results import from_jsonable, to_jsonable

    if any(not isinstance(p.get("verdicts"), dict) for p in parts):
        return None
    records = [from_jsonable(ImageVerdicts, p["verdicts"]) for p in parts]
    return to_jsonable(ImageVerdicts.encode(*concatenated(records, [f"slice {p['data']['shard']['index']}"
                                                                    for p in parts])))


def _total(kind: str, merged: dict) -> int:
    return {"eval": lambda: merged["total"], "robust": lambda: merged["points"][0]["total"],
            "corruption": lambda: merged["clean"]["total"]}[kind]()


def merge(parts: Sequence[str | Mapping[str, Any]], *, min_top1: float | None = None, min_top5: float | None = None,
          max_ece: float | None = None, min_class_top1: float | None = None,
          min_robust_top1: Mapping[float, float] | None = None, min_corruption_top1: float | None = None,
          save_predictions: str | None = None, allow_version_mismatch: bool = False, perturbation_baseline=None):
    """The EvalResult, RobustResult or CorruptionResult of the whole data set from its `--shard K/N` slices
    (paths or dicts); the parts of a several-model eval give a ModelRuns, each model's slices merged alone
    (merging_models); `perturbation_baseline` divides a corruption sweep's flip rates (`relative.merged`)."""
    from nnprobe.merging_models import by_model, merge_models

    keywords = dict(min_top1=min_top1, min_top5=min_top5, max_ece=max_ece, min_class_top1=min_class_top1,
                    min_robust_top1=min_robust_top1, min_corruption_top1=min_corruption_top1,
                    save_predictions=save_predictions, allow_version_mismatch=allow_version_mismatch,
                    perturbation_baseline=perturbation_baseline)
    named = load_parts(parts)
    if not named:
        raise UsageError("Give the --shard results to merge (part*.json).")
    groups = by_model(named)
    if len(groups) > 1:
        return merge_models(groups, merge_named, **keywords)
    return merge_named(next(iter(groups.values()))[1], **keywords)


def merge_named(named: Sequence[tuple[str, dict]], *, min_top1=None, min_top5=None, max_ece=None,
                min_class_top1=None, min_robust_top1=None, min_corruption_top1=None, save_predictions=None,
                allow_version_mismatch: bool = False, perturbation_baseline=None):
    """`merge` of the (name, body) parts of one model."""
    from nnprobe import kinds

    gates = dict(min_top1=min_top1, min_top5=min_top5, max_ece=max_ece, min_class_top1=min_class_top1)
    check_slices(named, allow_version_mismatch)
    named = sorted(named, key=lambda nb: nb[1]["data"]["shard"]["index"])
    bodies = [b for _, b in named]
    kind = bodies[0]["kind"]
    if perturbation_baseline is not None and kind != "corruption":
        raise UsageError(f"--perturbation-baseline divides ImageNet-P flip rates: these are {kind} slices.")
    merged = kinds.named(kind).piece("merge")(bodies)
    merged["data"]["slices"] = [slice_row(kind, name, body) for name, body in named]
    if not _total(kind, merged):
        raise DataError(f"None of the {len(bodies)} slices evaluated an image: nothing to report.")
    if kind == "corruption":
        from nnprobe.imagenet_c import relative

        return relative.merged(_corruption_result(merged, min_corruption_top1), perturbation_baseline)
    # --min-norm's quantiles need every sample's distance: the slices' rows are read even without a file to write
    needed = save_predictions or (kind == "robust" and bodies[0].get("min_norm") is not None)
    saved, rows = _merge_rows(named, save_predictions) if needed else (None, None)
    if kind == "robust":
        return _robust_result(merged, bodies, saved, rows, min_robust_top1)
    return _eval_result(merged, bodies, saved, rows, gates)


def _robust_result(merged: dict, bodies: Sequence[dict], saved, rows, thresholds):
    """The merged RobustResult: the sanity checks' counts summed over the slices and the findings re-derived
    from them (as one process over the whole data set finds them), the median and the --min-norm distribution
    from the merged rows."""
    from nnprobe.attacks import robust_minnorm
    from nnprobe.attacks.results import RobustResult
    from nnprobe.attacks.robustness import gates_for
    from nnprobe.per_sample import median_min_eps
    from nnprobe.results import from_jsonable

    sanity = merge_sanity([b.get("sanity") for b in bodies])
    result = from_jsonable(RobustResult, dict(merged, sanity=sanity, findings=[], min_norm=None))
    median = median_min_eps([r["clean_correct"] for r in rows], [r["fell_at"] for r in rows]) if rows else None
    result = dataclasses.replace(result, min_norm=robust_minnorm.merged(bodies, rows))
    return dataclasses.replace(result, gates=gates_for(result.points, thresholds), per_sample=saved,
                               median_min_eps=median, findings=_whole_findings(result, sanity))


def merge_sanity(records: Sequence[dict | None]) -> dict | None:
    """The slices' sanity counts as one process's: counts summed, example sample ids the first of all
    slices in data order, the largest output difference the largest. None when a slice has none (older)."""
    if not records or any(not isinstance(r, dict) for r in records):
        return None
    from nnprobe.attacks.sanity import EXAMPLES

    def added(rows):
        return [[sum(column) for column in zip(*row)] for row in zip(*rows)]

    examples: dict[str, list[int]] = {}
    for record in records:
        for check, ids in record["examples"].items():
            examples[check] = sorted(set(examples.get(check, [])) | set(ids))[:EXAMPLES]
    first = records[0]
    return {"model": {k: sum(int(r["model"].get(k, 0)) for r in records) for k in first["model"]},
            "budget": added([r["budget"] for r in records]), "examples": examples,
            "largest_difference": max(float(r["largest_difference"]) for r in records),
            "follow_ups": added([r["follow_ups"] for r in records]) if first["follow_ups"] else [],
            "follow_up_ids": first["follow_up_ids"]}


def _whole_findings(result, sanity: dict | None) -> tuple:
    """The sanity findings of the merged result, from the summed counts (`sanity.findings`); without
    counts (slices written before they were recorded), only those the points alone show."""
    import types

    from nnprobe.attacks.adaptive import findings as follow_findings
    from nnprobe.attacks.base import build
    from nnprobe.attacks.minnorm import findings as min_norm_findings
    from nnprobe.attacks.sanity import Probe, findings

    if sanity is None:
        return findings(result.points, None) + tuple(min_norm_findings(result.points, result.min_norm))
    settings = result.settings
    attacks = [build(settings.attack, eps, steps=settings.steps, random_start=settings.random_start)
               for eps in settings.eps]
    found = findings(result.points, Probe.restored(sanity, attacks)) + \
        tuple(min_norm_findings(result.points, result.min_norm))  # in the order one process finds them
    if sanity["follow_up_ids"]:
        adaptive = types.SimpleNamespace(ids=tuple(sanity["follow_up_ids"]))
        found += tuple(follow_findings(adaptive, attacks, sanity["follow_ups"]))
    return found


def _corruption_result(merged: dict, threshold: float | None):
    from nnprobe.imagenet_c.results import CorruptionResult, corruption_gate
    from nnprobe.results import from_jsonable

    from nnprobe.imagenet_c.verdicts import bootstrap

    result = from_jsonable(CorruptionResult, merged)
    gates = (corruption_gate(threshold, result.mean_corruption_top1),) if threshold is not None else ()
    intervals = None
    if result.verdicts is not None:  # the whole's images resampled, as one process resamples them
        intervals = bootstrap(result, result.verdicts.decoded("the merged slices")[1],
                              confidence=result.confidence_level, resamples=result.settings.bootstrap_resamples,
                              seed=result.settings.seed)
    return dataclasses.replace(result, gates=gates, bootstrap=intervals, verdicts=None)


def _eval_result(merged: dict, bodies: Sequence[dict], saved, rows, gates: dict):
    """The merged EvalResult: the prediction spread and calibration re-derived from the summed parts, the
    confused pairs from the merged rows (when the slices' per-sample files were merged), gates applied."""
    from nnprobe.calibration import Calibration, combined, confused_pairs
    from nnprobe.results import EvalResult, PredictionSpread, eval_gates, from_jsonable

    result = from_jsonable(EvalResult, merged)
    names = {pc.index: pc.name for pc in result.per_class}
    predicted = {pc.index: pc.predicted for pc in result.per_class}
    spread = PredictionSpread.from_counts([predicted.get(i, 0) for i in range(result.model.num_classes)],
                                          lambda i: names.get(i, str(i)))
    parts = [(from_jsonable(Calibration, b["calibration"]), b["total"]) for b in bodies if b.get("calibration")]
    pairs = () if rows is None else confused_pairs([r["label"] for r in rows], [r["top5"][0] for r in rows],
                                                   lambda i: names.get(i, str(i)))
    from nnprobe.calibration_merge import merged_suite

    whole = combined(parts) if len(parts) == len(bodies) else None
    result = dataclasses.replace(result, predictions=spread, per_sample=saved, confused_pairs=pairs,
                                 calibration=whole, calibration_suite=None if whole is None else merged_suite(
                                     bodies, whole, rows, result.confidence_level))
    return dataclasses.replace(result, gates=eval_gates(result, **gates))


def _merge_rows(named: Sequence[tuple[str, dict]], path: str | None):
    """The slices' per-sample files (each found and verified against its sha256 as `compare` does) as one,
    in data order, written to `path` when given; and the rows."""
    from nnprobe.comparison.loading import Side, with_rows
    from nnprobe.per_sample import write

    header, rows = None, []
    for name, body in named:
        if not body.get("per_sample"):
            why = "into --save-predictions" if path else "for the --min-norm distances' quantiles"
            raise UsageError(f"{name} has no per-sample file (run the slices with --save-predictions) to merge "
                             f"{why}.")
        folder = os.path.dirname(os.path.abspath(name)) if os.path.isfile(name) else None
        side = with_rows(Side("slice", body, name, folder))
        header = header or {k: v for k, v in side.header.items() if k not in ("format", "version")}
        rows.extend(side.rows)
    rows.sort(key=lambda r: r["i"])
    return (write(path, dict(header, rows=len(rows)), iter(rows)) if path else None), rows
