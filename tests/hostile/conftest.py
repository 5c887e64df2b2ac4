"""Hostile inputs: the `invoke` fixture of tests/conftest.py runs the CLI in-process; `run_cli` (helpers)
runs it in a subprocess where a signal, a C-level write or a hang must be contained."""
