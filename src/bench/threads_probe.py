"""The thread probe: `python -m src.bench.threads_probe ARM STEPS WARMUP`, run from the
repository root in a fresh interpreter (src/bench/rows_process.py's `thread_rows`).

The parent starts this process with no OMP_*/MKL_* variables. ARM: `default` (torch's own
threads), `1` (one thread), or `policy`: src.preflight.threads decides as a run's start-up
does, from the cores idle while this process imports torch and Lightning. `--busy-later`:
start one busy process after the threads are set, before the first step (what the policy
cannot see). Prints one JSON line: the default shape's training it/s after WARMUP steps,
over STEPS, and the threads.
"""

import contextlib
import json
import sys
import time

from src.bench.measure import busy_process
from src.preflight import threads as policy  # first: the idle window starts here


def main(argv: list[str]) -> None:
    arm = argv[0]
    import torch

    from src.bench.timed_loops import lightning_seconds_per_step

    if arm == "1":
        torch.set_num_threads(1)
    elif arm == "policy":
        torch.set_num_threads(
            policy.measured_policy(None, None, {}, torch.get_num_threads()).threads
        )
    with busy_process(900) if "--busy-later" in argv else contextlib.nullcontext():
        if "--busy-later" in argv:
            time.sleep(1.0)  # its interpreter starts, then spins
        seconds = lightning_seconds_per_step(["~callbacks"], int(argv[1]), int(argv[2]), None)
    print(json.dumps({"it_s": 1 / seconds, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main(sys.argv[1:])
