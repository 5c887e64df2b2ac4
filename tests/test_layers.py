"""Layers (DESIGN.md): cli -> api + report -> models/data/evaluation/attacks/diagnosis -> results/errors/io.

The core never imports the report layer, the report layer never imports torch, and no module-level
import cycle exists among nnprobe's modules (a package's __init__ counts: importing `nnprobe.a.b` from
outside `nnprobe.a` runs `nnprobe/a/__init__.py` and everything it re-exports)."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import nnprobe

PACKAGE = Path(nnprobe.__file__).resolve().parent
REPORT = "nnprobe.report"
# Modules above the report layer: they may import it.
ABOVE_REPORT = ("nnprobe.cli", "nnprobe.api", "nnprobe.report")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_package(name: str) -> bool:
    return MODULES.get(name, Path()).name == "__init__.py"


def _absolute(node: ast.ImportFrom, name: str) -> str:
    """The module an ImportFrom names, relative imports resolved against `name`."""
    if not node.level:
        return node.module or ""
    base = name.split(".") if _is_package(name) else name.split(".")[:-1]
    base = base[: len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def imported(node: ast.AST, name: str) -> list[str]:
    """The modules an import statement loads (`from a import b` loads a.b too when b is a module)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        source = _absolute(node, name)
        return [source] + [f"{source}.{a.name}" for a in node.names if f"{source}.{a.name}" in MODULES]
    if (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
            and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
        return [node.args[0].value]
    return []


def _type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(test)


def module_level_imports(name: str, text: str) -> set[str]:
    """Imports run when the module is imported: top level, and inside if/try/with/class bodies there,
    but not inside functions, nor under `if TYPE_CHECKING:`."""
    found: set[str] = set()
    pending = list(ast.parse(text).body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) or _type_checking(node):
            continue
        found.update(imported(node, name))
        pending.extend(ast.iter_child_nodes(node))
    return found


def graph(texts: dict[str, str] | None = None) -> dict[str, set[str]]:
    """Module -> nnprobe modules it loads at import time, with the packages whose __init__ that runs
    (each package's own __init__ excepted: it is already importing when its modules run)."""
    if texts is None:
        texts = {name: path.read_text(encoding="utf-8") for name, path in MODULES.items()}
    edges: dict[str, set[str]] = {}
    for name, text in texts.items():
        own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 2)}
        targets = set()
        for target in module_level_imports(name, text):
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                step = ".".join(parts[:i])
                if step in texts and step not in own:
                    targets.add(step)
        edges[name] = targets
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module, or a module importing itself (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1 or node in edges.get(node, ()):
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_core_never_imports_the_report_layer():
    """Anywhere in a file, at module level or inside a function."""
    offenders = []
    for name, path in MODULES.items():
        if name.startswith(ABOVE_REPORT):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            hits = [m for m in imported(node, name) if m == REPORT or m.startswith(REPORT + ".")]
            offenders += [f"{name} imports {m}" for m in hits]
    assert offenders == []


def test_the_walk_sees_imports_inside_functions():
    """The check above can fail: it finds a function-level import and an import_module string."""
    tree = ast.parse("def f():\n    from nnprobe.report.images import write_panels\n"
                     "def g():\n    importlib.import_module('nnprobe.report.junit')\n")
    seen = {m for node in ast.walk(tree) for m in imported(node, "nnprobe.attacks.photo")}
    assert {"nnprobe.report.images", "nnprobe.report.junit"} <= seen


def test_the_report_layer_never_imports_torch():
    report = sorted(n for n in MODULES if n == REPORT or n.startswith(REPORT + "."))
    assert len(report) >= 9, report
    code = ("import sys, importlib\n"
            f"for name in {report!r}:\n    importlib.import_module(name)\n"
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith(('torch.', 'torchvision'))))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_no_module_level_import_cycle():
    assert cycles(graph()) == []


@pytest.mark.parametrize("source, expected", [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ({"a": {"a"}}, [["a"]]),
    ({"a": {"b"}, "b": set()}, []),
])
def test_cycle_finder(source, expected):
    assert cycles(source) == expected


def test_graph_counts_package_reexports():
    """`nnprobe.attacks.budget` imported from outside its package runs nnprobe/attacks/__init__.py (which
    imports photo, which imports the results): results importing the budget's eps formatting would be a
    cycle through that __init__, and the graph must see it."""
    texts = {"nnprobe.attacks": "from nnprobe.attacks.photo import fool\n",
             "nnprobe.attacks.photo": "from nnprobe.attacks.budget import format_eps\nimport nnprobe.results\n",
             "nnprobe.attacks.budget": "import math\n",
             "nnprobe.results": "from nnprobe.attacks.budget import format_eps\n"}
    edges = graph(texts)
    assert edges["nnprobe.results"] == {"nnprobe.attacks", "nnprobe.attacks.budget"}
    assert edges["nnprobe.attacks.photo"] == {"nnprobe.attacks.budget", "nnprobe.results"}  # own __init__ excepted
    assert cycles(edges) == [["nnprobe.attacks", "nnprobe.attacks.photo", "nnprobe.results"]]
    real = graph()
    assert {"nnprobe.attacks.photo", "nnprobe.attacks.robustness"} <= real["nnprobe.attacks"]
    assert "nnprobe.results" in real["nnprobe.attacks.results"]


# Modules split along a seam, each importing only those after it (lazy imports included): `fool` checks
# options and runs photos -> the --min-eps search -> one photo attacked and judged -> the files; eval's setup
# checks -> the input conventions -> the label remaps -> the finding and its statistics; the API's verbs -> eval
# from options -> several models -> the model and the images every verb starts from.
SPLITS = {
    "api": ["nnprobe.api", "nnprobe.api.evaluating", "nnprobe.api.many", "nnprobe.api.loading"],
    "setup checks": ["nnprobe.setup_checks", "nnprobe.setup_checks.inputs", "nnprobe.setup_checks.labels",
                     "nnprobe.setup_checks.verdicts"],
    "fool": ["nnprobe.attacks.photo", "nnprobe.attacks.photo_search", "nnprobe.attacks.photo_attack",
             "nnprobe.attacks.photo_files"],
}


@pytest.mark.parametrize("chain", sorted(SPLITS))
def test_split_modules_import_one_way(chain):
    edges, modules = lazy_graph(), SPLITS[chain]
    assert set(modules) <= set(edges), "a module of the split is missing"
    upward = [f"{low} imports {high}" for i, low in enumerate(modules) for high in modules[:i] if high in edges[low]]
    assert upward == []
    # each one is used by the one before it: the layout tells the truth, no module left aside
    assert all(modules[i + 1] in set().union(*(edges[m] for m in modules[:i + 1])) for i in range(len(modules) - 1))


def every_import(name: str, text: str) -> set[str]:
    """Every import of a module, at module level or inside a function (a lazy import), but not under
    `if TYPE_CHECKING:` (which never runs)."""
    found: set[str] = set()
    pending: list[ast.AST] = [ast.parse(text)]
    while pending:
        node = pending.pop()
        if _type_checking(node):
            continue
        found.update(imported(node, name))
        pending.extend(ast.iter_child_nodes(node))
    return found


def lazy_graph() -> dict[str, set[str]]:
    """Module -> nnprobe modules it may load at any time, lazy imports included."""
    texts = {name: path.read_text(encoding="utf-8") for name, path in MODULES.items()}
    edges: dict[str, set[str]] = {}
    for name, text in texts.items():
        own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 2)}
        edges[name] = {".".join(t.split(".")[:i]) for t in every_import(name, text)
                       for i in range(1, t.count(".") + 2)
                       if ".".join(t.split(".")[:i]) in texts and ".".join(t.split(".")[:i]) not in own}
    return edges


# Circles that lazy imports still close, each in a module its owner is reshaping (issue 16 part 3):
# the list may only shrink; a new circle fails the test below.
KNOWN_LAZY_CIRCLES: list[list[str]] = []


def test_no_new_import_circle_lazy_imports_included():
    found = cycles(lazy_graph())
    unexpected = [c for c in found if not any(set(k) <= set(c) for k in KNOWN_LAZY_CIRCLES)]
    assert unexpected == []
    for known in KNOWN_LAZY_CIRCLES:  # fixed? then take it off the list
        assert any(set(known) <= set(c) for c in found), f"{known} is no longer a circle: remove it from the list"


def test_the_lazy_walk_sees_imports_inside_functions_and_skips_type_checking():
    text = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from nnprobe.results import Gate\n"
            "def f():\n    from nnprobe.attacks.photo import fool\n")
    assert every_import("nnprobe.x", text) == {"typing", "nnprobe.attacks.photo"}


# What each layer may import, lazily or not (DESIGN.md, "The shape after release 2").
CLI_MAY_IMPORT = ("nnprobe.cli", "nnprobe.api", "nnprobe.options", "nnprobe.report", "nnprobe.io",
                  "nnprobe.errors")


def test_the_cli_imports_only_the_api_options_report_io_and_errors():
    edges = lazy_graph()
    offenders = [f"{name} imports {target}" for name in sorted(edges) if name.startswith("nnprobe.cli")
                 for target in sorted(edges[name]) if target != "nnprobe" and not target.startswith(CLI_MAY_IMPORT)]
    assert offenders == []


def test_options_are_torch_free_and_import_only_errors_schedulers_and_themselves():
    edges = lazy_graph()
    offenders = [f"{name} imports {target}" for name in sorted(edges) if name.startswith("nnprobe.options")
                 for target in sorted(edges[name]) if target != "nnprobe"
                 and not target.startswith(("nnprobe.options", "nnprobe.errors", "nnprobe.schedulers"))]
    assert offenders == []
    code = ("import sys, nnprobe.options.verbs, nnprobe.api\n"
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith(('torch.', 'torchvision'))))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def private_names_from_own_package(name: str, text: str) -> list[str]:
    """`from <an enclosing package> import _name` in module `name` (lazy imports included; a private module and
    a dunder such as __version__ are fine): the graphs above do not see it (a package's own __init__ is already
    importing), and a private name is its module's own."""
    found = []
    pending: list[ast.AST] = [ast.parse(text)]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.ImportFrom) and not _type_checking(node):
            source = _absolute(node, name)
            if name.startswith(source + "."):
                found += [f"{name} imports {source}.{a.name}" for a in node.names if a.name.startswith("_")
                          and not a.name.startswith("__") and f"{source}.{a.name}" not in MODULES]
        pending.extend(ast.iter_child_nodes(node))
    return found


def test_no_module_takes_a_private_name_from_its_own_package():
    assert [hit for name, path in MODULES.items()
            for hit in private_names_from_own_package(name, path.read_text(encoding="utf-8"))] == []
    planted = "def f():\n    from nnprobe.api import _model_and_data, load_classifier\n"
    assert private_names_from_own_package("nnprobe.api.many", planted) == [
        "nnprobe.api.many imports nnprobe.api._model_and_data"]
