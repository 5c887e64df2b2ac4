"""Run a documented scheduler recipe as its scheduler would, cheaply: the script itself runs in bash (its
`mkdir`, quoting, globs, `&&`), with the scheduler's variables set; each `nnprobe ...` (and `aws s3 cp ...`)
it starts is a shim on PATH that hands its argv, working folder and environment to the test process, which
runs it in-process (torch already imported: a fraction of a second instead of seconds per task) and hands
back the exit code. The shim waits for it, so `nnprobe eval ... && aws s3 cp ...` keeps its order."""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

SHIM = r"""#!/usr/bin/env bash
request=$(mktemp -d "$RECIPE_REQUESTS/request.XXXXXX")
printf '%s\0' "$(basename "$0")" "$@" > "$request/argv"
pwd > "$request/cwd"
env -0 > "$request/env"
touch "$request/ready"
while [ ! -e "$request/rc" ]; do sleep 0.01; done
exit "$(cat "$request/rc")"
"""
KEEP = {"PATH", "PWD", "OLDPWD", "SHLVL", "_", "RECIPE_REQUESTS"}


class Runner:
    """Shims for `commands` in a bin folder; `handlers[name](argv)` runs a command in-process -> exit code."""

    def __init__(self, folder: Path, handlers: Mapping[str, Callable[[list[str]], int]]) -> None:
        self.bin = folder / "bin"
        self.requests = folder / "requests"
        self.bin.mkdir(parents=True)
        self.requests.mkdir()
        for name in handlers:
            shim = self.bin / name
            shim.write_text(SHIM)
            shim.chmod(0o755)
        self.handlers = dict(handlers)
        self.served: list[tuple[list[str], dict[str, str], int]] = []

    def bash(self, script: str, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 300) -> int:
        """`script` run by bash in `cwd` with `env` added; returns its exit code."""
        full = {**os.environ, **(env or {}), "RECIPE_REQUESTS": str(self.requests),
                "PATH": f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}"}
        process = subprocess.Popen(["bash", "-c", script], cwd=cwd, env=full)
        deadline = time.monotonic() + timeout
        try:
            while True:
                served = self._serve_ready()
                if process.poll() is not None:
                    self._serve_ready()
                    return process.returncode
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the recipe ran over {timeout} s")
                if not served:
                    time.sleep(0.01)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()

    def run(self, argv: list[str], cwd: Path, env: Mapping[str, str] | None = None) -> int:
        """One command without a shell (a container's exec-form command), with `env` set while it runs."""
        with _environment(dict(env or {})), _folder(cwd):
            code = self.handlers[argv[0]](argv[1:])
        self.served.append((argv, dict(env or {}), code))
        return code

    def _serve_ready(self) -> bool:
        served = False
        for request in sorted(self.requests.glob("request.*")):
            if not (request / "ready").exists() or (request / "rc").exists():
                continue
            argv = (request / "argv").read_bytes().split(b"\0")[:-1]
            env = dict(item.split("=", 1) for item in (request / "env").read_bytes().decode().split("\0") if "=" in item)
            changed = {k: v for k, v in env.items() if k not in KEEP and os.environ.get(k) != v}
            cwd = Path((request / "cwd").read_text().strip())
            code = self.run([a.decode() for a in argv], cwd, changed)
            (request / "rc.tmp").write_text(str(code))
            (request / "rc.tmp").rename(request / "rc")
            served = True
        return served


@contextlib.contextmanager
def _environment(changes: dict[str, str]):
    saved = {k: os.environ.get(k) for k in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)


@contextlib.contextmanager
def _folder(path: Path):
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def nnprobe_in_process(argv: list[str]) -> int:
    """`nnprobe ARGV` through the real entry point, in this process; its exit code."""
    from nnprobe.cli import main

    try:
        main(list(argv))
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.stdout.flush()
    return 0
