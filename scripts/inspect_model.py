"""Look inside a trained model:

    python scripts/inspect_model.py run=logs/runs/<folder> prompt="d c i e h h b f"

or `ckpt_path=last` with the run's own overrides, and `random=N` for N validation examples.
It generates the answer greedily, prints it beside the expected one, writes one attention
PNG per layer and one interactive page of every example (attention.html) into its own folder
(logs/inspect/...), and prints each head's top keys and the head knock-out table. README:
Looking inside a model. The work is in src/inspect/, shared with the notebook API there.
"""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from src.paths import CONF_DIR
from src.process_exit import run_then_exit
from src.runs.folders import quote_literals, register_resolvers

EXIT_CONFIG_ERROR = 2
# Values taken as typed: run folders are named like `..._heads=2,scale=false`, which Hydra's
# override grammar would read as a nested `=` and a sweep list, and prompts hold spaces and `|`.
LITERAL_KEYS = ("run", "prompt", "ckpt_path")


def discard_refused(folder: Path, log_dir: Path) -> None:
    """Remove the folder a refused inspection leaves: Hydra made it, with `.hydra/` and an
    empty inspect.log, before any value could be checked, and nothing of the inspection is
    in it. `logs/inspect` (and `logs`) go too if that leaves them empty."""
    folder = folder.absolute()
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for logger in loggers:
        for handler in list(getattr(logger, "handlers", [])):
            if (
                isinstance(handler, logging.FileHandler)
                and folder in Path(handler.baseFilename).parents
            ):
                handler.close()
                logger.removeHandler(handler)
    shutil.rmtree(folder / ".hydra", ignore_errors=True)
    log = folder / f"{HydraConfig.get().job.name}.log"
    if log.is_file() and not log.stat().st_size:
        log.unlink()
    inspections = log_dir.absolute() / "inspect"
    above = [inspections, inspections.parent] if folder.parent == inspections else []
    for empty in [folder, *above]:
        try:
            empty.rmdir()
        except OSError:  # not empty: everything in it, and above it, stays
            return


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="inspect")
def main(cfg: DictConfig) -> None:
    from src.inspect.report import ConfigError, inspect_model  # torch loads only when needed

    try:
        print(inspect_model(cfg))
    except ConfigError as err:
        discard_refused(Path(HydraConfig.get().runtime.output_dir), Path(cfg.paths.log_dir))
        print(f"\nerror: {err}\n", file=sys.stderr)
        sys.exit(EXIT_CONFIG_ERROR)


if __name__ == "__main__":
    register_resolvers()
    sys.argv[1:] = quote_literals(sys.argv[1:], LITERAL_KEYS)
    run_then_exit(main, __file__)
