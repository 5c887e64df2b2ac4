"""Docs that are tested: every ```console block of README.md and docs/*.md is run, command by command, in a
scratch folder beside the repository's samples/ and tests/, and what it prints (stdout and stderr, as a
terminal shows them) must be what the page shows, with timings, rates, process ids and dates masked.

A block the tests cannot run (it needs files the page only describes, or a live training job) carries the
line `<!-- not run: REASON -->` right above it; the reason must be given, and every other block runs.

On the page: a line `...` stands for any number of lines; a line ending in `...` is a prefix. Progress lines
(a terminal's bar is transient; a log gets `evaluating: 4/4 in 1s, ...`) are not part of what a page shows.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
NOT_RUN = re.compile(r"<!--\s*not run:\s*(.*?)\s*-->")
PROGRESS = re.compile(r"^[\w -]+: [\d,]+/[\d,]+ (in \d|\()")
MASKS = [  # (pattern, replacement): what differs from run to run
    (re.compile(r"\d+(\.\d+)? s\b"), "<s> s"),
    (re.compile(r"[\d.,]+ images/s"), "<r> images/s"),
    (re.compile(r"\b\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\b"), "<date>"),
    (re.compile(r"process \d+"), "process <pid>"),
]


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    text: list[str]
    not_run: str | None

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"

    def steps(self) -> list[tuple[str, list[str]]]:
        """(command, expected output lines) for each `$ ` line."""
        out: list[tuple[str, list[str]]] = []
        for line in self.text:
            if line.startswith("$ "):
                out.append((line[2:], []))
            elif out:
                out[-1][1].append(line)
        return out


def console_blocks() -> list[Block]:
    found = []
    for page in PAGES:
        lines = page.read_text(encoding="utf-8").splitlines()
        i = 0
        while i < len(lines):
            if lines[i].strip() == "```console":
                end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
                mark = NOT_RUN.search(lines[i - 1]) if i else None
                found.append(Block(page, i + 1, lines[i + 1:end], mark.group(1) if mark else None))
                i = end
            i += 1
    return found


BLOCKS = console_blocks()


def normalise(text: str) -> str:
    """Masks applied; runs of spaces and of a table's rule characters squeezed (a column's width follows its
    widest cell, which a masked timing can change); trailing space dropped."""
    for pattern, replacement in MASKS:
        text = pattern.sub(replacement, text)
    return re.sub(r"([━─])\1+", r"\1", re.sub(r"[ \t]+", " ", text)).rstrip()


def matches(expected: list[str], actual: list[str]) -> bool:
    """`expected` (with `...` lines and `...` prefixes) against `actual`, line by line, masks applied."""
    want = [normalise(line) for line in expected]
    got = [normalise(line) for line in actual if not PROGRESS.match(line)]
    while got and not got[-1]:
        got.pop()

    def walk(i: int, j: int) -> bool:
        if i == len(want):
            return j == len(got)
        if want[i].strip() == "...":
            return any(walk(i + 1, k) for k in range(j, len(got) + 1))
        if j == len(got):
            return False
        line = want[i]
        same = got[j].startswith(line[:-3].rstrip()) if line.endswith("...") else got[j] == line
        return same and walk(i + 1, j + 1)

    return walk(0, 0)


def test_every_console_block_is_run_or_says_why_not():
    assert len(BLOCKS) >= 10, [b.id for b in BLOCKS]
    for block in BLOCKS:
        assert block.not_run is None or len(block.not_run) > 10, f"{block.id}: give the reason it is not run"
        assert block.steps(), f"{block.id}: a console block shows `$ command` lines"


def test_the_matcher_masks_timings_and_keeps_numbers_that_matter():
    assert matches(["run: cpu fp32, world size 1, 0.46 s, 8.6 images/s"], ["run: cpu fp32, world size 1, 3.10 s, 1.2 images/s"])
    assert not matches(["top-1 75.00% 3/4"], ["top-1 50.00% 2/4"])
    assert matches(["a", "...", "z"], ["a", "b", "c", "z"]) and not matches(["a", "z"], ["a", "b", "z"])
    assert matches(["Hint: ..."], ["Hint: read the log"]) and matches(["x"], ["evaluating: 4/4 in 1s, 3.9/s", "x"])


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.not_run is None], ids=lambda b: b.id)
def test_console_block_prints_what_the_page_shows(block, tmp_path):
    for name in ("samples", "tests"):
        (tmp_path / name).symlink_to(REPO / name)
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "GITHUB_STEP_SUMMARY", "WORLD_SIZE")}
    env.update(COLUMNS="120", PYTHONPATH=str(REPO), NO_COLOR="1", TERM="dumb",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    # the pages show a fresh machine: no weights in torch's or Hugging Face's cache (`nnprobe models` lists them)
    env.update(TORCH_HOME=str(tmp_path / ".torch-cache"), HF_HOME=str(tmp_path / ".hf-cache"), HF_HUB_OFFLINE="1")
    env.pop("HF_HUB_CACHE", None)
    env.pop("HUGGINGFACE_HUB_CACHE", None)
    for command, expected in block.steps():
        proc = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=600)
        # the two streams were captured apart: the page may show either one first
        orders = [(proc.stderr + proc.stdout).splitlines(), (proc.stdout + proc.stderr).splitlines()]
        assert any(matches(expected, actual) for actual in orders), (
            f"{block.id}: `{command}` printed\n" + "\n".join(orders[0]) + "\n--- the page shows ---\n"
            + "\n".join(expected))
