"""Fixtures every test may use: the real configs, composed with Hydra's compose API."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

from tests.helpers import CONF


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
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose("train", overrides=list(overrides))
        with open_dict(cfg):
            cfg.paths.output_dir = str(tmp_path)
        return cfg

    return _compose
