"""Per-sample files: round trips (N rows written, N read), atomic streaming, refusals, the data fingerprint,
and robust's first-fooling budget per sample against the per-eps counts."""
from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nnprobe.errors import DataError
from nnprobe.per_sample import (EvalSamples, RobustSamples, data_fingerprint, eval_rows, file_sha256, read,
                                robust_rows, write)


def _samples(n: int, k: int = 5, seed: int = 0) -> EvalSamples:
    rng = np.random.default_rng(seed)
    return EvalSamples(np.arange(n, dtype=np.int64), rng.integers(0, 10, n), rng.integers(0, 10, (n, k)),
                       rng.random(n) * 5, rng.random(n), rng.random(n) * 2)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(0, 300), gz=st.booleans(), seed=st.integers(0, 2**31))
def test_round_trip_n_rows_written_n_read(tmp_path_factory, n, gz, seed):
    path = str(tmp_path_factory.mktemp("ps") / ("rows.jsonl.gz" if gz else "rows.jsonl"))
    samples = _samples(n, seed=seed)
    paths = [f"class/{i}.png" for i in range(n)]
    saved = write(path, {"kind": "eval", "data_fingerprint": "f" * 64, "rows": n, "num_classes": 10},
                  eval_rows(samples, paths))
    assert saved.rows == n and saved.sha256 == file_sha256(path)
    header, rows = read(path)
    assert header["rows"] == n == len(rows) and header["format"] == "nnprobe-per-sample"
    assert [r["top5"] for r in rows] == samples.top.tolist()
    assert [r["label"] for r in rows] == samples.labels.tolist()
    assert [r["correct"] for r in rows] == (samples.top[:, 0] == samples.labels).tolist()
    assert np.allclose([r["loss"] for r in rows], samples.loss, atol=1e-6)
    if gz:
        with gzip.open(path) as handle:  # a plain gzip of JSON lines: any tool reads it
            assert json.loads(handle.readline())["rows"] == n


def test_ranks_merge_in_data_order():
    whole = _samples(11, seed=3)
    parts = [EvalSamples(*(getattr(whole, f)[r::3] for f in ("positions", "labels", "top", "loss", "confidence",
                                                                "brier"))) for r in range(3)]
    merged = EvalSamples.merged(parts)
    for name in ("positions", "labels", "top", "loss", "confidence", "brier"):
        assert np.array_equal(getattr(merged, name), getattr(whole, name)), name


def test_an_interrupted_write_leaves_the_old_file_and_no_partial(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text("old\n")

    def rows():
        yield {"i": 0}
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write(str(path), {"kind": "eval", "rows": 2}, rows())
    assert path.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["rows.jsonl"]


def test_truncated_edited_and_foreign_files_are_one_sentence(tmp_path):
    path = str(tmp_path / "rows.jsonl")
    write(path, {"kind": "eval", "rows": 3}, iter([{"i": 0}, {"i": 1}, {"i": 2}]))
    lines = open(path).read().splitlines()
    (tmp_path / "short.jsonl").write_text("\n".join(lines[:3]) + "\n")
    with pytest.raises(DataError, match="says 3 rows, the file has 2"):
        read(str(tmp_path / "short.jsonl"))
    (tmp_path / "cut.jsonl").write_text("\n".join(lines) [:-3])
    with pytest.raises(DataError, match="not JSON"):
        read(str(tmp_path / "cut.jsonl"))
    (tmp_path / "other.jsonl").write_text('{"kind": "eval"}\n')
    with pytest.raises(DataError, match="not an nnprobe per-sample file"):
        read(str(tmp_path / "other.jsonl"))
    (tmp_path / "bad.gz").write_bytes(b"not gzip")
    with pytest.raises(DataError, match="cannot read"):
        read(str(tmp_path / "bad.gz"))


def test_fingerprint_is_the_images_and_labels_not_where_they_live():
    a = data_fingerprint("/data/a", [("/data/a/cat/1.png", 3), ("/data/a/dog/2.png", 5)])
    moved = data_fingerprint("/mnt/b", [("/mnt/b/dog/2.png", 5), ("/mnt/b/cat/1.png", 3)])
    relabelled = data_fingerprint("/data/a", [("/data/a/cat/1.png", 3), ("/data/a/dog/2.png", 4)])
    fewer = data_fingerprint("/data/a", [("/data/a/cat/1.png", 3)])
    assert a == moved and len({a, relabelled, fewer}) == 3


def test_robust_first_fooling_budget_matches_the_per_eps_counts(tmp_path):
    """fell_at against the counts: at the first eps, robust top-1 is exactly the samples not yet fallen;
    at every eps, at least those (a sample fooled at a small budget may survive a larger one's attack)."""
    from tinymodels import make_data, tiny_classifier

    from nnprobe import api

    x, y = make_data(40, seed=5)
    eps = [0.0, 1 / 255, 4 / 255, 16 / 255]
    result = api.robust(tiny_classifier(), [(x[:16], y[:16]), (x[16:], y[16:])], eps=eps, steps=5,
                        device="cpu", save_predictions=str(tmp_path / "r.jsonl"))
    header, rows = read(str(tmp_path / "r.jsonl"))
    assert header["eps"] == eps and len(rows) == 40 == result.points[0].total
    assert [r["i"] for r in rows] == list(range(40)) and all(r["path"] is None for r in rows)
    assert sum(r["clean_correct"] for r in rows) == result.points[0].correct_top1
    for e, point in zip(eps, result.points):
        standing = sum(1 for r in rows if r["fell_at"] is None or r["fell_at"] > e)
        assert point.correct_top1 >= standing
    assert all(r["fell_at"] == 0.0 for r in rows if not r["clean_correct"])
    # the file says what the in-memory verdicts say; the clean verdicts are checked against the model itself
    fell = result.samples.fell_at
    assert ((fell == -1) == np.array([r["fell_at"] is None for r in rows])).all()
    with torch.no_grad():
        clean_right = (tiny_classifier()(x).argmax(1) == y).numpy()
    assert (result.samples.clean_correct == clean_right).all()


def test_robust_rows_name_the_budget_not_its_index():
    samples = RobustSamples(np.array([0, 1, 2]), np.array([1, 1, 1]), np.array([True, True, False]),
                            np.array([-1, 1, 0]))
    rows = list(robust_rows(samples, ["a", "b", "c"], [0.0, 2 / 255]))
    assert [r["fell_at"] for r in rows] == [None, 2 / 255, 0.0]


def test_median_smallest_fooling_budget_is_the_lower_median_of_the_rows(tmp_path):
    import math
    import statistics

    from tinymodels import make_data, tiny_classifier

    from nnprobe import api

    x, y = make_data(41, seed=9)
    eps = [0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255]
    result = api.robust(tiny_classifier(), [(x, y)], eps=eps, steps=4, device="cpu",
                        save_predictions=str(tmp_path / "r.jsonl"))
    _, rows = read(str(tmp_path / "r.jsonl"))
    budgets = [0.0 if not r["clean_correct"] else (math.inf if r["fell_at"] is None else r["fell_at"]) for r in rows]
    expected = statistics.median_low(budgets)
    assert result.median_min_eps == (None if math.isinf(expected) else expected)
    assert result.to_dict()["median_min_eps"] == result.median_min_eps
