"""The schema of each result kind's JSON, checked whenever a result is read back (`compare`, `--baseline`,
`merge`): types, finite numbers, counts no larger than their totals, per-class sums equal to the totals,
the per-sample row count equal to the count it stands for. A result that fails is one sentence (DataError,
exit 2), so an edited or damaged number can never pass (or fail) a gate.

Torch-free; imports only `errors`. Each kind's checker is registered on its record in `nnprobe.kinds`.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from nnprobe.errors import DataError

SCHEMA_VERSION = 1
DERIVED_TOLERANCE = 1e-9  # top1 written next to its counts: the same division, give or take rounding
SEVERITIES = ("info", "warning", "error")


class Checker:
    """Reads fields of one result body, each a sentence naming `origin` and the field when wrong."""

    def __init__(self, origin: str) -> None:
        self.origin = origin

    def fail(self, what: str) -> None:
        raise DataError(f"{self.origin}: {what}; it is not a result nnprobe wrote (edited or damaged?).")

    def mapping(self, body: Any, where: str) -> Mapping[str, Any]:
        if not isinstance(body, Mapping):
            self.fail(f"{where} is not an object")
        return body

    def items(self, body: Mapping[str, Any], key: str, where: str, *, required: bool = True) -> list[Any]:
        value = body.get(key)
        if value is None and not required:
            return []
        if not isinstance(value, list):
            self.fail(f"{where}{key} is not a list")
        return value

    def count(self, body: Mapping[str, Any], key: str, where: str = "", *, optional: bool = False) -> int:
        """A whole number >= 0 (with `optional`, an absent or null one reads as 0: nothing to check)."""
        value = body.get(key)
        if value is None and optional:
            return 0
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            self.fail(f"{where}{key} is {value!r}, not a count (a whole number >= 0)")
        return value

    def number(self, body: Mapping[str, Any], key: str, where: str = "", *, optional: bool = True,
               low: float | None = None, high: float | None = None) -> float | None:
        value = body.get(key)
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.fail(f"{where}{key} is {value!r}, not a finite number")
        if (low is not None and value < low) or (high is not None and value > high):
            self.fail(f"{where}{key} is {value!r}, outside [{low}, {high}]")
        return float(value)

    def at_most(self, part: int, whole: int, what: str) -> None:
        if part > whole:
            self.fail(f"{what} ({part} of {whole}): a count larger than its total")

    def derived(self, body: Mapping[str, Any], key: str, correct: int, total: int, where: str = "") -> None:
        """`top1` written beside its counts must be their quotient (null when the total is 0)."""
        if key not in body:
            return
        value = body[key]
        if total == 0:
            if value is not None:
                self.fail(f"{where}{key} is {value!r} over 0 images")
            return
        if value is None or self.number(body, key, where) is None or \
                abs(value - correct / total) > DERIVED_TOLERANCE:
            self.fail(f"{where}{key} is {value!r} but the counts give {correct}/{total}")


def finite_everywhere(body: Any, check: Checker) -> None:
    """No infinite number anywhere (`1e999` parses as inf; strict parsing already refused NaN)."""
    stack = [body]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            check.fail(f"it holds the number {item!r}")
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _topk(check: Checker, body: Mapping[str, Any], where: str) -> tuple[int, int, int]:
    """correct_top1 <= correct_top5 <= total, and top1/top5 beside them their quotients."""
    c1, c5, n = (check.count(body, k, where) for k in ("correct_top1", "correct_top5", "total"))
    check.at_most(c1, c5, f"{where}correct_top1 exceeds correct_top5")
    check.at_most(c5, n, f"{where}correct_top5 exceeds total")
    check.derived(body, "top1", c1, n, where)
    check.derived(body, "top5", c5, n, where)
    return c1, c5, n


def _gates(check: Checker, body: Mapping[str, Any]) -> None:
    for gate in check.items(body, "gates", "", required=False):
        gate = check.mapping(gate, "a gate")
        check.number(gate, "threshold", "a gate's ", optional=False)
        if not isinstance(gate.get("passed"), bool):
            check.fail("a gate's passed is not true or false")


def _per_sample(check: Checker, body: Mapping[str, Any], rows: int) -> None:
    record = body.get("per_sample")
    if record is None:
        return
    record = check.mapping(record, "per_sample")
    if check.count(record, "rows", "per_sample.") != rows:
        check.fail(f"per_sample.rows is {record['rows']} but the result counts {rows} images")


def _common(check: Checker, body: Mapping[str, Any]) -> None:
    if body.get("schema_version") != SCHEMA_VERSION:
        check.fail(f"schema_version is {body.get('schema_version')!r}, this nnprobe reads {SCHEMA_VERSION}")
    finite_everywhere(body, check)
    _gates(check, body)
    run = body.get("run")
    if run is not None:
        run = check.mapping(run, "run")
        if run.get("world_size") is not None and check.count(run, "world_size", "run.") < 1:
            check.fail("run.world_size is 0")
        check.number(run, "seconds", "run.", low=0.0)
        versions = run.get("versions", {})
        if not isinstance(versions, Mapping) or not all(isinstance(v, str) for v in versions.values()):
            check.fail("run.versions is not an object of version strings")
    shard = (body.get("data") or {}).get("shard") if isinstance(body.get("data"), Mapping) else None
    if shard is not None:
        shard = check.mapping(shard, "data.shard")
        index, count = check.count(shard, "index", "data.shard."), check.count(shard, "count", "data.shard.")
        if not 1 <= index <= count:
            check.fail(f"data.shard is slice {index} of {count}")


def check_eval(check: Checker, body: Mapping[str, Any]) -> None:
    c1, _, n = _topk(check, body, "")
    check.count(body, "converted", optional=True)
    check.number(body, "mean_loss", low=0.0)
    sums = [0, 0, 0]
    for pc in check.items(body, "per_class", "", required=False):
        pc = check.mapping(pc, "a per_class entry")
        check.count(pc, "index", "per_class ")
        right, total = check.count(pc, "correct_top1", "per_class "), check.count(pc, "total", "per_class ")
        check.at_most(right, total, f"class {pc.get('index')}'s correct_top1 exceeds its total")
        check.derived(pc, "top1", right, total, f"class {pc.get('index')}'s ")
        sums = [sums[0] + right, sums[1] + total, sums[2] + check.count(pc, "predicted", "per_class ")]
    if body.get("per_class"):
        for name, got, want in (("correct_top1", sums[0], c1), ("total", sums[1], n), ("predicted", sums[2], n)):
            if got != want:
                check.fail(f"the per-class {name} add up to {got}, not the {want} the totals say")
    _calibration(check, body.get("calibration"), n)
    _calibration_sums(check, body.get("calibration_sums"))
    real = body.get("real")
    if real is not None:
        real = check.mapping(real, "real")
        check.at_most(check.count(real, "correct_top1", "real."), check.count(real, "total", "real."),
                      "real.correct_top1 exceeds real.total")
    variant = body.get("variant")
    if variant is not None:
        variant = check.mapping(variant, "variant")
        check.at_most(check.count(variant, "correct_top1_all", "variant."), check.count(variant, "total", "variant."),
                      "variant.correct_top1_all exceeds variant.total")
        check.count(variant, "excluded", "variant.")
    _per_sample(check, body, n)


def _calibration(check: Checker, calibration: Any, total: int) -> None:
    """ECE in [0, 1], Brier in [0, 2], NLL >= 0; bins' counts adding up to the images, fractions in [0, 1]."""
    if calibration is None:
        return
    calibration = check.mapping(calibration, "calibration")
    for key, high in (("ece", 1.0), ("brier", 2.0), ("nll", None)):
        check.number(calibration, key, "calibration.", low=0.0, high=high)
    counted = 0
    for row in check.items(calibration, "bins", "calibration.", required=False):
        row = check.mapping(row, "a calibration bin")
        counted += check.count(row, "count", "calibration bin ")
        for key in ("lower", "upper", "accuracy", "confidence"):
            check.number(row, key, "calibration bin ", low=0.0, high=1.0)
    if calibration.get("bins") and counted != total:
        check.fail(f"the calibration bins count {counted} images, the result {total}")


def _calibration_sums(check: Checker, sums: Any) -> None:
    """A --shard slice's class-wise and temperature tallies: one count, p sum and label count per listed
    (class, bin) cell inside classes x bins, finite numbers (merge adds them up)."""
    if sums is None:
        return
    sums = check.mapping(sums, "calibration_sums")
    size = check.count(sums, "classes", "calibration_sums.") * check.count(sums, "bins", "calibration_sums.")
    cells = check.items(sums, "cells", "calibration_sums.")
    columns = [check.items(sums, key, "calibration_sums.") for key in ("counts", "prob_sums", "hit_sums")]
    numbers = [v for column in columns for v in column] + check.items(sums, "nll_sums", "calibration_sums.")
    if any(len(c) != len(cells) for c in columns) or \
            not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c < size for c in cells) or \
            not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in numbers):
        check.fail("calibration_sums do not hold one finite count, probability sum and label count per cell")


def check_robust(check: Checker, body: Mapping[str, Any]) -> None:
    points = check.items(body, "points", "")
    if not points:
        check.fail("it has no robust points")
    totals = set()
    for point in points:
        point = check.mapping(point, "a point")
        where = f"the point at eps {point.get('eps')!r}: "
        check.number(point, "eps", where, optional=False, low=0.0)
        _, _, n = _topk(check, point, where)
        clean = check.count(point, "clean_correct", where, optional=True)
        check.at_most(clean, n, f"{where}clean_correct exceeds total")
        if "clean_correct" in point:  # right under attack means right before it and not fooled
            check.at_most(point["correct_top1"], clean, f"{where}correct_top1 exceeds clean_correct")
        check.at_most(check.count(point, "fooled", where, optional=True), clean if "clean_correct" in point else n,
                      f"{where}fooled exceeds clean_correct")
        check.count(point, "gradient_passes", where, optional=True)
        if point.get("fp32_correct_top1") is not None:
            check.at_most(check.count(point, "fp32_correct_top1", where), n, f"{where}fp32_correct_top1 exceeds total")
        if point.get("cost") is not None:
            check.count(point, "cost", where)
        for key in ("mean_linf", "mean_l2"):
            check.number(point, key, where, low=0.0)
        totals.add(n)
    if len(totals) > 1:
        check.fail(f"its points count different totals ({sorted(totals)}): one sweep attacks the same images")
    _per_sample(check, body, totals.pop())
    if body.get("sanity") is not None:
        _sanity(check, check.mapping(body["sanity"], "sanity"), len(points))


def _sanity(check: Checker, sanity: Mapping[str, Any], budgets: int) -> None:
    """The sanity checks' raw counts (summed by merge): counts, one row per budget, example ids."""
    model = check.mapping(sanity.get("model"), "sanity.model")
    for key in model:
        check.count(model, key, "sanity.model.")
    for name in ("budget", "follow_ups"):
        rows = check.items(sanity, name, "sanity.")
        if (rows or name == "budget") and len(rows) != budgets:
            check.fail(f"sanity.{name} has {len(rows)} rows for {budgets} budgets")
        for row in rows:
            if not isinstance(row, list) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                                    for v in row):
                check.fail(f"sanity.{name} holds a row that is not counts")
    examples = check.mapping(sanity.get("examples"), "sanity.examples")
    if not all(isinstance(ids, list) and all(isinstance(i, int) for i in ids) for ids in examples.values()):
        check.fail("sanity.examples holds something other than sample ids")
    check.number(sanity, "largest_difference", "sanity.", optional=False, low=0.0)
    if not isinstance(sanity.get("follow_up_ids"), list):
        check.fail("sanity.follow_up_ids is not a list")


def check_corruption(check: Checker, body: Mapping[str, Any]) -> None:
    _, _, n = _topk(check, check.mapping(body.get("clean"), "clean"), "clean.")
    for point in check.items(body, "points", ""):
        point = check.mapping(point, "a point")
        where = f"the point {point.get('corruption')!r} severity {point.get('severity')!r}: "
        if _topk(check, point, where)[2] != n:
            check.fail(f"{where}total is {point['total']}, the clean pass counts {n}")
    _perturbation_counts(check, body, "", "the")
    base = body.get("perturbation_baseline")
    if base is not None:
        base = check.mapping(base, "perturbation_baseline")
        if not isinstance(base.get("source"), str) or not isinstance(base.get("model"), str):
            check.fail("perturbation_baseline does not name its source and model")
        _perturbation_counts(check, base, "perturbation_baseline.", "the baseline's")
    _verdicts(check, body.get("verdicts"), n, 1 + len(body["points"]))


def _perturbation_counts(check: Checker, body: Mapping[str, Any], where: str, whose: str) -> None:
    for move in check.items(body, "perturbations", where, required=False):
        move = check.mapping(move, f"{whose} perturbation")
        counts = [move.get(k) for k in ("flips", "comparisons", "top5_distance_sum")]
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts) or \
                counts[0] > counts[1] or counts[2] > 25 * counts[1]:
            check.fail(f"{whose} perturbation {move.get('perturbation')!r} has counts {counts}: flips and top-5 "
                       f"distances (at most 25 per frame) out of the compared frames")


def _verdicts(check: Checker, record: Any, images: int, points: int) -> None:
    """A --shard part's per-image bits: one position per image counted, `points` bits each, as base64 text
    (merge decodes them and holds their sums to the counts)."""
    if record is None:
        return
    record = check.mapping(record, "verdicts")
    positions = check.items(record, "positions", "verdicts.")
    if check.count(record, "points", "verdicts.") != points or len(positions) != images or \
            not isinstance(record.get("bits"), str) or \
            not all(isinstance(p, int) and not isinstance(p, bool) and p >= 0 for p in positions):
        check.fail(f"verdicts do not hold {points} bits for each of the {images} images counted")


def check_diagnose(check: Checker, body: Mapping[str, Any]) -> None:
    if not check.items(body, "runs", ""):
        check.fail("it diagnosed no run (runs is empty): nothing to compare")
    counts = dict.fromkeys(SEVERITIES, 0)
    for finding in check.items(body, "findings", ""):
        finding = check.mapping(finding, "a finding")
        if not isinstance(finding.get("id"), str) or finding.get("severity") not in SEVERITIES:
            check.fail(f"a finding has id {finding.get('id')!r} and severity {finding.get('severity')!r}")
        counts[finding["severity"]] += 1
    stated = body.get("counts")
    if stated is not None and dict(check.mapping(stated, "counts")) != {s: counts[s] for s in reversed(SEVERITIES)}:
        check.fail(f"counts says {dict(stated)} but the findings are {counts}")


def validate(body: Any, origin: str, checkers: Mapping[str, Callable[[Checker, Mapping[str, Any]], None]]) -> None:
    """Check `body` against its kind's schema (`checkers`: kind name -> checker); one sentence when wrong."""
    check = Checker(origin)
    body = check.mapping(body, "the result")
    kind = body.get("kind")
    if kind not in checkers:
        check.fail(f"kind is {kind!r}")
    _common(check, body)
    checkers[kind](check, body)


def check_rows(body: Mapping[str, Any], rows: list[Any], origin: str) -> None:
    """A result's per-sample rows must add up to its counts: eval's right answers to correct_top1 and
    correct_top5, robust's clean-right images and survivors at each budget to each point's counts."""
    check = Checker(origin)
    if not all(isinstance(r, Mapping) for r in rows):
        check.fail("a row is not an object")
    if body.get("kind") == "eval":
        try:
            top1 = sum(bool(r["correct"]) if "correct" in r else r["top5"][0] == r["label"] for r in rows)
            top5 = sum(r["label"] in r["top5"] for r in rows)
        except (KeyError, IndexError, TypeError):
            check.fail("a row lacks label or top5")
        for name, got in (("correct_top1", top1), ("correct_top5", top5)):
            if got != body.get(name):
                check.fail(f"its rows count {got} right answers but the result's {name} is {body.get(name)}")
    elif body.get("kind") == "robust":
        for point in body.get("points") or ():
            eps = point["eps"]
            try:
                right = sum(bool(r["clean_correct"]) and (r["fell_at"] is None or r["fell_at"] > eps + 1e-9)
                            for r in rows)
            except (KeyError, TypeError):
                check.fail("a row lacks clean_correct or fell_at")
            if right != point["correct_top1"]:
                check.fail(f"its rows leave {right} images right at eps {eps} but the result counts "
                           f"{point['correct_top1']}")
        if isinstance(body.get("min_norm"), Mapping):
            _check_min_norm_rows(body["min_norm"], rows, check)


def _check_min_norm_rows(record: Mapping[str, Any], rows: list[Any], check: Checker) -> None:
    """robust --min-norm: every row has its distance, the attacked and found counts are the rows', and each
    point of the curve leaves the rows' count robust (a distance d fools at every eps >= d)."""
    import numpy as np

    from nnprobe.per_sample import min_norm_columns

    try:
        distance, clean, _ = min_norm_columns(rows)
    except (KeyError, TypeError, ValueError):
        check.fail("a row lacks min_norm_distance or min_norm_improving, which its --min-norm result needs")
    attacked = distance[clean]
    counts = (int(clean.sum()), int(np.isfinite(attacked).sum()))
    if counts != (record.get("attacked"), record.get("found")):
        check.fail(f"its rows attack {counts[0]} samples and fool {counts[1]} but its --min-norm record says "
                   f"{record.get('attacked')} and {record.get('found')}")
    for point in record.get("curve") or ():
        left = int((attacked > point["eps"]).sum())
        if left != point["correct_top1"]:
            check.fail(f"its rows' distances leave {left} samples robust at eps {point['eps']} but its --min-norm "
                       f"curve says {point['correct_top1']}")
