"""Shared fixtures (helpers live in tests/helpers.py, importable as `helpers`)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

# --import-mode=importlib puts no test folder on sys.path: make tests/ and each subfolder importable so
# helper modules beside the tests (helpers.py, tiny_models.py, diagnose_helpers.py, ...) can be imported.
TESTS_DIR = Path(__file__).resolve().parent
for folder in [TESTS_DIR, *sorted(p for p in TESTS_DIR.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))]:
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from helpers import Invocation, PLAIN, TESTS  # noqa: E402


@pytest.fixture(autouse=True)
def _no_step_summary(monkeypatch):
    """Run on GitHub Actions, every CLI test would append its summary to the real step summary: the tests
    that exercise it set GITHUB_STEP_SUMMARY themselves."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


@pytest.fixture
def color_classifier():
    """The 1000-way colour classifier wrapped as nnprobe would load it (ImageNet names and wnids)."""
    from nnprobe.models import load_classifier

    return load_classifier(f"{TESTS / 'tiny_models.py'}:color_net_1000", **PLAIN)


@pytest.fixture
def wnids():
    from nnprobe.models.imagenet import imagenet_wnids

    return imagenet_wnids()


@pytest.fixture
def invoke(capsys):
    """Run the real CLI entry point in-process (fast: torch is already imported); returns an
    Invocation with the exit code and the captured stdout/stderr."""
    from nnprobe.cli import main

    def run(*args: str) -> Invocation:
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = capsys.readouterr()
        return Invocation(code, out, err)

    return run
