"""The `nnprobe` command: a root group that loads each subcommand lazily and maps errors to exit codes.

Subcommand modules are imported only when invoked, and they import torch only inside their callback,
so `nnprobe --help` and `nnprobe CMD --help` never import torch.
"""
from __future__ import annotations

import importlib
import sys
import traceback

import click

from nnprobe import __version__
from nnprobe.errors import ExitCode, NnprobeError

# command name -> module defining `command`; a module that is not there is simply not listed.
COMMANDS = {
    "eval": "nnprobe.cli.eval",
    "fool": "nnprobe.cli.fool",
    "robust": "nnprobe.cli.robust",
    "diagnose": "nnprobe.cli.diagnose",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name, module in COMMANDS.items() if importlib.util.find_spec(module) is not None]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        module = COMMANDS.get(name)
        if module is None or importlib.util.find_spec(module) is None:
            return None
        return importlib.import_module(module).command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nnprobe")
@click.option("--debug", is_flag=True, help="Show tracebacks for internal errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Probe image classifiers: accuracy (eval), fooling (fool, robust), training runs (diagnose).

    Exit codes: 0 ok, 1 a gate failed, 2 usage or input error, 3 internal error.
    """
    ctx.obj = {"debug": debug}


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the group, turn every outcome into one of the documented exit codes."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        code = cli.main(args=args, prog_name="nnprobe", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(ExitCode.USAGE)
    except click.ClickException as exc:  # bad option or argument: click's own one-line message
        exc.show()
        sys.exit(ExitCode.USAGE)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except NnprobeError as exc:
        click.echo(f"Error: {exc}", err=True)
        if debug:
            traceback.print_exc()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(ExitCode.OK)
    except Exception as exc:  # a bug in nnprobe: say so, traceback only when asked
        click.echo(f"Internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
                   err=True)
        if debug:
            traceback.print_exc()
        sys.exit(ExitCode.INTERNAL)
    sys.exit(int(code or 0))
