"""Progress for CI logs and people: plain lines at most every 30 s plus a final line on a non-terminal, a
bar with its total on a terminal, nothing when quiet or not rank 0, no line that looks complete after an error."""
from __future__ import annotations

import io
import re

import pytest

from nnprobe.report.progress import PlainLines, duration, progress_bar


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_plain_lines_at_most_every_interval_with_rate_and_eta():
    out, clock = io.StringIO(), Clock()
    lines = PlainLines("eval", out, interval=30, clock=clock)
    for second in range(1, 100):  # 10 images a second for 99 s, one update a second
        clock.now += 1
        lines(10 * second, 1000)
    lines.close()
    said = out.getvalue().splitlines()
    assert said == ["eval: 300/1,000 (30.0%), 10.0/s, ETA 1m10s",
                    "eval: 600/1,000 (60.0%), 10.0/s, ETA 40s",
                    "eval: 900/1,000 (90.0%), 10.0/s, ETA 10s",
                    "eval: 990/1,000 in 1m39s, 10.0/s"]


def test_a_fast_run_prints_only_the_final_line_and_nothing_without_updates():
    out, clock = io.StringIO(), Clock()
    lines = PlainLines("robust", out, clock=clock)
    lines(0, 5)
    clock.now += 2
    lines(5, 5)
    lines.close()
    assert out.getvalue() == "robust: 5/5 in 2s, 2.5/s\n"
    silent = io.StringIO()
    PlainLines("eval", silent, clock=clock).close()
    assert silent.getvalue() == ""


def test_progress_bar_on_a_pipe_gives_plain_lines_and_no_final_line_after_an_error():
    out = io.StringIO()
    with progress_bar("eval", stream=out) as update:
        update(3, 3)
    assert re.fullmatch(r"eval: 3/3 in \d+s, [\d.,]+/s\n", out.getvalue())
    failed = io.StringIO()
    with pytest.raises(RuntimeError):
        with progress_bar("eval", stream=failed) as update:
            update(1, 3)
            raise RuntimeError("decode failed")
    assert failed.getvalue() == ""


@pytest.mark.parametrize("options", [{"quiet": True}, {"enabled": False}])
def test_quiet_and_other_ranks_get_no_progress(options):
    out = io.StringIO()
    with progress_bar("eval", stream=out, **options) as update:
        assert update is None
    assert out.getvalue() == ""


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_bar_that_knows_its_total(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    out = Terminal()
    with progress_bar("eval", stream=out) as update:
        assert not isinstance(update, PlainLines)
        update(0, 40)
        from rich.progress import Progress  # noqa: F401 - the bar is rich's

        update(10, 40)
    assert "eval: " not in out.getvalue()  # no plain lines on a terminal
    monkeypatch.setenv("CI", "true")  # a CI runner with a pseudo-terminal still gets log lines
    with progress_bar("eval", stream=Terminal()) as update:
        assert isinstance(update, PlainLines)


@pytest.mark.parametrize("seconds, text", [(0, "0s"), (59.4, "59s"), (61, "1m01s"), (3600 * 2 + 180, "2h03m")])
def test_duration(seconds, text):
    assert duration(seconds) == text
