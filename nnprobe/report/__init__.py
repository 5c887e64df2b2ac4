"""The one reporting layer: every command's result goes out through `emit` as table, json, junit,
markdown or github (workflow-command annotations + markdown; see report/markdown.py, report/github.py).

stdout carries only the report; `-o PATH` writes it atomically instead (a partial file never looks
complete). Table renderers and JUnit cases are looked up by result type name, so the core never imports
rich and this layer never imports torch (the core never imports this layer: tests/test_layers.py).
"""
from __future__ import annotations

import importlib
import io
import json
import sys
from typing import Any

from nnprobe.io import STDOUT, atomic_write_text

FORMATS = ("table", "json", "junit", "markdown", "github")

# Result type name -> "module:function" that renders it as a rich table.
TABLE_RENDERERS = {
    "EvalResult": "nnprobe.report.eval_table:render",
    "FoolResult": "nnprobe.report.fool_table:render",
    "RobustResult": "nnprobe.report.robust_table:render",
    "CorruptionResult": "nnprobe.report.corruption_table:render",
    "Diagnosis": "nnprobe.report.diagnose_table:render",
    "Comparison": "nnprobe.report.compare_table:render",
}


def render_json(result: Any) -> str:
    return json.dumps(result.to_dict(), indent=2, allow_nan=False) + "\n"


def render_section(result: Any, console) -> None:
    """Print `result`'s table on `console` (also inside another result's table: eval's `--baseline` section)."""
    target = TABLE_RENDERERS.get(type(result).__name__)
    if target is None:
        raise TypeError(f"no table renderer for {type(result).__name__}")
    module, func = target.split(":")
    getattr(importlib.import_module(module), func)(result, console)


def render_table(result: Any, *, color: bool) -> str:
    from rich.console import Console

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=color, no_color=not color, width=None if color else 120,
                      soft_wrap=False, highlight=False)
    render_section(result, console)
    return buffer.getvalue()


def render(result: Any, fmt: str, *, color: bool = False) -> str:
    """The report in `fmt`; no line of it a GitHub runner would take for a workflow command (escaping.py)."""
    from nnprobe.report.escaping import defuse_commands

    text = _render(result, fmt, color=color)
    return text if fmt == "github" else defuse_commands(text, fmt)  # github defuses its markdown part itself


def _render(result: Any, fmt: str, *, color: bool = False) -> str:
    if fmt == "json":
        return render_json(result)
    if fmt == "junit":
        from nnprobe.report.junit import junit_cases, render_junit

        return render_junit(junit_cases(result), suite=f"nnprobe.{result.to_dict().get('kind', 'run')}")
    if fmt == "table":
        return render_table(result, color=color)
    if fmt == "markdown":
        from nnprobe.report.markdown import render_markdown

        return render_markdown(result)
    if fmt == "github":
        from nnprobe.report.github import render_github

        return render_github(result)
    raise ValueError(f"unknown format {fmt!r}")


def emit(result: Any, fmt: str, output: str | None, *, stdout=None) -> None:
    """Write the report to `output` (atomically) or to `stdout` (`output` None or "-"; default sys.stdout)."""
    if output and output != STDOUT:
        atomic_write_text(output, render(result, fmt, color=False))
    else:
        stream = stdout or sys.stdout
        color = fmt == "table" and stream.isatty()
        stream.write(render(result, fmt, color=color))
        stream.flush()
