"""Config helpers that need neither torch nor Lightning (so `--help` stays instant)."""

from __future__ import annotations

import hashlib

from omegaconf import OmegaConf


def run_name(overrides: str, limit: int = 120) -> str:
    """A run folder's name: its overrides (`heads=2,scale=false`), or `default`.

    Long override lists are cut and suffixed with a hash, staying under file-name limits.
    """
    if len(overrides) <= limit:
        return overrides or "default"
    return f"{overrides[:limit]}..{hashlib.sha1(overrides.encode()).hexdigest()[:8]}"


def register_resolvers() -> None:
    """`${run_name:${hydra.job.override_dirname}}` in conf/hydra/default.yaml."""
    OmegaConf.register_new_resolver("run_name", run_name, replace=True)
