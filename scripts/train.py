"""Train attnlab's attention model: `python scripts/train.py heads=2 scale=false`.

All knobs: `python scripts/train.py --help`. A sweep: add `-m` and comma-separated values.
"""

import math
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from src.preflight.checks import missing_extra
from src.preflight.sweep_checks import EXIT_CODES
from src.preflight.threads import available_cpus, threads_per_job
from src.process_exit import run_then_exit
from src.runs.folders import quote_literals, register_resolvers

register_resolvers()

# Overrides whose values are paths the project wrote (`..._heads=2,scale=false`).
PATH_KEYS = ("ckpt_path", "hydra.run.dir", "hydra.sweep.dir", "paths.log_dir")


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    job = HydraConfig.get()
    threads = threads_per_job(job.get("launcher"), available_cpus())

    from src.analysis.metric_names import VAL_LOSS
    from src.training.progress import keep_background_errors_in_the_log
    from src.training.run import RunStopped, train  # torch loads only when needed

    keep_background_errors_in_the_log()  # here, in the job: a launcher's workers run this too

    try:
        result = train(cfg, threads=threads)
    except RunStopped as err:  # refused, diverged or failed: metrics.json says which
        print(f"\nerror: {err}\n", file=sys.stderr)
        if job.mode == RunMode.MULTIRUN:
            return math.nan  # the sweep goes on; SweepChecks sums the jobs up at its end
        sys.exit(EXIT_CODES[err.status])
    return result["metrics"].get(VAL_LOSS)  # what a hyper-parameter sweeper minimises


if __name__ == "__main__":
    if why := missing_extra(sys.argv[1:]):
        print(f"\nerror: {why}\n", file=sys.stderr)
        sys.exit(EXIT_CODES["refused"])
    sys.argv[1:] = quote_literals(sys.argv[1:], PATH_KEYS, only_with="=")
    run_then_exit(main, __file__)
