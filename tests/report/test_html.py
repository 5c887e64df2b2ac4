"""`--format html` (issue 21 part 5): every kind renders one self-contained page (no fetch, no script, the figures
inline as PNG drawn by the `--plot` code), every field a console table shows is on the page too, what comes from
data is escaped (a planted `<script>` or `"><img onerror>` in a class name or a run name stays text), and `-o`
never leaves a partial page. Pages are parsed with the standard library's HTML parser (the browser test in
test_html_browser.py renders them in Chromium)."""
from __future__ import annotations

import base64
import dataclasses
import io
import re
from html.parser import HTMLParser

import pytest

import kind_fixtures
import report_fixtures
from nnprobe import kinds
from nnprobe.report import FORMATS, render

RESULTS = kind_fixtures.one_of_each()
VOID = {"meta", "img", "br", "hr", "input", "link", "col", "area", "base", "wbr", "source"}
PLANTED = '<script>alert(1)</script>"><img src=x onerror=alert(2)>\'><svg onload=alert(3)>'


class Page(HTMLParser):
    """The page's elements as (tag, attributes, text inside), its nesting checked as it is read."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple] = []
        self.open: list[tuple] = []
        self.errors: list[str] = []
        self.feed(text)
        self.close()
        assert not self.open, f"never closed: {[t for t, _, _ in self.open]}"

    def handle_starttag(self, tag, attrs):
        element = (tag, dict(attrs), [], [])  # tag, attributes, text inside, elements inside
        for outer in self.open:
            outer[3].append(element)
        self.elements.append(element)
        if tag not in VOID:
            self.open.append(element)

    def handle_endtag(self, tag):
        assert self.open and self.open[-1][0] == tag, f"</{tag}> closes {self.open[-1][0] if self.open else None}"
        self.open.pop()

    def handle_data(self, data):
        for element in self.open:
            element[2].append(data)

    def all(self, tag: str) -> list[tuple]:
        return [e for e in self.elements if e[0] == tag]

    def text(self, element) -> str:
        return "".join(element[2])


def _no_figures(monkeypatch):
    """matplotlib 'missing': the pages say so instead of drawing (the walks below render hundreds of pages)."""
    import importlib

    from nnprobe.errors import UsageError

    def missing():
        raise UsageError("--plot needs matplotlib: pip install matplotlib")

    # every module that binds pyplot at import, imported before any patch (one first imported under the patch
    # would keep `missing` for every later test of this process) and patched where it is bound
    modules = [importlib.import_module(f"nnprobe.report.{name}")
               for name in ("plots", "eval_plots", "diagnose_plots", "diagnose_histograms", "corruption_plot")]
    for module in modules:
        monkeypatch.setattr(module, "pyplot", missing)


def test_html_is_a_format_of_every_kind_and_of_every_command():
    from nnprobe.options.outputs import FORMATS as OPTION_FORMATS

    assert "html" in FORMATS and "html" in kinds.FORMATS and "html" in OPTION_FORMATS
    assert set(RESULTS) == {k.name for k in kinds.KINDS}
    for kind in kinds.KINDS:
        for fmt in kinds.FORMATS:
            if fmt != "json":
                assert callable(kind.piece(fmt)), (kind.name, fmt)  # a new kind without html fails here


@pytest.mark.parametrize("name", sorted(RESULTS))
def test_every_kind_renders_a_self_contained_page(name):
    text = render(RESULTS[name], "html")
    page = Page(text)
    assert text.startswith("<!DOCTYPE html>")
    assert not page.all("script") and not page.all("link") and not page.all("iframe") and not page.all("object")
    csp = [e for e in page.all("meta") if e[1].get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in csp[0][1]["content"] and "script-src" not in csp[0][1]["content"]
    for tag, attributes, _, _ in page.elements:
        for key, value in attributes.items():
            assert not key.startswith("on"), (tag, key)
            if key in ("src", "href", "action", "srcset", "poster", "data"):
                assert value.startswith(("data:image/png;base64,", "#")), (tag, key, value[:40])
    style = "".join(page.text(e) for e in page.all("style"))
    assert "url(" not in style and "@import" not in style and "@font-face" not in style
    # every fixture of one_of_each fails a gate or has an error finding, but a listing (models) judges nothing
    verdict = "passed" if name == "models" else "failed"
    assert page.text(page.all("title")[0]) == f"nnprobe {kinds.of(RESULTS[name]).name}: {verdict}"


@pytest.mark.parametrize("name", sorted(RESULTS))
def test_text_planted_in_names_stays_text(name):
    """Every string of the result (class names, run names, paths, messages) carries a script, an attribute
    break-out and an event handler: the page has no element or attribute they would make, and shows them."""
    result = kind_fixtures.poisoned(RESULTS[name], PLANTED)
    text = render(result, "html")
    page = Page(text)
    assert not page.all("script") and not page.all("svg")
    assert [e[1].get("src", "")[:22] for e in page.all("img")] == ["data:image/png;base64,"] * len(page.all("img"))
    assert not any(k.startswith("on") for _, attributes, _, _ in page.elements for k in attributes)
    shown = page.text(page.all("body")[0])
    assert shown.count(PLANTED) >= 3, name  # the text itself is on the page, as text
    assert "<script>" not in text and "onerror=alert" not in text.replace("onerror=alert(2)&gt;", "")


def test_a_class_name_and_a_run_name_with_markup():
    """The two names the issue names: a class in eval's per-class table, a run in diagnose's runs table."""
    per_class = tuple(dataclasses.replace(c, name=c.name + PLANTED) if c.index == 1 else c
                      for c in RESULTS["eval"].per_class)
    page = Page(render(dataclasses.replace(RESULTS["eval"], per_class=per_class), "html"))
    cells = [page.text(e) for e in page.all("td")]
    assert "dog [big]" + PLANTED in cells and not page.all("script")
    runs = tuple(dataclasses.replace(r, path=r.path + PLANTED) for r in report_fixtures.diagnosis().runs)
    page = Page(render(dataclasses.replace(report_fixtures.diagnosis(), runs=runs), "html"))
    links = [page.text(e) for e in page.all("a")]
    assert links == ["nan" + PLANTED, "healthy" + PLANTED] and not page.all("script")


def test_the_per_class_drill_down_holds_every_class_worst_first():
    """Against a plain loop over the result's counts, independent of the renderer."""
    result = RESULTS["eval"]
    page = Page(render(result, "html"))
    drill = next(e for e in page.all("details") if page.text(e).startswith("Per class"))
    tables = [e for e in page.elements if e[0] == "table"]
    want = []
    for c in sorted((c for c in result.per_class if c.total), key=lambda c: (c.correct_top1 / c.total, c.index)):
        want.append((str(c.index), c.name, f"{c.correct_top1}/{c.total}"))
    rows = re.findall(r"<tr><td class=num>(\d+)</td><td>([^<]*)</td><td class=num>[^<]*</td><td class=num>[^<]*</td>"
                      r"<td class=num>(\d+/\d+)</td>", render(result, "html"))
    assert [(i, n.replace("&amp;", "&"), c) for i, n, c in rows] == want and len(want) == 2
    assert drill and tables


@pytest.fixture(scope="module")
def diagnosis():
    """Three real runs (two failing, one healthy), read with their curves."""
    from helpers import TESTS

    from nnprobe import api

    runs = TESTS.parent / "samples" / "runs"
    return api.diagnose([str(runs / "divergence"), str(runs / "healthy"), str(runs / "hf-overfit")])


def test_each_finding_sits_beside_its_run_figure(diagnosis):
    """diagnose: each run's block holds its figure and each of its findings (message, evidence, hint); the
    runs table has one row per run with its finding counts."""
    page = Page(render(diagnosis, "html"))
    blocks = [e for e in page.all("div") if e[1].get("class") == "evidence"]
    assert len(blocks) == len(diagnosis.runs) == 3
    for run, block in zip(diagnosis.runs, blocks):
        inside = block[3]
        assert [t for t, _, _, _ in inside if t == "img"], run.path
        found = diagnosis.run_findings(run)
        cards = [e for e in inside if e[0] == "div" and e[1].get("class", "").startswith("card ")]
        assert len(cards) == len(found)
        for finding, card in zip(sorted(found, key=lambda f: ("error", "warning", "info").index(f.severity)), cards):
            text = page.text(card)
            assert finding.message in text and finding.id in text and finding.hint in text
            for key in finding.evidence:
                assert key in text
    assert [f.id for f in diagnosis.run_findings(diagnosis.runs[1])] == []
    rows = [e for e in page.all("tr")][1:4]
    assert [page.text(r).startswith(run.path) for r, run in zip(rows, diagnosis.runs)] == [True] * 3


def test_the_figures_are_the_plot_code_s_own_png():
    """eval's reliability diagram inline is byte for byte what the drawing function `--plot` uses gives."""
    from PIL import Image

    from nnprobe.report.eval_plots import reliability_figure
    from nnprobe.report.plots import figure_bytes

    result = RESULTS["eval"]
    page = Page(render(result, "html"))
    images = [base64.b64decode(e[1]["src"].split(",", 1)[1]) for e in page.all("img")]
    assert len(images) == 2  # reliability, per class
    spec = result.model.spec
    assert images[0] == figure_bytes(reliability_figure(result.calibration, title=f"{spec}: reliability"))
    for data in images:
        with Image.open(io.BytesIO(data)) as picture:
            assert picture.format == "PNG" and picture.width > 300 and picture.height > 100


def test_without_matplotlib_the_page_says_so(monkeypatch):
    _no_figures(monkeypatch)
    page = Page(render(RESULTS["robust"], "html"))
    assert not page.all("img")
    assert any("no figure (--plot needs matplotlib" in page.text(e) for e in page.all("p"))


def test_every_field_the_table_shows_is_on_the_page(monkeypatch):
    """A field that changes the console table changes the page too (the page is not a second, shorter report)."""
    import test_kind_fields as walk

    _no_figures(monkeypatch)
    walk._intervals_computed_once.__wrapped__(monkeypatch)
    missing = []
    for kind in kinds.KINDS:
        result = RESULTS[kind.name]
        table, page = render(result, "table"), render(result, "html")
        for path, value, hint in walk._leaves(result):
            new = walk._changed(str(path[-1]), value, hint)
            if new is None or walk._dotted(path) in walk.IDENTIFYING.get(kind.name, ()) or walk._in_memory(result, path):
                continue
            changed = walk._replaced(result, path, new)
            if render(changed, "table") != table and render(changed, "html") == page:
                missing.append(f"{kind.name}: {walk._dotted(path)}")
    assert not missing, missing


def test_o_page_html_is_never_left_partial(tmp_path, monkeypatch):
    """-o goes through the atomic writer: a render that fails leaves the old page as it was and no temp."""
    from nnprobe.report import emit, html

    page = tmp_path / "page.html"
    emit(RESULTS["fool"], "html", str(page))
    before = page.read_bytes()
    assert Page(before.decode()).all("table")

    def broken(result):
        raise RuntimeError("cut short")

    monkeypatch.setattr(html, "render_html", broken)
    with pytest.raises(RuntimeError):
        emit(RESULTS["fool"], "html", str(page))
    assert page.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["page.html"]


def test_cli_diagnose_format_html_to_a_file(tmp_path, invoke):
    """The option takes html, -o writes the page (the figure drawn from the run's curves), stdout stays empty,
    and the exit code is the verdict's, as for every format."""
    from helpers import TESTS

    page = tmp_path / "page.html"
    run = invoke("diagnose", str(TESTS.parent / "samples" / "runs" / "divergence"), "--format", "html", "-o", str(page))
    assert run.returncode == 1 and run.stdout == ""
    parsed = Page(page.read_text(encoding="utf-8"))
    assert len(parsed.all("img")) == 1
    assert any(page_text.startswith("'loss' diverged") for page_text in (parsed.text(e) for e in parsed.all("p")))
    again = invoke("diagnose", str(TESTS.parent / "samples" / "runs" / "divergence"), "--format", "html")
    assert again.returncode == 1 and again.stdout == page.read_text(encoding="utf-8")


def test_follow_refuses_html_in_one_sentence(tmp_path, invoke):
    """follow watches a run and reports in JSON: --format html is refused before it starts, naming the command
    that writes the page."""
    from helpers import TESTS

    run = invoke("follow", str(TESTS.parent / "samples" / "runs" / "healthy"), "--format", "html", "--wait", "0")
    assert run.returncode == 2 and run.stdout == ""
    assert "diagnose RUN --format html" in run.stderr and len(run.stderr.strip().splitlines()) == 1


def test_merge_writes_the_whole_run_s_page(tmp_path, invoke):
    """`nnprobe merge --format html`: the merged eval's page, its counts those of the slices added up."""
    import json

    from helpers import PLAIN, factory_spec, make_wnid_folders

    from nnprobe import api

    data = make_wnid_folders(tmp_path / "data", {5: 3, 350: 2}, wrong={5: 1})
    parts = []
    for k in (1, 2):
        result = api.evaluate(factory_spec("color_net_1000"), data, workers=0, shard=f"{k}/2", **PLAIN)
        parts.append(tmp_path / f"part-{k}.json")
        parts[-1].write_text(json.dumps(result.to_dict()))
    page = tmp_path / "merged.html"
    run = invoke("merge", *map(str, parts), "--format", "html", "-o", str(page))
    assert run.returncode == 0, run.stderr
    parsed = Page(page.read_text(encoding="utf-8"))
    pairs = dict(zip((parsed.text(e) for e in parsed.all("dt")), (parsed.text(e) for e in parsed.all("dd"))))
    assert pairs["merged from"] == "2 slices"
    assert any(parsed.text(e) == "5/6" for e in parsed.all("td"))  # top-1 count of the whole set


def test_many_runs_draw_the_failed_ones_first(diagnosis, monkeypatch):
    """Past FIGURES runs, the figures go to the runs that failed, then to those with findings; the others say
    why they have none."""
    from nnprobe.report import html_diagnose

    monkeypatch.setattr(html_diagnose, "FIGURES", 1)
    page = Page(render(diagnosis, "html"))
    blocks = [e for e in page.all("div") if e[1].get("class") == "evidence"]
    drawn = [any(t == "img" for t, _, _, _ in block[3]) for block in blocks]
    assert [diagnosis.run_failed(r) for r in diagnosis.runs] == [True, False, True] and drawn == [True, False, False]
    assert "1 runs are drawn, those that failed or have findings first" in page.text(blocks[1])
    monkeypatch.setattr(html_diagnose, "FIGURES", 2)
    blocks = [e for e in Page(render(diagnosis, "html")).all("div") if e[1].get("class") == "evidence"]
    assert [any(t == "img" for t, _, _, _ in block[3]) for block in blocks] == [True, False, True]


def test_fool_pages_inline_the_panel_fool_wrote(tmp_path):
    """A panel that is a regular PNG file is inlined byte for byte; a file that is not a PNG, a FIFO and a
    missing file are each named in a note instead (never read as an image, never waited on)."""
    import os

    from PIL import Image

    png = tmp_path / "cat.panel.png"
    Image.new("RGB", (30, 20), (200, 30, 30)).save(png)
    (tmp_path / "fake.png").write_text("<svg onload=alert(1)>")
    os.mkfifo(tmp_path / "fifo.png")
    result = RESULTS["fool"]
    items = tuple(dataclasses.replace(item, panel_image=str(tmp_path / name)) for item, name in
                  zip(result.items, ("cat.panel.png", "fake.png", "fifo.png")))
    page = Page(render(dataclasses.replace(result, items=items), "html"))
    images = [base64.b64decode(e[1]["src"].split(",", 1)[1]) for e in page.all("img")]
    assert images == [png.read_bytes()]
    notes = [page.text(e) for e in page.all("p") if e[1].get("class") == "note"]
    assert f"panel {tmp_path / 'fake.png'}: not a PNG file" in notes
    assert f"panel {tmp_path / 'fifo.png'}: not readable now" in notes


def test_a_baseline_comparison_follows_the_run_s_own_page():
    """eval --baseline: the page is the eval's, then the comparison's sections under one heading (no second
    page header), its gate verdict beside the baseline's name."""
    result = dataclasses.replace(RESULTS["eval"], comparison=kind_fixtures.comparison())
    page = Page(render(result, "html"))
    assert len(page.all("header")) == 1 and len(page.all("title")) == 1
    headings = [page.text(e) for e in page.all("h2")]
    at = headings.index("Against the baseline base.json FAIL")
    assert "Baseline and candidate side by side" in headings[at:] and headings[0] == "Accuracy"
