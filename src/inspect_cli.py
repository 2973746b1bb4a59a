"""The Hydra entry point of scripts/inspect.py; torch and Lightning load only once it runs."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from src.run_dirs import quote_literals, register_resolvers

EXIT_CONFIG_ERROR = 2
CONF = Path(__file__).resolve().parents[1] / "conf"  # the same configs as scripts/train.py
# Values taken as typed: run folders are named like `..._heads=2,scale=false`, which Hydra's
# override grammar would read as a nested `=` and a sweep list, and prompts hold spaces and `|`.
LITERAL_KEYS = ("run", "prompt", "ckpt_path")


@hydra.main(version_base="1.3", config_path=str(CONF), config_name="inspect")
def main(cfg: DictConfig) -> None:
    from src.inspect_run import ConfigError, inspect_model  # torch loads only when needed

    try:
        print(inspect_model(cfg))
    except ConfigError as err:
        print(f"\nerror: {err}\n", file=sys.stderr)
        sys.exit(EXIT_CONFIG_ERROR)


def run() -> None:
    register_resolvers()
    sys.argv[1:] = quote_literals(sys.argv[1:], LITERAL_KEYS)
    main()
