"""The contract every hostile input is held to: the exact exit code, one clear line on stderr (no
traceback), nothing written to stdout that is not the report, no input changed, no marker file created.

Use `expect_refusal` for inputs that must be refused, and `Inputs` to hash files before and after.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Inputs:
    """Hashes of every regular file under the given paths, taken now; `unchanged()` asserts they are the
    same files with the same bytes afterwards (no file replaced, removed or added among them)."""

    def __init__(self, *paths: os.PathLike) -> None:
        self.paths = [Path(p) for p in paths]
        self.before = self._snapshot()

    def _snapshot(self) -> dict[str, str]:
        found = {}
        for root in self.paths:
            if root.is_symlink() or root.is_file():
                if root.is_file():
                    found[str(root)] = file_digest(root)
                continue
            for folder, _dirs, names in os.walk(root):
                for name in names:
                    p = Path(folder) / name
                    if p.is_file() and not p.is_symlink():
                        found[str(p)] = file_digest(p)
        return found

    def unchanged(self) -> None:
        after = self._snapshot()
        assert after == self.before, {k: (self.before.get(k), after.get(k))
                                      for k in set(after) | set(self.before) if after.get(k) != self.before.get(k)}


def one_line_error(stderr: str) -> str:
    """The single `Error: ...` line of stderr (other lines may be notes); asserts there is exactly one and
    no traceback."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith(("Error:", "Internal error:"))]
    assert len(errors) == 1, stderr
    assert errors[0].startswith("Error:"), stderr  # never an internal error for a user's mistake
    return errors[0]


def expect_refusal(proc, code: int, *fragments: str) -> str:
    """`proc` exited with `code`, printed one error line containing every fragment, and nothing on stdout."""
    assert proc.returncode == code, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    line = one_line_error(proc.stderr)
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    assert proc.stdout == "", proc.stdout[-2000:]
    return line
