"""Train attnlab's attention model: `python scripts/train.py heads=2 scale=false`.

All knobs: `python scripts/train.py --help`. A sweep: add `-m` and comma-separated values.
"""

import sys

import hydra
from omegaconf import DictConfig

from src.config import register_resolvers

register_resolvers()


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from src.train import ConfigError, train  # torch and Lightning load only when needed

    try:
        result = train(cfg)
    except ConfigError as err:
        print(f"\nerror: {err}\n", file=sys.stderr)
        sys.exit(2)
    return result["metrics"].get("val/loss")  # what a hyper-parameter sweeper minimises


if __name__ == "__main__":
    main()
