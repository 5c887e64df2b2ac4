"""The one reporting layer: every command's result goes out through `emit` as table, json, junit,
markdown, github (workflow-command annotations + markdown; see report/markdown.py, report/github.py) or html
(one self-contained page; report/html.py).
A format is a plug-in (`RENDERERS`) over the pieces each result kind provides (`nnprobe.kinds.KINDS`).

stdout carries only the report; `-o PATH` writes it atomically instead (a partial file never looks
complete). A kind's pieces are looked up by its result type's name, so the core never imports rich and
this layer never imports torch (the core never imports this layer: tests/test_layers.py).
"""
from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable
from typing import Any

from nnprobe import kinds
from nnprobe.io import STDOUT, atomic_write_text


def render_json(result: Any) -> str:
    return json.dumps(result.to_dict(), indent=2, allow_nan=False) + "\n"


def render_section(result: Any, console) -> None:
    """Print `result`'s table on `console` (also inside another result's table: eval's `--baseline` section)."""
    kinds.of(result).piece("table")(result, console)


def render_table(result: Any, *, color: bool) -> str:
    from rich.console import Console

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=color, no_color=not color, width=None if color else 120,
                      soft_wrap=False, highlight=False)
    render_section(result, console)
    return buffer.getvalue()


def _table(result: Any, kind: kinds.Kind, color: bool) -> str:
    return render_table(result, color=color)


def _json(result: Any, kind: kinds.Kind, color: bool) -> str:
    return render_json(result)


def _junit(result: Any, kind: kinds.Kind, color: bool) -> str:
    from nnprobe.report.junit import render_junit

    return render_junit(kind.piece("junit")(result), suite=f"nnprobe.{kind.name}")


def _markdown(result: Any, kind: kinds.Kind, color: bool) -> str:
    from nnprobe.report.markdown import render_markdown

    return render_markdown(result)


def _github(result: Any, kind: kinds.Kind, color: bool) -> str:
    from nnprobe.report.github import render_github

    return render_github(result)


def _html(result: Any, kind: kinds.Kind, color: bool) -> str:
    from nnprobe.report.html import render_html

    return render_html(result)


# Format -> how a report in it is made from the pieces the result's kind provides (`nnprobe.kinds`).
RENDERERS: dict[str, Callable[[Any, kinds.Kind, bool], str]] = {
    "table": _table, "json": _json, "junit": _junit, "markdown": _markdown, "github": _github, "html": _html}
FORMATS = tuple(RENDERERS)


def render(result: Any, fmt: str, *, color: bool = False) -> str:
    """The report in `fmt`; no line of it a GitHub runner would take for a workflow command (escaping.py)."""
    from nnprobe.report.escaping import defuse_commands

    if fmt not in RENDERERS:
        raise ValueError(f"unknown format {fmt!r}")
    text = RENDERERS[fmt](result, kinds.of(result), color)
    return text if fmt == "github" else defuse_commands(text, fmt)  # github defuses its markdown part itself


def emit(result: Any, fmt: str, output: str | None, *, stdout=None) -> None:
    """Write the report to `output` (atomically) or to `stdout` (`output` None or "-"; default sys.stdout)."""
    if output and output != STDOUT:
        atomic_write_text(output, render(result, fmt, color=False))
    else:
        stream = stdout or sys.stdout
        color = fmt == "table" and stream.isatty()
        stream.write(render(result, fmt, color=color))
        stream.flush()
