"""The size rule, held by a test: no module of nnprobe over 500 lines, no function (or method) over 60, docstring
included. A module that grows past it is split along a seam (as attacks/photo*.py and setup_checks/ were); a
function, into the steps it takes."""
from __future__ import annotations

import ast
from pathlib import Path

import nnprobe

PACKAGE = Path(nnprobe.__file__).resolve().parent
MODULE_LINES = 500
FUNCTION_LINES = 60


def oversized(path: str, text: str) -> list[str]:
    """What in one module breaks the rule, as 'path: N lines' and 'path:line name(): N lines'."""
    found = []
    lines = text.count("\n") + (not text.endswith("\n") and bool(text))
    if lines > MODULE_LINES:
        found.append(f"{path}: {lines} lines")
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            if length > FUNCTION_LINES:
                found.append(f"{path}:{node.lineno} {node.name}(): {length} lines")
    return found


def test_no_module_over_500_lines_and_no_function_over_60():
    offenders = [hit for path in sorted(PACKAGE.rglob("*.py"))
                 for hit in oversized(str(path.relative_to(PACKAGE.parent)), path.read_text(encoding="utf-8"))]
    assert offenders == []


def test_the_walk_finds_a_long_function_a_long_method_and_a_long_module():
    statements = [f"x{i} = {i}" for i in range(60)]
    function = "def long():\n" + "".join(f"    {s}\n" for s in statements)  # lines 1-61
    method = "class A:\n    def method(self):\n" + "".join(f"        {s}\n" for s in statements)  # method: 64-124
    assert oversized("m.py", function + "\n" + method) == ["m.py:1 long(): 61 lines", "m.py:64 method(): 61 lines"]
    assert oversized("m.py", "x = 1\n" * 501) == ["m.py: 501 lines"]
    assert oversized("m.py", "def short():\n" + "    pass\n" * 59 + "x = 1\n" * 440) == []
