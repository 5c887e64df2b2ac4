"""What a command writes: the report (--format, -o), the per-sample file (--save-predictions) and --plot.

`-o` names of this process's stdout are the report stream: while a command runs, fd 1 is lent to stderr
(cli/stdout.py), so a report "written to /dev/stdout" goes to the reserved report stream, as `-o -` does.
"""
from __future__ import annotations

from dataclasses import dataclass

from nnprobe.options import parsers as p
from nnprobe.options.base import Options, PathKind, option

STDOUT = "-"
STDOUT_NAMES = (STDOUT, "/dev/stdout", "/dev/fd/1", "/proc/self/fd/1")
# The formats every result kind renders (nnprobe.report.FORMATS holds the renderers; a test keeps them equal).
FORMATS = ("table", "json", "junit", "markdown", "github", "html")
PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def file_path(value, flag: str) -> str:
    """A file to write: never empty (a NUL byte is refused too)."""
    if isinstance(value, str) and not value.strip():
        raise p.UsageError(f"{flag} needs a file path (or - for stdout), not an empty string." if flag == "-o"
                           else f"{flag} needs a file path, not an empty string.")
    return p.path(value, flag)


def report_path(value, flag: str) -> str:
    shown = file_path(value, flag)
    return STDOUT if shown in STDOUT_NAMES else shown


@dataclass(frozen=True)
class ReportOptions(Options):
    format: str | None = option("--format", "Report format: table for people; json, junit, markdown or github "
                                "(annotations) for CI; html, one self-contained page (a CI artifact). When not "
                                "given and $GITHUB_STEP_SUMMARY is set, the markdown summary is also appended there.", parse=p.choice(*FORMATS),
                                choices=FORMATS, show_default="table", api=False)
    output: str | None = option("-o", "Write the report to this file (atomically, never onto an input) instead of "
                                "stdout; - is stdout.", parse=report_path, metavar="PATH", path=PathKind.OUTPUT,
                                long="--output", api=False)
    step_summary: str | None = option("$GITHUB_STEP_SUMMARY", "Where the markdown summary is appended, once the "
                                      "output guard has accepted it (set from the environment, never a flag).",
                                      parse=p.path, path=PathKind.OUTPUT, cli=False, api=False)

    @property
    def fmt(self) -> str:
        return self.format or "table"

    @property
    def summary_wanted(self) -> bool:
        """$GITHUB_STEP_SUMMARY gets the markdown summary only when no --format was asked for."""
        return self.format is None


def plot_path(value, flag: str) -> str:
    """A figure file: its suffix sets the format (.png, .svg, .pdf); anything else is refused now, before
    any work (not after a whole evaluation)."""
    import os

    shown = file_path(value, flag)
    if os.path.splitext(shown)[1].lower() not in PLOT_SUFFIXES:
        raise p.UsageError(f"{flag} {shown} must end in .png, .svg or .pdf: the suffix sets the format.")
    return shown


def figure_path(plot: str, name: str | None) -> str:
    """Where a command that draws several figures writes the one called `name`: beside --plot FILE, as
    FILE's stem + "." + name + its suffix (eval.png -> eval.reliability.png); None: FILE itself."""
    import os

    if name is None:
        return plot
    root, ext = os.path.splitext(plot)
    return f"{root}.{name}{ext}"


def model_file(path: str, slug: str) -> str:
    """Where one model of several writes the file a flag names: FILE's stem + "." + the model's word + its
    suffix (preds.jsonl -> preds.resnet50.jsonl; preds.jsonl.gz -> preds.resnet50.jsonl.gz)."""
    import os

    root, ext = os.path.splitext(path)
    if ext.lower() == ".gz":
        root, inner = os.path.splitext(root)
        ext = inner + ext
    return f"{root}.{slug}{ext}"


def model_slugs(names) -> list[str]:
    """A file-name word per model (`model_file`): the last part of its name (a path's file name, a timm name)
    with anything but letters, digits, '.', '_' and '-' made '_'; names that come out the same get -1, -2 ...
    in order, so no two models share a file."""
    import re

    words = [re.sub(r"[^A-Za-z0-9._-]+", "_", str(n).replace("\\", "/").rstrip("/").rsplit("/", 1)[-1])
             .strip("._") or "model" for n in names]
    taken, out = set(words), []
    for w in words:
        if words.count(w) > 1:
            n = 1
            while f"{w}-{n}" in taken:
                n += 1
            w = f"{w}-{n}"
            taken.add(w)
        out.append(w)
    return out


@dataclass(frozen=True)
class PlotOptions(Options):
    """--plot FILE, one convention for every command: a file whose suffix sets the format; a command with
    several figures writes each beside it as STEM.NAME.SUFFIX (eval: .reliability and .per_class; diagnose
    of several runs: one per run; a run's histogram findings: .histograms)."""
    plot: str | None = option("--plot", "Write the figure to FILE (matplotlib); the suffix sets the format: .png, "
                              ".svg or .pdf. Several figures go beside it as FILE-stem.NAME.suffix (eval: "
                              "reliability and per_class; diagnose: one per run when several, and histograms for "
                              "a run's histogram findings).", parse=plot_path,
                              metavar="FILE", path=PathKind.OUTPUT, api=False)


@dataclass(frozen=True)
class PerSampleOptions(Options):
    save_predictions: str | None = option(
        "--save-predictions", "Write each image's result here (JSON Lines, gzip if PATH ends in .gz; written "
        "atomically); the report records its path and sha256 for nnprobe compare.", parse=file_path, metavar="PATH",
        path=PathKind.OUTPUT)
