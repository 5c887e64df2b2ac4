"""`robust --min-norm` with `--save-predictions`, `--shard` + `merge`: every sample's smallest fooling distance is
in its per-sample row; the rows alone give the distribution by a plain loop; merge recomputes the distribution
(counts, quantiles, median, curve) from the slices' rows and equals one process exactly, with or without writing
the merged rows. (`--nproc 2` is in tests/corruptions/test_nproc.py, which starts the workers once.)"""
from __future__ import annotations

import json
import math

import pytest

import tinymodels
from nnprobe import api
from nnprobe.errors import DataError, UsageError
from nnprobe.per_sample import read

MODEL = f"{tinymodels.__file__}:tiny_classifier"
# batches of 4 over 12 images: the slices' batches are not one process's
OPTIONS = dict(attack="pgd", eps="0,2/255,8/255", steps=2, seed=7, min_norm="fmn-linf", min_norm_steps=15,
               workers=0, device="cpu", batch_size=4)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """12 photos of the tiny net's classes, two of them filed under another class (wrong before any attack)."""
    root = tmp_path_factory.mktemp("minnorm") / "data"
    tinymodels.save_class_folders(root, 12, seed=3)
    folders = sorted(p for p in root.iterdir())
    for source, target in ((folders[0], folders[1]), (folders[-1], folders[0])):
        first = sorted(source.iterdir())[0]
        first.rename(target / f"moved-{first.name}")
    return root


@pytest.fixture(scope="module")
def one(tmp_path_factory, data):
    """One process over the whole data set, its rows written."""
    rows = tmp_path_factory.mktemp("one") / "one.jsonl"
    return api.robust(MODEL, data, save_predictions=str(rows), **OPTIONS)


def slices(tmp_path, data, count: int, **options) -> list[str]:
    paths = []
    for k in range(1, count + 1):
        part = api.robust(MODEL, data, shard=f"{k}/{count}", save_predictions=str(tmp_path / f"{k}.jsonl"),
                          **dict(OPTIONS, **options))
        paths.append(str(tmp_path / f"{k}.json"))
        (tmp_path / f"{k}.json").write_text(json.dumps(part.to_dict()))
    return paths


def plain_distribution(rows: list[dict], eps: list[float]) -> dict:
    """The distribution from the rows by a plain loop: the attacked samples are those right before the attack,
    a null distance is never fooled; a quantile is the smallest distance with at least that share at or
    below it (numpy's inverted_cdf); the curve counts the attacked samples whose distance is above each eps."""
    attacked = sorted(math.inf if r["min_norm_distance"] is None else r["min_norm_distance"]
                      for r in rows if r["clean_correct"])

    def quantile(level: float):
        value = attacked[max(0, math.ceil(level * len(attacked)) - 1)]
        return None if value == math.inf else value

    return {"attacked": len(attacked), "found": sum(d != math.inf for d in attacked),
            "quantiles": [quantile(q) for q in (0.1, 0.25, 0.5, 0.75, 0.9)], "median": quantile(0.5),
            "curve": {e: sum(d > e for d in attacked) for e in eps}}


def test_each_row_carries_its_distance_and_the_rows_give_the_distribution(one):
    header, rows = read(one.per_sample.path, one.per_sample.rows)
    m = one.min_norm
    assert header["kind"] == "robust" and len(rows) == 12 and m.attacked == 10 and 5 < m.found
    assert 0 < m.curve[-2].correct_top1 < m.curve[0].correct_top1 and len(set(m.quantiles)) == 5  # spread out
    assert all(r["min_norm_distance"] == 0.0 and not r["min_norm_improving"] for r in rows if not r["clean_correct"])
    reference = plain_distribution(rows, [c.eps for c in m.curve])
    assert (m.attacked, m.found, list(m.quantiles), m.median) == \
        (reference["attacked"], reference["found"], reference["quantiles"], reference["median"])
    assert {c.eps: c.correct_top1 for c in m.curve} == reference["curve"]
    assert m.still_improving == sum(r["min_norm_improving"] for r in rows if r["clean_correct"])


@pytest.mark.parametrize("count", [2, 3])
def test_slices_merged_equal_one_process(tmp_path, data, one, count):
    parts = slices(tmp_path, data, count)
    merged = api.merge(parts)  # no rows to write: merge reads the slices' rows for the distances anyway
    assert merged.min_norm == one.min_norm  # counts, quantiles, median, the curve, passes: exactly
    assert merged.findings == one.findings and merged.median_min_eps == one.median_min_eps is not None
    assert [f.id for f in one.findings] == ["min-norm-beats-attack"]  # re-derived from the merged distances
    with_rows = api.merge(parts, save_predictions=str(tmp_path / "all.jsonl"))
    assert with_rows.min_norm == one.min_norm and with_rows.findings == one.findings
    assert (with_rows.per_sample.sha256, with_rows.per_sample.rows) == (one.per_sample.sha256, one.per_sample.rows)


def test_a_slice_without_rows_is_refused_in_one_sentence(tmp_path, data):
    with pytest.raises(UsageError, match="on a --shard slice needs --save-predictions"):
        api.robust(MODEL, data, shard="1/2", **OPTIONS)
    parts = slices(tmp_path, data, 2)
    body = json.loads(open(parts[1]).read())
    body.pop("per_sample")
    with pytest.raises(UsageError, match="has no per-sample file .* for the --min-norm distances' quantiles"):
        api.merge([parts[0], body])


def test_slices_of_other_min_norm_runs_are_refused(tmp_path, data):
    parts = slices(tmp_path, data, 2)
    (tmp_path / "other").mkdir()
    other = slices(tmp_path / "other", data, 2, min_norm_steps=5)
    with pytest.raises(DataError, match="differ in --min-norm"):
        api.merge([parts[0], other[1]])
    plain = api.robust(MODEL, data, shard="2/2", **dict(OPTIONS, min_norm=None, min_norm_steps=None)).to_dict()
    with pytest.raises(DataError, match="differ in --min-norm"):
        api.merge([parts[0], plain])


def test_rows_that_disagree_with_the_distribution_are_refused(one):
    """The schema reads rows back against the result: a changed distance, a lost field, another count."""
    from nnprobe.kinds.schema import check_rows

    body = one.to_dict()
    _, rows = read(one.per_sample.path, one.per_sample.rows)
    check_rows(body, rows, "ok")  # as written: consistent
    fooled = next(i for i, r in enumerate(rows) if r["clean_correct"] and r["min_norm_distance"] is not None)
    for change, message in (({"min_norm_distance": None}, "fool"), ({"min_norm_distance": 1.0}, "leave"),
                            ({"min_norm_distance": "x"}, "lacks min_norm_distance")):
        edited = [dict(r, **change) if i == fooled else r for i, r in enumerate(rows)]
        with pytest.raises(DataError, match=message):
            check_rows(body, edited, "edited")
    with pytest.raises(DataError, match="lacks min_norm_distance"):
        check_rows(body, [{k: v for k, v in r.items() if k != "min_norm_improving"} for r in rows], "edited")
