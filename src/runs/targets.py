"""The classes a saved run's config names, under the import paths they have now.

Every run folder keeps the config it ran with (`.hydra/config.yaml`), `_target_`s
included. When a class moves, the folders saved before still name its old path; reading
them through `current_targets` keeps them loadable by `scripts/inspect_model.py` and
findable by `ckpt_path=last`.
"""

from __future__ import annotations

from typing import Any

# Old import path (a class, or a module prefix ending in ".") -> where it lives now.
MOVED = {
    "src.lit_module.AttentionLM": "src.training.lit_module.LitTransformerLM",
    "src.checkpointing.": "src.training.checkpointing.",
    "src.distributed.": "src.training.distributed.",
    "src.callbacks.": "src.training.callbacks.",
    "src.sweep_checks.": "src.preflight.sweep_checks.",
    # Runs saved before wrote through Lightning's own logger; attnlab's drops `epoch` only.
    "lightning.pytorch.loggers.TensorBoardLogger": (
        "src.training.tensorboard_logger.TensorBoardLogger"
    ),
}


def current_target(target: str) -> str:
    """`target` as it is imported now (unchanged when it never moved)."""
    for old, new in MOVED.items():
        if target == old or (old.endswith(".") and target.startswith(old)):
            return new + target[len(old) :]
    return target


def current_targets(config: Any) -> Any:
    """A plain config (dicts and lists, as read from YAML) with every `_target_` current."""
    if isinstance(config, dict):
        return {
            k: current_target(v) if k == "_target_" and isinstance(v, str) else current_targets(v)
            for k, v in config.items()
        }
    if isinstance(config, list):
        return [current_targets(v) for v in config]
    return config
