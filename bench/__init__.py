"""Benchmarks: ``python -m bench engine|training|api [--json]``. Figures go in the README, never in tests."""
