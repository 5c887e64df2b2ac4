"""Parsers shared by the option fields: each takes the value (text from the CLI, or a typed value from the
Python API) and the flag's name, and returns the typed value or raises a UsageError with one sentence.
Every number is bounds-checked here, before anything is built from it (issue 17 part 5)."""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

from nnprobe.errors import UsageError


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def integer(lo: int | None = None, hi: int | None = None):
    """A whole number in [lo, hi] (either bound open when None)."""

    def parse(value: Any, flag: str) -> int:
        if isinstance(value, bool) or isinstance(value, float) and not value.is_integer():
            raise UsageError(f"{flag} {value!r} is not a whole number.")
        if isinstance(value, str) and len(value.strip()) > 40:
            span = f"from {lo} to {hi:,}" if lo is not None and hi is not None else "of sensible size"
            raise UsageError(f"{flag} must be an integer {span}, got a {len(value.strip())}-digit number.")
        try:
            number = int(value.strip()) if isinstance(value, str) else int(value)
        except (TypeError, ValueError, OverflowError):
            raise UsageError(f"{flag} {value!r} is not a whole number.") from None
        if lo is not None and number < lo:
            raise UsageError(f"{flag} {value!r} must be at least {lo}.")
        if hi is not None and number > hi:
            raise UsageError(f"{flag} {value!r} must be at most {hi}.")
        return number

    return parse


def number(lo: float | None = None, hi: float | None = None):
    """A finite real number in [lo, hi]."""

    def parse(value: Any, flag: str) -> float:
        if isinstance(value, bool):
            raise UsageError(f"{flag} {value!r} is not a number.")
        try:
            result = float(value.strip()) if isinstance(value, str) else float(value)
        except (TypeError, ValueError, OverflowError):
            raise UsageError(f"{flag} {value!r} is not a number.") from None
        if not math.isfinite(result):
            raise UsageError(f"{flag} {value!r} is not a finite number.")
        if (lo is not None and result < lo) or (hi is not None and result > hi):
            bounds = (f"between {lo:g} and {hi:g}" if lo is not None and hi is not None
                      else f"at least {lo:g}" if lo is not None else f"at most {hi:g}")
            raise UsageError(f"{flag} {value!r} must be {bounds}.")
        return result

    return parse


def fraction(value: Any, flag: str) -> float:
    """A fraction in [0, 1], or a percentage such as 75%."""
    if isinstance(value, bool):
        raise UsageError(f"{flag} {value!r} is not a fraction in [0, 1] (or a percentage like 75%).")
    text = str(value).strip()
    try:
        result = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    except ValueError:
        raise UsageError(f"{flag} {value!r} is not a number.") from None
    if not (math.isfinite(result) and 0 <= result <= 1):
        raise UsageError(f"{flag} {value!r} is not a fraction in [0, 1] (or a percentage like 75%).")
    return result


def choice(*choices: str):
    def parse(value: Any, flag: str) -> str:
        text = str(value)
        if text not in choices:
            from nnprobe.options.base import nearest

            raise UsageError(f"{flag} {text!r} is not one of {', '.join(choices)}"
                             f"{nearest(text, list(choices)) if nearest(text, list(choices)) != '.' else '.'}")
        return text

    return parse


def flag(value: Any, flag: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise UsageError(f"{flag} is on or off (True or False), not {value!r}.")


def text(value: Any, flag: str) -> str:
    if not isinstance(value, str):
        raise UsageError(f"{flag} must be text, not {type(value).__name__}.")
    return value


def path(value: Any, flag: str) -> str:
    """A path given as text or os.PathLike, never empty."""
    if not isinstance(value, (str, os.PathLike)):
        raise UsageError(f"{flag} must be a path (str or os.PathLike), not {type(value).__name__}.")
    shown = os.fspath(value)
    if isinstance(shown, bytes) or not shown.strip():
        raise UsageError(f"{flag} needs a path, not an empty string.")
    if "\0" in shown:
        raise UsageError(f"{flag} {shown!r} contains a NUL byte, which no path can hold.")
    return shown


def paths(value: Any, flag: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, (str, os.PathLike)) else list(value)
    return tuple(path(item, flag) for item in items)


def triple(value: Any, flag: str) -> tuple[float, float, float]:
    """Three numbers, `0.5,0.5,0.5` or a sequence."""
    if isinstance(value, str):
        try:
            values = tuple(float(v) for v in value.split(","))
        except ValueError:
            values = ()
    elif isinstance(value, Sequence):
        try:
            values = tuple(float(v) for v in value)
        except (TypeError, ValueError):
            values = ()
    else:
        values = ()
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        raise UsageError(f"{flag} expected three comma-separated numbers, got {value!r}.")
    return values  # type: ignore[return-value]


def texts(value: Any, flag: str) -> tuple[str, ...]:
    """A repeatable option: a tuple of texts (one text is taken as one item)."""
    items = [value] if isinstance(value, str) else list(value)
    for item in items:
        if not isinstance(item, str):
            raise UsageError(f"{flag} takes text items, not {type(item).__name__}.")
    return tuple(items)
