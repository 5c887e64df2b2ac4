"""The `nnprobe` command: a root group that loads each subcommand lazily and maps errors to exit codes.

Subcommand modules are imported only when invoked, and they import torch only inside their callback,
so `nnprobe --help` and `nnprobe CMD --help` never import torch.
"""
from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
import traceback

import click

from nnprobe import __version__
from nnprobe.errors import ExitCode, NnprobeError
from nnprobe.report.escaping import one_line

# command name -> module defining `command`; a module that is not there is simply not listed.
COMMANDS = {
    "eval": "nnprobe.cli.eval",
    "fool": "nnprobe.cli.fool",
    "robust": "nnprobe.cli.robust",
    "corruptions": "nnprobe.cli.corruptions",
    "diagnose": "nnprobe.cli.diagnose",
    "follow": "nnprobe.cli.follow",
    "compare": "nnprobe.cli.compare",
    "merge": "nnprobe.cli.merge",
    "models": "nnprobe.cli.models",
}


ARGV: list[str] = []  # the arguments of the command running now, for --nproc's workers (cli.preflight.launched)


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name, module in COMMANDS.items() if importlib.util.find_spec(module) is not None]

    def resolve_command(self, ctx: click.Context, args: list[str]):
        """click's resolution, plus "Did you mean ...?" for a misspelt command (click does it for options)."""
        name = args[0] if args else ""
        if args and self.get_command(ctx, name) is None and not name.startswith("-"):
            import difflib

            close = difflib.get_close_matches(name, self.list_commands(ctx), n=2, cutoff=0.5)
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            ctx.fail(f"No such command {name!r}.{hint} The commands: {', '.join(self.list_commands(ctx))}.")
        return super().resolve_command(ctx, args)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        module = COMMANDS.get(name)
        if module is None or importlib.util.find_spec(module) is None:
            return None
        command = importlib.import_module(module).command
        if not getattr(command.callback, "__nnprobe_reserved__", False):
            from nnprobe.cli.stdout import reserving_stdout

            command.callback = reserving_stdout(command.callback)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nnprobe")
@click.option("--debug", is_flag=True, help="Show tracebacks for internal errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Probe image classifiers: accuracy (eval), fooling (fool, robust), common corruptions (corruptions),
    training runs (diagnose, follow), results (compare, merge), and what loads offline (models).

    Exit codes: 0 ok, 1 a gate failed, 2 usage or input error, 3 internal error.
    """
    ctx.obj = {"debug": debug}


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that every `finally` runs (temporary files are removed) and the
    exit code says what happened. A BaseException, so library code catching Exception cannot swallow it."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


def _interrupted(exc: BaseException) -> int | None:
    """130 for Ctrl-C, 143 for SIGTERM (128 + signal number, as a shell reports them), else None.
    click turns a KeyboardInterrupt into Abort; its cause tells the two apart from a declined prompt."""
    for item in (exc, exc.__cause__, exc.__context__):
        if isinstance(item, Terminated):
            return 128 + signal.SIGTERM
        if isinstance(item, KeyboardInterrupt):
            return 128 + signal.SIGINT
    return None


def _stderr_open() -> None:
    """A CI step may start us with stderr closed (`2>&-`; a launcher may then leave a read-only file on fd 2):
    point fd 2 at /dev/null, so notes and errors are dropped instead of failing the run."""
    import os

    try:
        import fcntl
    except ImportError:  # not POSIX
        return
    try:
        writable = (fcntl.fcntl(2, fcntl.F_GETFL) & os.O_ACCMODE) in (os.O_WRONLY, os.O_RDWR)
    except OSError:
        writable = False
    if not writable:
        fd = os.open(os.devnull, os.O_WRONLY)
        if fd != 2:
            os.dup2(fd, 2)
            os.close(fd)
    if sys.stderr is None:  # Python found fd 2 closed at start-up
        sys.stderr = open(2, "w", buffering=1, closefd=False)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the group, turn every outcome into one of the documented exit codes.

    Ctrl-C exits 130 and SIGTERM 143 with one line on stderr; outputs are written atomically, so an
    interrupted run leaves no partial or complete-looking report behind. The SIGTERM handler is ours only
    while the command runs (a host that set its own keeps it).
    """
    _stderr_open()
    previous = None
    try:
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread (embedded use): leave signals to the host
        pass
    try:
        _run(sys.argv[1:] if argv is None else argv)
    except KeyboardInterrupt:  # Ctrl-C outside the command's own handling (its set-up): no traceback either
        click.echo("Interrupted.", err=True)
        sys.exit(128 + signal.SIGINT)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _run(args: list[str]) -> None:
    debug = "--debug" in args
    ARGV[:] = args
    with _only_rank_zero_speaks(debug):
        _exit_with_code(args, debug)


@contextlib.contextmanager
def _only_rank_zero_speaks(debug: bool):
    """Under torchrun (or --nproc), ranks other than 0 say nothing on stderr (rank 0 says it once); they
    still exit with nnprobe's codes. A silent rank that fails waits until rank 0 has spoken (the launcher
    stops every rank at the first failure), and says its own words only when rank 0 did not say it spoke
    in time. --debug lets every rank speak."""
    import io

    from nnprobe.api import is_main_rank, rank_end

    if debug or is_main_rank():
        try:
            yield
        finally:
            rank_end(failed=False)
        return
    saved, sys.stderr = sys.stderr, io.StringIO()
    failed = True
    try:
        yield
        failed = False
    except SystemExit as exc:
        failed = exc.code not in (None, 0)
        raise
    finally:
        said, sys.stderr = sys.stderr.getvalue(), saved
        if not rank_end(failed) and said:
            sys.stderr.write(said[-SAID:])


SAID = 4000  # characters of a silent rank's own output it says when rank 0 could not


def _exit_with_code(args: list[str], debug: bool) -> None:
    try:
        code = cli.main(args=args, prog_name="nnprobe", standalone_mode=False)
    except (click.exceptions.Abort, KeyboardInterrupt, Terminated) as exc:
        interrupted = _interrupted(exc)
        click.echo("Interrupted." if interrupted == 130 else "Terminated." if interrupted else "Aborted.",
                   err=True)
        sys.exit(interrupted or ExitCode.USAGE)
    except click.ClickException as exc:  # bad option or argument: click's own one-line message
        exc.show()
        sys.exit(ExitCode.USAGE)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except NnprobeError as exc:
        click.echo(f"Error: {one_line(str(exc))}", err=True)
        if debug:
            traceback.print_exc()
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        sys.exit(ExitCode.OK)
    except Exception as exc:  # a bug in nnprobe: say so, traceback only when asked
        click.echo(f"Internal error: {type(exc).__name__}: {one_line(str(exc))} (rerun with --debug for the "
                   "traceback)", err=True)
        if debug:
            traceback.print_exc()
        sys.exit(ExitCode.INTERNAL)
    sys.exit(int(code or 0))
