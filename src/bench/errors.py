"""What the benchmarks raise when they cannot go on. The library raises; scripts/bench.py
prints the message and picks the exit code (2 for BadInput, 1 for any other BenchError)."""

from __future__ import annotations


class BenchError(RuntimeError):
    """A figure could not be measured: a measured process failed, or no fused attention
    kernel runs the shape. The bench stops rather than report a wrong figure."""


class BadInput(BenchError):
    """The bench was asked for something this machine cannot run: a shape that does not fit
    memory, or --gpu without a GPU. Refused before any measuring."""
