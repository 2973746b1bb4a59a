"""The thread probe: `python -m src.bench.threads_probe THREADS STEPS WARMUP`, run from the
repository root in a fresh interpreter (src/bench/rows_process.py's `thread_rows`).

The parent sets the thread environment before this process starts (OMP_*/MKL_* removed:
torch's defaults), and nothing here loads torch before main() reads THREADS (JSON: null
for torch's default, or a count for torch.set_num_threads). Prints one JSON line: the
default shape's training it/s after WARMUP steps, over STEPS, and the threads torch used.
"""

import json
import sys


def main(argv: list[str]) -> None:
    threads = json.loads(argv[0])
    import torch

    if threads:
        torch.set_num_threads(threads)
    from src.bench.timed_loops import lightning_seconds_per_step

    seconds = lightning_seconds_per_step(["~callbacks"], int(argv[1]), int(argv[2]), None)
    print(json.dumps({"it_s": 1 / seconds, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main(sys.argv[1:])
