"""`--format html` pages rendered in a real browser (issue 21 part 5): Debian's Chromium, headless, with
JavaScript disabled (tests/report/browser.py drives it over the DevTools pipe: Chromium's own
`--blink-settings=scriptEnabled=false` leaves `--dump-dom` and `--screenshot` empty), loads each page (eval on
the tiny colour model, diagnose of corpus runs with findings, robust, compare, fool with its panels, the
corruption sweep, merge with its slices side by side) and gives its DOM, its laid-out
height and a screenshot of the whole page. The screenshot must not be blank, the figures must be where the
page draws them and in colour, the page height must fit its content; the DOM (as the browser built it, no
script run) must hold the findings' text and the table rows.

Chromium missing is a failure, not a skip: the README's test command (and so `.ci/run`) installs it.
`python tests/report/test_html_browser.py` rewrites the README's screenshot, docs/images/html-report.png.
"""
from __future__ import annotations

import base64
import io
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]
from browser import Browser, executable  # noqa: E402
from helpers import PLAIN, TESTS, factory_spec, make_wnid_folders  # noqa: E402

from nnprobe.report import render  # noqa: E402

WIDTH = 1280
BACKGROUND = (0xF6, 0xF8, 0xFA)  # the page's body colour (report/html.py STYLE)
HEADER = (0x24, 0x29, 0x2F)
CORPUS = TESTS.parent / "samples" / "corpus"
README_IMAGE = TESTS.parent / "docs" / "images" / "html-report.png"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if executable() is None:
        pytest.fail("Chromium is not installed: `apt-get install -y chromium` (the README's test command does it)")
    opened = Browser(tmp_path_factory.mktemp("chromium-profile"))
    yield opened
    opened.close()


def test_javascript_is_really_off(browser, tmp_path):
    """The switch the other tests rely on: a page's own script does not run."""
    page = tmp_path / "script.html"
    page.write_text('<!DOCTYPE html><p id="x">static</p><script>document.getElementById("x").textContent = "ran"'
                    "</script>", encoding="utf-8")
    tree, _, _ = browser.load(page, 400)
    assert '<p id="x">static</p>' in tree


def load(browser: Browser, text: str, folder: Path, name: str) -> tuple[str, np.ndarray, int]:
    page = folder / f"{name}.html"
    page.write_text(text, encoding="utf-8")
    tree, shot, height = browser.load(page, WIDTH)
    (folder / f"{name}.png").write_bytes(shot)
    with Image.open(io.BytesIO(shot)) as picture:
        return tree, np.asarray(picture.convert("RGB")).astype(np.int16), height

def blanked(text: str) -> str:
    """The same page with each figure replaced by a white PNG of its size: the layout is unchanged, so the
    pixels that differ from the real page are exactly the figures' pixels."""
    def white(match: re.Match) -> str:
        with Image.open(io.BytesIO(base64.b64decode(match.group(1)))) as picture:
            size = picture.size
        buffer = io.BytesIO()
        Image.new("RGB", size, "white").save(buffer, format="PNG")
        return 'src="data:image/png;base64,' + base64.b64encode(buffer.getvalue()).decode() + '"'
    return re.sub(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', white, text)


def colourful(pixels: np.ndarray) -> int:
    """Pixels whose channels differ by more than 80 (blue, orange, red lines and bars; not greys)."""
    return int(((pixels.max(axis=-1) - pixels.min(axis=-1)) > 80).sum())


def content_height(pixels: np.ndarray) -> int:
    """The last row that is not the page's background colour, + 1."""
    rows = np.nonzero((np.abs(pixels - np.array(BACKGROUND)).max(axis=-1) > 8).any(axis=1))[0]
    return int(rows[-1]) + 1 if len(rows) else 0


def check_page(browser: Browser, text: str, tmp_path: Path, name: str, figures: int) -> tuple[np.ndarray, str]:
    """DOM and screenshot of one page, with the checks every page must pass; returns both."""
    tree, pixels, height = load(browser, text, tmp_path, name)
    assert pixels.std() > 20, f"{name}: the screenshot is (nearly) blank"
    assert pixels.shape[:2] == (height, WIDTH)
    assert 300 < height < 30_000, f"{name}: the page is {height}px tall"
    ends = content_height(pixels)
    assert height - 80 < ends <= height, f"{name}: the content ends at {ends}px of a {height}px page"
    assert (np.abs(pixels[:50] - np.array(HEADER)).max(axis=-1) < 8).mean() > 0.5, f"{name}: no page header on top"
    if figures:
        _, without, same = load(browser, blanked(text), tmp_path, f"{name}-blank")
        assert same == height, "blanking the figures changed the layout"
        region = np.abs(pixels - without).max(axis=-1) > 0
        assert region.any(), f"{name}: the figures drew nothing"
        rows, cols = np.nonzero(region)
        box = pixels[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        assert box.shape[0] > 150 and box.shape[1] > 250, f"{name}: figure region only {box.shape[:2]}"
        assert colourful(box) > 400 * figures, f"{name}: the figure region has almost no colour"
        assert colourful(np.where(region[..., None], pixels, 255)) > 400 * figures, \
            f"{name}: the figures' own pixels have almost no colour"
    return pixels, tree


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return make_wnid_folders(tmp_path_factory.mktemp("html-browser") / "data", {5: 4, 350: 2, 998: 3},
                             wrong={5: 2, 998: 1})


def test_eval_page(browser, folders, tmp_path):
    from nnprobe import api

    result = api.evaluate(factory_spec("color_net_1000"), folders, workers=0, min_top1=0.9, **PLAIN)
    _, tree = check_page(browser, render(result, "html"), tmp_path, "eval", figures=2)
    assert "nnprobe eval" in tree and "failed" in tree and "min-top1" in tree
    labelled = [c for c in result.per_class if c.total]
    rows = re.findall(r"<tr><td class=\"num\">(\d+)</td><td>([^<]*)</td>", tree)
    assert sorted(int(i) for i, _ in rows) == sorted(c.index for c in labelled) and len(rows) == 3
    assert f"{result.correct_top1}/{result.total}" in tree and "<details open=\"\">" in tree


def test_diagnose_page_of_corpus_runs_with_findings(browser, tmp_path):
    from nnprobe import api

    runs = [CORPUS / "tb-diverge", CORPUS / "keras-overfit", CORPUS / "tb-healthy-adam"]
    result = api.diagnose([str(r) for r in runs])
    assert result.failed and [bool(result.run_findings(r)) for r in result.runs][:2] == [True, True]
    _, tree = check_page(browser, render(result, "html"), tmp_path, "diagnose", figures=3)
    for finding in result.findings:
        assert _plain(finding.message) in _plain(_text(tree)), finding.id
    assert tree.count('<section id="run-') == 3 and "Runs side by side" in tree


def test_robust_page(browser, folders, tmp_path):
    from nnprobe import api

    result = api.robust(factory_spec("color_net_1000"), folders, attack="fgsm", eps="0,1/255,4/255,16/255",
                        workers=0, **PLAIN)
    _, tree = check_page(browser, render(result, "html"), tmp_path, "robust", figures=1)
    assert tree.count("<summary>eps ") == 4 and "robust top-1" in tree


def test_compare_page(browser, tmp_path):
    from compare_helpers import eval_result, random_eval_pair

    from nnprobe import api

    base_rows, cand_rows = random_eval_pair(seed=3, n=400, num_classes=7, worse=0.08)
    result = api.compare(eval_result(tmp_path, "base", base_rows, 7), eval_result(tmp_path, "cand", cand_rows, 7),
                         max_drop_top1="0.3pt")
    pixels, tree = check_page(browser, render(result, "html"), tmp_path, "compare", figures=0)
    assert colourful(pixels) > 200  # the FAIL badge and the header's verdict
    assert "Baseline and candidate side by side" in tree and "right → wrong" in tree
    assert tree.count("<tr>") >= len(result.metrics) + 1


def test_fool_page_shows_each_panel(browser, tmp_path):
    """Two photos attacked: one drill-down per image, each with its image | perturbation | adversarial panel
    inlined; the panels are the figures whose pixels are checked."""
    import tinymodels

    from nnprobe import api

    photos = [tinymodels.save_photo(tmp_path / "in" / f"photo{seed}.png", seed=seed, size=(320, 240))
              for seed in (2, 3)]
    model = api.load_classifier(tinymodels.tiny_classifier(), resize=20, crop=16)
    result = api.fool(photos, model, attack="fgsm", eps=8 / 255, out_dir=tmp_path / "out", device="cpu")
    _, tree = check_page(browser, render(result, "html"), tmp_path, "fool", figures=2)
    summaries = re.findall(r"<summary>([^<]*)</summary>", tree)
    assert [x.split(" at eps ")[0] for x in summaries] == [item.image for item in result.items]
    assert tree.count("<img ") == 2
    assert f"{result.fooled} of 2 adversarial images fool the model" in tree
    for item in result.items:
        assert f"<figcaption>{item.panel_image}</figcaption>" in tree


def test_corruptions_page(browser, folders, tmp_path):
    from nnprobe import api

    result = api.corruptions(factory_spec("color_net_1000"), folders, corruptions="contrast,gaussian_noise",
                             severity="1,3,5", workers=0, **PLAIN)
    _, tree = check_page(browser, render(result, "html"), tmp_path, "corruptions", figures=1)
    assert tree.count("<summary>contrast: ") == 1 and tree.count("<summary>gaussian_noise: ") == 1
    assert f"({result.clean.correct_top1}/{result.clean.total})" in tree and "severity 5" in tree


def test_merge_page_shows_the_slices_side_by_side(browser, folders, tmp_path):
    import json as json_module

    from nnprobe import api

    parts = []
    for k in (1, 2):
        part = api.evaluate(factory_spec("color_net_1000"), folders, workers=0, shard=f"{k}/2", **PLAIN)
        parts.append(tmp_path / f"part-{k}.json")
        parts[-1].write_text(json_module.dumps(part.to_dict()))
    result = api.merge([str(p) for p in parts])
    _, tree = check_page(browser, render(result, "html"), tmp_path, "merge", figures=2)
    assert "Slices side by side" in tree and tree.count("<summary>slice ") == 2
    rows = re.findall(r"<tr><td>(merged \(2\)|\d/2)</td><td>([^<]*)</td><td class=\"num\">(\d+)</td>", tree)
    assert [(a, b) for a, b, _ in rows] == [("merged (2)", "the whole run"), ("1/2", str(parts[0])),
                                            ("2/2", str(parts[1]))]
    assert int(rows[0][2]) == result.total == int(rows[1][2]) + int(rows[2][2])


def _text(tree: str) -> str:
    return re.sub(r"<[^>]+>", "", tree)


def _plain(text: str) -> str:
    import html

    return " ".join(html.unescape(text).split())


def main() -> None:
    """Rewrite docs/images/html-report.png: the diagnose page of three corpus runs, as the README shows it (the
    top of the page, 1200 CSS pixels wide, scaled to 900)."""
    import os
    import tempfile

    from nnprobe import api

    os.chdir(TESTS.parent)  # the run names on the page are the paths as a user types them
    runs = [CORPUS / "tb-diverge", CORPUS / "keras-overfit", CORPUS / "tb-healthy-adam"]
    result = api.diagnose([str(r.relative_to(TESTS.parent)) for r in runs])
    with tempfile.TemporaryDirectory() as folder:
        page = Path(folder) / "diagnose.html"
        page.write_text(render(result, "html"), encoding="utf-8")
        opened = Browser(Path(folder) / "profile")
        try:
            _, shot, _ = opened.load(page, 1200)
        finally:
            opened.close()
        with Image.open(io.BytesIO(shot)) as picture:
            top = picture.convert("RGB").crop((0, 0, 1200, min(picture.height, 1500)))
            top.resize((900, top.height * 900 // 1200), Image.LANCZOS).save(README_IMAGE, optimize=True)
    print(json.dumps({"written": str(README_IMAGE)}))


if __name__ == "__main__":
    main()
