"""Where a run's wall time goes: one line in train.log when training ends.

Start-up (process start to the first step: imports, config, build, Lightning's set-up), the
training steps, validation (of which free-running generation) and the end-of-run work (head
knock-out, the last attention maps). scripts/bench.py reads it for the default run's shares.
"""

from __future__ import annotations

import os
import re
import time

import lightning as L

from src.training.progress import file_log

PHASES = ("start-up", "steps", "validation", "generation", "end of run")
PHASES_LINE = re.compile(
    r"time: start-up ([\d.]+|n/a) s, steps ([\d.]+) s, validation ([\d.]+) s "
    r"\(generation ([\d.]+) s\), end of run ([\d.]+) s"
)


def process_age_s() -> float | None:
    """Seconds since this process started (Linux's /proc); None where that is unknown."""
    try:
        with open("/proc/self/stat") as stat:
            started_ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as uptime:
            up = float(uptime.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return up - started_ticks / os.sysconf("SC_CLK_TCK")


class PhaseTimes(L.Callback):
    """Times the phases from Lightning's hooks; generation from the module's `generation_s`.

    Added after the config's callbacks, so its on_train_end runs after theirs and the end-of-
    run work is inside the last phase.
    """

    def __init__(self) -> None:
        self.start_up: float | None = None
        self._started = self._mark = self._validating_since = 0.0
        self.validation = 0.0
        self._generation_before = 0.0

    def on_train_start(self, trainer, pl_module) -> None:
        self.start_up = process_age_s()
        self._started = self._mark = time.perf_counter()
        self._generation_before = getattr(pl_module, "generation_s", 0.0)

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:
        self._mark = time.perf_counter()

    def on_validation_start(self, trainer, pl_module) -> None:
        self._validating_since = time.perf_counter()

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.state.fn == "fit":
            self._mark = time.perf_counter()
            self.validation += self._mark - self._validating_since

    def on_train_end(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        end_of_run = time.perf_counter() - self._mark
        steps = self._mark - self._started - self.validation
        generation = getattr(pl_module, "generation_s", 0.0) - self._generation_before
        start_up = "n/a" if self.start_up is None else f"{self.start_up:.2f}"
        file_log.info(
            "time: start-up %s s, steps %.2f s, validation %.2f s (generation %.2f s), "
            "end of run %.2f s",
            start_up,
            steps,
            self.validation,
            generation,
            end_of_run,
        )
