"""The machinery of typed options: one field per option, one parser per field, one sentence per mistake.

An options class is a frozen dataclass whose fields are declared with `option(...)` (or `argument(...)`):
the flag as a user types it, the help text, the parser that turns text (or an already typed value from the
Python API) into the typed value, and what kind of path it names, if any (`PathKind`), so that the input
and output guards and the tests can enumerate every path of every command. `cli/options.py` builds the
click options from these fields; `api.py` builds the same classes from its keywords. Torch-free.
"""
from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

from nnprobe.errors import UsageError

Parser = Callable[[Any, str], Any]


class PathKind:
    """What a path option names; the guards in `nnprobe.io` and the hostile tests key on these."""
    INPUT = "input"  # a file read (model, labels, result JSON ...), through io.check_input
    INPUT_FOLDER = "input-folder"  # a folder read (data set, devkit, run folder, log file or folder)
    OUTPUT = "output"  # a file written (report, per-sample file, plot)
    OUTPUT_FOLDER = "output-folder"  # a folder written into (fool --out)


@dataclasses.dataclass(frozen=True)
class Spec:
    """One option as the CLI spells it and the parser that reads it."""
    flag: str  # "--min-top1", or the metavar of an argument ("DATA")
    help: str = ""
    parse: Parser | None = None  # (value, flag) -> typed value; None: taken as given
    metavar: str | None = None
    text_default: Any = None  # what the CLI shows as default and parses when the option is not given
    choices: tuple[str, ...] | None = None
    is_flag: bool = False
    secondary: str | None = None  # "--no-early-stop" for an on/off flag
    multiple: bool = False
    argument: bool = False
    nargs: int = 1  # -1: any number (an argument)
    required: bool = False
    path: str | None = None  # a PathKind
    input_kind: str | None = None  # for PathKind.INPUT: the size cap's kind in io.INPUT_CAPS
    remote_ok: bool = False  # a bucket URL (s3://...) or a quoted glob is fine too (merge's parts)
    run_ok: bool = False  # an input file, or a training run guarded as diagnose's (compare, diagnose --baseline)
    what: str | None = None  # how the guards name it in a sentence ("data set", "Baseline result"); else the flag
    also_argument: bool = False  # the CLI also takes it as an optional positional argument (DATA)
    maybe_name: bool = False  # an input path only when such a file exists (--model resnet50 names no file)
    show_default: bool | str = False
    long: str | None = None  # a second spelling ("-o" and "--output")
    once: bool = False  # a gate: given twice with two values is refused (keeping either would drop the other)
    cli: bool = True  # False: Python API only
    api: bool = True  # False: CLI only (--plot, --threads: the report layer's and the process's business)


def option(flag: str, help: str = "", *, default: Any = None, parse: Parser | None = None, **spec: Any) -> Any:
    """A dataclass field for one option. `default` is the typed value when the option is not given."""
    return dataclasses.field(default=default, metadata={"spec": Spec(flag, help, parse, **spec)})


def argument(flag: str, help: str = "", *, default: Any = None, parse: Parser | None = None, **spec: Any) -> Any:
    return option(flag, help, default=default, parse=parse, argument=True, **spec)


def spec_of(field: dataclasses.Field) -> Spec:
    return field.metadata["spec"]


def nearest(name: str, names: list[str]) -> str:
    """' (did you mean X?)' for the closest valid name, or ''."""
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else "."


@dataclasses.dataclass(frozen=True)
class Options:
    """Base of every options class: `parse(**values)` -> a frozen instance with every field typed."""

    checks: ClassVar[tuple[Callable[[Any], None], ...]] = ()

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def specs(cls) -> Iterator[tuple[str, Spec]]:
        for field in dataclasses.fields(cls):
            yield field.name, spec_of(field)

    @classmethod
    def parse(cls, **values: Any):
        """Each value through its field's parser (text as the CLI gives it, or a typed value from the API);
        a name the class does not know is a UsageError naming the nearest valid one."""
        unknown = [name for name in values if name not in cls.names()]
        if unknown:
            raise UsageError(f"Unknown option {unknown[0]!r}{nearest(unknown[0], cls.names())}")
        parsed = {}
        for field in dataclasses.fields(cls):
            spec = spec_of(field)
            value = values.get(field.name, None)
            if value is None or (spec.multiple and value == ()):
                parsed[field.name] = field.default if value is None else value
                if spec.text_default is not None and value is None and spec.parse is not None:
                    parsed[field.name] = spec.parse(spec.text_default, spec.flag)
                continue
            try:
                parsed[field.name] = spec.parse(value, spec.flag) if spec.parse is not None else value
            except UsageError as exc:
                exc.flag = spec.flag  # the CLI says "Invalid value for '--flag': ..." as click does
                raise
        instance = cls(**parsed)
        instance.check()
        return instance

    def check(self) -> None:
        """Rules between fields (one sentence each); the default has none."""

    def keywords(self) -> dict[str, Any]:
        """The fields as a name -> value mapping (shallow)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def pick(values: Mapping[str, Any], cls: type[Options]) -> dict[str, Any]:
    """The entries of `values` that are fields of `cls`."""
    return {name: values[name] for name in cls.names() if name in values}
