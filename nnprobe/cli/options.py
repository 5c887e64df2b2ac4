"""The click options of every command, generated from the option dataclasses (nnprobe.options): one flag per
field, its help, metavar and default from the field. The callback receives one frozen options object per
group, every value already through its field's parser (one sentence and exit 2 for a mistake, before torch
loads)."""
from __future__ import annotations

import functools
from collections.abc import Callable

import click

from nnprobe.errors import UsageError
from nnprobe.options.base import Spec
from nnprobe.options.verbs import Groups


def _dest(key: str, name: str) -> str:
    return f"{key}__{name}"


def _metavar(spec: Spec) -> str | None:
    if spec.choices:
        return "[" + "|".join(spec.choices) + "]"
    if spec.metavar is None and spec.path is not None:
        return "DIR" if "folder" in spec.path else "PATH"
    return spec.metavar


def _shown_default(spec: Spec, default) -> str | bool:
    if isinstance(spec.show_default, str):
        return spec.show_default
    if not spec.show_default:
        return False
    if spec.text_default is not None:
        return str(spec.text_default)
    if spec.is_flag and spec.secondary:
        return spec.flag.lstrip("-") if default else spec.secondary.lstrip("-")
    return str(default)


def _click_param(key: str, name: str, spec: Spec, default, verb: str) -> list[Callable]:
    dest = _dest(key, name)
    help_text = spec.help.replace("{verb}", verb)
    if spec.argument:
        return [click.argument(dest, nargs=spec.nargs, required=spec.required, metavar=spec.flag)]
    decls = [spec.flag] + ([spec.long] if spec.long else [])
    if spec.is_flag and spec.secondary:
        decls = [f"{spec.flag}/{spec.secondary}"]
    shown = _shown_default(spec, default)
    if shown:
        help_text = f"{help_text}  [default: {shown}]".strip()
    params = [click.option(*decls, dest, default=None, is_flag=spec.is_flag, multiple=spec.multiple or spec.once,
                           metavar=None if spec.is_flag else _metavar(spec), help=help_text or None)]
    if spec.also_argument:
        params.insert(0, click.argument(f"{dest}_arg", required=False, metavar=f"[{name.upper()}]"))
    return params


def command_options(groups: Groups, verb: str = "") -> Callable[[Callable], Callable]:
    """Decorate a command callback `f(**groups)`: the click options of every field of every group; the
    callback gets each group parsed (`ModelOptions.parse(...)`), keyed by the group's name."""

    def decorate(func: Callable) -> Callable:
        @functools.wraps(func)
        def callback(**given):
            built = {}
            for key, cls in groups.items():
                if cls is None:
                    continue
                values = {}
                for name, spec in cls.specs():
                    if not spec.cli:
                        continue
                    value = given.pop(_dest(key, name))
                    if spec.once:
                        value = _once_given(value, spec.flag)
                    if spec.also_argument:
                        value = _once(given.pop(f"{_dest(key, name)}_arg"), value, name)
                    if value is not None and value != ():
                        values[name] = value
                built[key] = cls.parse(**values)
            return func(**built, **given)

        params = []
        for key, cls in groups.items():
            for field in [] if cls is None else __import__("dataclasses").fields(cls):
                spec = field.metadata["spec"]
                if spec.cli:
                    params += _click_param(key, field.name, spec, field.default, verb)
        for param in reversed(params):
            callback = param(callback)
        return callback

    return decorate


def _once_given(values, flag: str):
    """A gate repeated with two values is refused: keeping either would silently drop the other (the
    stricter one, as often as not). The same value twice is one gate."""
    values = tuple(values or ())
    if len(set(values)) > 1:
        raise click.BadParameter(f"given {len(values)} times ({' and '.join(values)}); give a gate once, so that "
                                 "none is silently dropped.", param_hint=f"'{flag}'")
    return values[0] if values else None


def _once(argument: str | None, option, name: str):
    """DATA or --data (a repeatable option's tuple: DATA stands for one item of it)."""
    if isinstance(option, tuple):
        option = option or None
        if argument and option and option != (argument,):
            raise UsageError(f"Give the {name} folder once: as {name.upper()} or as --{name}, not both.")
        return argument or option
    if argument and option and argument != option:
        raise UsageError(f"Give the {name} folder once: as {name.upper()} or as --{name}, not both.")
    return argument or option
