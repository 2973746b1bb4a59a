"""The start-up probe: `python -m src.bench.startup_probe T0 OUT_DIR`, run from the
repository root in a fresh interpreter (src/bench/rows_process.py's `startup`).

T0 is the parent's time.time() just before it started this process. Prints one JSON line:
the seconds since T0 at which the interpreter was up, `import torch` and `import lightning`
had returned, the default config was composed and its model, data and trainer built (in
OUT_DIR), and the first optimizer step was done.

Only the standard library loads before the first mark: this module imports nothing else
at the top, and src/__init__.py and src/bench/__init__.py import nothing, so `import torch`
below is the process's first (tests/integration/test_benchmarking.py checks it).
"""

import json
import sys
import time


def main(argv: list[str]) -> None:
    t0, out = float(argv[0]), argv[1]
    marks = {"interpreter up": time.time() - t0}
    import torch  # noqa: F401

    marks["import torch"] = time.time() - t0
    import lightning  # noqa: F401

    marks["import lightning"] = time.time() - t0
    from src.bench.timed_loops import build_parts

    overrides = [
        "trainer.max_steps=1",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "~callbacks",
        "~logger",
    ]
    cfg, parts = build_parts(overrides, out)
    marks["compose config + build model, data, trainer"] = time.time() - t0
    parts.trainer.fit(parts.model, datamodule=parts.datamodule)
    marks["first optimizer step done"] = time.time() - t0
    print(json.dumps(marks))


if __name__ == "__main__":
    main(sys.argv[1:])
