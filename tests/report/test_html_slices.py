"""Merge's page shows the slices side by side (issue 21 part 5): one row per `--shard K/N` part with that part's
own counts, the merged whole first, which indices are present, and a drill-down per slice. Each slice's cells
are checked against the part's JSON as written by its own run (read back with json, not through nnprobe), the
merged row against one process over the whole data set."""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from helpers import PLAIN, TESTS, make_wnid_folders
from nnprobe import api
from nnprobe.report.html import render_html
from test_html import Page

MODEL = f"{TESTS / 'tiny_models.py'}:color_net_1000"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_wnid_folders(tmp_path_factory.mktemp("slices") / "data", {5: 3, 350: 2, 998: 2},
                             wrong={5: 1, 998: 1})


def _parts(tmp_path, verb, data, count, **options) -> list[str]:
    paths = []
    for k in range(1, count + 1):
        path = tmp_path / f"part-{k}.json"
        path.write_text(json.dumps(verb(MODEL, data, workers=0, shard=f"{k}/{count}", **options, **PLAIN).to_dict()))
        paths.append(str(path))
    return paths


def _section(result) -> Page:
    html = render_html(result)
    found = re.search(r"<section><h2>Slices side by side</h2>.*?</section>", html, re.DOTALL)
    assert found, "no slices section"
    return Page(found.group(0))


def _rows(page: Page) -> list[list[str]]:
    cells = ([page.text(e) for e in row[3] if e[0] == "td"] for row in page.all("tr"))
    return [row for row in cells if row]


def _count(correct: int, total: int) -> str:
    return f"{correct}/{total} ({100 * correct / total:.2f}%)"


def test_eval_slices_side_by_side_with_the_whole(tmp_path, data):
    parts = _parts(tmp_path, api.evaluate, data, 3)
    merged, one = api.merge(list(reversed(parts))), api.evaluate(MODEL, data, workers=0, **PLAIN)
    page = _section(merged)
    rows = _rows(page)
    assert [r[:2] for r in rows] == [["merged (3)", "the whole run"]] + [[f"{k}/3", parts[k - 1]] for k in (1, 2, 3)]
    assert rows[0][2:5] == [str(one.total), _count(one.correct_top1, one.total), _count(one.correct_top5, one.total)]
    for k, row in enumerate(rows[1:]):
        body = json.loads(Path(parts[k]).read_text())
        assert row[2:6] == [str(body["total"]), _count(body["correct_top1"], body["total"]),
                            _count(body["correct_top5"], body["total"]), f"{body['run']['seconds']:.2f}"]
    assert sum(int(r[2]) for r in rows[1:]) == one.total == 9
    assert page.text(page.all("p")[0]) == "slices 1..3, each once (merge refuses a missing or repeated slice)"
    assert [page.text(s) for s in page.all("summary")] == [f"slice {k}/3: {parts[k - 1]}" for k in (1, 2, 3)]
    assert json.loads(json.dumps(merged.to_dict()))["data"]["slices"][1]["part"] == parts[1]  # in the JSON too


def test_robust_slices_show_each_budget(tmp_path, data):
    options = dict(attack="pgd", eps="0,8/255", steps=2, seed=3)
    parts = _parts(tmp_path, api.robust, data, 2, **options)
    merged, one = api.merge(parts), api.robust(MODEL, data, workers=0, **options, **PLAIN)
    rows = _rows(_section(merged))
    assert rows[0][2:6] == [str(one.points[0].total), str(one.points[0].clean_correct),
                            *(_count(p.correct_top1, p.total) for p in one.points)]
    for k, row in enumerate(rows[1:]):
        points = json.loads(Path(parts[k]).read_text())["points"]
        assert row[2:6] == [str(points[0]["total"]), str(points[0]["clean_correct"]),
                            *(_count(p["correct_top1"], p["total"]) for p in points)]


def test_corruption_slices_show_clean_and_corrupted_counts(tmp_path, data):
    options = dict(corruptions="contrast,brightness", severity="1,3", seed=1)
    parts = _parts(tmp_path, api.corruptions, data, 2, **options)
    merged = api.merge(parts)
    rows = _rows(_section(merged))
    one = api.corruptions(MODEL, data, workers=0, **options, **PLAIN)
    assert rows[0][2:5] == [str(one.clean.total), _count(one.clean.correct_top1, one.clean.total),
                            _count(sum(p.correct_top1 for p in one.points), sum(p.total for p in one.points))]
    for k, row in enumerate(rows[1:]):
        body = json.loads(Path(parts[k]).read_text())
        corrupted = (sum(p["correct_top1"] for p in body["points"]), sum(p["total"] for p in body["points"]))
        clean = body["clean"]
        assert row[2:5] == [str(clean["total"]), _count(clean["correct_top1"], clean["total"]), _count(*corrupted)]


def test_a_missing_slice_is_named_and_an_unmerged_result_has_no_section(tmp_path, data):
    parts = _parts(tmp_path, api.evaluate, data, 3)
    merged = api.merge(parts)
    cut = dataclasses.replace(merged, data=dict(merged.data, slices=[merged.data["slices"][1]]))
    note = _section(cut).all("p")[0]
    assert _section(cut).text(note) == "1 of 3 slices; missing: 1/3, 3/3. These numbers are not the whole run's."
    assert "Slices side by side" not in render_html(api.evaluate(MODEL, data, workers=0, **PLAIN))


def test_each_cell_reads_its_own_count(tmp_path, data):
    """On the tiny model top-1 and top-5 counts coincide; parts given as dicts with top-5 moved apart from top-1
    show that each column reads its own count, from its own slice."""
    bodies = [json.loads(Path(p).read_text()) for p in _parts(tmp_path, api.evaluate, data, 2)]
    for body in bodies:
        assert body["correct_top1"] < body["total"]  # room for a top-5 count above it
        body["correct_top5"] = body["total"]
        body["top5"] = 1.0  # as the schema's check wants it
    rows = _rows(_section(api.merge(bodies)))
    assert [r[:5] for r in rows[1:]] == [[f"{k + 1}/2", f"part {k + 1}", str(b["total"]),
                                          _count(b["correct_top1"], b["total"]), _count(b["total"], b["total"])]
                                         for k, b in enumerate(bodies)]


def _head(html: str) -> tuple[str, str, str]:
    """(the page's <title>, its <h1> without the verdict, the header's first paragraph)."""
    page = Page(html)
    h1 = page.all("h1")[0]
    verdict = "".join(page.text(e) for e in h1[3] if e[0] == "span")
    header = page.all("header")[0]
    first = next(e for e in header[3] if e[0] == "p")
    return page.text(page.all("title")[0]), page.text(h1).removesuffix(verdict).strip(), page.text(first)


@pytest.mark.parametrize("command, verb, options", [
    ("eval", api.evaluate, {}),
    ("robust", api.robust, dict(attack="pgd", eps="0,8/255", steps=2, seed=3)),
    ("robust --corruptions", api.corruptions, dict(corruptions="brightness", severity="1", seed=1))])
def test_a_merged_page_is_headed_by_merge_and_names_what_it_merged(tmp_path, data, command, verb, options):
    merged = api.merge(_parts(tmp_path, verb, data, 3, **options))
    title, h1, subject = _head(render_html(merged))
    kind = {"eval": "eval", "robust": "robust", "robust --corruptions": "corruption"}[command]
    assert (title, h1) == (f"nnprobe merge of {kind} slices: {'passed' if merged.passed else 'failed'}", "nnprobe merge")
    assert subject.startswith(f"3 slices of nnprobe {command} --shard K/3 added up: {MODEL}")
    one = verb(MODEL, data, workers=0, **options, **PLAIN)  # one run's page keeps its own command
    title, h1, subject = _head(render_html(one))
    assert (title.split(":")[0], h1) == (f"nnprobe {kind}", f"nnprobe {command}") and "added up" not in subject
