"""Benchmarks, the work of scripts/bench.py: suites (each mode's rows) over rows_model,
rows_process, rows_gpu and rows_sweeps; shapes, timed_loops, measure; the probes run as
`python -m src.bench.startup_probe` / `threads_probe`. Imports nothing: the start-up probe
loads this package before it times `import torch`."""
