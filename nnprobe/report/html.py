"""`--format html`: one self-contained page per report, kept by CI as an artifact (like coverage or
pytest-html reports) and opened in any browser, also offline and with JavaScript off.

Self-contained: the style is inline, the figures are inline PNG (`data:` URLs, drawn by the very functions
`--plot` uses), and a Content-Security-Policy forbids every fetch and every script, so the page can neither
reach the network nor run anything planted in it. The drill-downs (per class, per eps, per run, per image)
are `<details>` elements: no JavaScript needed.

Each result kind provides an "html" piece (`nnprobe.kinds`): `result -> list[str]` of page sections, built
with the helpers below. Every string from data goes through `escaping.html_text`: `table`, `para`, `dl`
and `card` escape what they are given; only `Html` values (markup made here) pass through unchanged.
"""
from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from nnprobe.report.escaping import html_text as esc

ROWS = 1000  # rows of one table before "... and N more" (--format json has them all)
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1f2328;
  background: #f6f8fa; }
header { background: #24292f; color: #fff; padding: 1.2rem 2rem; }
header h1 { margin: 0 0 .3rem; font-size: 1.5rem; }
header p { margin: 0; color: #d0d7de; word-break: break-all; }
main { padding: 1rem 2rem 3rem; max-width: 1400px; }
section { background: #fff; border: 1px solid #d0d7de; border-radius: 6px; padding: .8rem 1.2rem;
  margin: 1rem 0; }
h2 { font-size: 1.15rem; margin: .2rem 0 .6rem; }
h3 { font-size: 1rem; margin: .8rem 0 .4rem; }
table { border-collapse: collapse; margin: .4rem 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #d0d7de; padding: .25rem .6rem; text-align: left; vertical-align: top; }
th { background: #f0f3f6; }
td.num, th.num { text-align: right; }
tr:nth-child(even) td { background: #f9fafb; }
.verdict { display: inline-block; padding: .1rem .6rem; border-radius: 1rem; font-size: .9rem;
  margin-left: .6rem; vertical-align: middle; }
.passed { background: #1a7f37; color: #fff; }
.failed { background: #cf222e; color: #fff; }
.badge { display: inline-block; padding: 0 .45rem; border-radius: .3rem; font-size: .8rem; font-weight: 600; }
.error { background: #ffebe9; color: #a40e26; border: 1px solid #ff8182; }
.warning { background: #fff8c5; color: #7d4e00; border: 1px solid #d4a72c; }
.info { background: #ddf4ff; color: #0550ae; border: 1px solid #54aeff; }
.pass { background: #dafbe1; color: #116329; border: 1px solid #4ac26b; }
.fail { background: #ffebe9; color: #a40e26; border: 1px solid #ff8182; }
.evidence { display: flex; flex-wrap: wrap; gap: 1rem; align-items: flex-start; }
.evidence > figure { flex: 0 1 680px; min-width: 320px; }
.evidence > .cards { flex: 1 1 22rem; min-width: 18rem; }
.card { border: 1px solid #d0d7de; border-left-width: 5px; border-radius: 4px; padding: .5rem .8rem;
  margin: 0 0 .7rem; background: #fff; }
.card.error { border-left-color: #cf222e; background: #fff; color: inherit; }
.card.warning { border-left-color: #d4a72c; background: #fff; color: inherit; }
.card.info { border-left-color: #218bff; background: #fff; color: inherit; }
.card p { margin: .3rem 0; }
.hint { color: #57606a; }
figure { margin: .4rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #d0d7de; background: #fff; }
figcaption { color: #57606a; font-size: .85rem; }
.figures { display: flex; flex-wrap: wrap; gap: 1rem; align-items: flex-start; }
details { margin: .4rem 0; }
summary { cursor: pointer; font-weight: 600; }
dl { display: grid; grid-template-columns: max-content auto; gap: .2rem 1rem; margin: .4rem 0; }
dt { color: #57606a; }
dd { margin: 0; word-break: break-all; }
pre { background: #f6f8fa; padding: .5rem; overflow-x: auto; white-space: pre-wrap; word-break: break-all; }
.note { color: #57606a; }
footer { color: #57606a; padding: 0 2rem 2rem; font-size: .85rem; }
""".strip()


class Html(str):
    """Markup made by this module (already escaped): the helpers pass it through; any other str is escaped,
    also when added to it (`Html + str` escapes the str)."""

    def __add__(self, other: object) -> Html:
        return Html(str.__add__(self, text(other)))

    def __radd__(self, other: object) -> Html:
        return Html(str.__add__(text(other), self))


def text(value: Any) -> Html:
    """`value` as HTML: unchanged when it is `Html`, else escaped."""
    return value if isinstance(value, Html) else Html(esc(value))


def join(parts: Iterable[Any]) -> Html:
    return Html("".join(text(part) for part in parts))


def tag(name: str, *content: Any, cls: str = "", **attributes: str) -> Html:
    """`<name class=... attr=...>content</name>`; the content and the attribute values are escaped."""
    attrs = (f' class="{esc(cls)}"' if cls else "") + "".join(f' {key.rstrip("_")}="{esc(value)}"'
                                                              for key, value in attributes.items())
    return Html(f"<{name}{attrs}>{join(content)}</{name}>")


def para(*content: Any, cls: str = "") -> Html:
    return tag("p", *content, cls=cls)


def section(title: str, *content: Any) -> Html:
    return tag("section", tag("h2", title), *content)


def badge(word: str, cls: str | None = None) -> Html:
    return tag("span", word, cls=f"badge {cls or word}")


def more(shown: int, total: int, noun: str) -> Html:
    return para(f"... and {total - shown} more {noun} (--format json has them all)", cls="note") \
        if total > shown else Html("")


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, right: Sequence[int] = (), limit: int = ROWS,
          total: int | None = None, noun: str = "rows") -> Html:
    """A table of cells (each escaped unless `Html`); columns in `right` are right-aligned (numbers). At most
    `limit` rows, then '... and N more' (`total` counts the rows when `rows` is a lazy iterable)."""
    head = "".join(f'<th{" class=num" if i in right else ""}>{esc(h)}</th>' for i, h in enumerate(headers))
    body, shown = [], 0
    for row in rows:
        if shown == limit:
            break
        body.append("<tr>" + "".join(f'<td{" class=num" if i in right else ""}>{text(cell)}</td>'
                                     for i, cell in enumerate(row)) + "</tr>")
        shown += 1
    if total is None:
        total = len(rows) if isinstance(rows, Sequence) else shown
    return Html(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>") \
        + more(shown, total, noun)


def dl(pairs: Iterable[tuple[str, Any]]) -> Html:
    return tag("dl", *(join((tag("dt", key), tag("dd", value))) for key, value in pairs))


def details(summary: Any, *content: Any, opened: bool = False) -> Html:
    """A drill-down readable with JavaScript off (`<details>`), closed unless `opened`."""
    attribute = " open" if opened else ""
    return Html(f"<details{attribute}><summary>{text(summary)}</summary>{join(content)}</details>")


def compact(value: Any, limit: int = 300) -> str:
    """An evidence value in one short line: JSON for lists and dicts, cut at `limit` characters."""
    shown = value if isinstance(value, str) else json.dumps(value, default=str, allow_nan=True)
    return shown if len(shown) <= limit else shown[:limit - 1] + "…"


def card(severity: str, check: str, message: str, hint: str = "", evidence: Mapping[str, Any] | None = None,
         extra: Any = "") -> Html:
    """One finding: its severity and check, the message, the evidence (a key/value table) and the hint."""
    rows = [(key, compact(value)) for key, value in (evidence or {}).items()]
    return tag("div", para(badge(severity), " ", tag("strong", check)), para(message),
               table(("evidence", "value"), rows, limit=30, noun="evidence fields") if rows else "",
               para("Fix: ", hint, cls="hint") if hint else "", extra, cls=f"card {severity}")


def gates(gates: Sequence[Any]) -> Html:
    """Failed gates first, in the words of every other format (`Gate.message`)."""
    if not gates:
        return Html("")
    ordered = sorted(gates, key=lambda g: g.passed)
    failed = sum(not g.passed for g in gates)
    rows = ((badge("PASS", "pass") if g.passed else badge("FAIL", "fail"), g.name, g.message) for g in ordered)
    return section(f"Gates: {failed} of {len(gates)} failed", table(("", "gate", "verdict"), rows, total=len(gates)))


def figure(draw: Callable[[], Any], caption: str) -> Html:
    """A figure drawn by `draw()` (the `--plot` drawing functions) inlined as a PNG `data:` URL, or a note
    saying why there is none (matplotlib missing, nothing to draw)."""
    from nnprobe.errors import UsageError
    from nnprobe.report import plots

    try:
        plots.pyplot()
    except UsageError as exc:  # matplotlib is not installed: the page says so instead of failing
        return para(f"{caption}: no figure ({exc})", cls="note")
    data = base64.b64encode(plots.figure_bytes(draw(), "png")).decode("ascii")
    return Html(f'<figure><img src="data:image/png;base64,{data}" alt="{esc(caption)}">'
                f"<figcaption>{esc(caption)}</figcaption></figure>")


def header(command: str, passed: bool, subject: str, note: str = "") -> Html:
    verdict = tag("span", "passed" if passed else "failed", cls=f"verdict {'passed' if passed else 'failed'}")
    return Html(f"<header><h1>nnprobe {esc(command)}{verdict}</h1>"
                f"{para(subject)}{para(note) if note else ''}</header>")


def merged_from(result: Any) -> int | None:
    """How many `--shard` slices `nnprobe merge` added up into `result`; None for a result one run made."""
    data = getattr(result, "data", None)
    return data.get("merged_from") if isinstance(data, dict) else None


def run_header(command: str, result: Any, subject: str, note: str = "") -> Html:
    """The header of a page of `command`'s result; of merge when the result is merged slices, naming what it
    merged (the slices, each with its own counts, are listed further down)."""
    count = merged_from(result)
    if count:
        subject = f"{count} slices of nnprobe {command} --shard K/{count} added up: {subject}"
        command = "merge"
    return header(command, result.passed, subject, note)


def run_pairs(run: Any, extra: Iterable[tuple[str, Any]] = ()) -> list[tuple[str, Any]]:
    """How a run was made (RunInfo): device, precision, world size, seconds, seed, versions."""
    versions = ", ".join(f"{k} {v}" for k, v in (run.versions or {}).items())
    return [("device", f"{run.device} {run.precision}, world size {run.world_size}"),
            ("seconds", f"{run.seconds:.2f}"), *extra, ("seed", run.seed), ("versions", versions)]


def model_pairs(model: Any) -> list[tuple[str, Any]]:
    pre = model.preprocessing
    return [("model", f"{model.spec} ({model.source} {model.architecture or ''}, weights {model.weights})"),
            ("classes", model.num_classes),
            ("preprocessing", f"resize {pre.resize_size} -> crop {pre.crop_size}, {pre.interpolation}"
                              f"{' antialias' if pre.antialias else ''}, mean {pre.mean}, std {pre.std} ({pre.source})")]


def skipped(files: Sequence[Any]) -> Html:
    """Skipped input files and why (SkippedFile or the JSON's {path, reason})."""
    if not files:
        return Html("")
    rows = ((f.path, f.reason) if hasattr(f, "path") else (f.get("path"), f.get("reason")) for f in files)
    return section(f"Skipped: {len(files)} file(s)", details(f"{len(files)} file(s) skipped, each with its reason",
                                                         table(("file", "reason"), rows, total=len(files))))


def page(title: str, parts: Iterable[Any]) -> str:
    """The whole page: no external resource of any kind, the CSP forbidding fetches and scripts."""
    return ("<!DOCTYPE html>\n"
            f'<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{esc(title)}</title>\n<style>\n{STYLE}\n</style>\n</head>\n<body>\n"
            + "\n".join(text(part) for part in parts) +
            "\n<footer>Written by nnprobe --format html: self-contained, no network, no JavaScript. "
            "--format json has every number.</footer>\n</body>\n</html>\n")


def passed(result: Any) -> bool:
    return not result.failed if hasattr(result, "failed") else bool(result.passed)


def body(result: Any) -> list[Html]:
    """`result`'s header and sections (its kind's "html" piece), then its `--baseline` comparison's."""
    from nnprobe import kinds

    parts: list[Html] = kinds.of(result).piece("html")(result)
    comparison = getattr(result, "comparison", None)
    if comparison is not None:
        verdict = badge("PASS", "pass") if comparison.passed else badge("FAIL", "fail")
        parts.append(Html(f'<section><h2>Against the baseline {esc(comparison.baseline)} {verdict}</h2></section>'))
        parts += body(comparison)[1:]  # its sections without a second page header
    return parts


def render_html(result: Any) -> str:
    from nnprobe import kinds

    head, *sections = body(result)
    made = f"merge of {kinds.of(result).name} slices" if merged_from(result) else kinds.of(result).name
    title = f"nnprobe {made}: {'passed' if passed(result) else 'failed'}"
    return page(title, [head, Html("<main>"), *sections, Html("</main>")])
