"""A gate's verdict in words, the same in every format: table lines, JUnit cases, "failed:" on stderr."""
from __future__ import annotations

from typing import Any


def gate_sentence(gate: Any) -> str:
    """The verdict as the JSON report carries it (`Gate.message`, built from the gate's numbers by the
    constructors beside each result type), so no format words it differently."""
    return gate.message


def print_gates(gates, console) -> None:
    """One PASS/FAIL line per gate under a table."""
    from rich.markup import escape

    for gate in gates:
        mark = "[green]PASS[/green]" if gate.passed else "[red]FAIL[/red]"
        console.print(f"{mark} {escape(gate.name)}: {escape(gate_sentence(gate))}")
