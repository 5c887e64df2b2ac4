"""`.ci/run` runs exactly the README's test command (the README's first block is two commands: the quick start,
then the tests), step by step in the README's order; the test command installs Chromium when it is
absent, so the browser test of `--format html` (which fails without it) can run on a clean machine."""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", text, flags=re.S).group(1).splitlines()
    return [re.sub(r"\s+#.*$", "", line).strip() for line in block[1:] if line.strip()]


def _steps(command: str) -> list[str]:
    """A command line cut at `&&` and `;` outside parentheses (a parenthesised group stays whole)."""
    parts, depth, current = [], 0, ""
    tokens = re.split(r"(&&|;|\(|\))", command)
    for token in tokens:
        depth += token == "("
        depth -= token == ")"
        if token in ("&&", ";") and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += token
    return [p for p in [*parts, current.strip()] if p]


def test_ci_run_runs_the_readme_commands_in_order():
    commands = _readme_commands()
    assert len(commands) == 1, "the README's first block is two commands: the quick start, then the tests"
    assert commands[0].startswith("(command -v chromium ||") and "apt-get install -y chromium" in commands[0]
    assert commands[0].endswith('&& pip install -e ".[test]" && pytest -n auto')
    script = [line.strip() for line in (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
              if line.strip() and not line.lstrip().startswith("#")]
    position = 0
    for command in commands:
        for step in _steps(command):
            found = next((i for i in range(position, len(script))
                          if script[i] == step or script[i].startswith(step + " ||")), None)
            assert found is not None, f".ci/run does not run `{step}` (after line {position}) as the README says"
            position = found + 1
