"""Benchmarks: measuring helpers, timed loops, and the rows of scripts/bench.py."""
