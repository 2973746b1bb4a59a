"""The config's values: checked before any work (ConfigError names the key, the value and
what is allowed), the model record a checkpoint keeps, and optional extras. No torch.

Run folders are in run_dirs.py, threads in threads.py, memory in memory.py, devices in
devices.py, the launcher checks in sweep_checks.py."""

from __future__ import annotations

import re
from typing import Any

from omegaconf import DictConfig, OmegaConf

from src.validation import as_typed, is_int, is_number


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key, the value and what is allowed."""

    status = "refused"  # what metrics.json records; scripts/train.py's exit code follows it


# The config's top-level keys: each is read by something. A key added with `+key=value`
# outside these (and outside the instantiated groups, whose constructors refuse unknown
# arguments themselves) would be ignored silently, so it is refused as a typo.
TOP_LEVEL_KEYS = (
    "heads", "scale", "seed", "ckpt_path", "compile", "threads",
    "task", "data", "model", "trainer", "logger", "callbacks", "paths", "hydra",
)  # fmt: skip
PATHS_KEYS = ("log_dir", "output_dir")


# torch.compile's modes, for `compile=MODE`.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
# `name=` where a message names an argument (not `task.length=`, already a key).
_ARGUMENT = re.compile(r"(?<![\w.])([A-Za-z_]\w*)=")
_REFERENCE = re.compile(r"\$\{([\w.]+)\}")


def name_config_keys(message: str, node: DictConfig, where: str) -> str | None:
    """A layer's error with each argument it names written as the config key that held it.

    Layers word their errors in their own argument names (`length=0 is not allowed`); the
    node at `where` that built the layer says which key that was: `task.length=0`. An
    argument filled by interpolation (`heads: ${heads}`) is named as the user types it
    (`heads=3`). None when the message names none of the node's arguments.
    """
    keys = {}
    for name, raw in OmegaConf.to_container(node, resolve=False).items():
        reference = _REFERENCE.fullmatch(raw) if isinstance(raw, str) else None
        keys[name] = reference.group(1) if reference else f"{where}.{name}"
    if not any(m.group(1) in keys for m in _ARGUMENT.finditer(message)):
        return None
    return _ARGUMENT.sub(lambda m: f"{keys.get(m.group(1), m.group(1))}=", message)


# The knobs set at the top level only: the network reads them through `${heads}` and
# `${scale}` (conf/model/transformer.yaml), so one key says what a run used.
TOP_LEVEL_KNOBS = ("heads", "scale")


def _check_one_key_per_knob(cfg: DictConfig) -> None:
    net = OmegaConf.select(cfg, "model.net")
    for knob in TOP_LEVEL_KNOBS:
        if (
            isinstance(net, DictConfig)
            and knob in net
            and not OmegaConf.is_interpolation(net, knob)
        ):
            value = OmegaConf.select(net, knob)
            raise ConfigError(
                f"model.net.{knob}={as_typed(value)} is not allowed: the network's {knob} "
                f"follows the top-level `{knob}`, so that one key says what every run used (run "
                f"folders, TensorBoard, compare). Use {knob}={as_typed(value)} instead."
            )


def check_values(cfg: DictConfig) -> None:
    """Refuse the values no constructor checks, before anything is built.

    The seed feeds numpy (a 32-bit unsigned seed) and the task generators; max_steps, the
    warm-up and the weight decay go straight into the schedule and AdamW, which accept
    nonsense silently; a quoted `scale` reads like a valid value in any later message.
    """
    unknown = [k for k in cfg if k not in TOP_LEVEL_KEYS]
    unknown += [f"paths.{k}" for k in cfg.get("paths") or {} if k not in PATHS_KEYS]
    if unknown:
        raise ConfigError(
            f"{', '.join(f'{k}={OmegaConf.select(cfg, k)!r}' for k in unknown)}: nothing reads "
            f"{'this key' if len(unknown) == 1 else 'these keys'}, so it would be ignored "
            "(a typo?). Allowed top-level keys: "
            f"{', '.join(k for k in TOP_LEVEL_KEYS if k != 'hydra')}; any lightning.Trainer "
            "argument can be added as +trainer.NAME=VALUE."
        )
    _check_one_key_per_knob(cfg)
    seed = cfg.get("seed")
    if not (is_int(seed) and 0 <= seed < 2**32):
        raise ConfigError(
            f"seed={seed!r} is not allowed: it must be an integer from 0 to 2**32 - 1 "
            "(numpy's seed range)."
        )
    scale = cfg.get("scale")
    if isinstance(scale, str):
        raise ConfigError(
            f'scale={scale!r} is not allowed: it is the string "{scale}" (quoted), not the '
            "boolean true or false or a number. Use scale=true (multiply q.k by 1/sqrt(d_k)), "
            "scale=false (no scaling) or a positive number (that factor), without quotes."
        )
    threads = cfg.get("threads")
    if threads is not None and not (is_int(threads) and threads >= 1):
        raise ConfigError(
            f"threads={threads!r} is not allowed: it must be a positive integer (that many torch "
            "CPU threads) or null (the thread policy: the cores idle when the run starts; a "
            "sweep job gets its share)."
        )
    compile_ = cfg.get("compile", False)
    if not (isinstance(compile_, bool) or compile_ in COMPILE_MODES):
        raise ConfigError(
            f"compile={compile_!r} is not allowed: use false (eager), true (torch.compile's "
            f"default mode) or one of its modes: {', '.join(COMPILE_MODES)} (reduce-overhead "
            "replays the step as CUDA graphs on a GPU: for small models, launch-bound)."
        )
    max_steps = cfg.trainer.get("max_steps")
    if not (is_int(max_steps) and max_steps >= 1):
        raise ConfigError(
            f"trainer.max_steps={max_steps!r} is not allowed: it must be a positive integer "
            "(the training stream is endless, so the run needs a number of steps to stop at)."
        )
    for key, means in (
        ("val_check_interval", "validate, and rewrite checkpoints/last.ckpt, every N steps"),
        ("log_every_n_steps", "log train/* and a train.log line every N steps"),
        ("accumulate_grad_batches", "batches per optimizer step"),
    ):
        value = cfg.trainer.get(key, 1)
        if not (is_int(value) and value >= 1):
            raise ConfigError(
                f"trainer.{key}={value!r} is not allowed: it must be a positive integer ({means}; "
                "the training stream is endless, so a fraction of an epoch means nothing here)."
            )
    model = cfg.get("model") or {}
    for key, allowed in (
        ("warmup_steps", "an integer >= 0 (0: no warm-up)"),
        ("weight_decay", "a number >= 0 (0: no decay)"),
        ("min_lr_ratio", "a number from 0 to 1 (the final learning rate over the peak)"),
    ):
        value = model.get(key)
        if value is None and key not in model:
            continue
        ok = is_int(value) if key == "warmup_steps" else is_number(value)
        if not ok or value < 0 or (key == "min_lr_ratio" and value > 1):
            raise ConfigError(f"model.{key}={value!r} is not allowed: it must be {allowed}.")


def model_config(cfg: DictConfig) -> dict[str, Any]:
    """What defines the model a checkpoint holds: the network's settings and the task.

    Two models can have the same tensor shapes and still mean different things (heads=4 and
    heads=2 at d_model=64 both have a 64x64 W_q), so a resume compares these values too.
    Keys are as a user types them (`heads`, `model.net.head_dim`, `task.length`).
    """
    net = OmegaConf.to_container(cfg.model.net, resolve=True)
    net.pop("_target_", None)
    task = OmegaConf.to_container(cfg.task, resolve=True)
    record = {k if k in ("heads", "scale") else f"model.net.{k}": v for k, v in net.items()}
    record["task"] = str(task.pop("_target_", "?")).rsplit(".", 1)[-1]
    record.update({f"task.{k}": v for k, v in task.items()})
    return record


OPTIONAL_EXTRAS = {  # config group choice -> (the module its plugin provides, the extra)
    "hparams_search": ("hydra_plugins.hydra_optuna_sweeper", "optuna"),
}


def missing_extra(overrides: list[str]) -> str | None:
    """Why these command-line overrides need an optional extra that is not installed, or None.

    Checked before Hydra composes, whose own message ("Could not find
    'hydra/sweeper/optuna'") does not say how to install it.
    """
    import importlib.util

    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key in OPTIONAL_EXTRAS and "=" in override:
            module, extra = OPTIONAL_EXTRAS[key]
            if importlib.util.find_spec(module) is None:
                return (
                    f"{override} needs the '{extra}' extra, which is not installed. Install it "
                    f"with `uv sync --extra {extra}` (or `pip install -e .[{extra}]`), then run "
                    "the same command again. It is optional because it adds scipy, which "
                    "slows every run's start-up by about a second."
                )
    return None
