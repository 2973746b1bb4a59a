"""`train(cfg)`: config -> task, datamodule, model, trainer -> fit -> metrics.json.

Everything is built (and so every config value checked) before the first training step.
"""

from __future__ import annotations

import json
import re
import time
import warnings
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.errors import InstantiationException
from omegaconf import DictConfig

# Lightning's own use of a deprecated torch API; nothing a user can act on.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")

FINAL_METRICS = ("val/loss", "val/acc", "val/exact_match", "train/loss")


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key, the value and what is allowed."""


def _instantiate(node: DictConfig, key: str, **kwargs: Any) -> Any:
    """hydra.utils.instantiate, with the underlying error re-raised as one readable ConfigError."""
    try:
        return hydra.utils.instantiate(node, _convert_="all", **kwargs)
    except InstantiationException as err:
        found = re.search(r"full_key: (\S+)", str(err))
        where = found.group(1) if found else key
        cause = err.__cause__ if err.__cause__ is not None else err
        raise ConfigError(f"invalid value in `{where}`: {cause}") from err


def build(cfg: DictConfig) -> dict[str, Any]:
    """Instantiate every part of a run from the config, in data-flow order."""
    task = _instantiate(cfg.task, "task")
    datamodule = _instantiate(cfg.data, "data", task=task)
    model = _instantiate(
        cfg.model, "model", net={"vocab_size": task.vocab_size, "max_seq_len": task.seq_len}
    )
    callbacks = [_instantiate(c, f"callbacks.{k}") for k, c in (cfg.get("callbacks") or {}).items()]
    loggers = [_instantiate(c, f"logger.{k}") for k, c in (cfg.get("logger") or {}).items()]
    trainer = _instantiate(cfg.trainer, "trainer", callbacks=callbacks, logger=loggers or False)
    return {"task": task, "datamodule": datamodule, "model": model, "trainer": trainer}


def hparams_for_tensorboard(cfg: DictConfig, task_name: str) -> dict[str, Any]:
    """The knobs worth a column in TensorBoard's hparams tab."""
    net = cfg.model.net
    return {
        "heads": cfg.heads,
        "scale": cfg.scale,
        "seed": cfg.seed,
        "task": task_name,
        "d_model": net.d_model,
        "layers": net.layers,
        "head_dim": net.head_dim,
        "positional": net.positional,
        "lr": cfg.model.lr,
        "batch_size": cfg.data.batch_size,
        "max_steps": cfg.trainer.max_steps,
    }


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train one model as `cfg` says; returns what it writes to `metrics.json`."""
    started = time.perf_counter()
    output_dir = Path(cfg.paths.output_dir)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    parts = build(cfg)
    trainer, model, datamodule = parts["trainer"], parts["model"], parts["datamodule"]

    if cfg.get("compile"):
        import torch

        model = torch.compile(model)  # Lightning unwraps it again for checkpoints
    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))

    final = {
        k: float(trainer.callback_metrics[k])
        for k in FINAL_METRICS
        if k in trainer.callback_metrics
    }
    result = {
        "status": "finished",
        "step": trainer.global_step,
        "wall_time_s": round(time.perf_counter() - started, 3),
        "metrics": final,
    }
    if trainer.is_global_zero:
        for logger in trainer.loggers:  # the hparams tab, with the real final metrics
            logger.log_hyperparams(
                hparams_for_tensorboard(cfg, parts["task"].name),
                metrics={"hp/" + k.replace("/", "_"): v for k, v in final.items()},
            )
            logger.finalize("success")  # flush: fit has already closed its writer once
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    return result
