"""Fixtures every test may use: the real configs, composed with Hydra's compose API, and the
short run the inspect tests look at. Shared values and functions are in tests/helpers.py."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from tests.helpers import INSPECTED_RUN, compose_config


@pytest.fixture(autouse=True)
def _forget_hydras_logging_setup():
    """Tests that run scripts/train.py in this process let Hydra configure logging, with
    handlers bound to that test's captured output; they must not outlive the test."""
    yield
    for name in ("src", ""):
        logger = logging.getLogger(name or None)
        for handler in list(logger.handlers):
            if type(handler) in (logging.StreamHandler, logging.FileHandler):  # not pytest's
                logger.removeHandler(handler)
    logging.getLogger("src").propagate = True


@pytest.fixture
def compose_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """compose_cfg(*overrides) -> the train config, writing into tmp_path."""

    def _compose(*overrides: str) -> DictConfig:
        return compose_config("train", overrides, tmp_path)

    return _compose


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A short run written as scripts/train.py would: its folder name has `=` and `,`.
    (run folder, its network, its task, the first 128 examples of its val set), trained once
    for every test that looks at it (tests/unit/test_inspect.py, test_generation.py and
    tests/integration/test_inspect_script.py)."""
    from src.data.datamodule import VAL_STREAM, task_batch
    from src.inspect.load import load
    from src.training.run import train

    logs = tmp_path_factory.mktemp("logs")
    run_dir = logs / "runs" / "2026-01-01_00-00-00_heads=2,task.length=4"
    cfg = compose_config("train", INSPECTED_RUN, run_dir)
    with open_dict(cfg):
        cfg.paths.log_dir = str(logs)
    torch.manual_seed(0)
    train(cfg)
    (run_dir / ".hydra").mkdir()
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")  # as Hydra saves it
    loaded = load(run_dir, run_dir / "checkpoints" / "last.ckpt")
    val = task_batch(loaded.task, 128, seed=1234, stream=VAL_STREAM, step=0)
    return run_dir, loaded.net, loaded.task, val
