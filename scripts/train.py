"""Train attnlab's attention model: `python scripts/train.py heads=2 scale=false`.

All knobs: `python scripts/train.py --help`. A sweep: add `-m` and comma-separated values.
"""

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from src.config import missing_extra
from src.run_dirs import register_resolvers
from src.threads import available_cpus, threads_per_job

register_resolvers()

EXIT_CONFIG_ERROR, EXIT_DIVERGED = 2, 3


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    job = HydraConfig.get()
    threads = threads_per_job(job.get("launcher"), available_cpus())

    from src.metric_names import VAL_LOSS
    from src.train import ConfigError, TrainingDiverged, train  # torch loads only when needed

    try:
        result = train(cfg, threads=threads)
    except (ConfigError, TrainingDiverged) as err:
        print(f"\nerror: {err}\n", file=sys.stderr)
        if job.mode == RunMode.MULTIRUN:
            raise  # Hydra records the job as failed, runs the others, then exits non-zero
        sys.exit(EXIT_CONFIG_ERROR if isinstance(err, ConfigError) else EXIT_DIVERGED)
    return result["metrics"].get(VAL_LOSS)  # what a hyper-parameter sweeper minimises


if __name__ == "__main__":
    if why := missing_extra(sys.argv[1:]):
        print(f"\nerror: {why}\n", file=sys.stderr)
        sys.exit(EXIT_CONFIG_ERROR)
    main()
