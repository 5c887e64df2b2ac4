"""Bootstrap intervals of the corruption sweep's mean top-1, mCE and relative mCE (issue 19 part 1): equal,
bit for bit, to a plain-loop bootstrap written from the definitions on per-image verdicts found by a plain
loop; sane coverage on a synthetic case whose true mCE is known; `--shard` slices merged equal one process;
shown in every format; damaged verdicts refused in one sentence. (`--nproc 2` equal to one process, intervals
included, is tests/corruptions/test_nproc.py.)"""
from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest
import torch

import tinymodels
from imagenet_shaped import wide_classifier
from nnprobe import api
from nnprobe.errors import DataError
from nnprobe.imagenet_c import IMAGENET_C, corrupt, sample_seed, verdicts
from nnprobe.imagenet_c.mce import ALEXNET_CLEAN_ERROR, ALEXNET_ERRORS
from nnprobe.imagenet_c.results import CleanCounts, CorruptionPoint, CorruptionResult, CorruptionSettings
from nnprobe.imagenet_c.sweep import corruption_sweep
from nnprobe.report import render

WIDE = f"{os.path.join(os.path.dirname(__file__), 'imagenet_shaped.py')}:wide_classifier"


def plain_bootstrap(hits: list[list[bool]], grid: list[tuple[str, int]], *, resamples: int, seed: int,
                    confidence: float) -> dict[str, tuple[float, float]]:
    """The percentile bootstrap from the definitions, one resample and one image at a time. The resamples are
    nnprobe.intervals' scheme drawn here again: rows of rng.integers(0, n, (64, n)) from default_rng(seed)."""
    n, rng, left = len(hits), np.random.default_rng(seed), resamples
    draws: dict[str, list[float]] = {"mean_corruption_top1": [], "mce": [], "relative_mce": []}
    while left:
        rows = min(64, left)
        for drawn in rng.integers(0, n, (rows, n)).tolist():
            right = [0] * (1 + len(grid))
            for image in drawn:
                for point in range(1 + len(grid)):
                    right[point] += hits[image][point]
            top1 = [r / n for r in right]
            clean_error = 1 - top1[0]
            by_name: dict[str, list[tuple[int, float]]] = {}
            for (name, severity), value in zip(grid, top1[1:]):
                by_name.setdefault(name, []).append((severity, value))
            means = [sum(v for _, v in pairs) / len(pairs) for pairs in by_name.values()]
            draws["mean_corruption_top1"].append(sum(means) / len(means))
            ce = [sum(1 - v for _, v in by_name[c]) / sum(ALEXNET_ERRORS[c][s - 1] for s, _ in by_name[c])
                  for c in IMAGENET_C]
            relative = [sum((1 - v) - clean_error for _, v in by_name[c]) /
                        sum(ALEXNET_ERRORS[c][s - 1] - ALEXNET_CLEAN_ERROR for s, _ in by_name[c]) for c in IMAGENET_C]
            draws["mce"].append(sum(ce) / 15)
            draws["relative_mce"].append(sum(relative) / 15)
        left -= rows
    alpha = 1 - confidence
    return {k: tuple(np.quantile(v, [alpha / 2, 1 - alpha / 2]).tolist()) for k, v in draws.items()}


def plain_verdicts(model, pixels: torch.Tensor, labels: torch.Tensor, grid, seed: int) -> list[list[bool]]:
    """Each image's top-1 right or wrong, clean and at every point, one image at a time."""
    out = []
    for i in range(len(labels)):
        x = pixels[i:i + 1].float() / 255
        row = []
        for name, severity in [(None, 0), *grid]:
            image = x if name is None else corrupt(x, name, severity, [sample_seed(seed, i, name, severity)])
            with torch.no_grad():
                row.append(bool(model(image).topk(5, dim=1).indices[0, 0] == labels[i]))
        out.append(row)
    return out


def test_sweep_intervals_equal_a_plain_loop_bootstrap_exactly():
    x, y = tinymodels.make_data(9, seed=5)
    pixels = (x * 255).round().to(torch.uint8)
    model = wide_classifier()
    result = corruption_sweep(model, [(pixels[:4], y[:4]), (pixels[4:], y[4:])], severities="2,4", seed=3,
                              device="cpu", confidence=0.9, bootstrap_resamples=150)
    grid = [(c, s) for c in IMAGENET_C for s in (2, 4)]
    hits = plain_verdicts(model, pixels, y, grid, seed=3)
    assert [sum(h[p] for h in hits) for p in range(1 + len(grid))] == \
        [result.clean.correct_top1, *(p.correct_top1 for p in result.points)]
    assert 0 < result.mce and 0 < sum(map(sum, hits)) < len(hits) * len(hits[0])  # something to resample
    plain = plain_bootstrap(hits, grid, resamples=150, seed=3, confidence=0.9)
    boot = result.bootstrap
    for key, interval in (("mean_corruption_top1", boot.mean_corruption_top1), ("mce", boot.mce),
                          ("relative_mce", boot.relative_mce)):
        assert (interval.lo, interval.hi) == plain[key], key  # the same bits, not merely close
        assert interval.lo <= interval.value <= interval.hi and interval.lo < interval.hi
        assert interval.method == "bootstrap-percentile (150 resamples, seed 3) over images"
    assert (boot.mce.value, boot.relative_mce.value) == (result.mce, result.relative_mce)
    assert result.verdicts is None  # a whole run keeps no bits in its JSON; a --shard part does


def _synthetic(hits: np.ndarray, grid) -> CorruptionResult:
    points = tuple(CorruptionPoint(int(hits[:, 1 + i].sum()), int(hits[:, 1 + i].sum()), len(hits), c, "noise", s)
                   for i, (c, s) in enumerate(grid))
    return CorruptionResult(clean=CleanCounts(int(hits[:, 0].sum()), int(hits[:, 0].sum()), len(hits)),
                            points=points, settings=CorruptionSettings(tuple(IMAGENET_C), (1, 3), seed=0),
                            model=tinymodels.info("synthetic", classes=1000), data={}, run=None)


def test_coverage_on_a_synthetic_case_with_a_known_mce():
    """Images right at each point with known probabilities (a shared per-image difficulty correlates the
    points, as real images do): the 90% intervals cover the true values in about 90% of 120 data sets."""
    grid = [(c, s) for c in IMAGENET_C for s in (1, 3)]
    rng = np.random.default_rng(11)
    p = np.concatenate([[0.8], rng.uniform(0.2, 0.7, len(grid))])
    truth = verdicts.statistics(p[0], list(p[1:]), grid, imagenet=True)
    covered = {k: 0 for k in truth}
    widths = []
    for trial in range(120):
        easy = rng.uniform(-0.15, 0.15, (150, 1))
        hits = rng.uniform(size=(150, len(p))) < np.clip(p[None, :] + easy, 0, 1)
        boot = verdicts.bootstrap(_synthetic(hits, grid), hits, confidence=0.9, resamples=200, seed=trial)
        for key in truth:
            interval = getattr(boot, key)
            covered[key] += interval.lo <= truth[key] <= interval.hi
        widths.append(boot.mce.hi - boot.mce.lo)
    for key, count in covered.items():
        assert 0.82 <= count / 120 <= 0.97, (key, count)
    assert 0.01 < float(np.median(widths)) < 0.2


def test_verdicts_round_trip_and_refuse_damage():
    hits = np.random.default_rng(0).uniform(size=(13, 7)) < 0.5
    record = verdicts.ImageVerdicts.encode(np.arange(13) * 2, hits)
    positions, back = record.decoded()
    assert (back == hits).all() and positions.tolist() == list(range(0, 26, 2))
    for damaged in (dataclasses.replace(record, bits=record.bits[:-4]), dataclasses.replace(record, bits="%%"),
                    dataclasses.replace(record, points=8)):
        with pytest.raises(DataError, match="verdicts"):
            damaged.decoded()
    with pytest.raises(DataError, match="twice"):
        verdicts.in_data_order([np.array([0, 1]), np.array([1])], [hits[:2], hits[2:3]])


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("boot") / "data"
    tinymodels.save_class_folders(root, 7, seed=3)
    return root


OPTIONS = dict(severity="2", seed=5, confidence=0.8, bootstrap_resamples=120, workers=0, batch_size=3,
               device="cpu")


def test_merged_slices_equal_one_process_with_mce_intervals(folder, tmp_path):
    one = api.corruptions(WIDE, folder, **OPTIONS)
    assert one.mce is not None and one.bootstrap.mce is not None and one.verdicts is None
    parts = []
    for k in (1, 2, 3):
        part = api.corruptions(WIDE, folder, shard=f"{k}/3", **OPTIONS)
        assert part.verdicts is not None and len(part.verdicts.positions) == part.clean.total
        parts.append(tmp_path / f"{k}.json")
        parts[-1].write_text(json.dumps(part.to_dict()))
    merged = api.merge([str(p) for p in parts])
    assert merged.bootstrap == one.bootstrap and merged.verdicts is None
    a, b = one.to_dict(), merged.to_dict()
    assert b["bootstrap"] == a["bootstrap"] and b["mce"] == a["mce"]
    # a slice whose bits do not add up to its counts is refused in one sentence
    body = json.loads(parts[0].read_text())
    body["clean"]["correct_top1"] -= 1
    body["clean"]["top1"] = body["clean"]["correct_top1"] / body["clean"]["total"]
    parts[0].write_text(json.dumps(body))
    with pytest.raises(DataError, match="do not add up"):
        api.merge([str(p) for p in parts])


def test_slices_without_verdicts_merge_with_a_sentence_instead_of_intervals(folder, tmp_path):
    parts = []
    for k in (1, 2):
        body = api.corruptions(WIDE, folder, shard=f"{k}/2", corruptions="noise", **OPTIONS).to_dict()
        body.pop("verdicts")  # as an nnprobe before the bits wrote it
        parts.append(body)
    merged = api.merge(parts)
    assert merged.bootstrap is None
    assert "no intervals: the merged slices carry no per-image verdicts" in render(merged, "table")


def test_every_format_shows_the_intervals(folder, tmp_path, invoke):
    base = ["corruptions", str(folder), "--model", WIDE, "--workers", "0", "--device", "cpu", "--severity", "2",
            "--confidence", "0.8", "--bootstrap-resamples", "120", "--seed", "5", "-q"]
    body = json.loads(invoke(*base, "--format", "json").stdout)
    boot = body["bootstrap"]
    assert set(boot) == {"mean_corruption_top1", "mce", "relative_mce"}
    assert all(set(v) == {"value", "lo", "hi", "method"} for v in boot.values())
    assert body["confidence_level"] == 0.8 and body["settings"]["bootstrap_resamples"] == 120
    pct = lambda v: f"{100 * v:.2f}%"  # noqa: E731
    score = lambda v: f"{100 * v:.1f}"  # noqa: E731
    mean = f"{pct(boot['mean_corruption_top1']['lo'])} – {pct(boot['mean_corruption_top1']['hi'])}"
    mce = f"mCE {score(boot['mce']['value'])} ({score(boot['mce']['lo'])} – {score(boot['mce']['hi'])})"
    note = "intervals: 80%, bootstrap-percentile (120 resamples, seed 5) over images"
    for fmt in ("table", "markdown", "html"):
        text = invoke(*base, "--format", fmt).stdout
        assert mean in text and mce in text and note in text, fmt
    refused = invoke(*base, "--bootstrap-resamples", "3")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr


def test_robust_corruptions_takes_the_resamples_option(folder, invoke):
    """`robust --corruptions` takes --bootstrap-resamples as `nnprobe corruptions` does (one option, one parser):
    recorded in the settings and named in the method, a different count moves the intervals, the same count and
    seed repeat them, the default stays 1000; an attack sweep refuses it in one sentence."""
    data = [str(folder), "--model", WIDE, "--workers", "0", "--device", "cpu", "--threads", "1", "-q"]
    sweep = ["--corruptions", "all", "--severity", "2", "--seed", "5", "--format", "json"]

    def run(*args: str) -> dict:
        done = invoke(*args)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    default, fewer = run("robust", *data, *sweep), run("robust", *data, *sweep, "--bootstrap-resamples", "120")
    again = run("robust", *data, *sweep, "--bootstrap-resamples", "120")
    verb = run("corruptions", *data, *sweep, "--bootstrap-resamples", "120")
    assert (default["settings"]["bootstrap_resamples"], fewer["settings"]["bootstrap_resamples"]) == (1000, 120)
    for body, count in ((default, 1000), (fewer, 120)):
        assert {v["method"] for v in body["bootstrap"].values()} == \
            {f"bootstrap-percentile ({count} resamples, seed 5) over images"}
    assert fewer["bootstrap"] == again["bootstrap"] == verb["bootstrap"]
    assert default["mce"] == fewer["mce"] and default["clean"] == fewer["clean"]  # the same sweep ...
    assert any((default["bootstrap"][k]["lo"], default["bootstrap"][k]["hi"]) !=
               (fewer["bootstrap"][k]["lo"], fewer["bootstrap"][k]["hi"]) for k in default["bootstrap"])  # ... resampled
    refused = invoke("robust", *data, "--eps", "0,1/255", "--steps", "1", "--bootstrap-resamples", "120")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "--bootstrap-resamples sets the corruption sweep's intervals: give --corruptions too" in refused.stderr
